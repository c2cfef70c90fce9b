//! `scarab export`: the configs under a prefix written back as files, one per key (its path
//! below the prefix, plus the format's extension), so that `scarab import` of the directory
//! into an empty node gives the same configs.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt as _;

use scarab_client::ListOptions;

use super::ClientOpts;
use super::formats::{self, Format};

#[derive(Args)]
pub struct ExportArgs {
    /// Keys starting with this (`stores/`).
    #[arg(long)]
    prefix: String,
    /// The directory the files go to (made if missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let client = args.opts.client()?;
    let mut configs = std::pin::pin!(client.list(ListOptions::prefix(&args.prefix)));
    let mut written = 0;
    while let Some(entry) = configs.next().await {
        let entry = entry?;
        let key = &entry.meta.key;
        let below = key[args.prefix.len()..].trim_start_matches('/');
        let name = if below.is_empty() {
            key.as_str()
        } else {
            below
        };
        let path = args.out.join(format!("{name}.{}", args.format.extension()));
        let text = formats::render(&entry.value, args.format).with_context(|| key.clone())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        }
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
        println!(
            "{key} ({} v{}) -> {}",
            entry.meta.schema,
            entry.meta.schema_version,
            path.display()
        );
        written += 1;
    }
    println!("{written} config(s) exported");
    Ok(())
}
