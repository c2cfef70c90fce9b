//! Scarab's workloads, every request through `scarab-client`: the `store` documents written,
//! PUT and GET loads, and the default run (`scarab-bench` without `--vs-etcd` or
//! `--footprint`): throughput and latency at each concurrency on the leader (and a follower
//! of a cluster), then `--migrate`'s converted reads and storage migration, then a failover
//! (cluster) or the in-process plugin cost (one node).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use scarab_client::{Client, ReadOptions, SchemaUpload};
use scarab_types::{MigrationStatus, PutConfig};
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::Setup;
use crate::load::{Figures, Op, load};
use crate::nodes::{Nodes, failover, once_client, start_nodes, wait_leader};

/// The longest one benchmark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A `store` document of exactly `size` bytes of compact JSON (padding the data_dir path).
pub fn document(key_index: usize, size: usize) -> Value {
    let store_id = format!("k{key_index}");
    let mut doc = json!({
        "store_id": store_id,
        "data_dir": "/var/lib/scarab/",
        "timeout_ms": 5000,
        "auto_start": true,
        "priority": "normal",
        "resource_limits": {"max_memory_mb": 512, "max_connections": 100}
    });
    let len = serde_json::to_string(&doc).expect("json").len();
    let pad = size.saturating_sub(len);
    doc["data_dir"] = Value::String(format!("/var/lib/scarab/{}", padding(key_index, pad)));
    doc
}

/// `n` letters and digits that do not compress (a linear congruential sequence seeded by the
/// key), so that neither system's disk figures gain from compressing a run of one letter.
fn padding(seed: usize, n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ALPHABET[((x >> 33) % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// A write whose value is encoded once, before the loads: the load generator then spends
/// nothing on encoding documents.
pub type Put = PutConfig<Box<RawValue>>;

/// The keys and the `store` v1 writes of a run, prepared once: key index `k` is
/// `bench/k{k}`, written with document `k`.
pub struct Corpus {
    pub keys: Vec<String>,
    pub puts: Vec<Put>,
}

impl Corpus {
    pub fn new(keys: usize, value_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            keys: (0..keys).map(|i| format!("bench/k{i}")).collect(),
            puts: (0..keys)
                .map(|i| {
                    let doc = serde_json::value::to_raw_value(&document(i, value_bytes))
                        .expect("a document encodes");
                    PutConfig::new("store", 1, doc)
                })
                .collect(),
        })
    }
}

/// What a Scarab load asks.
#[derive(Clone, Copy, Debug)]
pub enum Workload {
    Put,
    /// A linearizable GET.
    Get,
    /// A GET from the node's local state (`?consistency=stale`).
    StaleGet,
    /// A stale GET converted to this version of the schema.
    ConvertedGet(u32),
}

/// The requests of one Scarab load, through one client shared by every load client.
pub struct ScarabOp {
    client: Client,
    corpus: Arc<Corpus>,
    workload: Workload,
    read: ReadOptions,
}

impl ScarabOp {
    pub fn new(client: &Client, corpus: &Arc<Corpus>, workload: Workload) -> Arc<Self> {
        let read = match workload {
            Workload::Put | Workload::Get => ReadOptions::new(),
            Workload::StaleGet => ReadOptions::new().stale(),
            Workload::ConvertedGet(v) => ReadOptions::new().stale().schema_version(v),
        };
        Arc::new(Self {
            client: client.clone(),
            corpus: corpus.clone(),
            workload,
            read,
        })
    }
}

impl Op for ScarabOp {
    async fn send(&self, k: usize) -> bool {
        let key = &self.corpus.keys[k];
        match self.workload {
            Workload::Put => self.client.put(key, &self.corpus.puts[k]).await.is_ok(),
            // The answer is parsed (it must be a config) but its value is not built.
            _ => self
                .client
                .get_as::<IgnoredAny>(key, &self.read)
                .await
                .is_ok(),
        }
    }
}

/// `c` clients running `workload` through `client` for the run's duration.
pub async fn measure(client: &Client, workload: Workload, c: usize, setup: &Setup) -> Figures {
    let op = ScarabOp::new(client, &setup.corpus, workload);
    load(c, setup.args.duration, setup.corpus.keys.len(), op).await
}

/// A client of the node at `api` for setting up: registrations and populating, with the
/// client's retries of what is safe to retry.
pub fn setup_client(api: &str) -> Result<Client> {
    Ok(crate::nodes::client_builder()
        .endpoint(api)
        .actor("bench")
        .build()?)
}

/// A client of the node at `api` for loads: one attempt per request.
pub fn load_client(api: &str) -> Result<Client> {
    once_client(api, REQUEST_TIMEOUT)
}

/// Writes every key once (16 writers), so that reads find them whatever the PUT loads did.
pub async fn populate(client: &Client, corpus: &Arc<Corpus>) -> Result<()> {
    const WRITERS: usize = 16;
    let mut writers = tokio::task::JoinSet::new();
    for t in 0..WRITERS {
        let (client, corpus) = (client.clone(), corpus.clone());
        writers.spawn(async move {
            for k in (t..corpus.keys.len()).step_by(WRITERS) {
                let key = &corpus.keys[k];
                client
                    .put(key, &corpus.puts[k])
                    .await
                    .with_context(|| format!("writing {key}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done.context("a writer panicked")??;
    }
    Ok(())
}

/// `n` nodes started in `dir`, with `store` v1 registered and every key of the corpus
/// written (so that every key exists before the GET workloads, whatever a PUT phase manages):
/// the nodes, the leader's index and a setup client of the leader.
pub async fn prepared(setup: &Setup, n: usize, dir: &Path) -> Result<(Nodes, usize, Client)> {
    let nodes = start_nodes(&setup.server, n, dir)?;
    let leader = wait_leader(&nodes, Duration::from_secs(30)).await?;
    let admin = setup_client(&nodes.apis[leader])?;
    admin
        .register_schema("store", 1, &setup.store_v1)
        .await
        .context("registering store v1")?;
    populate(&admin, &setup.corpus).await?;
    Ok((nodes, leader, admin))
}

/// The default run.
pub async fn run(setup: &Setup) -> Result<()> {
    let args = &setup.args;
    let (mut nodes, leader, admin) = prepared(setup, args.nodes, &setup.data_dir).await?;
    println!(
        "scarab-bench: {} node(s), {}-byte store values over {} keys, {:?} per workload, data in {}",
        args.nodes,
        args.value_bytes,
        args.keys,
        args.duration,
        setup.data_dir.display()
    );
    // `--scrape`: a Prometheus-like scraper of every node, once a second, for the whole run.
    let _scraper = args.scrape.then(|| {
        let urls: Vec<String> = nodes.apis.iter().map(|a| format!("{a}/metrics")).collect();
        let http = reqwest::Client::new();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                for url in &urls {
                    if let Ok(r) = http.get(url).send().await {
                        let _ = r.bytes().await;
                    }
                }
            }
        });
        AbortOnDrop(task)
    });
    let on_leader = load_client(&nodes.apis[leader])?;
    let on_follower = if args.nodes > 1 {
        Some(load_client(&nodes.apis[(leader + 1) % args.nodes])?)
    } else {
        None
    };
    // Elections under load: each node's term before and after the workloads (a term grows
    // with every election, won or not, so a false election under load shows here).
    let terms_before = terms(&nodes).await;
    let load_started = Instant::now();
    for &c in &args.concurrency {
        let put = measure(&on_leader, Workload::Put, c, setup).await;
        println!("{}", put.line("PUT", c, "leader"));
        let get = measure(&on_leader, Workload::Get, c, setup).await;
        println!("{}", get.line("GET", c, "leader, linearizable"));
        let stale = measure(&on_leader, Workload::StaleGet, c, setup).await;
        println!("{}", stale.line("GET", c, "leader, stale"));
        if let Some(follower) = &on_follower {
            let get = measure(follower, Workload::Get, c, setup).await;
            println!("{}", get.line("GET", c, "follower, linearizable"));
            let put = measure(follower, Workload::Put, c, setup).await;
            println!("{}", put.line("PUT", c, "follower (forwarded)"));
        }
    }
    if args.nodes > 1 {
        let loaded = load_started.elapsed();
        let terms_after = terms(&nodes).await;
        let elections = terms_before
            .iter()
            .zip(&terms_after)
            .filter_map(|(b, a)| Some(a.as_ref()?.saturating_sub(*b.as_ref()?)))
            .max()
            .unwrap_or(0);
        println!(
            "elections under load: term {terms_before:?} -> {terms_after:?} over {:.0} s of load: {elections} ({:.1} an hour)",
            loaded.as_secs_f64(),
            elections as f64 * 3600.0 / loaded.as_secs_f64()
        );
    }
    if args.migrate {
        migration(&admin, &on_leader, setup).await?;
    }
    if args.nodes > 1 {
        let corpus = &setup.corpus;
        let took = failover(&mut nodes, leader, &corpus.keys[0], &corpus.puts[0]).await?;
        println!(
            "failover: first successful write {:.0} ms after the leader's kill -9",
            took.as_secs_f64() * 1000.0
        );
    } else {
        println!("{}", crate::plugin_cost::measure(setup)?);
    }
    Ok(())
}

/// Each node's current term (none for a node that did not answer).
async fn terms(nodes: &Nodes) -> Vec<Option<u64>> {
    let mut terms = Vec::with_capacity(nodes.apis.len());
    for api in &nodes.apis {
        let term = match once_client(api, Duration::from_secs(2)) {
            Ok(c) => c.status().await.ok().map(|s| s.body.term),
            Err(_) => None,
        };
        terms.push(term);
    }
    terms
}

/// Registers store v2, measures reads converted to it, then migrates every config to it.
async fn migration(admin: &Client, on_leader: &Client, setup: &Setup) -> Result<()> {
    let args = &setup.args;
    let schema =
        std::fs::read(&args.schema_v2).with_context(|| format!("{}", args.schema_v2.display()))?;
    let plugin = std::fs::read(&args.plugin_v2).with_context(|| {
        format!(
            "{} (build plugins with `cargo plugins`)",
            args.plugin_v2.display()
        )
    })?;
    let started = Instant::now();
    admin
        .register_schema("store", 2, &SchemaUpload::from_bytes(schema).plugin(plugin))
        .await
        .context("registering store v2")?;
    println!(
        "register store v2 over {} v1 configs (compatibility check included): {:.0} ms",
        args.keys,
        started.elapsed().as_secs_f64() * 1000.0
    );
    for &c in &args.concurrency {
        let stored = measure(on_leader, Workload::StaleGet, c, setup).await;
        println!("{}", stored.line("GET", c, "leader, stale, as stored (v1)"));
        let converted = measure(on_leader, Workload::ConvertedGet(2), c, setup).await;
        println!(
            "{}",
            converted.line("GET", c, "leader, stale, converted to v2")
        );
    }
    let started = Instant::now();
    let id = admin
        .start_migration("store", 2)
        .await
        .context("starting the migration to store v2")?
        .id;
    let last = loop {
        let m = admin
            .migration("store", id)
            .await
            .with_context(|| format!("reading migration {id}"))?
            .into_inner();
        match m.status {
            MigrationStatus::Done => break m,
            MigrationStatus::Running => {}
            other => bail!("migration {id}: unexpected status {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = started.elapsed();
    println!(
        "storage migration v1 -> v2: {} configs in {:.2} s = {:.0} configs/s ({} failed)",
        last.done,
        took.as_secs_f64(),
        last.done as f64 / took.as_secs_f64(),
        last.failed_count
    );
    Ok(())
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
