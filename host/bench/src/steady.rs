//! `scarab-bench --steady DURATION`: does a steady load reach a steady state? Overwrites the
//! same `--keys` configs at one concurrency (the first of `--concurrency`) for DURATION, and
//! prints one line per `--window`: throughput and latency in that window, the node's resident
//! memory, its data directory on disk (and the part of it that is snapshots and Raft log),
//! and how far the audit trail and the revision index reach. Everything that grows with
//! writes has a retention, so after the first windows every column should stay within its
//! noise. It also prints the node's CPU time per write in each window, which depends less
//! than throughput on the load generator sharing the cores (it still grows with the state's
//! tables within a run, and with the machine's speed between runs): a figure to compare two
//! server builds by (`SCARAB_BIN`), in alternating runs. Prints figures; asserts nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use scarab_client::AuditQuery;

use crate::Setup;
use crate::footprint::{bytes_under, resident_kib};
use crate::load::load;
use crate::workload::{ScarabOp, Workload, load_client, prepared};

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

pub async fn run(setup: &Setup, total: Duration) -> Result<()> {
    let args = &setup.args;
    let c = args.concurrency.first().copied().unwrap_or(32);
    let (nodes, leader, admin) = prepared(setup, 1, &setup.data_dir).await?;
    let node_dir = setup.data_dir.join("n1");
    let pid = nodes.pid(leader)?;
    let client = load_client(&nodes.apis[leader])?;
    let history = admin.history_retention().await?;
    let audit = admin.audit_retention().await?;
    println!(
        "scarab-bench --steady: PUT c={c} over {} keys of {} bytes for {:?}, windows of {:?}; history keep {} watch_window {:?}, audit max_records {}; data in {}",
        args.keys,
        args.value_bytes,
        total,
        args.window,
        history.keep,
        history.watch_window,
        audit.max_records,
        node_dir.display()
    );
    println!(
        "{:>6} {:>9} {:>8} {:>8} {:>9} {:>8} {:>9} {:>9} {:>8} {:>10} {:>10}",
        "t(s)",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "CPU µs/w",
        "RSS MiB",
        "disk MiB",
        "snap MiB",
        "log MiB",
        "revision",
        "audit from"
    );
    let mut cpu = cpu_micros(pid)?;
    let mut revision = admin
        .status()
        .await
        .context("GET /v1/status")?
        .into_inner()
        .revision;
    let started = Instant::now();
    while started.elapsed() < total {
        let op = ScarabOp::new(&client, &setup.corpus, Workload::Put);
        let window = args.window.min(total.saturating_sub(started.elapsed()));
        let figures = load(c, window, setup.corpus.keys.len(), op).await;
        let rss = resident_kib(pid)? * 1024;
        let status = admin.status().await.context("GET /v1/status")?.into_inner();
        // The oldest audit record kept: its sequence number is one past what retention dropped.
        let oldest = oldest_audit_seq(&admin).await?;
        let cpu_now = cpu_micros(pid)?;
        let writes = status.revision.saturating_sub(revision).max(1);
        let per_write = (cpu_now - cpu) as f64 / writes as f64;
        (cpu, revision) = (cpu_now, status.revision);
        println!(
            "{:>6.0} {:>9.0} {:>8.3} {:>8.3} {:>9.1} {:>8.1} {:>9.1} {:>9.1} {:>8.1} {:>10} {:>10}",
            started.elapsed().as_secs_f64(),
            figures.rate(),
            figures.ms(0.5),
            figures.ms(0.99),
            per_write,
            mib(rss),
            mib(bytes_under(&node_dir)),
            mib(bytes_under(&node_dir.join("snapshots"))),
            mib(log_bytes(&node_dir)),
            status.revision,
            oldest.map_or("-".to_string(), |s| s.to_string()),
        );
        if figures.errors > 0 {
            println!("       ({} failed requests in that window)", figures.errors);
        }
    }
    Ok(())
}

/// The CPU time the process `pid` has used, user and system, in microseconds: fields 14 and
/// 15 of `/proc/{pid}/stat`, in the kernel's USER_HZ ticks (100 a second on Linux).
fn cpu_micros(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("no field {} in {path}", i + 3))
    };
    // After the name, field 3 (the state) is at index 0: utime (14) at 11, stime (15) at 12.
    Ok((tick(11)? + tick(12)?) * 10_000)
}

/// The Raft log's share of the data directory (fjall's `raft` database).
fn log_bytes(node_dir: &Path) -> u64 {
    bytes_under(&node_dir.join("raft"))
}

/// The sequence number of the oldest audit record kept. The API reads newest first, so it is
/// found by bisection over `before` (about 20 one-record pages).
async fn oldest_audit_seq(admin: &scarab_client::Client) -> Result<Option<u64>> {
    let newest = admin
        .audit_page(&AuditQuery::new().limit(1))
        .await?
        .into_inner();
    let Some(top) = newest.items.first().map(|r| r.seq) else {
        return Ok(None);
    };
    // Bisect for the smallest `before` that still has a record below it.
    let (mut lo, mut hi) = (1u64, top + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let page = admin
            .audit_page(&AuditQuery::new().before(mid + 1).limit(1))
            .await?
            .into_inner();
        if page.items.is_empty() {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(Some(lo))
}
