//! `scarab bench`: starts a `scarab serve` process on a fresh data directory, registers the
//! `store` schema with its plugin, and measures PUT and GET throughput and latency at several
//! concurrencies (every PUT validated by JSON Schema and the plugin), then the warm cost of one
//! plugin validation in-process. With `--migrate`, it then registers `store` v2 and measures
//! reads converted to v2 through the migrator, and a storage migration of every config to v2.
//! Prints figures; asserts nothing.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::client::Client;
use scarab::plugins::{CallContext, PluginHost, PluginLimits, digest};
use scarab::schema::{compile_json_schema, schema_violations};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// How long each workload runs.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(super) duration: Duration,
    /// Client concurrencies to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub(super) concurrency: Vec<usize>,
    /// Size of each value (compact JSON), in bytes.
    #[arg(long, default_value_t = 256)]
    pub(super) value_bytes: usize,
    /// Distinct keys written (and read).
    #[arg(long, default_value_t = 1000)]
    pub(super) keys: usize,
    #[arg(long, default_value = "schemas/store/v1.json")]
    schema: PathBuf,
    #[arg(long, default_value = "target/wasm32-wasip2/plugin/store_v1.wasm")]
    plugin: PathBuf,
    /// Nodes to start: 1, or 3 or 5 for a cluster (adds follower reads, forwarded writes and
    /// a failover measurement).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Afterwards, register store v2 and measure version-converted reads and a storage
    /// migration of every key (use `--keys 10000` for the migration figure).
    #[arg(long)]
    migrate: bool,
    #[arg(long, default_value = "schemas/store/v2.json")]
    schema_v2: PathBuf,
    #[arg(long, default_value = "target/wasm32-wasip2/plugin/store_v2.wasm")]
    plugin_v2: PathBuf,
    /// Where the benchmarked node keeps its data (default: a fresh directory under /tmp,
    /// removed afterwards). Put it on the disk you want to measure.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run the same workloads against etcd too (single node and 3-node clusters, with
    /// failover), back to back, and print the ratio Scarab/etcd of each figure.
    #[arg(long, conflicts_with_all = ["migrate", "nodes"])]
    vs_etcd: bool,
    /// Measure the node as a whole instead: resident memory and disk per config after
    /// writing `--keys` configs, and a restart with 20 cached plugins.
    #[arg(long, conflicts_with_all = ["migrate", "nodes", "vs_etcd"])]
    footprint: bool,
    /// The etcd binary (Debian's etcd-server).
    #[arg(long, default_value = "etcd")]
    etcd_bin: PathBuf,
}

/// A `store` document of exactly `size` bytes of compact JSON (padding the data_dir path).
pub(super) fn document(key_index: usize, size: usize) -> Value {
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
    doc["data_dir"] = Value::String(format!("/var/lib/scarab/{}", "d".repeat(pad)));
    doc
}

pub(super) fn key(i: usize) -> String {
    format!("bench/k{i}")
}

pub(super) struct Figures {
    pub(super) ops: u64,
    pub(super) errors: u64,
    pub(super) elapsed: Duration,
    pub(super) hist: Histogram<u64>,
}

impl Figures {
    fn line(&self, name: &str, c: usize, via: &str) -> String {
        let ms = |q: f64| self.hist.value_at_quantile(q) as f64 / 1e6;
        format!(
            "{name:<4} c={c:<3} {:>9.0} ops/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} ops, {} errors)  via {via}",
            self.ops as f64 / self.elapsed.as_secs_f64(),
            ms(0.50),
            ms(0.99),
            self.ops,
            self.errors
        )
    }
}

/// Builds the request for key index `k`.
pub(super) type MakeRequest =
    Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

/// PUTs of `store` documents (or GETs with `query`) of Scarab's API at `base`.
pub(super) fn scarab_requests(base: &str, put: bool, query: &str, args: &BenchArgs) -> MakeRequest {
    let docs: Vec<String> = (0..args.keys)
        .map(|i| {
            json!({"schema": "store", "schema_version": 1, "value": document(i, args.value_bytes)})
                .to_string()
        })
        .collect();
    let base = base.trim_end_matches('/').to_string();
    let query = query.to_string();
    Arc::new(move |http: &reqwest::Client, k: usize| {
        let url = format!("{base}/v1/configs/{}{query}", key(k));
        if put {
            http.put(url)
                .header("content-type", "application/json")
                .body(docs[k].clone())
        } else {
            http.get(url)
        }
    })
}

async fn workload(
    client: &Client,
    put: bool,
    query: &'static str,
    c: usize,
    args: &BenchArgs,
) -> Figures {
    load(c, args, scarab_requests(&client.url(""), put, query, args)).await
}

/// `c` closed-loop clients sending `make`'s requests over the keys for `args.duration`.
pub(super) async fn load(c: usize, args: &BenchArgs, make: MakeRequest) -> Figures {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(c)
        .tcp_nodelay(true)
        .build()
        .expect("http client");
    let started = Instant::now();
    let stop = started + args.duration;
    let mut tasks = Vec::new();
    for t in 0..c {
        let http = http.clone();
        let make = make.clone();
        let keys = args.keys;
        tasks.push(tokio::spawn(async move {
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
            let (mut ops, mut errors) = (0u64, 0u64);
            let mut i = t;
            while Instant::now() < stop {
                let begin = Instant::now();
                let ok = match make(&http, i % keys).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let _ = hist.record(begin.elapsed().as_nanos() as u64);
                if ok {
                    ops += 1
                } else {
                    errors += 1
                }
                i += c;
            }
            (hist, ops, errors)
        }));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let (mut ops, mut errors) = (0, 0);
    for t in tasks {
        let (h, o, e) = t.await.expect("bench task");
        all.add(h).expect("same bounds");
        ops += o;
        errors += e;
    }
    Figures {
        ops,
        errors,
        elapsed: started.elapsed(),
        hist: all,
    }
}

/// Writes every key once (16 at a time), so that reads find them whatever the PUT phase did.
pub(super) async fn populate(client: &Client, args: &BenchArgs) -> Result<(), String> {
    let done = futures::future::join_all((0..16).map(|t| {
        let client = client.clone();
        let keys = args.keys;
        let size = args.value_bytes;
        async move {
            for k in (t..keys).step_by(16) {
                client
                    .put_config(&key(k), "store", 1, &document(k, size), None, false)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }
    }))
    .await;
    done.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok(())
}

fn plugin_cost(args: &BenchArgs, wasm: &[u8], schema: &Value) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("scarab-bench-cache-{}", std::process::id()));
    let host = PluginHost::new(PluginLimits::default(), dir.clone()).map_err(|e| e.to_string())?;
    let d = digest(wasm);
    let plugin = host.load(&d, wasm).map_err(|e| e.to_string())?;
    let doc = document(7, args.value_bytes);
    let text = doc.to_string();
    let ctx = CallContext {
        key: "bench/k7",
        schema_name: "store",
        schema_version: 1,
    };
    let n = 20_000;
    for _ in 0..1000 {
        host.validate(&plugin, &ctx, &text)
            .map_err(|e| e.to_string())?;
    }
    let started = Instant::now();
    for _ in 0..n {
        host.validate(&plugin, &ctx, &text)
            .map_err(|e| e.to_string())?;
    }
    let per_call = started.elapsed() / n;
    let validator = compile_json_schema(schema).map_err(|e| e.to_string())?;
    let started = Instant::now();
    for _ in 0..n {
        assert!(schema_violations(&validator, &doc).is_empty());
    }
    let per_schema = started.elapsed() / n;
    let _ = std::fs::remove_dir_all(dir);
    Ok(format!(
        "plugin validation (warm instance, {}-byte store document): {:.2} µs/call\nJSON Schema validation (same document): {:.2} µs/call",
        args.value_bytes,
        per_call.as_nanos() as f64 / 1000.0,
        per_schema.as_nanos() as f64 / 1000.0
    ))
}

/// The benchmarked `scarab serve` processes; killed when dropped.
pub(super) struct Nodes {
    children: Vec<Option<std::process::Child>>,
    pub(super) apis: Vec<String>,
}

impl Nodes {
    /// The process id of node `i` (0-based).
    pub(super) fn pid(&self, i: usize) -> Result<u32, String> {
        self.children[i]
            .as_ref()
            .map(|c| c.id())
            .ok_or_else(|| format!("node {} is not running", i + 1))
    }

    /// Stops node `i` with SIGTERM (a graceful shutdown) and waits for it.
    pub(super) fn stop(&mut self, i: usize) -> Result<(), String> {
        let mut child = self.children[i]
            .take()
            .ok_or_else(|| format!("node {} is not running", i + 1))?;
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .map_err(|e| format!("kill -TERM: {e}"))?;
        child.wait().map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(super) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Starts `n` nodes (one bootstrapped node, or `n` nodes with --bootstrap-expect).
pub(super) fn start_nodes(n: usize, data_dir: &std::path::Path) -> Result<Nodes, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let ports: Vec<(u16, u16)> = (0..n)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<Result<_, String>>()?;
    let apis: Vec<String> = ports
        .iter()
        .map(|(a, _)| format!("http://127.0.0.1:{a}"))
        .collect();
    let mut nodes = Nodes {
        children: Vec::new(),
        apis: apis.clone(),
    };
    for (i, (api, peer)) in ports.iter().enumerate() {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["serve", "--node-id", &(i + 1).to_string()])
            .args(["--listen", &format!("127.0.0.1:{api}")])
            .args(["--peer-listen", &format!("127.0.0.1:{peer}")])
            .arg("--data-dir")
            .arg(data_dir.join(format!("n{}", i + 1)));
        if n > 1 {
            cmd.args([
                "--bootstrap-expect",
                &n.to_string(),
                "--join",
                &apis.join(","),
            ]);
        }
        let log = std::fs::create_dir_all(data_dir)
            .and_then(|_| std::fs::File::create(data_dir.join(format!("n{}.log", i + 1))))
            .map_err(|e| format!("cannot create the node log: {e}"))?;
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start a node: {e}"))?;
        nodes.children.push(Some(child));
    }
    Ok(nodes)
}

/// Waits until every node agrees on one leader; returns its index in `nodes.apis`.
pub(super) async fn wait_leader(nodes: &Nodes, timeout: Duration) -> Result<usize, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut leaders = Vec::new();
        for api in &nodes.apis {
            let c = Client::new(api, None);
            leaders.push(
                c.get("/v1/status")
                    .await
                    .ok()
                    .and_then(|s| s["leader"].as_u64()),
            );
        }
        if let Some(Some(l)) = leaders.first()
            && leaders.iter().all(|x| *x == Some(*l))
        {
            return Ok(*l as usize - 1);
        }
        if Instant::now() > deadline {
            return Err(format!("no agreed leader after {timeout:?}: {leaders:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the leader with SIGKILL during a stream of writes through another node and returns
/// the time from the kill to the first write that succeeds afterwards.
pub(super) async fn failover(
    nodes: &mut Nodes,
    leader: usize,
    args: &BenchArgs,
) -> Result<Duration, String> {
    let other = (leader + 1) % nodes.apis.len();
    let client = Client::new(&nodes.apis[other], Some("bench".into()));
    let value = document(0, args.value_bytes);
    let child = nodes.children[leader]
        .as_mut()
        .ok_or("leader already stopped")?;
    child.kill().map_err(|e| e.to_string())?;
    let killed = Instant::now();
    let _ = child.wait();
    nodes.children[leader] = None;
    loop {
        if client
            .put_config(&key(0), "store", 1, &value, None, false)
            .await
            .is_ok()
        {
            return Ok(killed.elapsed());
        }
        if killed.elapsed() > Duration::from_secs(30) {
            return Err("no successful write within 30 s of the kill".into());
        }
    }
}

/// Registers store v2, measures reads converted to it, then migrates every config to it.
async fn migration(client: &Client, args: &BenchArgs) -> Result<(), String> {
    let schema =
        std::fs::read(&args.schema_v2).map_err(|e| format!("{}: {e}", args.schema_v2.display()))?;
    let plugin = std::fs::read(&args.plugin_v2).map_err(|e| {
        format!(
            "{}: {e} (build plugins with `cargo plugins`)",
            args.plugin_v2.display()
        )
    })?;
    let started = Instant::now();
    client
        .register_schema("store", 2, schema, Some(plugin))
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "register store v2 over {} v1 configs (compatibility check included): {:.0} ms",
        args.keys,
        started.elapsed().as_secs_f64() * 1000.0
    );
    for &c in &args.concurrency {
        let stored = workload(client, false, "?consistency=stale", c, args).await;
        println!("{}", stored.line("GET", c, "leader, stale, as stored (v1)"));
        let converted = workload(
            client,
            false,
            "?consistency=stale&schema_version=2",
            c,
            args,
        )
        .await;
        println!(
            "{}",
            converted.line("GET", c, "leader, stale, converted to v2")
        );
    }
    let started = Instant::now();
    let m = client
        .post_json(
            "/v1/schemas/store/migrations",
            &json!({"target_version": 2}),
        )
        .await
        .map_err(|e| e.to_string())?;
    let id = m["id"].as_u64().unwrap_or_default();
    let last = loop {
        let m = client
            .get(&format!("/v1/schemas/store/migrations/{id}"))
            .await
            .map_err(|e| e.to_string())?;
        if m["status"] == "done" {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = started.elapsed();
    let done = last["done"].as_u64().unwrap_or_default();
    println!(
        "storage migration v1 -> v2: {done} configs in {:.2} s = {:.0} configs/s ({} failed)",
        took.as_secs_f64(),
        done as f64 / took.as_secs_f64(),
        last["failed_count"]
    );
    Ok(())
}

pub async fn run(args: BenchArgs) -> ExitCode {
    let (wasm, schema_bytes) = match (std::fs::read(&args.plugin), std::fs::read(&args.schema)) {
        (Ok(w), Ok(s)) => (w, s),
        (Err(e), _) => {
            eprintln!(
                "error: {}: {e} (build plugins with `cargo plugins`)",
                args.plugin.display()
            );
            return ExitCode::from(2);
        }
        (_, Err(e)) => {
            eprintln!("error: {}: {e}", args.schema.display());
            return ExitCode::from(2);
        }
    };
    let schema: Value = match serde_json::from_slice(&schema_bytes) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", args.schema.display());
            return ExitCode::from(2);
        }
    };
    let (data_dir, remove_after) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("scarab-bench-{}", std::process::id())),
            true,
        ),
    };
    if args.vs_etcd || args.footprint {
        let result = if args.vs_etcd {
            super::versus::run(&args, &args.etcd_bin, &data_dir, &schema_bytes, &wasm).await
        } else {
            super::footprint::run(&args, &data_dir, &schema_bytes, &wasm).await
        };
        if remove_after {
            let _ = std::fs::remove_dir_all(&data_dir);
        }
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = async {
        let mut nodes = start_nodes(args.nodes, &data_dir)?;
        let leader = wait_leader(&nodes, Duration::from_secs(30)).await?;
        let client = Client::new(&nodes.apis[leader], Some("bench".into()));
        client
            .register_schema("store", 1, schema_bytes.clone(), Some(wasm.clone()))
            .await
            .map_err(|e| e.to_string())?;
        // Every key exists before the GET workloads, whatever the PUT phase managed.
        populate(&client, &args).await?;
        println!(
            "scarab bench: {} node(s), {}-byte store values over {} keys, {:?} per workload, data in {}",
            args.nodes,
            args.value_bytes,
            args.keys,
            args.duration,
            data_dir.display()
        );
        for &c in &args.concurrency {
            let put = workload(&client, true, "", c, &args).await;
            println!("{}", put.line("PUT", c, "leader"));
            let get = workload(&client, false, "", c, &args).await;
            println!("{}", get.line("GET", c, "leader, linearizable"));
            let stale = workload(&client, false, "?consistency=stale", c, &args).await;
            println!("{}", stale.line("GET", c, "leader, stale"));
            if args.nodes > 1 {
                let follower = Client::new(&nodes.apis[(leader + 1) % args.nodes], None);
                let get = workload(&follower, false, "", c, &args).await;
                println!("{}", get.line("GET", c, "follower, linearizable"));
                let put = workload(&follower, true, "", c, &args).await;
                println!("{}", put.line("PUT", c, "follower (forwarded)"));
            }
        }
        if args.migrate {
            migration(&client, &args).await?;
        }
        if args.nodes > 1 {
            let took = failover(&mut nodes, leader, &args).await?;
            println!("failover: first successful write {:.0} ms after the leader's kill -9", took.as_secs_f64() * 1000.0);
        } else {
            println!("{}", plugin_cost(&args, &wasm, &schema)?);
        }
        Ok::<(), String>(())
    }
    .await;
    if remove_after {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
