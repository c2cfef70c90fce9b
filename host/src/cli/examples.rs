//! Examples under each subcommand's `--help` ("Examples:"), kept in one table so that a test
//! can check that every subcommand has some and that each one parses.

use clap::Command;

/// (subcommand path, examples): each example line is `scarab ...` optionally followed by
/// two or more spaces and `# comment`.
///
/// An example is a command line as a shell takes it, without anything the shell would
/// interpret (variables, globs, pipes, redirections) outside quotes: the test splits it as a
/// shell would and parses it with the real command. Comments are aligned by hand within an
/// entry, and lines kept to 100 characters.
pub const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "serve",
        &[
            "scarab serve                                    # one node on 127.0.0.1:7070, data in ./scarab-data",
            "scarab serve --config /etc/scarab/scarab.toml   # settings from a file (flags and SCARAB_* win)",
            "scarab serve --auth --listen 0.0.0.0:7070 --cluster-secret-file /etc/scarab/cluster-secret",
            "scarab serve --config scarab.toml --node-id 2 --join http://10.0.0.1:7070   # join a cluster",
        ],
    ),
    (
        "dev",
        &[
            "scarab dev           # every schema of schemas/ registered, on 127.0.0.1:7070",
            "scarab dev --watch   # register a schema or plugin again when its file changes",
            "scarab dev --listen 127.0.0.1:8080 --data-dir /tmp/scarab-dev   # another port, a scratch directory",
        ],
    ),
    (
        "config put",
        &[
            "scarab config put stores/orders --schema store -f orders.json   # create, at store's latest version",
            "scarab config put stores/orders -f orders.json --if-match 8   # update, only if still at revision 8",
            "scarab config put stores/orders --schema-version 2 -f orders-v2.json   # at version 2 of its schema",
            "scarab config put flags/checkout --value '{\"enabled\":true,\"rollout\":{\"percent\":50,\"sticky\":true}}'",
        ],
    ),
    (
        "config get",
        &[
            "scarab config get stores/orders",
            "scarab config get stores/orders --schema-version 2     # converted to version 2 of its schema",
            "scarab config get stores/orders --revision 8 -o json   # as it was at revision 8",
            "scarab config get stores/orders --stale -s http://10.0.0.2:7070   # that node's local state",
        ],
    ),
    (
        "config history",
        &[
            "scarab config history stores/orders                         # newest first, 20 revisions",
            "scarab config history stores/orders --limit 5 --before 10   # the page before revision 10",
        ],
    ),
    (
        "config rollback",
        &[
            "scarab config rollback stores/orders --to 8   # revision 8's value, as a new revision",
            "scarab config rollback stores/orders --to 8 --reason 'timeouts too short'   # why, for the audit",
        ],
    ),
    (
        "config watch",
        &[
            "scarab config watch --prefix stores/   # one JSON line per change, until interrupted",
            "scarab config watch --prefix stores/ --from-revision 8   # from revision 8 on, then follow",
            "scarab config watch --schema store --schema-version 2   # store configs, values at version 2",
        ],
    ),
    (
        "config list",
        &[
            "scarab config list --prefix stores/",
            "scarab config list --prefix stores/ --limit 100 -o yaml",
        ],
    ),
    (
        "config delete",
        &[
            "scarab config delete stores/archive-2024",
            "scarab config delete stores/orders --if-match 13   # only if still at revision 13",
        ],
    ),
    (
        "schema push",
        &[
            "scarab schema push store 1 --schema schemas/store/v1.json     # a JSON Schema alone",
            "scarab schema push store 2 --schema schemas/store/v2.json --plugin store_v2.wasm   # and its plugin",
            "scarab schema push store 2 --schema schemas/store/v2.json --plugin store_v2.wasm --check",
            "scarab schema push gateway 1 --schema gateway.json --strict   # refuse a schema that takes anything",
        ],
    ),
    (
        "schema migrate",
        &[
            "scarab schema migrate store --to 2             # every store config to version 2, with progress",
            "scarab schema migrate store --to 2 --dry-run   # convert everything, write nothing",
            "scarab schema migrate store --to 2 --no-wait   # start it, follow it with `schema migrations`",
        ],
    ),
    (
        "schema migrations",
        &[
            "scarab schema migrations store",
            "scarab schema migrations store -o json",
        ],
    ),
    (
        "schema policy",
        &[
            "scarab schema policy store                   # show it",
            "scarab schema policy store --writes latest   # writes only at the highest version",
            "scarab schema policy store --writes any      # writes at any registered version",
        ],
    ),
    (
        "schema list",
        &["scarab schema list", "scarab schema list -o json"],
    ),
    (
        "schema show",
        &[
            "scarab schema show store     # its versions",
            "scarab schema show store 2   # version 2, with its JSON Schema",
        ],
    ),
    (
        "audit",
        &[
            "scarab audit                                               # the last 50 records",
            "scarab audit --prefix stores/ --by alice --action config   # alice's changes of configs",
            "scarab audit --action config.update --since 2026-12-01T00:00:00Z --limit 1000",
        ],
    ),
    (
        "settings history",
        &[
            "scarab settings history                                   # what is kept",
            "scarab settings history --keep 20 --max-age 90d --reason 'smaller backups'",
            "scarab settings history --watch-window 1000000            # watches resume further back",
        ],
    ),
    (
        "settings audit",
        &[
            "scarab settings audit                                     # what is kept",
            "scarab settings audit --max-records 5000000 --no-max-age   # keep more, however old",
        ],
    ),
    (
        "txn",
        &[
            "scarab txn examples/tour/txn.json      # conditions, then puts and deletes, at one revision",
            "scarab txn - --reason 'add payments'   # the transaction from stdin",
        ],
    ),
    (
        "auth whoami",
        &[
            "scarab auth whoami   # the principal of --token (SCARAB_TOKEN)",
            "scarab auth whoami -s https://10.0.0.1:7070 --cacert ca.pem --cert alice.pem --key alice-key.pem",
        ],
    ),
    (
        "auth user create",
        &[
            "scarab auth user create orders-svc --role orders-writer",
            "scarab auth user create alice --role admin   # alice: a token's user, or a certificate's CN",
            "scarab auth user create ops-bot --role ops --role orders-reader   # its roles, replacing any",
        ],
    ),
    (
        "auth user list",
        &["scarab auth user list", "scarab auth user list -o json"],
    ),
    (
        "auth user grant",
        &["scarab auth user grant orders-svc orders-reader"],
    ),
    (
        "auth user revoke",
        &["scarab auth user revoke orders-svc orders-writer"],
    ),
    (
        "auth user delete",
        &["scarab auth user delete orders-svc   # and every token of theirs"],
    ),
    (
        "auth role create",
        &[
            "scarab auth role create orders-writer --writer stores/orders/   # its configs; read every schema",
            "scarab auth role create readers --reader stores/                # read configs under stores/",
            "scarab auth role create ops -p config:read: -p audit:read: -p cluster:admin",
            "scarab auth role create schema-admin -p 'schema:register:*' -p 'schema:migrate:*'",
        ],
    ),
    ("auth role list", &["scarab auth role list"]),
    (
        "auth role grant",
        &[
            "scarab auth role grant ops config:write:flags/",
            "scarab auth role grant ops schema:read:store",
        ],
    ),
    (
        "auth role revoke",
        &["scarab auth role revoke ops cluster:admin"],
    ),
    (
        "auth role delete",
        &["scarab auth role delete ops   # only once no user holds it"],
    ),
    (
        "auth token create",
        &[
            "scarab auth token create --user orders-svc --ttl 90d --description 'orders, prod'   # shown once",
            "scarab auth token create --ttl 12h   # a short-lived token of your own",
        ],
    ),
    (
        "auth token list",
        &["scarab auth token list   # every token with auth:admin, else yours"],
    ),
    (
        "auth token revoke",
        &["scarab auth token revoke 0123456789abcdef   # the ID of `auth token list`"],
    ),
    (
        "cluster status",
        &[
            "scarab cluster status",
            "scarab cluster status -s http://10.0.0.2:7070 -o json",
        ],
    ),
    (
        "cluster add",
        &[
            "scarab cluster add 4 --api http://10.0.0.4:7070 --peer http://10.0.0.4:7170   # node 4 already runs",
            "scarab cluster add 4 --api http://10.0.0.4:7070 --peer http://10.0.0.4:7170 --learner   # no vote",
        ],
    ),
    (
        "cluster promote",
        &["scarab cluster promote 4   # a learner that has caught up"],
    ),
    (
        "cluster remove",
        &[
            "scarab cluster remove 3",
            "scarab cluster remove 3 -s http://10.0.0.1:7070,http://10.0.0.2:7070   # through the others",
        ],
    ),
    (
        "plugin check",
        &[
            "scarab plugin check store_v1.wasm orders.json --schema schemas/store/v1.json --key stores/orders",
            "scarab plugin check store_v1.wasm orders.json --name store --schema-version 1 --no-key --json",
        ],
    ),
    (
        "plugin test",
        &[
            "scarab plugin test target/wasm32-wasip2/plugin/store_v2.wasm --schema schemas/store/v2.json",
            "scarab plugin test store_v1.wasm --name store --schema-version 1 --examples v1.examples.json",
        ],
    ),
    (
        "plugin new",
        &[
            "scarab plugin new payment-gateway   # a Rust project in ./payment-gateway-plugin",
            "scarab plugin new payment-gateway --lang python --dir plugins/payment-gateway",
            "scarab plugin new payment-gateway --lang js --migrator   # also a v2 that migrates from v1",
        ],
    ),
    (
        "cert ca",
        &["scarab cert ca --out pki   # pki/ca.pem, pki/ca-key.pem (mode 0600)"],
    ),
    (
        "cert node",
        &[
            "scarab cert node --ca pki --node-id 1 --host 10.0.0.1 --host scarab-1.internal --out pki",
            "scarab cert node --ca pki --node-id 2 --host 127.0.0.1 --out pki --force   # replace node-2.pem",
        ],
    ),
    (
        "cert client",
        &[
            "scarab cert client --ca pki --name alice --out pki   # CN alice: the principal it names",
        ],
    ),
    (
        "import",
        &[
            "scarab import conf/stores/ --schema store --schema-version 1 --prefix stores/ --dry-run",
            "scarab import conf/stores/ --schema store --schema-version 1 --prefix stores/",
            "scarab import conf/ --schema store --schema-version 2 --prefix stores/ --key-from field:/store_id",
            "scarab import --from-env SHOP_ --env-key stores/orders --schema store --schema-version 1",
        ],
    ),
    (
        "export",
        &[
            "scarab export --prefix stores/ --out conf/stores/   # one JSON file per key",
            "scarab export --prefix stores/ --out conf/stores/ --format yaml",
        ],
    ),
    (
        "backup create",
        &[
            "scarab backup create scarab-2026-12-01.snap   # needs cluster:admin",
            "scarab backup create /backups/scarab.snap -s http://10.0.0.1:7070,http://10.0.0.2:7070",
        ],
    ),
    (
        "backup verify",
        &["scarab backup verify scarab-2026-12-01.snap   # checksum, record count, what it holds"],
    ),
    (
        "restore",
        &[
            "scarab restore scarab.snap --data-dir /var/lib/scarab --node-id 1 --advertise http://10.0.1.1:7070",
        ],
    ),
    (
        "agent",
        &[
            "scarab agent --prefix stores/ --out /etc/orders/conf   # one JSON file per key, kept current",
            "scarab agent --prefix stores/ --out conf --format yaml --exec 'systemctl reload orders'",
            "scarab agent --prefix stores/ --prefix flags/ --out conf --listen 127.0.0.1:7071   # and over HTTP",
            "scarab agent --prefix stores/ --out conf --schema store --schema-version 2   # values at v2",
        ],
    ),
    (
        "completion",
        &[
            "scarab completion powershell   # the script, for PowerShell",
            "scarab completion elvish",
        ],
    ),
];

/// `cmd` with each table entry as the `after_help` of its subcommand ("Examples:" and the
/// lines indented by two spaces). An entry whose path names no subcommand panics (a test
/// runs this on the real command).
///
/// A subcommand that has an `after_help` of its own keeps it, with the examples after it:
/// under its own "Examples:" heading if it ends with one, else under a new one.
pub fn add(cmd: Command) -> Command {
    EXAMPLES.iter().fold(cmd, |cmd, (path, lines)| {
        let names: Vec<&str> = path.split_whitespace().collect();
        add_at(cmd, path, &names, lines)
    })
}

/// `cmd` with `lines` added to the after-help of its subcommand at `names` (`path`, for the
/// panic message).
fn add_at(cmd: Command, path: &str, names: &[&str], lines: &[&str]) -> Command {
    let Some((name, rest)) = names.split_first() else {
        let help = with_examples(cmd.get_after_help().map(ToString::to_string), lines);
        return cmd.after_help(help);
    };
    assert!(
        cmd.get_subcommands().any(|sub| sub.get_name() == *name),
        "cli/examples.rs has examples of `scarab {path}`, but `{}` has no subcommand `{name}`",
        cmd.get_name()
    );
    // Not `mut_subcommand`, which moves the subcommand to the end of the list (the order
    // completion scripts and error suggestions follow).
    cmd.mut_subcommands(|sub| {
        if sub.get_name() == *name {
            add_at(sub, path, rest, lines)
        } else {
            sub
        }
    })
}

/// The after-help text: `existing`, then "Examples:" and the lines indented by two spaces.
fn with_examples(existing: Option<String>, lines: &[&str]) -> String {
    let mut text = match existing {
        None => "Examples:".to_string(),
        Some(text) if ends_with_examples(&text) => text.trim_end().to_string(),
        Some(text) => format!("{}\n\nExamples:", text.trim_end()),
    };
    for line in lines {
        text.push_str("\n  ");
        text.push_str(line);
    }
    text
}

/// Whether `text` ends with an "Examples:" section: the heading, then only indented lines.
fn ends_with_examples(text: &str) -> bool {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines
        .iter()
        .rposition(|line| line.trim_end() == "Examples:")
        .is_some_and(|at| lines[at + 1..].iter().all(|line| line.starts_with(' ')))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::{Command, CommandFactory};

    use super::{EXAMPLES, add};
    use crate::cli::Cli;

    /// The paths (`auth user create`) of the subcommands below `cmd` that have none of their
    /// own, clap's `help` left out.
    fn leaves(cmd: &Command, prefix: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|sub| sub.get_name() != "help") {
            let path = if prefix.is_empty() {
                sub.get_name().to_string()
            } else {
                format!("{prefix} {}", sub.get_name())
            };
            if sub.has_subcommands() {
                leaves(sub, &path, out);
            } else {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_leaf_subcommand_has_examples() {
        let mut all = Vec::new();
        leaves(&Cli::command(), "", &mut all);
        assert!(
            all.len() > 40,
            "only {} subcommands found: {all:?}",
            all.len()
        );
        let missing: Vec<&String> = all
            .iter()
            .filter(|leaf| {
                !EXAMPLES
                    .iter()
                    .any(|(path, lines)| *path == leaf.as_str() && !lines.is_empty())
            })
            .collect();
        assert!(
            missing.is_empty(),
            "subcommands without examples (add them to EXAMPLES in cli/examples.rs): {missing:?}"
        );
    }

    #[test]
    fn every_example_parses() {
        let cmd = add(Cli::command());
        let mut failures = Vec::new();
        for (path, lines) in EXAMPLES {
            for line in *lines {
                if let Err(e) = parses(&cmd, path, line) {
                    failures.push(format!(
                        "{line}\n    {}",
                        e.trim_end().replace('\n', "\n    ")
                    ));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "examples that are not valid command lines:\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn the_table_names_real_subcommands() {
        let mut seen = BTreeSet::new();
        for (path, lines) in EXAMPLES {
            assert!(seen.insert(*path), "`{path}` is in EXAMPLES twice");
            assert!(!lines.is_empty(), "`{path}` has an empty list of examples");
        }
        let cmd = add(Cli::command());
        for (path, lines) in EXAMPLES {
            let sub = path.split_whitespace().fold(&cmd, |cmd, name| {
                cmd.find_subcommand(name).expect("add checked it")
            });
            let help = sub
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert_eq!(help.matches("Examples:").count(), 1, "`{path}`: {help}");
            for line in *lines {
                assert!(
                    help.contains(&format!("\n  {line}")),
                    "`{path}`: {line} not in {help}"
                );
                assert!(
                    line.chars().count() <= 100,
                    "longer than 100 characters: {line}"
                );
            }
        }
        cmd.debug_assert();
    }

    /// Whether `line` is a command line of `scarab PATH` that the command accepts; else why not.
    fn parses(cmd: &Command, path: &str, line: &str) -> Result<(), String> {
        let words = split(line)?;
        if words.first().map(String::as_str) != Some("scarab") {
            return Err("it does not start with `scarab`".into());
        }
        let matches = cmd
            .clone()
            .try_get_matches_from(words)
            .map_err(|e| e.render().to_string())?;
        let mut ran = Vec::new();
        let mut m = &matches;
        while let Some((name, sub)) = m.subcommand() {
            ran.push(name);
            m = sub;
        }
        let ran = ran.join(" ");
        if ran != path {
            return Err(format!("it runs `scarab {ran}`, not `scarab {path}`"));
        }
        Ok(())
    }

    /// `line` split into words as a POSIX shell would, up to a comment (`#` starting a word,
    /// after two spaces): blanks separate words, `'...'` is literal, `"..."` too but for `\"`
    /// and `\\`, and `\` outside quotes takes the next character literally. Whatever else a
    /// shell would interpret (variables, globs, pipes, redirections...) is refused, so that
    /// an example does what it says when pasted.
    fn split(line: &str) -> Result<Vec<String>, String> {
        let mut words = Vec::new();
        let mut word: Option<String> = None;
        let mut chars = line.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                ' ' | '\t' => words.extend(word.take()),
                '#' if word.is_none() => {
                    if !line[..at].ends_with("  ") {
                        return Err("a comment needs two spaces before its `#`".into());
                    }
                    break;
                }
                '\'' => {
                    let w = word.get_or_insert_with(String::new);
                    loop {
                        match chars.next() {
                            Some((_, '\'')) => break,
                            Some((_, c)) => w.push(c),
                            None => return Err("a ' is not closed".into()),
                        }
                    }
                }
                '"' => {
                    let w = word.get_or_insert_with(String::new);
                    loop {
                        match chars.next() {
                            Some((_, '"')) => break,
                            Some((_, '\\')) => match chars.next() {
                                Some((_, c @ ('"' | '\\'))) => w.push(c),
                                Some((_, c)) => {
                                    w.push('\\');
                                    w.push(c);
                                }
                                None => return Err("a \" is not closed".into()),
                            },
                            Some((_, c @ ('$' | '`' | '!'))) => {
                                return Err(format!("`{c}` in double quotes: use single ones"));
                            }
                            Some((_, c)) => w.push(c),
                            None => return Err("a \" is not closed".into()),
                        }
                    }
                }
                '\\' => match chars.next() {
                    Some((_, c)) => word.get_or_insert_with(String::new).push(c),
                    None => return Err("a \\ ends the line".into()),
                },
                '$' | '`' | '|' | '&' | ';' | '<' | '>' | '(' | ')' | '*' | '?' | '[' | '{'
                | '}' | '!' => {
                    return Err(format!(
                        "`{c}` means something to a shell: quote it, or keep it to the comment"
                    ));
                }
                c => word.get_or_insert_with(String::new).push(c),
            }
        }
        words.extend(word);
        Ok(words)
    }

    #[test]
    fn split_is_a_shell_split() {
        let words = |line| split(line).unwrap();
        assert_eq!(words("scarab a  b\tc"), ["scarab", "a", "b", "c"]);
        assert_eq!(words("scarab 'a b' x'y'z"), ["scarab", "a b", "xyz"]);
        assert_eq!(
            words(r#"scarab "a \"b\" \\ \n""#),
            ["scarab", r#"a "b" \ \n"#]
        );
        assert_eq!(words(r"scarab a\ b"), ["scarab", "a b"]);
        assert_eq!(
            words("scarab a#b   # a comment; $HOME | more"),
            ["scarab", "a#b"]
        );
        assert_eq!(words("scarab ''"), ["scarab", ""]);
        for bad in [
            "scarab a # one space",
            "scarab 'a",
            "scarab \"a",
            "scarab $HOME",
            "scarab a > b",
            "scarab a*",
            "scarab \"$HOME\"",
        ] {
            assert!(split(bad).is_err(), "{bad}");
        }
    }
}
