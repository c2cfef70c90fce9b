//! What the client commands print: the server's JSON (`-o json`), tables (`-o table`), and
//! errors with their causes, and the exit code of a failed command.

use std::error::Error as StdError;
use std::fmt::Display;
use std::process::ExitCode;

use comfy_table::Table;
use serde::Serialize;

use scarab_client::types::{ConfigMeta, Violation};
use scarab_client::{ApiError, Error as ClientError};

use super::Output;

/// Prints `value` as the server sent it: the wire types serialise to the server's JSON,
/// field for field; as YAML under `-o yaml`.
pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    if format() == Output::Yaml {
        // Through a JSON value: the document's shape, whatever the type's serde does.
        let value = serde_json::to_value(value).expect("wire types serialise");
        match serde_saphyr::to_string(&super::formats::Plain(&value)) {
            Ok(yaml) => print!("{yaml}"),
            Err(e) => eprintln!("error: cannot write YAML: {e}"),
        }
        return;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("wire types serialise")
    );
}

/// Prints `value` as the document (`-o json|yaml`) or with `table` (`-o table`).
pub fn print_as<T: Serialize + ?Sized>(output: Output, value: &T, table: impl FnOnce(&T)) {
    if output.structured() {
        print_json(value);
    } else {
        table(value);
    }
}

/// A table cell: `-` for an absent value.
pub fn cell<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

/// A wire enum (a role, a violation source) as the server spells it.
pub fn wire_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The columns of `config list`, in order.
pub const META_COLUMNS: [&str; 8] = [
    "key",
    "schema",
    "schema_version",
    "revision",
    "key_version",
    "updated_at",
    "updated_by",
    "plugin_digest",
];

/// A config's metadata in [`META_COLUMNS`] order.
pub fn meta_cells(m: &ConfigMeta) -> [String; 8] {
    [
        m.key.clone(),
        m.schema.clone(),
        m.schema_version.to_string(),
        m.revision.to_string(),
        m.key_version.to_string(),
        m.updated_at.clone(),
        m.updated_by.clone(),
        cell(m.plugin_digest.as_deref()),
    ]
}

/// `name | value` rows: [`META_COLUMNS`], then who created the config and when.
pub fn meta_rows(m: &ConfigMeta) -> Vec<(&'static str, String)> {
    let mut rows: Vec<(&'static str, String)> =
        META_COLUMNS.into_iter().zip(meta_cells(m)).collect();
    rows.push(("created_at", m.created_at.clone()));
    rows.push(("created_by", m.created_by.clone()));
    rows
}

/// Prints `name | value` rows as a table.
pub fn print_rows(rows: &[(&str, String)]) {
    let mut t = Table::new();
    for (name, value) in rows {
        t.add_row([name.to_string(), value.clone()]);
    }
    println!("{t}");
}

/// The `-o` of the command: set once by `cli::main` after parsing.
static FORMAT: std::sync::OnceLock<Output> = std::sync::OnceLock::new();

/// Documents print as `output` from now on, and errors as JSON under `-o json|yaml`.
pub fn set_format(output: Output) {
    let _ = FORMAT.set(output);
}

fn format() -> Output {
    FORMAT.get().copied().unwrap_or(Output::Table)
}

fn json_errors() -> bool {
    format().structured()
}

/// The exit codes of the client commands (README, "CLI"): what a script can tell apart.
pub mod exit {
    /// The server refused the request (or a check the command makes failed).
    pub const REFUSED: u8 = 1;
    /// Usage or input: flags, a file that cannot be read or parsed, an invalid URL.
    pub const USAGE: u8 = 2;
    /// No answer from a Scarab server: not reachable, or something else answered.
    pub const UNREACHABLE: u8 = 3;
}

/// The exit code of a client command that failed: [`exit::UNREACHABLE`] when no Scarab
/// server answered, [`exit::USAGE`] for a bad input (an unreadable or unparsable file, an
/// invalid URL or argument), else [`exit::REFUSED`]. clap's own usage errors exit with 2.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    ExitCode::from(exit_code_of(e))
}

fn exit_code_of(e: &anyhow::Error) -> u8 {
    if let Some(c) = e.downcast_ref::<ClientError>() {
        return match c {
            ClientError::Api(_) => exit::REFUSED,
            ClientError::Transport { .. } | ClientError::Decode { .. } => exit::UNREACHABLE,
            ClientError::InvalidUrl { .. } | ClientError::InvalidArgument(_) => exit::USAGE,
            _ => exit::REFUSED,
        };
    }
    let input = e
        .chain()
        .any(|c| c.is::<std::io::Error>() || c.is::<serde_json::Error>() || c.is::<InputError>());
    if input { exit::USAGE } else { exit::REFUSED }
}

/// An input the command cannot use (a flag's value, a file's content): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The end of a client command: nothing more to print on success; on failure the error (see
/// [`report`]).
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Prints an error with its causes (an API error with its violations as a table; under
/// `-o json`, one JSON object on stderr) and returns the exit code.
pub fn report(e: &anyhow::Error) -> ExitCode {
    let top: &(dyn StdError + 'static) = e.as_ref();
    let client = top.downcast_ref::<ClientError>();
    if json_errors() {
        report_json(e, client);
        return exit_code(e);
    }
    match client {
        Some(ClientError::Api(api)) => report_api(api),
        Some(c @ (ClientError::Transport { .. } | ClientError::Decode { .. })) => {
            print_error_as(&describe(c), top)
        }
        _ => print_error(top),
    }
    exit_code(e)
}

/// `-o json`: `{"error": {...}}` on stderr, the server's error body as it sent it (with the
/// HTTP `status`), or one of the client's own codes: `unreachable`, `not_scarab`,
/// `invalid_input`, `failed`.
fn report_json(e: &anyhow::Error, client: Option<&ClientError>) {
    let body = match client {
        Some(ClientError::Api(api)) => serde_json::json!({"error": {
            "status": api.status,
            "code": api.code.as_str(),
            "message": api.message,
            "violations": api.violations,
            "report": api.report,
        }}),
        other => {
            let code = match other {
                Some(ClientError::Transport { .. }) => "unreachable",
                Some(ClientError::Decode { .. }) => "not_scarab",
                _ if exit_code_of(e) == exit::USAGE => "invalid_input",
                _ => "failed",
            };
            let text = match other {
                Some(c) => describe(c),
                None => e.to_string(),
            };
            let lines = error_lines(&text, e.as_ref());
            let message = lines
                .iter()
                .map(|l| {
                    l.trim_start_matches("error: ")
                        .trim()
                        .trim_start_matches("caused by: ")
                })
                .collect::<Vec<_>>()
                .join(": ");
            serde_json::json!({"error": {"code": code, "message": message}})
        }
    };
    eprintln!("{body}");
}

/// The server's error: `error: 422 Unprocessable Entity: validation_failed: message`, then
/// the violations.
fn report_api(e: &ApiError) {
    let status = match reqwest::StatusCode::from_u16(e.status) {
        Ok(s) => s.to_string(),
        Err(_) => e.status.to_string(),
    };
    eprintln!("error: {status}: {}: {}", e.code, e.message);
    if !e.violations.is_empty() {
        eprintln!("{}", violations_table(&e.violations));
    }
    if let Some(report) = e.compat_report() {
        // The report as the server sent it (what `--check` prints), then its failures for a
        // reader.
        print_json(&report);
        eprintln!("{}", failures_table(&report));
        eprintln!("register anyway with `scarab schema push --force` (the API's ?force=true)");
    }
}

pub fn failures_table(report: &scarab_client::types::CompatReport) -> Table {
    let mut t = Table::new();
    t.set_header(["key", "revision", "step", "reason"]);
    for f in &report.failures {
        t.add_row([
            f.key.clone(),
            f.revision.to_string(),
            wire_text(&f.step),
            f.reason.clone(),
        ]);
    }
    if report.failed as usize > report.failures.len() {
        t.add_row([
            format!("… {} more", report.failed as usize - report.failures.len()),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    t
}

fn violations_table(violations: &[Violation]) -> Table {
    let mut t = Table::new();
    t.set_header(["source", "path", "code", "message"]);
    for v in violations {
        t.add_row([
            wire_text(&v.source),
            v.path.clone(),
            v.code.clone().unwrap_or_default(),
            v.message.clone(),
        ]);
    }
    t
}

/// A transport error in words: which endpoint (as `--server` spells it), whether the
/// request left, and what to check.
fn describe(e: &ClientError) -> String {
    match e {
        ClientError::Transport {
            endpoint,
            maybe_sent,
            source,
        } => {
            let server = endpoint.as_str().trim_end_matches('/');
            if *maybe_sent {
                format!("no answer from {server}: {source}")
            } else {
                let refused = chain_text(source.as_ref()).contains("Connection refused");
                let hint = if refused {
                    "connection refused: is the server running? (`scarab dev` starts one; --server or SCARAB_SERVER names another)"
                } else {
                    "is the address right, and the server running?"
                };
                format!("cannot reach {server}: {hint}")
            }
        }
        ClientError::Decode {
            endpoint, status, ..
        } => {
            let server = endpoint.as_str().trim_end_matches('/');
            let status = reqwest::StatusCode::from_u16(*status)
                .map_or_else(|_| status.to_string(), |s| s.to_string());
            format!(
                "{server} answered {status} without Scarab's error body: is it a Scarab API? (--server or SCARAB_SERVER names the server)"
            )
        }
        other => other.to_string(),
    }
}

/// Every message of an error's chain, joined.
fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// `error: {e}`, then each cause on a line of its own (a cause whose text the line above
/// already shows is not repeated).
pub fn print_error(e: &(dyn StdError + 'static)) {
    print_error_as(&e.to_string(), e);
}

/// [`print_error`] with `text` in place of the error's own.
fn print_error_as(text: &str, e: &(dyn StdError + 'static)) {
    for line in error_lines(text, e) {
        eprintln!("{line}");
    }
}

/// `error: {text}`, then `  caused by: {cause}` for each cause of `e` whose text the line
/// above does not already contain (many errors show their source in their own text).
fn error_lines(text: &str, e: &(dyn StdError + 'static)) -> Vec<String> {
    let mut lines = vec![format!("error: {text}")];
    let mut above = text.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let line = c.to_string();
        if !above.contains(&line) {
            lines.push(format!("  caused by: {line}"));
        }
        above = line;
        cause = c.source();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Failed {
        /// Shows its source in its own text.
        #[error("cannot open {0}: {1}")]
        Open(&'static str, #[source] std::io::Error),
        /// Does not.
        #[error("the node stopped")]
        Stopped(#[source] Box<Failed>),
    }

    #[test]
    fn every_cause_is_printed_once() {
        let io = || std::io::Error::other("disk on fire");
        let e = Failed::Stopped(Box::new(Failed::Open("db", io())));
        assert_eq!(
            error_lines(&e.to_string(), &e),
            [
                "error: the node stopped",
                "  caused by: cannot open db: disk on fire"
            ]
        );
        let e = Failed::Open("db", io());
        assert_eq!(
            error_lines(&e.to_string(), &e),
            ["error: cannot open db: disk on fire"]
        );
    }
}
