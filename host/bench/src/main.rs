//! `scarab-bench`: starts `scarab serve` processes on a fresh data directory, registers the
//! `store` schema with its plugin, and measures them through `scarab-client`. By default PUT
//! and GET throughput and latency at several concurrencies (every PUT validated by JSON Schema
//! and the plugin), then the warm cost of one plugin validation in-process; `--migrate`,
//! `--vs-etcd`, `--footprint`, `--steady`, `--watchers` and `--disk` measure other things (see
//! their help). Prints figures;
//! asserts nothing.
//!
//! This file holds the flags and the dispatch; [`nodes`] starts and stops the server
//! processes, [`load`] is the load generator, [`workload`] the Scarab workloads, and
//! [`versus`], [`footprint`], [`steady`], [`watchers`], [`disk`] and [`plugin_cost`] the other
//! measurements; [`wrk`] drives `--vs-etcd` by default.

mod disk;
mod footprint;
mod load;
mod nodes;
mod plugin_cost;
mod steady;
mod versus;
mod watchers;
mod workload;
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use clap::Parser;
use scarab_client::SchemaUpload;
use serde_json::Value;

use workload::Corpus;

// See Cargo.toml: the load generator's allocator counts in every figure.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "scarab-bench",
    version,
    about = "Start Scarab nodes and measure PUT/GET throughput and latency, plugin cost, \
             etcd side by side (--vs-etcd) or a node's footprint (--footprint)"
)]
pub struct BenchArgs {
    /// How long each workload runs.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Client concurrencies to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Size of each value (compact JSON), in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_bytes: usize,
    /// Distinct keys written (and read).
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    #[arg(long, default_value = "schemas/store/v1.json")]
    pub schema: PathBuf,
    #[arg(long, default_value = "target/wasm32-wasip2/plugin/store_v1.wasm")]
    pub plugin: PathBuf,
    /// Nodes to start: 1, or 3 or 5 for a cluster (adds follower reads, forwarded writes and
    /// a failover measurement).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Afterwards, register store v2 and measure version-converted reads and a storage
    /// migration of every key (use `--keys 10000` for the migration figure).
    #[arg(long)]
    pub migrate: bool,
    #[arg(long, default_value = "schemas/store/v2.json")]
    pub schema_v2: PathBuf,
    #[arg(long, default_value = "target/wasm32-wasip2/plugin/store_v2.wasm")]
    pub plugin_v2: PathBuf,
    /// Where the benchmarked node keeps its data (default: a fresh directory under /tmp,
    /// removed afterwards). Put it on the disk you want to measure.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run the same workloads against etcd too (single node and 3-node clusters, with
    /// failover), back to back, and print the ratio Scarab/etcd of each figure. With `--tls`
    /// and `--auth`, etcd runs with TLS (client and peer) and authentication too.
    #[arg(long, conflicts_with_all = ["migrate", "nodes"])]
    pub vs_etcd: bool,
    /// The load generator of `--vs-etcd`: `wrk` (Debian's, a process of its own that costs
    /// both servers little CPU) or `builtin` (this process, through scarab-client and reqwest).
    #[arg(long, value_enum, default_value = "wrk")]
    pub generator: Generator,
    /// Measure the node as a whole instead: resident memory and disk per config after
    /// writing `--keys` configs, and a restart with 20 cached plugins.
    #[arg(long, conflicts_with_all = ["migrate", "nodes", "vs_etcd"])]
    pub footprint: bool,
    /// Measure the `feature-flag` plugins in Rust, Python and JavaScript instead, in this
    /// process through the server library: size, compile time, first call (instantiation)
    /// and warm calls (from target/wasm32-wasip2/plugin: `cargo plugins` and
    /// `plugins/build-polyglot.sh`).
    #[arg(long, conflicts_with_all = ["migrate", "nodes", "vs_etcd", "footprint"])]
    pub plugin_languages: bool,
    /// Overwrite the `--keys` configs at the first `--concurrency` for this long on one node,
    /// printing throughput, latency, memory and disk per `--window`: does a steady load reach
    /// a steady state?
    #[arg(long, value_parser = humantime::parse_duration,
          conflicts_with_all = ["migrate", "nodes", "vs_etcd", "footprint", "plugin_languages"])]
    pub steady: Option<Duration>,
    /// Open this many SSE watches on one node, then write a few changes under their prefix:
    /// how long until every watcher has each one.
    #[arg(long, conflicts_with_all = ["migrate", "nodes", "vs_etcd", "footprint", "plugin_languages", "steady"])]
    pub watchers: Option<usize>,
    /// Measure disk amplification beside etcd instead: one node of each writes every key
    /// 1 + this many times, and prints the bytes its data directory takes per byte of value
    /// written, right after and once settled (`--value-bytes` sets the size).
    #[arg(long, conflicts_with_all = ["migrate", "nodes", "vs_etcd", "footprint", "plugin_languages", "steady", "watchers"])]
    pub disk: Option<usize>,
    /// The length of one `--steady` window.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// Run the nodes with authentication on (`--auth`, a root token made here) and every
    /// request with a bearer token: the cost of checking tokens.
    #[arg(long)]
    pub auth: bool,
    /// The etcd binary (Debian's etcd-server).
    #[arg(long, default_value = "etcd")]
    pub etcd_bin: PathBuf,
    /// The `scarab` server binary the nodes run (default: `scarab` next to this executable,
    /// i.e. `target/<profile>/scarab`).
    #[arg(long, env = "SCARAB_BIN")]
    pub scarab_bin: Option<PathBuf>,
    /// Serve the client API over TLS (and, with several nodes, the peer port over mutual
    /// TLS), with certificates `scarab cert` makes in the data directory.
    #[arg(long)]
    pub tls: bool,
    /// Scrape every node's `/metrics` once a second during the workloads (what a Prometheus
    /// server does): the cost of serving metrics.
    #[arg(long, conflicts_with = "vs_etcd")]
    pub scrape: bool,
}

/// Who sends the requests of `--vs-etcd`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generator {
    Wrk,
    Builtin,
}

/// What every measurement starts from: the flags, the server binary, the `store` v1 schema
/// and plugin, the data directory, and the documents written.
pub struct Setup {
    pub args: BenchArgs,
    /// The `scarab` binary the nodes run.
    pub server: PathBuf,
    /// The `store` v1 JSON Schema, parsed (for the in-process cost).
    pub schema: Value,
    /// The `store` v1 plugin component.
    pub wasm: Bytes,
    /// The `store` v1 registration: the JSON Schema's text and the plugin.
    pub store_v1: SchemaUpload,
    pub data_dir: PathBuf,
    /// Whether `data_dir` is ours to remove afterwards.
    remove_data_dir: bool,
    pub corpus: Arc<Corpus>,
}

impl Setup {
    fn new(args: BenchArgs) -> Result<Self> {
        let server = nodes::server_binary(args.scarab_bin.as_deref())?;
        let wasm = std::fs::read(&args.plugin).with_context(|| {
            format!(
                "{} (build plugins with `cargo plugins`)",
                args.plugin.display()
            )
        })?;
        let schema_text =
            std::fs::read(&args.schema).with_context(|| format!("{}", args.schema.display()))?;
        let schema: Value = serde_json::from_slice(&schema_text)
            .with_context(|| format!("{}", args.schema.display()))?;
        let wasm = Bytes::from(wasm);
        let store_v1 = SchemaUpload::from_bytes(schema_text).plugin(wasm.clone());
        let (data_dir, remove_data_dir) = match &args.data_dir {
            Some(d) => (d.clone(), false),
            None => (
                std::env::temp_dir().join(format!("scarab-bench-{}", std::process::id())),
                true,
            ),
        };
        let corpus = Corpus::new(args.keys, args.value_bytes);
        if args.tls {
            nodes::use_tls(&server, &data_dir.join("pki"))?;
        }
        Ok(Self {
            args,
            server,
            schema,
            wasm,
            store_v1,
            data_dir,
            remove_data_dir,
            corpus,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = BenchArgs::parse();
    if args.auth
        && let Err(e) = nodes::enable_auth()
    {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let setup = match Setup::new(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = if setup.args.plugin_languages {
        plugin_cost::languages(&setup.args.plugin)
    } else if setup.args.vs_etcd {
        versus::run(&setup).await
    } else if setup.args.footprint {
        footprint::run(&setup).await
    } else if let Some(total) = setup.args.steady {
        steady::run(&setup, total).await
    } else if let Some(rounds) = setup.args.disk {
        disk::run(&setup, rounds).await
    } else if let Some(n) = setup.args.watchers {
        watchers::run(&setup, n.max(1)).await
    } else {
        workload::run(&setup).await
    };
    // Every node and etcd member has been stopped by now (they are killed when dropped).
    if setup.remove_data_dir {
        let _ = std::fs::remove_dir_all(&setup.data_dir);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
