//! `scarab-bench --watchers N`: N SSE watches open on one node, then a few writes under their
//! prefix, one at a time: how long until every watcher has each change, measured from the
//! write's acknowledgement (and the spread over the watchers), with the node's resident memory
//! and the watchers' connections open. Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use scarab_client::WatchOptions;
use scarab_client::types::WatchEvent;
use tokio::sync::mpsc;

use crate::Setup;
use crate::footprint::resident_kib;
use crate::nodes::{start_nodes_with, wait_leader};
use crate::workload::{populate, setup_client};

/// Writes measured, one after the other.
const CHANGES: usize = 5;

/// Watches opened at once.
const OPEN_STEP: usize = 500;

pub async fn run(setup: &Setup, n: usize) -> Result<()> {
    // Room for the watches and their connections, besides the bench's own.
    let extra = [
        "--max-watches".to_string(),
        (n + 16).to_string(),
        "--max-connections".to_string(),
        (n + 256).to_string(),
    ];
    // One listener: with a peer port too, the node splits its open-file limit between the
    // two, and 10,000 watches do not fit under a limit of 20,000.
    let nodes = start_nodes_with(&setup.server, 1, &setup.data_dir, &extra, false)?;
    wait_leader(&nodes, Duration::from_secs(30)).await?;
    let admin = setup_client(&nodes.apis[0])?;
    admin
        .register_schema("store", 1, &setup.store_v1)
        .await
        .context("registering store v1")?;
    populate(&admin, &setup.corpus).await?;
    let idle = resident_kib(nodes.pid(0)?)?;
    let from = admin.status().await?.into_inner().revision + 1;

    // Each watcher reports (its index, the revision it got, when) for every change, and once
    // when its stream is open (its first progress event).
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Result<Option<u64>, String>, Instant)>();
    let watcher = crate::nodes::client_builder()
        .endpoint(&nodes.apis[0])
        .actor("bench")
        .build()?;
    let opened = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    let mut open = vec![false; n];
    let mut open_count = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    // Opened in steps of OPEN_STEP, each step open before the next: ten thousand clients do
    // not connect in the same millisecond, and a burst that deep overflows the listen queue.
    for step in (0..n).step_by(OPEN_STEP) {
        for i in step..(step + OPEN_STEP).min(n) {
            let mut opts = WatchOptions::prefix("bench/").from_revision(from);
            opts.progress = Some(Duration::from_secs(2));
            let mut stream = watcher.watch(opts);
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(item) = stream.next().await {
                    let (revision, end) = match item {
                        Ok(WatchEvent::Change(batch)) => (Ok(Some(batch.revision)), false),
                        Ok(WatchEvent::Progress(_)) => (Ok(None), false),
                        Err(e) => (Err(e.to_string()), true),
                    };
                    if tx.send((i, revision, Instant::now())).is_err() || end {
                        return;
                    }
                }
            }));
        }
        let target = (step + OPEN_STEP).min(n);
        while open_count < target {
            let Ok(Some((i, got, _))) = tokio::time::timeout_at(deadline, rx.recv()).await else {
                bail!("only {open_count} of {n} watches opened within 300 s");
            };
            if let Err(e) = got {
                bail!("watch {i}: {e}");
            }
            if !open[i] {
                open[i] = true;
                open_count += 1;
            }
        }
    }
    drop(tx);
    let rss = resident_kib(nodes.pid(0)?)?;
    println!(
        "scarab-bench --watchers {n}: every watch open (its first progress event) {:.1} s after the first was asked for; node resident memory {:.1} MiB before, {:.1} MiB with them ({:.1} KiB per watch)",
        opened.elapsed().as_secs_f64(),
        idle as f64 / 1024.0,
        rss as f64 / 1024.0,
        (rss.saturating_sub(idle)) as f64 / n as f64
    );

    let mut worst = Vec::new();
    for c in 0..CHANGES {
        let key = &setup.corpus.keys[c];
        let written = admin
            .put(key, &setup.corpus.puts[c])
            .await
            .with_context(|| format!("writing {key}"))?;
        let acked = Instant::now();
        let mut delays = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        while delays.len() < n {
            let Ok(Some((i, got, at))) =
                tokio::time::timeout(Duration::from_secs(30), rx.recv()).await
            else {
                bail!(
                    "revision {}: only {} of {n} watchers had it within 30 s",
                    written.revision,
                    delays.len()
                );
            };
            let revision = got.map_err(|e| anyhow::anyhow!("watch {i}: {e}"))?;
            if revision == Some(written.revision) && !seen[i] {
                seen[i] = true;
                delays.push(at.saturating_duration_since(acked));
            }
        }
        delays.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let last = *delays.last().expect("n > 0");
        println!(
            "change {}: delivered to all {n} watchers {:.0} ms after the write's acknowledgement (p50 {:.0} ms, p99 {:.0} ms over the watchers)",
            c + 1,
            ms(last),
            ms(delays[n / 2]),
            ms(delays[(n * 99 / 100).min(n - 1)])
        );
        worst.push(last);
        // Let the watchers drain before the next change (progress events keep arriving).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    worst.sort();
    println!(
        "median over {CHANGES} changes of the time until every watcher had it: {:.0} ms",
        worst[CHANGES / 2].as_secs_f64() * 1e3
    );
    for t in &tasks {
        t.abort();
    }
    Ok(())
}
