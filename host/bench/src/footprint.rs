//! `scarab-bench --footprint`: what a node costs as a whole. Resident memory and disk bytes
//! per config after writing `--keys` configs (use `--keys 100000`), and the time a restarted
//! node takes to be ready and then to accept a write validated by each of 20 plugins that it
//! compiled before (from its compiled-plugin cache on disk). Prints figures; asserts nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use scarab_client::types::WatchEvent;
use scarab_client::{Client, ListOptions, WatchOptions};
use scarab_types::PutConfig;
use serde_json::json;

use crate::Setup;
use crate::nodes::{once_client, start_nodes, wait_leader};
use crate::workload::{Corpus, document, populate, setup_client};

/// Plugins registered for the restart figure.
const PLUGINS: usize = 20;

/// `wasm` with a custom section appended: the same component under another digest, so that
/// each of the 20 schemas has a plugin of its own to compile and cache.
fn distinct(wasm: &[u8], i: usize) -> Vec<u8> {
    let name = b"scarab-bench";
    let payload = format!("{i}");
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(payload.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8); // fits one LEB128 byte
    out.extend_from_slice(&section);
    out
}

pub fn resident_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

pub fn bytes_under(dir: &Path) -> u64 {
    sum_under(dir, &|m| m.len())
}

/// Bytes allocated to the files under `dir` (what `du` reports: preallocated space counts).
pub fn allocated_under(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    sum_under(dir, &|m| m.blocks() * 512)
}

/// `size` of every file under `dir`, summed.
fn sum_under(dir: &Path, size: &dyn Fn(&std::fs::Metadata) -> u64) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => sum_under(&e.path(), size),
            Ok(m) => size(&m),
            Err(_) => 0,
        })
        .sum()
}

pub async fn run(setup: &Setup) -> Result<()> {
    let args = &setup.args;
    let dir = &setup.data_dir;
    let mut nodes = start_nodes(&setup.server, 1, dir)?;
    wait_leader(&nodes, Duration::from_secs(30)).await?;
    let client = setup_client(&nodes.apis[0])?;
    client
        .register_schema("store", 1, &setup.store_v1)
        .await
        .context("registering store v1")?;
    for i in 0..PLUGINS {
        let upload = setup.store_v1.clone().plugin(distinct(&setup.wasm, i));
        client
            .register_schema(&format!("p{i}"), 1, &upload)
            .await
            .with_context(|| format!("registering plugin {i}"))?;
    }
    let idle_kib = resident_kib(nodes.pid(0)?)?;
    let started = Instant::now();
    populate(&client, &setup.corpus).await?;
    let wrote = started.elapsed();
    let rss_kib = resident_kib(nodes.pid(0)?)?;
    let status = client
        .status()
        .await
        .context("GET /v1/status")?
        .into_inner();
    let node_dir = dir.join("n1");
    let disk = bytes_under(&node_dir);
    println!(
        "scarab-bench --footprint: {} configs of {} bytes written in {:.1} s ({:.0}/s, 16 clients), {} plugins registered",
        args.keys,
        args.value_bytes,
        wrote.as_secs_f64(),
        args.keys as f64 / wrote.as_secs_f64(),
        PLUGINS + 1
    );
    println!(
        "resident memory: {:.1} MiB before the writes, {:.1} MiB after ({:.0} bytes per config)",
        idle_kib as f64 / 1024.0,
        rss_kib as f64 / 1024.0,
        (rss_kib.saturating_sub(idle_kib) * 1024) as f64 / args.keys as f64
    );
    println!(
        "disk: {:.1} MiB in {} ({:.0} bytes per config: Raft log, state, one history record and one audit record each, snapshot {})",
        disk as f64 / (1 << 20) as f64,
        node_dir.display(),
        disk as f64 / args.keys as f64,
        if status.snapshot_index.is_none() {
            "none yet"
        } else {
            "included"
        }
    );

    // Restart: SIGTERM, then the same data directory and plugin cache.
    nodes.stop(0)?;
    let restarted = Instant::now();
    let nodes = start_nodes(&setup.server, 1, dir)?;
    // One attempt per poll: the client's own backoff would blur the figure.
    let poll = once_client(&nodes.apis[0], Duration::from_secs(5))?;
    let ready = loop {
        if poll.ready().await.is_ok() {
            break restarted.elapsed();
        }
        if restarted.elapsed() > Duration::from_secs(120) {
            bail!("the restarted node was not ready within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let client = setup_client(&nodes.apis[0])?;
    for i in 0..PLUGINS {
        let mut doc = document(i, args.value_bytes);
        doc["store_id"] = json!(format!("s{i}"));
        client
            .put(
                &format!("p{i}/s{i}"),
                &PutConfig::new(format!("p{i}"), 1, doc),
            )
            .await
            .with_context(|| format!("a write validated by plugin {i}"))?;
    }
    let all = restarted.elapsed();
    println!(
        "restart with {} configs: ready (GET /v1/readyz 200) {:.0} ms after the process started; a write validated by each of {PLUGINS} cached plugins done {:.0} ms after it",
        args.keys,
        ready.as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3
    );
    list_and_watch(&client, &setup.corpus).await
}

/// The p50 and p99 of `samples`, in milliseconds.
fn quantiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// List and watch latency at this many configs: a page of 100 keys from 200 places spread
/// over the key space (linearizable), and the time from a write's acknowledgement to its
/// event on an open watch of its key, 50 times.
async fn list_and_watch(client: &Client, corpus: &Corpus) -> Result<()> {
    let n = corpus.keys.len();
    let mut lists = Vec::new();
    for i in 0..200 {
        let mut opts = ListOptions::prefix("bench/").limit(100);
        if i > 0 {
            opts = opts.after(corpus.keys[i * 7919 % n].clone());
        }
        let started = Instant::now();
        let page = client
            .list_page(&opts)
            .await
            .context("a list")?
            .into_inner();
        lists.push(started.elapsed());
        if page.items.is_empty() && i == 0 {
            bail!("the list found nothing");
        }
    }
    let key = &corpus.keys[7 % n];
    let from = client.status().await?.into_inner().revision + 1;
    let mut opts = WatchOptions::prefix(key.clone()).from_revision(from);
    opts.progress = Some(Duration::from_millis(500));
    let mut watch = client.watch(opts);
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .context("no watch event within 10 s")?
            .context("the watch ended")?
            .context("the watch failed")
    };
    // Open (its first progress event) before the first write.
    next().await?;
    let mut watches = Vec::new();
    for _ in 0..50 {
        let sent = Instant::now();
        let revision = client
            .put(key, &corpus.puts[7 % n])
            .await
            .context("a write")?
            .into_inner()
            .revision;
        loop {
            if let WatchEvent::Change(batch) = next().await?
                && batch.revision >= revision
            {
                watches.push(sent.elapsed());
                break;
            }
        }
    }
    let (l50, l99) = quantiles(lists);
    let (w50, w99) = quantiles(watches);
    println!(
        "at {n} configs: a list page of 100 p50 {l50:.2} ms, p99 {l99:.2} ms (200 lists from places spread over the keys); a write seen on an open watch of its key p50 {w50:.2} ms, p99 {w99:.2} ms after it was sent (50 writes, one at a time)"
    );
    Ok(())
}
