//! `scarab bench`: starts a `scarab serve` process on a fresh data directory, registers the
//! `store` schema with its plugin, and measures PUT and GET throughput and latency at several
//! concurrencies (every PUT validated by JSON Schema and the plugin), then the warm cost of one
//! plugin validation in-process. Prints figures; asserts nothing.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::client::Client;
use super::dev::wait_ready;
use crate::plugins::{CallContext, PluginHost, PluginLimits, digest};
use crate::schema::{compile_json_schema, schema_violations};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// How long each workload runs.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Client concurrencies to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Size of each value (compact JSON), in bytes.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Distinct keys written (and read).
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    #[arg(long, default_value = "schemas/store/v1.json")]
    schema: PathBuf,
    #[arg(long, default_value = "target/wasm32-wasip2/plugin/store_v1.wasm")]
    plugin: PathBuf,
    /// Where the benchmarked node keeps its data (default: a fresh directory under /tmp,
    /// removed afterwards). Put it on the disk you want to measure.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// A `store` document of exactly `size` bytes of compact JSON (padding the data_dir path).
fn document(key_index: usize, size: usize) -> Value {
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

fn key(i: usize) -> String {
    format!("bench/k{i}")
}

struct Figures {
    ops: u64,
    errors: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
}

impl Figures {
    fn line(&self, name: &str, c: usize) -> String {
        let us = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "{name:<4} c={c:<3} {:>9.0} ops/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} ops, {} errors)",
            self.ops as f64 / self.elapsed.as_secs_f64(),
            us(0.50),
            us(0.99),
            self.ops,
            self.errors
        )
    }
}

async fn workload(client: &Client, put: bool, c: usize, args: &BenchArgs) -> Figures {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(c)
        .tcp_nodelay(true)
        .build()
        .expect("http client");
    let docs: Arc<Vec<String>> = Arc::new(
        (0..args.keys)
            .map(|i| json!({"schema": "store", "schema_version": 1, "value": document(i, args.value_bytes)}).to_string())
            .collect(),
    );
    let started = Instant::now();
    let stop = started + args.duration;
    let mut tasks = Vec::new();
    for t in 0..c {
        let http = http.clone();
        let docs = docs.clone();
        let base = client.url("");
        let keys = args.keys;
        tasks.push(tokio::spawn(async move {
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
            let (mut ops, mut errors) = (0u64, 0u64);
            let mut i = t;
            while Instant::now() < stop {
                let k = i % keys;
                let url = format!("{base}/v1/configs/{}", key(k));
                let begin = Instant::now();
                let result = if put {
                    http.put(url)
                        .header("content-type", "application/json")
                        .body(docs[k].clone())
                        .send()
                        .await
                } else {
                    http.get(url).send().await
                };
                let ok = match result {
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
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => {
            eprintln!("error: no free port: {e}");
            return ExitCode::from(2);
        }
    };
    let exe = std::env::current_exe().expect("current exe");
    let mut child = match std::process::Command::new(exe)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start the node: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = Client::new(&format!("http://127.0.0.1:{port}"), Some("bench".into()));
    let result = async {
        wait_ready(&client, Duration::from_secs(30)).await?;
        client
            .register_schema("store", 1, schema_bytes.clone(), Some(wasm.clone()))
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "scarab bench: {}-byte store values over {} keys, {:?} per workload, node data in {}",
            args.value_bytes,
            args.keys,
            args.duration,
            data_dir.display()
        );
        for &c in &args.concurrency {
            let put = workload(&client, true, c, &args).await;
            println!("{}", put.line("PUT", c));
            let get = workload(&client, false, c, &args).await;
            println!("{}", get.line("GET", c));
        }
        println!("{}", plugin_cost(&args, &wasm, &schema)?);
        Ok::<(), String>(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
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
