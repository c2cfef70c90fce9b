//! `scarab schema migrate`: starts a storage migration (or a dry run) and follows it with a
//! progress bar until it is done.

use std::time::Duration;

use anyhow::anyhow;
use indicatif::{ProgressBar, ProgressStyle};

use comfy_table::Table;
use scarab_client::Client;
use scarab_client::types::{Migration, MigrationFailure, MigrationStatus};

use super::Output;
use super::output::print_as;

/// How often the migration's progress is read.
const POLL: Duration = Duration::from_millis(250);

/// Prints the dry run's report, or the migration as started (`no_wait`), or as it ended.
/// A migration that ended with configs it could not convert is an error.
pub async fn run(
    client: &Client,
    output: Output,
    name: &str,
    to: u32,
    dry_run: bool,
    no_wait: bool,
) -> anyhow::Result<()> {
    if dry_run {
        let report = client.dry_run_migration(name, to).await?;
        print_as(output, &report, |r| {
            println!(
                "{} config(s) of {} not at version {}: {} convert, {} fail",
                r.total,
                r.name,
                r.target_version,
                r.convertible,
                r.failed.len()
            );
            if !r.failed.is_empty() {
                println!("{}", failures(&r.failed));
            }
        });
        return Ok(());
    }
    let started = client.start_migration(name, to).await?;
    if no_wait {
        print_as(output, &started, |m| {
            print_migrations(std::slice::from_ref(m))
        });
        return Ok(());
    }
    let bar = ProgressBar::new(started.total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} migrating {msg} [{bar:40}] {pos}/{len} configs ({rate}, {eta} left)",
        )
        .expect("a valid template")
        // indicatif's own {per_sec} prints "1,186.7293/s": whole configs per second.
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        )
        .progress_chars("=> "),
    );
    bar.set_message(format!("{name} to v{to}"));
    let last = loop {
        let m = client.migration(name, started.id).await?.into_inner();
        bar.set_length(m.total.max(1));
        bar.set_position(m.done);
        // Done, or a status this version does not know: it is not running.
        if m.status != MigrationStatus::Running {
            break m;
        }
        tokio::time::sleep(POLL).await;
    };
    bar.finish();
    if last.failed_count > 0 {
        return Err(anyhow!(
            "migration {} finished, but {} config(s) could not be converted: {}",
            last.id,
            last.failed_count,
            serde_json::to_string(&last.failed).expect("wire types serialise")
        ));
    }
    print_as(output, &last, |m| print_migrations(std::slice::from_ref(m)));
    Ok(())
}

/// Migrations as a table, one row each.
pub fn print_migrations(list: &[Migration]) {
    let mut t = Table::new();
    t.set_header([
        "id",
        "target",
        "status",
        "done",
        "total",
        "skipped",
        "failed",
        "started_at",
        "finished_at",
    ]);
    for m in list {
        t.add_row([
            m.id.to_string(),
            format!("v{}", m.target_version),
            super::output::wire_text(&m.status),
            m.done.to_string(),
            m.total.to_string(),
            m.skipped.to_string(),
            m.failed_count.to_string(),
            m.started_at.clone(),
            m.finished_at.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{t}");
}

fn failures(failed: &[MigrationFailure]) -> Table {
    let mut t = Table::new();
    t.set_header(["key", "reason"]);
    for f in failed {
        t.add_row([f.key.clone(), f.reason.clone()]);
    }
    t
}
