//! `scarab settings history|audit`: how much history and audit trail the cluster keeps, and,
//! with a flag, a change of it (replicated, and recorded in the audit trail). The flags not
//! given keep their current values: the command reads the setting, changes what was asked,
//! and writes it back.

use std::time::Duration;

use super::ClientOpts;
use super::output::{cell, print_as, print_rows};

#[derive(clap::Subcommand)]
pub enum SettingsCmd {
    /// Revisions kept per key, their maximum age and the watch window; with a flag, change
    /// them.
    History(HistoryArgs),
    /// Audit records kept and their maximum age; with a flag, change them.
    Audit(AuditArgs),
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// Revisions kept per key, the current one included (at least 1).
    #[arg(long)]
    keep: Option<u32>,
    /// Drop revisions older than this (a key's live value never is), e.g. 30d.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "no_max_age")]
    max_age: Option<Duration>,
    /// Keep revisions however old they are.
    #[arg(long)]
    no_max_age: bool,
    /// Revisions a watch can resume from (at least 1).
    #[arg(long)]
    watch_window: Option<u64>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Audit records kept, the newest (at least 1).
    #[arg(long)]
    max_records: Option<u64>,
    /// Drop records older than this, e.g. 90d.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "no_max_age")]
    max_age: Option<Duration>,
    /// Keep records however old they are.
    #[arg(long)]
    no_max_age: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

/// The new maximum age: the flag's, none, or the current one.
fn max_age(flag: Option<Duration>, none: bool, current: Option<u64>) -> Option<u64> {
    match (flag, none) {
        (_, true) => None,
        (Some(d), false) => Some(d.as_secs().max(1)),
        (None, false) => current,
    }
}

fn age_cell(seconds: Option<u64>) -> String {
    match seconds {
        Some(s) => humantime::format_duration(Duration::from_secs(s)).to_string(),
        None => "none".into(),
    }
}

pub async fn run(cmd: SettingsCmd) -> anyhow::Result<()> {
    match cmd {
        SettingsCmd::History(a) => {
            let client = a.opts.client()?;
            let mut setting = client.history_retention().await?;
            let change =
                a.keep.is_some() || a.max_age.is_some() || a.no_max_age || a.watch_window.is_some();
            if change {
                setting.keep = a.keep.unwrap_or(setting.keep);
                setting.max_age_seconds = max_age(a.max_age, a.no_max_age, setting.max_age_seconds);
                setting.watch_window = a.watch_window.or(setting.watch_window);
                client.set_history_retention(&setting).await?;
                setting = client.history_retention().await?;
            }
            print_as(a.opts.output, &setting, |s| {
                print_rows(&[
                    ("keep", s.keep.to_string()),
                    ("max_age", age_cell(s.max_age_seconds)),
                    ("watch_window", cell(s.watch_window)),
                ])
            });
        }
        SettingsCmd::Audit(a) => {
            let client = a.opts.client()?;
            let mut setting = client.audit_retention().await?;
            if a.max_records.is_some() || a.max_age.is_some() || a.no_max_age {
                setting.max_records = a.max_records.unwrap_or(setting.max_records);
                setting.max_age_seconds = max_age(a.max_age, a.no_max_age, setting.max_age_seconds);
                client.set_audit_retention(&setting).await?;
                setting = client.audit_retention().await?;
            }
            print_as(a.opts.output, &setting, |s| {
                print_rows(&[
                    ("max_records", s.max_records.to_string()),
                    ("max_age", age_cell(s.max_age_seconds)),
                ])
            });
        }
    }
    Ok(())
}
