//! `scarab plugin test`: a plugin over a schema's examples file, offline, through the code
//! paths the server uses: `check_document` for every example (the JSON Schema, then the
//! plugin), and for a migrator the conversions of the compatibility check (upgrade, validate
//! at the new version, downgrade back to the same document).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use comfy_table::Table;
use serde::Serialize;
use serde_json::Value;

use scarab::plugins::{CallContext, Direction};
use scarab::schema::check_document;

use super::{Offline, SandboxArgs, VersionArgs, read_json};

#[derive(Args)]
pub struct TestArgs {
    plugin: PathBuf,
    /// The examples: `{"valid": [{"name", "key", "value"}], "invalid": [{..., "violations":
    /// [{"path", "source", "code"}]}]}` (as `schemas/NAME/vN.examples.json`). Default: beside
    /// --schema, `vN.examples.json`.
    #[arg(long)]
    examples: Option<PathBuf>,
    /// The previous version's examples, whose valid ones the migrator upgrades. Default:
    /// beside the examples, `v<from-version>.examples.json`.
    #[arg(long)]
    from_examples: Option<PathBuf>,
    #[command(flatten)]
    version: VersionArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// The outcome of one example at one step.
#[derive(Serialize)]
struct Outcome {
    example: String,
    /// `validate`, `upgrade`, `validate_upgraded` or `round_trip`.
    step: &'static str,
    passed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
}

/// One example of an examples file.
struct Example {
    name: String,
    key: String,
    value: Value,
    /// `None` for a valid example; the violations (source, path, code) an invalid one lists.
    expected: Option<Vec<(String, String, String)>>,
}

fn examples(path: &Path) -> anyhow::Result<Vec<Example>> {
    let file = read_json(path)?;
    let mut out = Vec::new();
    for (group, valid) in [("valid", true), ("invalid", false)] {
        let Some(items) = file[group].as_array() else {
            bail!("{}: no `{group}` array", path.display());
        };
        for item in items {
            let name = item["name"].as_str().unwrap_or("(unnamed)").to_string();
            let expected = if valid {
                None
            } else {
                let listed = item["violations"]
                    .as_array()
                    .with_context(|| format!("{}: {name}: no `violations`", path.display()))?;
                Some(
                    listed
                        .iter()
                        .map(|v| {
                            let text = |f: &str| v[f].as_str().unwrap_or_default().to_string();
                            (text("source"), text("path"), text("code"))
                        })
                        .collect(),
                )
            };
            out.push(Example {
                name,
                key: item["key"].as_str().unwrap_or_default().to_string(),
                value: item["value"].clone(),
                expected,
            });
        }
    }
    Ok(out)
}

/// A multiset of (source, path, code), as text for a report.
fn counted(items: &[(String, String, String)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (source, path, code) in items {
        *out.entry(format!("{source} {path:?} {code}")).or_insert(0) += 1;
    }
    out
}

pub fn run(args: TestArgs) -> ExitCode {
    match test(&args) {
        Ok(outcomes) => {
            let failed = outcomes.iter().filter(|o| !o.passed).count();
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&outcomes).expect("json prints")
                );
            } else {
                let mut t = Table::new();
                t.set_header(["example", "step", "result", "detail"]);
                for o in &outcomes {
                    let result = if o.passed { "pass" } else { "FAIL" };
                    t.add_row([o.example.as_str(), o.step, result, o.detail.as_str()]);
                }
                println!("{t}");
                println!("{} passed, {failed} failed", outcomes.len() - failed);
            }
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn test(args: &TestArgs) -> anyhow::Result<Vec<Outcome>> {
    let (name, version) = args.version.resolve()?;
    let examples_path = match (&args.examples, &args.version.schema) {
        (Some(p), _) => p.clone(),
        (None, Some(schema)) => schema.with_file_name(format!("v{version}.examples.json")),
        (None, None) => bail!("give --examples FILE (or --schema, beside which it is found)"),
    };
    let offline = Offline::load(&args.plugin, args.version.schema.as_deref(), &args.sandbox)?;
    let max = scarab::schema::DEFAULT_MAX_VIOLATIONS;
    let check = |key: &str, doc: &Value, at: u32| {
        let text = doc.to_string();
        let ctx = CallContext {
            key,
            schema_name: &name,
            schema_version: at,
        };
        check_document(
            &offline.host,
            offline.validator.as_ref(),
            Some(&offline.plugin),
            &ctx,
            doc,
            &text,
            max,
        )
    };
    let mut outcomes = Vec::new();
    for ex in examples(&examples_path)? {
        let mut outcome = Outcome {
            example: ex.name.clone(),
            step: "validate",
            passed: false,
            detail: String::new(),
        };
        match check(&ex.key, &ex.value, version) {
            Err(failure) => outcome.detail = format!("the plugin {failure}"),
            Ok(found) => {
                let found: Vec<(String, String, String)> = found
                    .iter()
                    // Without --schema, only the plugin's violations can be compared.
                    .filter(|v| {
                        offline.validator.is_some()
                            || v.source == scarab_client::types::ViolationSource::Plugin
                    })
                    .map(|v| {
                        (
                            super::super::output::wire_text(&v.source),
                            v.path.clone(),
                            v.code.clone().unwrap_or_default(),
                        )
                    })
                    .collect();
                let mut expected = ex.expected.clone().unwrap_or_default();
                if offline.validator.is_none() {
                    expected.retain(|(source, _, _)| source == "plugin");
                }
                let (want, got) = (counted(&expected), counted(&found));
                outcome.passed = want == got;
                if !outcome.passed {
                    outcome.detail = format!("expected {want:?}, got {got:?}");
                }
            }
        }
        outcomes.push(outcome);
    }
    if let Some(migration) = offline.plugin.contract.migration {
        let from = migration.from_version;
        let from_path = args
            .from_examples
            .clone()
            .unwrap_or_else(|| examples_path.with_file_name(format!("v{from}.examples.json")));
        let previous = examples(&from_path).with_context(|| {
            format!("the migrator upgrades from version {from}: its examples (--from-examples)")
        })?;
        for ex in previous.into_iter().filter(|e| e.expected.is_none()) {
            outcomes.extend(migrate(
                &offline,
                &name,
                version,
                from,
                migration.downgrade,
                &ex,
                &check,
            ));
        }
    }
    Ok(outcomes)
}

/// Validates a document under a key at a version (the server's `check_document`).
type Check<'a> = dyn Fn(&str, &Value, u32) -> Result<Vec<scarab_client::types::Violation>, scarab::plugins::Failure>
    + 'a;

/// Upgrade, validate at `version`, and (if it downgrades) round trip one valid example of the
/// previous version.
fn migrate(
    offline: &Offline,
    name: &str,
    version: u32,
    from: u32,
    downgrade: bool,
    ex: &Example,
    check: &Check<'_>,
) -> Vec<Outcome> {
    let example = format!("v{from}: {}", ex.name);
    let outcome = |step, passed, detail: String| Outcome {
        example: example.clone(),
        step,
        passed,
        detail,
    };
    let ctx = |at| CallContext {
        key: &ex.key,
        schema_name: name,
        schema_version: at,
    };
    let upgraded = match offline.host.migrate(
        &offline.plugin,
        Direction::Upgrade,
        &ctx(version),
        &ex.value.to_string(),
    ) {
        Ok(text) => text,
        Err(failure) => return vec![outcome("upgrade", false, format!("the plugin {failure}"))],
    };
    let doc: Value = serde_json::from_str(&upgraded).expect("the host checked it is JSON");
    let mut out = vec![outcome("upgrade", true, String::new())];
    match check(&ex.key, &doc, version) {
        Ok(v) if v.is_empty() => out.push(outcome("validate_upgraded", true, String::new())),
        Ok(v) => out.push(outcome(
            "validate_upgraded",
            false,
            format!(
                "not valid at version {version}: {}",
                v.iter()
                    .map(|v| format!("{} {}", v.path, v.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
        Err(failure) => out.push(outcome(
            "validate_upgraded",
            false,
            format!("the plugin {failure}"),
        )),
    }
    if downgrade {
        let back = offline.host.migrate(
            &offline.plugin,
            Direction::Downgrade,
            &ctx(from),
            &doc.to_string(),
        );
        out.push(match back {
            Err(failure) => outcome("round_trip", false, format!("the plugin {failure}")),
            Ok(text) => {
                let back: Value = serde_json::from_str(&text).expect("the host checked it");
                if back == ex.value {
                    outcome("round_trip", true, String::new())
                } else {
                    outcome(
                        "round_trip",
                        false,
                        format!("downgraded back to {back}, not the original"),
                    )
                }
            }
        });
    }
    out
}
