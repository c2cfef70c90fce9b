//! `scarab bench --vs-etcd`: the same workloads against Scarab and etcd, one after the other on
//! this machine, with the ratio Scarab/etcd of each figure.
//!
//! etcd is Debian's `etcd-server` (`etcd` on the PATH, or `--etcd-bin`), started on loopback
//! with its data on the same disk as Scarab's, and driven through its HTTP JSON gateway
//! (`/v3/kv/put`, `/v3/kv/range`) by the same load generator. Every Scarab PUT is validated by
//! the `store` JSON Schema and its plugin; etcd stores the same bytes unchecked. Workloads:
//! single-node PUT at each concurrency, linearizable and stale (etcd: serializable) GET at the
//! highest; then 3-node clusters of each: PUT and linearizable GET at the highest concurrency,
//! and the time from a `kill -9` of the leader to the first successful write through another
//! node. Prints figures; asserts nothing.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::bench::{
    BenchArgs, Figures, MakeRequest, Nodes, document, failover, free_port, key, load, populate,
    scarab_requests, start_nodes, wait_leader,
};
use super::client::Client;

/// One compared figure.
enum Measure {
    Load(Figures),
    Failover(Duration),
}

impl Measure {
    /// Higher is better: throughput, or the inverse of the failover time.
    fn score(&self) -> f64 {
        match self {
            Measure::Load(f) => f.ops as f64 / f.elapsed.as_secs_f64(),
            Measure::Failover(d) => 1.0 / d.as_secs_f64(),
        }
    }

    fn show(&self) -> String {
        match self {
            Measure::Load(f) => format!(
                "{:>8.0}/s p50 {:>6.2} ms p99 {:>6.2} ms{}",
                f.ops as f64 / f.elapsed.as_secs_f64(),
                f.hist.value_at_quantile(0.5) as f64 / 1e6,
                f.hist.value_at_quantile(0.99) as f64 / 1e6,
                if f.errors > 0 {
                    format!(" ({} errors)", f.errors)
                } else {
                    String::new()
                }
            ),
            Measure::Failover(d) => format!("{:>8.0} ms to the first write", d.as_secs_f64() * 1e3),
        }
    }
}

/// Running etcd members; killed when dropped.
struct Etcd {
    children: Vec<Option<std::process::Child>>,
    clients: Vec<String>,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_etcd(bin: &Path, n: usize, dir: &Path) -> Result<Etcd, String> {
    let ports: Vec<(u16, u16)> = (0..n)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<Result<_, String>>()?;
    let cluster: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("e{i}=http://127.0.0.1:{p}"))
        .collect();
    let mut etcd = Etcd {
        children: Vec::new(),
        clients: ports
            .iter()
            .map(|(c, _)| format!("http://127.0.0.1:{c}"))
            .collect(),
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (i, (c, p)) in ports.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("e{i}.log")))
            .map_err(|e| format!("cannot create the etcd log: {e}"))?;
        let child = std::process::Command::new(bin)
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(dir.join(format!("e{i}")))
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{c}")])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{c}")])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{p}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{p}"),
            ])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "scarab-bench"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {}: {e} (install etcd-server: apt-get install etcd-server)",
                    bin.display()
                )
            })?;
        etcd.children.push(Some(child));
    }
    Ok(etcd)
}

/// Waits until every running member names the same leader; returns the leader's index.
async fn etcd_leader(etcd: &Etcd, timeout: Duration) -> Result<usize, String> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        let mut seen = Vec::new();
        for (i, url) in etcd.clients.iter().enumerate() {
            if etcd.children[i].is_none() {
                continue;
            }
            let status = http
                .post(format!("{url}/v3/maintenance/status"))
                .json(&json!({}))
                .send()
                .await;
            let body: Option<Value> = match status {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            };
            seen.push(body.map(|b| {
                (
                    b["header"]["member_id"].as_str().unwrap_or("").to_string(),
                    b["leader"].as_str().unwrap_or("").to_string(),
                )
            }));
        }
        if let Some(Some((_, leader))) = seen.first()
            && !leader.is_empty()
            && leader != "0"
            && seen
                .iter()
                .all(|s| s.as_ref().is_some_and(|(_, l)| l == leader))
            && let Some(i) = seen
                .iter()
                .position(|s| s.as_ref().is_some_and(|(m, _)| m == leader))
        {
            return Ok(i);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "etcd: no agreed leader after {timeout:?}: {seen:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// PUT or range requests of the JSON gateway over the same keys and values as Scarab's.
fn etcd_requests(base: &str, put: bool, serializable: bool, args: &BenchArgs) -> MakeRequest {
    let bodies: Vec<String> = (0..args.keys)
        .map(|k| {
            let key = B64.encode(key(k));
            if put {
                let value = B64.encode(document(k, args.value_bytes).to_string());
                json!({"key": key, "value": value}).to_string()
            } else if serializable {
                json!({"key": key, "serializable": true}).to_string()
            } else {
                json!({"key": key}).to_string()
            }
        })
        .collect();
    let url = format!("{base}/v3/kv/{}", if put { "put" } else { "range" });
    Arc::new(move |http: &reqwest::Client, k: usize| {
        http.post(&url)
            .header("content-type", "application/json")
            .body(bodies[k].clone())
    })
}

async fn etcd_populate(base: &str, args: &BenchArgs) -> Result<(), String> {
    let http = reqwest::Client::new();
    let make = etcd_requests(base, true, false, args);
    for k in 0..args.keys {
        let r = make(&http, k).send().await.map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("etcd put: HTTP {}", r.status()));
        }
    }
    Ok(())
}

async fn etcd_failover(
    etcd: &mut Etcd,
    leader: usize,
    args: &BenchArgs,
) -> Result<Duration, String> {
    let other = (leader + 1) % etcd.clients.len();
    let make = etcd_requests(&etcd.clients[other], true, false, args);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let child = etcd.children[leader]
        .as_mut()
        .ok_or("leader already stopped")?;
    child.kill().map_err(|e| e.to_string())?;
    let killed = Instant::now();
    let _ = child.wait();
    etcd.children[leader] = None;
    loop {
        if let Ok(r) = make(&http, 0).send().await
            && r.status().is_success()
        {
            return Ok(killed.elapsed());
        }
        if killed.elapsed() > Duration::from_secs(30) {
            return Err("etcd: no successful write within 30 s of the kill".into());
        }
    }
}

/// What the load workloads ask of one system: PUT, linearizable GET, or stale GET requests.
#[derive(Clone, Copy)]
enum Request {
    Put,
    Get,
    StaleGet,
}

/// The load workloads against one system (its requests from `make`): PUT at every
/// concurrency on one node (at the highest on a cluster), then linearizable GET, and on one
/// node stale GET, at the highest.
async fn loads(
    args: &BenchArgs,
    nodes_n: usize,
    make: impl Fn(Request) -> MakeRequest,
) -> Vec<(String, Measure)> {
    let top = *args.concurrency.iter().max().unwrap_or(&64);
    let mut plan: Vec<(&str, Request, usize)> = if nodes_n == 1 {
        args.concurrency
            .iter()
            .map(|c| ("PUT", Request::Put, *c))
            .collect()
    } else {
        vec![("PUT", Request::Put, top)]
    };
    plan.push(("GET linearizable", Request::Get, top));
    if nodes_n == 1 {
        plan.push(("GET stale", Request::StaleGet, top));
    }
    let mut out = Vec::new();
    for (what, request, c) in plan {
        let f = load(c, args, make(request)).await;
        out.push((format!("{nodes_n}-node {what} c={c}"), Measure::Load(f)));
    }
    out
}

/// Scarab's figures, in the order of [`etcd_side`]'s.
async fn scarab_side(
    args: &BenchArgs,
    nodes_n: usize,
    dir: &Path,
    schema: &[u8],
    wasm: &[u8],
) -> Result<Vec<(String, Measure)>, String> {
    let mut nodes: Nodes = start_nodes(nodes_n, dir)?;
    let leader = wait_leader(&nodes, Duration::from_secs(30)).await?;
    let client = Client::new(&nodes.apis[leader], Some("bench".into()));
    client
        .register_schema("store", 1, schema.to_vec(), Some(wasm.to_vec()))
        .await
        .map_err(|e| e.to_string())?;
    populate(&client, args).await?;
    let base = nodes.apis[leader].clone();
    let mut out = loads(args, nodes_n, |r| match r {
        Request::Put => scarab_requests(&base, true, "", args),
        Request::Get => scarab_requests(&base, false, "", args),
        Request::StaleGet => scarab_requests(&base, false, "?consistency=stale", args),
    })
    .await;
    if nodes_n > 1 {
        let took = failover(&mut nodes, leader, args).await?;
        out.push((format!("{nodes_n}-node failover"), Measure::Failover(took)));
    }
    Ok(out)
}

async fn etcd_side(
    args: &BenchArgs,
    bin: &Path,
    nodes_n: usize,
    dir: &Path,
) -> Result<Vec<(String, Measure)>, String> {
    let mut etcd = start_etcd(bin, nodes_n, dir)?;
    let leader = etcd_leader(&etcd, Duration::from_secs(30)).await?;
    let base = etcd.clients[leader].clone();
    etcd_populate(&base, args).await?;
    let mut out = loads(args, nodes_n, |r| match r {
        Request::Put => etcd_requests(&base, true, false, args),
        Request::Get => etcd_requests(&base, false, false, args),
        Request::StaleGet => etcd_requests(&base, false, true, args),
    })
    .await;
    if nodes_n > 1 {
        let took = etcd_failover(&mut etcd, leader, args).await?;
        out.push((format!("{nodes_n}-node failover"), Measure::Failover(took)));
    }
    Ok(out)
}

pub async fn run(
    args: &BenchArgs,
    etcd_bin: &Path,
    dir: &Path,
    schema: &[u8],
    wasm: &[u8],
) -> Result<(), String> {
    println!(
        "scarab bench --vs-etcd: {}-byte values over {} keys, {:?} per workload, data under {} \
         (Scarab validates every PUT with the store schema and plugin; etcd through its JSON gateway)",
        args.value_bytes,
        args.keys,
        args.duration,
        dir.display()
    );
    let fsync = fsync_p50(dir)?;
    println!(
        "one fsync of a 256-byte append in {}: p50 {:.3} ms (the floor of a 1-client PUT)",
        dir.display(),
        fsync.as_secs_f64() * 1e3
    );
    println!(
        "{:<30} {:<44} {:<44} {:>7}",
        "workload", "scarab", "etcd", "s/etcd"
    );
    for n in [1usize, 3] {
        // Back to back, each on a fresh directory, so that neither runs beside the other.
        let scarab = scarab_side(args, n, &dir.join(format!("scarab-{n}")), schema, wasm).await?;
        let etcd = etcd_side(args, etcd_bin, n, &dir.join(format!("etcd-{n}"))).await?;
        for ((name, s), (_, e)) in scarab.iter().zip(&etcd) {
            println!(
                "{name:<30} {:<44} {:<44} {:>6.2}x",
                s.show(),
                e.show(),
                s.score() / e.score()
            );
        }
        if let Some((_, Measure::Load(put1))) =
            scarab.iter().find(|(name, _)| name == "1-node PUT c=1")
        {
            let p50 = put1.hist.value_at_quantile(0.5) as f64 / 1e9;
            println!(
                "1-node PUT c=1 p50 is {:.2}x one fsync",
                p50 / fsync.as_secs_f64()
            );
        }
    }
    Ok(())
}

/// The median time of appending 256 bytes to a file in `dir` and fsyncing it (fdatasync), over
/// 200 appends: what one durable write costs on this disk at least.
fn fsync_p50(dir: &Path) -> Result<Duration, String> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let started = Instant::now();
        file.write_all(&[b'x'; 256]).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
        times.push(started.elapsed());
    }
    let _ = std::fs::remove_file(&path);
    times.sort();
    Ok(times[times.len() / 2])
}
