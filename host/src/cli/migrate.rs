//! `scarab schema migrate`: starts a storage migration (or a dry run) and follows it with a
//! progress bar until it is done.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::ClientOpts;
use super::Output;
use super::client::ClientError;

/// How often the migration's progress is read.
const POLL: Duration = Duration::from_millis(250);

pub async fn run(
    name: String,
    to: u32,
    dry_run: bool,
    no_wait: bool,
    opts: ClientOpts,
) -> Result<(Output, Value), ClientError> {
    let client = opts.client();
    let path = format!("/v1/schemas/{name}/migrations");
    let started = client
        .post_json(&path, &json!({"target_version": to, "dry_run": dry_run}))
        .await?;
    if dry_run || no_wait {
        return Ok((Output::Json, started));
    }
    let id = started["id"].as_u64().unwrap_or_default();
    let total = started["total"].as_u64().unwrap_or_default();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} migrating {msg} [{bar:40}] {pos}/{len} configs ({per_sec}, {eta} left)",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("{name} to v{to}"));
    let last = loop {
        let m = client.get(&format!("{path}/{id}")).await?;
        bar.set_length(m["total"].as_u64().unwrap_or(total).max(1));
        bar.set_position(m["done"].as_u64().unwrap_or_default());
        if m["status"] == "done" {
            break m;
        }
        tokio::time::sleep(POLL).await;
    };
    bar.finish();
    let failed = last["failed_count"].as_u64().unwrap_or_default();
    if failed > 0 {
        return Err(ClientError::Input(format!(
            "migration {id} finished, but {failed} config(s) could not be converted: {}",
            last["failed"]
        )));
    }
    Ok((Output::Json, last))
}
