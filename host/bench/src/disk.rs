//! `scarab-bench --disk ROUNDS`: disk amplification beside etcd. One Scarab node, then one
//! etcd member, each on a fresh directory with its default settings, gets every one of the
//! `--keys` configs written `1 + ROUNDS` times (`--value-bytes` each) at the first
//! `--concurrency`; then the bytes its data directory occupies (allocated blocks, as `du`
//! counts them, so etcd's preallocated WAL counts in full) right after the writes and once the
//! directory has settled (no change for 3 s: snapshots written, the log purged, flushes and
//! compactions done), divided by the bytes of values written. With `ROUNDS` below the default
//! history retention (100 revisions per key), both keep every revision, so the two directories
//! hold the same data. Prints figures; asserts nothing.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::Setup;
use crate::footprint::allocated_under;
use crate::load::Op;
use crate::versus::{EtcdOp, Kind, etcd_ready};
use crate::workload::{ScarabOp, Workload, load_client, prepared};

/// Sends `total` requests of `op` over `keys` key indexes in order, from `c` clients; fails if
/// any request did.
async fn write_n<O: Op>(op: Arc<O>, c: usize, keys: usize, total: usize) -> Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..c)
        .map(|_| {
            let (op, next, failed) = (op.clone(), next.clone(), failed.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    if !op.send(i % keys).await {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.await.context("a writer task")?;
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} of {total} writes failed");
    }
    Ok(started.elapsed())
}

/// The directory's size once it has not changed for 3 s (at most 60 s).
async fn settled(dir: &Path) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = allocated_under(dir);
    let mut same_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = allocated_under(dir);
        if now != last {
            last = now;
            same_since = Instant::now();
        } else if same_since.elapsed() >= Duration::from_secs(3) {
            break;
        }
    }
    last
}

/// The largest parts of `dir` (two levels down), largest first: "name size, ...".
fn parts(dir: &Path) -> String {
    let mut parts: Vec<(String, u64)> = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let inner: Vec<_> = std::fs::read_dir(&path)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        if inner.iter().any(|i| i.path().is_dir()) {
            for i in inner {
                let sub = format!("{name}/{}", i.file_name().to_string_lossy());
                parts.push((
                    sub,
                    allocated_under(&i.path()).max(allocated_file(&i.path())),
                ));
            }
        } else {
            parts.push((name, allocated_under(&path).max(allocated_file(&path))));
        }
    }
    parts.sort_by_key(|p| std::cmp::Reverse(p.1));
    parts
        .iter()
        .take(5)
        .map(|(n, b)| format!("{n} {:.1}", mib(*b)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn allocated_file(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| if m.is_file() { m.blocks() * 512 } else { 0 })
}

/// One line of the table: `system` wrote `writes` (`written` bytes of values) in `took`, and
/// `dir` holds its data.
async fn report(system: &str, dir: &Path, writes: usize, took: Duration, written: u64) {
    let after = allocated_under(dir);
    let settled_bytes = settled(dir).await;
    println!(
        "{system:<8} {:>9.0} {:>14.1} {:>9.2}× {:>14.1} {:>9.2}×  {}",
        writes as f64 / took.as_secs_f64(),
        mib(after),
        after as f64 / written as f64,
        mib(settled_bytes),
        settled_bytes as f64 / written as f64,
        parts(dir),
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

pub async fn run(setup: &Setup, rounds: usize) -> Result<()> {
    let args = &setup.args;
    let c = args.concurrency.first().copied().unwrap_or(16);
    let keys = setup.corpus.keys.len();
    let writes = keys * rounds;
    // The populate pass writes every key once more, on both sides.
    let value_bytes: u64 = setup
        .corpus
        .puts
        .iter()
        .map(|p| p.value.to_string().len() as u64)
        .sum();
    let written = value_bytes * (rounds as u64 + 1);
    println!(
        "scarab-bench --disk: {keys} keys of {} bytes written {} times each at c={c} ({:.1} MiB of values), on one node of each, default settings; data under {}",
        args.value_bytes,
        rounds + 1,
        mib(written),
        setup.data_dir.display()
    );
    println!(
        "{:<8} {:>9} {:>14} {:>10} {:>14} {:>10}  settled parts (MiB)",
        "system", "writes/s", "after MiB", "after ×", "settled MiB", "settled ×",
    );

    let dir = setup.data_dir.join("scarab-disk");
    let (nodes, leader, _admin) = prepared(setup, 1, &dir).await?;
    let client = load_client(&nodes.apis[leader])?;
    let op = ScarabOp::new(&client, &setup.corpus, Workload::Put);
    let took = write_n(op, c, keys, writes).await?;
    report("scarab", &dir.join("n1"), writes, took, written).await;
    drop(nodes);

    let dir = setup.data_dir.join("etcd-disk");
    let (etcd, http, _, base) = etcd_ready(setup, 1, &dir).await?;
    let op = EtcdOp::new(
        &http,
        &base,
        Kind::Put,
        &setup.corpus,
        etcd.token.as_deref(),
    )?;
    let took = write_n(op, c, keys, writes).await?;
    report("etcd", &dir.join("e0"), writes, took, written).await;
    Ok(())
}
