//! What the client commands print: the server's JSON (`-o json`), tables (`-o table`), and
//! errors with their causes, and the exit code of a failed command.

use std::error::Error as StdError;
use std::fmt::Display;
use std::process::ExitCode;

use comfy_table::Table;
use serde::Serialize;

use scarab_client::types::{ConfigMeta, Violation};
use scarab_client::{ApiError, Error as ClientError};

/// Prints `value` as the server sent it: the wire types serialise to the server's JSON,
/// field for field.
pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("wire types serialise")
    );
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

/// The exit code of a client command that failed: 1, whatever the error (an API error, no
/// answer, a bad input). Usage errors are clap's (2).
pub fn exit_code(_: &anyhow::Error) -> ExitCode {
    ExitCode::FAILURE
}

/// The end of a client command: nothing more to print on success; on failure the error (see
/// [`report`]).
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Prints an error with its causes (an API error with its violations as a table) and
/// returns the exit code.
pub fn report(e: &anyhow::Error) -> ExitCode {
    let top: &(dyn StdError + 'static) = e.as_ref();
    match top.downcast_ref::<ClientError>() {
        Some(ClientError::Api(api)) => report_api(api),
        Some(c @ ClientError::Transport { .. }) => print_error_as(&describe(c), top),
        _ => print_error(top),
    }
    exit_code(e)
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

fn failures_table(report: &scarab_client::types::CompatReport) -> Table {
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

/// A transport error in words: which endpoint (as `--server` spells it), and whether the
/// request left.
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
                format!("cannot reach {server}: {source}")
            }
        }
        other => other.to_string(),
    }
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
