//! `scarab backup create|verify` and `scarab restore`: a consistent copy of a cluster's state
//! in one file, checked offline, and restored as the first node of a new cluster (as
//! `etcdctl snapshot save|status|restore`).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::ClientOpts;

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Take a backup (it needs cluster:admin) into FILE: written to FILE.part while it
    /// arrives, checked, then renamed.
    Create {
        file: PathBuf,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Check a backup offline: its checksum and record count; print what it holds.
    Verify { file: PathBuf },
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file.
    file: PathBuf,
    /// The new node's data directory: missing or empty.
    #[arg(long)]
    data_dir: PathBuf,
    /// The new node's id (start it with this `--node-id`).
    #[arg(long)]
    node_id: u64,
    /// The URL the new node's API will be reached at (start it with this `--advertise`).
    #[arg(long)]
    advertise: String,
    /// The URL its peer port will be reached at (its `--peer-advertise`; default: the API's,
    /// for a node serving peers on its API listener).
    #[arg(long)]
    peer_advertise: Option<String>,
}

pub async fn run(cmd: BackupCmd) -> anyhow::Result<()> {
    match cmd {
        BackupCmd::Create { file, opts } => create(&file, &opts).await,
        BackupCmd::Verify { file } => {
            let s = scarab::restore::verify_backup(&file)?;
            println!(
                "{}: a whole backup at revision {}: {} config(s), {} schema version(s), {} record(s), sha256 {}",
                file.display(),
                s.revision,
                s.configs,
                s.schema_versions,
                s.records,
                s.sha256
            );
            Ok(())
        }
    }
}

async fn create(file: &std::path::Path, opts: &ClientOpts) -> anyhow::Result<()> {
    let client = opts.client()?;
    let started = Instant::now();
    let mut backup = client.backup().await?;
    let part = file.with_extension("part");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&part).with_context(|| part.display().to_string())?,
    );
    let mut bytes = 0u64;
    let mut shown = 0u64;
    let total = backup.length;
    while let Some(chunk) = backup.next_chunk().await? {
        out.write_all(&chunk)
            .with_context(|| part.display().to_string())?;
        bytes += chunk.len() as u64;
        // A progress line per MiB, on stderr.
        if bytes - shown >= 1 << 20 {
            shown = bytes;
            match total {
                Some(t) if t > 0 => eprint!(
                    "\r{:>5.1}% of {:.1} MiB",
                    100.0 * bytes as f64 / t as f64,
                    t as f64 / 1048576.0
                ),
                _ => eprint!("\r{:.1} MiB", bytes as f64 / 1048576.0),
            }
        }
    }
    if shown > 0 {
        eprintln!();
    }
    let file_out = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("{}: {}", part.display(), e.error()))?;
    file_out.sync_all()?;
    let summary = scarab::restore::verify_backup(&part)
        .with_context(|| "the backup received does not check out; it was not kept")
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&part);
        })?;
    std::fs::rename(&part, file).with_context(|| file.display().to_string())?;
    println!(
        "{}: revision {}, {} config(s), {} schema version(s), {bytes} bytes in {:.1?}",
        file.display(),
        summary.revision,
        summary.configs,
        summary.schema_versions,
        started.elapsed()
    );
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let node = scarab::restore::NewNode {
        node_id: args.node_id,
        api: args.advertise.clone(),
        peer: args
            .peer_advertise
            .clone()
            .unwrap_or_else(|| args.advertise.clone()),
    };
    let s = scarab::restore::restore_backup(&args.file, &args.data_dir, &node).await?;
    println!(
        "restored revision {} ({} config(s), {} schema version(s)) into {}",
        s.revision,
        s.configs,
        s.schema_versions,
        args.data_dir.display()
    );
    println!(
        "start it, the only voter of a new cluster: scarab serve --data-dir {} --node-id {} --advertise {} ...; then join the others to it",
        args.data_dir.display(),
        args.node_id,
        args.advertise
    );
    Ok(())
}
