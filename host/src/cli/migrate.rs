//! `scarab schema migrate`: starts a storage migration (or a dry run) and follows it with a
//! progress bar until it is done.

use std::time::Duration;

use anyhow::anyhow;
use indicatif::{ProgressBar, ProgressStyle};

use scarab_client::Client;
use scarab_client::types::MigrationStatus;

use super::output::print_json;

/// How often the migration's progress is read.
const POLL: Duration = Duration::from_millis(250);

/// Prints the dry run's report, or the migration as started (`no_wait`), or as it ended.
/// A migration that ended with configs it could not convert is an error.
pub async fn run(
    client: &Client,
    name: &str,
    to: u32,
    dry_run: bool,
    no_wait: bool,
) -> anyhow::Result<()> {
    if dry_run {
        print_json(&client.dry_run_migration(name, to).await?);
        return Ok(());
    }
    let started = client.start_migration(name, to).await?;
    if no_wait {
        print_json(&started);
        return Ok(());
    }
    let bar = ProgressBar::new(started.total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} migrating {msg} [{bar:40}] {pos}/{len} configs ({per_sec}, {eta} left)",
        )
        .expect("a valid template")
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
    print_json(&last);
    Ok(())
}
