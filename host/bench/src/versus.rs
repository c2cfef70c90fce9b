//! `scarab-bench --vs-etcd`: the same workloads against Scarab and etcd, one after the other on
//! this machine, with the ratio Scarab/etcd of each figure.
//!
//! etcd is Debian's `etcd-server` (`etcd` on the PATH, or `--etcd-bin`), started on loopback
//! with its data on the same disk as Scarab's, and driven through its HTTP JSON gateway
//! (`/v3/kv/put`, `/v3/kv/range`) by the same load generator: `wrk` by default (`wrk.rs`), or
//! this process (`--generator builtin`: a plain `reqwest` client for etcd, `scarab-client`
//! for Scarab). With `--tls`, both serve clients over TLS and peers over mutual TLS; with
//! `--auth`, both check a token on every request (etcd's root user's simple token). Every Scarab PUT is validated by
//! the `store` JSON Schema and its plugin; etcd stores the same bytes unchecked. Workloads:
//! single-node PUT at each concurrency, linearizable and stale (etcd: serializable) GET at the
//! highest; then 3-node clusters of each: PUT and linearizable GET at the highest concurrency,
//! and the time from a `kill -9` of the leader to the first successful write through another
//! node. Prints figures; asserts nothing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::load::{Op, Summary, load};
use crate::nodes::{failover, free_port_pairs, tls_dir, token};
use crate::workload::{Corpus, ScarabOp, Workload, load_client};
use crate::wrk::{Request, Target};
use crate::{Generator, Setup};

/// One compared figure.
enum Measure {
    Load(Summary),
    Failover(Duration),
}

impl Measure {
    /// Higher is better: throughput, or the inverse of the failover time.
    fn score(&self) -> f64 {
        match self {
            Measure::Load(f) => f.rate(),
            Measure::Failover(d) => 1.0 / d.as_secs_f64(),
        }
    }

    fn show(&self) -> String {
        match self {
            Measure::Load(f) => format!(
                "{:>8.0}/s p50 {:>6.2} ms p99 {:>6.2} ms{}",
                f.rate(),
                f.p50_ms,
                f.p99_ms,
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
pub(crate) struct Etcd {
    children: Vec<Option<Child>>,
    clients: Vec<String>,
    /// With `--auth`: the root user's token, sent as `Authorization`.
    pub(crate) token: Option<String>,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_etcd(bin: &Path, n: usize, dir: &Path) -> Result<Etcd> {
    let ports = free_port_pairs(n)?;
    let scheme = if tls_dir().is_some() { "https" } else { "http" };
    let cluster: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("e{i}={scheme}://127.0.0.1:{p}"))
        .collect();
    let mut etcd = Etcd {
        children: Vec::new(),
        clients: ports
            .iter()
            .map(|(c, _)| format!("{scheme}://127.0.0.1:{c}"))
            .collect(),
        token: None,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    for (i, (c, p)) in ports.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("e{i}.log")))
            .context("cannot create the etcd log")?;
        let mut cmd = Command::new(bin);
        // The same certificates as Scarab's node i + 1, and the same mutual TLS between peers.
        if let Some(pki) = tls_dir() {
            let cert = pki.join(format!("node-{}.pem", i + 1));
            let key = pki.join(format!("node-{}-key.pem", i + 1));
            cmd.arg("--cert-file")
                .arg(&cert)
                .arg("--key-file")
                .arg(&key);
            cmd.arg("--peer-cert-file").arg(&cert);
            cmd.arg("--peer-key-file").arg(&key);
            cmd.arg("--peer-trusted-ca-file").arg(pki.join("ca.pem"));
            cmd.arg("--peer-client-cert-auth");
        }
        let child = cmd
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(dir.join(format!("e{i}")))
            .args(["--listen-client-urls", &format!("{scheme}://127.0.0.1:{c}")])
            .args([
                "--advertise-client-urls",
                &format!("{scheme}://127.0.0.1:{c}"),
            ])
            .args(["--listen-peer-urls", &format!("{scheme}://127.0.0.1:{p}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("{scheme}://127.0.0.1:{p}"),
            ])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "scarab-bench"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (install etcd-server: apt-get install etcd-server)",
                    bin.display()
                )
            })?;
        etcd.children.push(Some(child));
    }
    Ok(etcd)
}

/// Waits until every running member names the same leader; returns the leader's index.
async fn etcd_leader(http: &reqwest::Client, etcd: &Etcd, timeout: Duration) -> Result<usize> {
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
            bail!("etcd: no agreed leader after {timeout:?}: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the load workloads ask of one system: PUT, linearizable GET, or stale GET requests.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Put,
    Get,
    StaleGet,
}

/// PUT or range requests of etcd's JSON gateway over the same keys and values as Scarab's,
/// their bodies prepared once.
pub(crate) struct EtcdOp {
    http: reqwest::Client,
    url: Url,
    bodies: Vec<Bytes>,
    token: Option<String>,
}

/// The path of `kind`'s requests on etcd's gateway.
fn etcd_path(kind: Kind) -> &'static str {
    match kind {
        Kind::Put => "/v3/kv/put",
        Kind::Get | Kind::StaleGet => "/v3/kv/range",
    }
}

impl EtcdOp {
    pub(crate) fn new(
        http: &reqwest::Client,
        base: &str,
        kind: Kind,
        corpus: &Corpus,
        token: Option<&str>,
    ) -> Result<Arc<Self>> {
        let bodies = corpus
            .keys
            .iter()
            .zip(&corpus.puts)
            .map(|(key, put)| {
                let key = B64.encode(key);
                let body = match kind {
                    Kind::Put => {
                        json!({"key": key, "value": B64.encode(put.value.to_string())})
                    }
                    Kind::Get => json!({"key": key}),
                    Kind::StaleGet => json!({"key": key, "serializable": true}),
                };
                Bytes::from(body.to_string())
            })
            .collect();
        let url = format!("{base}{}", etcd_path(kind));
        Ok(Arc::new(Self {
            http: http.clone(),
            url: Url::parse(&url).with_context(|| url.clone())?,
            bodies,
            token: token.map(str::to_string),
        }))
    }

    /// The same requests for wrk.
    fn target(&self, base: &str, kind: Kind) -> Target {
        let mut headers = vec![("Content-Type".into(), "application/json".into())];
        if let Some(t) = &self.token {
            headers.push(("Authorization".into(), t.clone()));
        }
        Target {
            base: base.to_string(),
            headers,
            requests: self
                .bodies
                .iter()
                .map(|b| Request {
                    method: "POST",
                    path: etcd_path(kind).to_string(),
                    body: Some(String::from_utf8_lossy(b).into_owned()),
                })
                .collect(),
        }
    }

    fn post(&self, url: Url, body: Bytes) -> reqwest::RequestBuilder {
        let req = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        match &self.token {
            Some(t) => req.header(reqwest::header::AUTHORIZATION, t),
            None => req,
        }
    }
}

impl Op for EtcdOp {
    async fn send(&self, k: usize) -> bool {
        let sent = self
            .post(self.url.clone(), self.bodies[k].clone())
            .send()
            .await;
        match sent {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        }
    }
}

async fn etcd_populate(
    http: &reqwest::Client,
    base: &str,
    corpus: &Corpus,
    token: Option<&str>,
) -> Result<()> {
    let put = EtcdOp::new(http, base, Kind::Put, corpus, token)?;
    for k in 0..corpus.keys.len() {
        let r = put
            .post(put.url.clone(), put.bodies[k].clone())
            .send()
            .await
            .context("etcd put")?;
        if !r.status().is_success() {
            bail!("etcd put: HTTP {}", r.status());
        }
    }
    Ok(())
}

async fn etcd_failover(etcd: &mut Etcd, leader: usize, corpus: &Corpus) -> Result<Duration> {
    let other = (leader + 1) % etcd.clients.len();
    let http = etcd_http()?
        .timeout(Duration::from_secs(2))
        .build()
        .context("an HTTP client")?;
    let put = EtcdOp::new(
        &http,
        &etcd.clients[other],
        Kind::Put,
        corpus,
        etcd.token.as_deref(),
    )?;
    let mut child = etcd.children[leader]
        .take()
        .context("the etcd leader already stopped")?;
    child.kill().context("kill -9 of the etcd leader")?;
    let killed = Instant::now();
    let _ = child.wait();
    loop {
        if put.send(0).await {
            return Ok(killed.elapsed());
        }
        if killed.elapsed() > Duration::from_secs(30) {
            bail!("etcd: no successful write within 30 s of the kill");
        }
    }
}

/// The load workloads against one system (its requests from `op` for this process, from
/// `target` for wrk): PUT at every concurrency on one node (at the highest on a cluster), then
/// linearizable GET, and on one node stale GET, at the highest.
async fn loads<O: Op>(
    setup: &Setup,
    nodes_n: usize,
    dir: &Path,
    op: impl Fn(Kind) -> Result<Arc<O>>,
    target: impl Fn(Kind) -> Result<Target>,
) -> Result<Vec<(String, Measure)>> {
    let args = &setup.args;
    let top = *args.concurrency.iter().max().unwrap_or(&64);
    let mut plan: Vec<(&str, Kind, usize)> = if nodes_n == 1 {
        args.concurrency
            .iter()
            .map(|c| ("PUT", Kind::Put, *c))
            .collect()
    } else {
        vec![("PUT", Kind::Put, top)]
    };
    plan.push(("GET linearizable", Kind::Get, top));
    if nodes_n == 1 {
        plan.push(("GET stale", Kind::StaleGet, top));
    }
    let mut out = Vec::new();
    for (what, kind, c) in plan {
        let summary = match args.generator {
            Generator::Builtin => {
                let f = load(c, args.duration, setup.corpus.keys.len(), op(kind)?).await;
                Summary::from(&f)
            }
            Generator::Wrk => crate::wrk::run(&target(kind)?, c, args.duration, dir).await?,
        };
        out.push((
            format!("{nodes_n}-node {what} c={c}"),
            Measure::Load(summary),
        ));
    }
    Ok(out)
}

/// Scarab's requests of `kind` for wrk: the same as `ScarabOp`'s through scarab-client.
fn scarab_target(base: &str, kind: Kind, corpus: &Corpus) -> Result<Target> {
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("X-Scarab-Actor".to_string(), "bench".to_string()),
    ];
    if let Some(t) = token() {
        headers.push(("Authorization".into(), format!("Bearer {t}")));
    }
    let requests = corpus
        .keys
        .iter()
        .zip(&corpus.puts)
        .map(|(key, put)| {
            Ok(match kind {
                Kind::Put => Request {
                    method: "PUT",
                    path: format!("/v1/configs/{key}"),
                    body: Some(serde_json::to_string(put)?),
                },
                Kind::Get => Request {
                    method: "GET",
                    path: format!("/v1/configs/{key}"),
                    body: None,
                },
                Kind::StaleGet => Request {
                    method: "GET",
                    path: format!("/v1/configs/{key}?consistency=stale"),
                    body: None,
                },
            })
        })
        .collect::<Result<_>>()?;
    Ok(Target {
        base: base.to_string(),
        headers,
        requests,
    })
}

/// Scarab's figures, in the order of [`etcd_side`]'s.
async fn scarab_side(setup: &Setup, nodes_n: usize, dir: &Path) -> Result<Vec<(String, Measure)>> {
    let (mut nodes, leader, _admin) = crate::workload::prepared(setup, nodes_n, dir).await?;
    let client = load_client(&nodes.apis[leader])?;
    let base = nodes.apis[leader].clone();
    let mut out = loads(
        setup,
        nodes_n,
        dir,
        |kind| {
            let workload = match kind {
                Kind::Put => Workload::Put,
                Kind::Get => Workload::Get,
                Kind::StaleGet => Workload::StaleGet,
            };
            Ok(ScarabOp::new(&client, &setup.corpus, workload))
        },
        |kind| scarab_target(&base, kind, &setup.corpus),
    )
    .await?;
    if nodes_n > 1 {
        let corpus = &setup.corpus;
        let took = failover(&mut nodes, leader, &corpus.keys[0], &corpus.puts[0]).await?;
        out.push((format!("{nodes_n}-node failover"), Measure::Failover(took)));
    }
    Ok(out)
}

/// A running etcd of `nodes_n` members, an HTTP client for it, its leader's index and URL;
/// with `--auth`, authentication on and the root token in `Etcd::token`; every key written once.
pub(crate) async fn etcd_ready(
    setup: &Setup,
    nodes_n: usize,
    dir: &Path,
) -> Result<(Etcd, reqwest::Client, usize, String)> {
    let mut etcd = start_etcd(&setup.args.etcd_bin, nodes_n, dir)?;
    let http = etcd_http()?
        .tcp_nodelay(true)
        .build()
        .context("an HTTP client")?;
    let leader = etcd_leader(&http, &etcd, Duration::from_secs(30)).await?;
    let base = etcd.clients[leader].clone();
    if token().is_some() {
        etcd.token = Some(etcd_enable_auth(&http, &base).await?);
    }
    etcd_populate(&http, &base, &setup.corpus, etcd.token.as_deref()).await?;
    Ok((etcd, http, leader, base))
}

async fn etcd_side(setup: &Setup, nodes_n: usize, dir: &Path) -> Result<Vec<(String, Measure)>> {
    let (mut etcd, http, leader, base) = etcd_ready(setup, nodes_n, dir).await?;
    let token = etcd.token.clone();
    let mut out = loads(
        setup,
        nodes_n,
        dir,
        |kind| EtcdOp::new(&http, &base, kind, &setup.corpus, token.as_deref()),
        |kind| {
            Ok(
                EtcdOp::new(&http, &base, kind, &setup.corpus, token.as_deref())?
                    .target(&base, kind),
            )
        },
    )
    .await?;
    if nodes_n > 1 {
        let took = etcd_failover(&mut etcd, leader, &setup.corpus).await?;
        out.push((format!("{nodes_n}-node failover"), Measure::Failover(took)));
    }
    Ok(out)
}

/// A client builder for etcd that trusts the run's CA with `--tls`.
fn etcd_http() -> Result<reqwest::ClientBuilder> {
    let builder = reqwest::Client::builder();
    Ok(match tls_dir() {
        Some(pki) => {
            let pem = std::fs::read(pki.join("ca.pem")).context("the run's CA")?;
            builder.add_root_certificate(
                reqwest::Certificate::from_pem(&pem).context("the run's CA certificate")?,
            )
        }
        None => builder,
    })
}

/// Turns on etcd's authentication (a root user with the root role) and returns the root
/// user's token, as `etcdctl user add root && etcdctl auth enable` and a login would.
async fn etcd_enable_auth(http: &reqwest::Client, base: &str) -> Result<String> {
    const PASSWORD: &str = "scarab-bench";
    for (path, body) in [
        ("user/add", json!({"name": "root", "password": PASSWORD})),
        ("user/grant", json!({"user": "root", "role": "root"})),
        ("enable", json!({})),
    ] {
        let r = http
            .post(format!("{base}/v3/auth/{path}"))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("etcd /v3/auth/{path}"))?;
        if !r.status().is_success() {
            bail!(
                "etcd /v3/auth/{path}: HTTP {}: {}",
                r.status(),
                r.text().await?
            );
        }
    }
    let r: Value = http
        .post(format!("{base}/v3/auth/authenticate"))
        .json(&json!({"name": "root", "password": PASSWORD}))
        .send()
        .await
        .context("etcd /v3/auth/authenticate")?
        .json()
        .await
        .context("etcd /v3/auth/authenticate")?;
    r["token"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no token from etcd: {r}"))
}

pub async fn run(setup: &Setup) -> Result<()> {
    let args = &setup.args;
    if args.generator == Generator::Wrk && !crate::wrk::available() {
        bail!("wrk is not installed: apt-get install wrk, or --generator builtin");
    }
    let dir = &setup.data_dir;
    println!(
        "scarab-bench --vs-etcd: {}-byte values over {} keys, {:?} per workload, data under {}, \
         load from {:?}, TLS {}, auth {} (Scarab validates every PUT with the store schema and \
         plugin; etcd through its JSON gateway)",
        args.value_bytes,
        args.keys,
        args.duration,
        dir.display(),
        args.generator,
        if args.tls { "on" } else { "off" },
        if args.auth { "on" } else { "off" },
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
        let scarab = scarab_side(setup, n, &dir.join(format!("scarab-{n}"))).await?;
        let etcd = etcd_side(setup, n, &dir.join(format!("etcd-{n}"))).await?;
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
            let p50 = put1.p50_ms / 1e3;
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
fn fsync_p50(dir: &Path) -> Result<Duration> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).with_context(|| format!("{}", path.display()))?;
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let started = Instant::now();
        file.write_all(&[b'x'; 256]).context("the fsync probe")?;
        file.sync_data().context("the fsync probe")?;
        times.push(started.elapsed());
    }
    let _ = std::fs::remove_file(&path);
    times.sort();
    Ok(times[times.len() / 2])
}
