//! Fault injection with checked histories, in the manner of Jepsen and etcd's robustness tests.
//!
//! A cluster of real `scarab serve` processes (3, then 5 nodes) runs a fault schedule drawn
//! from a seed (`harness::nemesis`: `kill -9` and restart, SIGSTOP/SIGCONT, isolating one node,
//! cutting a minority off, slow links, and combinations) while concurrent clients read, write,
//! compare-and-set, create and delete a few keys through random nodes. Every operation goes
//! into a history (`harness::history`). When the schedule ends, every fault is healed, the
//! cluster converges, every key is read once more, and the history is checked:
//! linearizability per key by stateright's checker, no acknowledged write lost, one revision
//! per value, and every node holding the same configs as the leader.
//!
//! Every request goes through the typed client (`scarab-client`) of the one node it was sent
//! to: one endpoint, one attempt, so that no failover or retry hides what that node did.
//! `perform` turns its errors into the outcomes the checker needs: a connection that could
//! not be made, or `no_leader`, certainly did not apply; an answer lost after sending, or any
//! other 5xx (`timeout`, `leader_unreachable`, and `not_ready` too), may have.
//!
//! Watchers follow `GET /v1/watch` through the faults (long polls through random nodes,
//! resuming from their last revision on any error). Their streams are checked too: strictly
//! increasing revisions (nothing twice, nothing out of order), the same stream for every
//! watcher, every acknowledged write and delete in it at its revision, no change that no
//! client asked for, and for every key exactly the revisions its replicated history holds.
//!
//! A migration run (`--migrations 3`, in the short profile too) also registers `store` v2 and
//! keeps storage migrations going back and forth between v1 and v2 through the faults, while
//! clients read at either version (`?schema_version=`). It leaves out compare-and-set (its
//! `If-Match` is a revision, which a migration changes) and the one-revision-per-value check
//! (a migration rewrites a value at a new revision), and adds its own: every migration ends
//! with no failure, no read fails to convert, and a final migration after the faults brings
//! every config to v2.
//!
//! This is a test binary of its own (`harness = false`), so it takes flags after `--`:
//!
//! ```text
//! cargo test -p scarab --test nemesis                        # short profile (CI)
//! cargo test -p scarab --test nemesis -- --seed 42           # replay a seed
//! cargo test -p scarab --test nemesis -- --long --duration 30m --nodes 5
//! cargo test -p scarab --test nemesis -- --nodes 3 --migrations none   # no migration run
//! cargo test -p scarab --test nemesis -- --nodes none --migrations 3,5  # only migration runs
//! cargo test -p scarab --test nemesis -- --peer-tls              # every node with peer mutual TLS
//! ```
//!
//! Every run prints its seed. A failing run saves its history, schedule, applied faults and
//! the node directories, and prints where.

mod harness;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use harness::cluster::{Cluster, ClusterOptions, FORM_TIMEOUT};
use harness::history::{self, History, Op, Outcome, Record, Ret};
use harness::nemesis::{self, Applied, Schedule};
use harness::proxy::NodeId;
use harness::{Api, STORE, STORE_V2, node_client};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use scarab_client::types::{
    ChangeKind, ConfigEntry, Consistency, ErrorCode, HistoryPage, Migration, MigrationStatus,
    PutConfig,
};
use scarab_client::{Client, Error, HistoryOptions, Read, ReadOptions, WatchOptions, WriteOptions};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Keys in use at a time; every `EPOCH` the clients move to a fresh set, which keeps each key's
/// history short enough for the checker's search (it is exponential in the worst case).
const KEYS: u64 = 16;
const EPOCH: Duration = Duration::from_secs(5);
/// A client gives up on a request after this long (its outcome is then unknown).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);
/// How long the checker may search one key's history.
const CHECK_BUDGET: Duration = Duration::from_secs(60);
/// Where the server's own timeouts sit: below the client's, so that most slow writes end
/// with the server's answer rather than the client's timeout.
const NODE_ARGS: &[&str] = &[
    "--write-timeout",
    "3s",
    "--read-timeout",
    "3s",
    // Snapshots and log purges happen during the run, so restarted nodes catch up from them.
    "--snapshot-threshold",
    "300",
    "--snapshot-log-ratio",
    "0",
    "--log-keep",
    "50",
];

#[derive(Clone, Debug)]
struct Options {
    seed: u64,
    nodes: Vec<u64>,
    /// Cluster sizes of the runs with storage migrations going on.
    migrations: Vec<u64>,
    duration: Duration,
    clients: usize,
    profile: &'static str,
    /// `--peer-tls`: every node with peer mutual TLS.
    peer_tls: bool,
}

enum Parsed {
    Run(Options),
    /// `--list`, or a filter that does not name this test, or `--ignored`.
    Skip(&'static str),
}

/// A comma-separated list of cluster sizes, or `none`.
fn sizes(list: &str) -> Result<Vec<u64>> {
    if list == "none" {
        return Ok(vec![]);
    }
    list.split(',')
        .map(|n| n.trim().parse::<u64>().context("cluster sizes, or none"))
        .collect()
}

fn parse_args() -> Result<Parsed> {
    let mut long = false;
    let mut seed = None;
    let mut nodes = None;
    let mut duration = None;
    let mut clients = None;
    let mut migrations = None;
    let mut peer_tls = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match a.as_str() {
            "--long" => long = true,
            "--peer-tls" => peer_tls = true,
            "--seed" => seed = Some(value("--seed")?.parse().context("--seed")?),
            "--duration" => {
                duration =
                    Some(humantime::parse_duration(&value("--duration")?).context("--duration")?)
            }
            "--nodes" => nodes = Some(sizes(&value("--nodes")?).context("--nodes")?),
            "--clients" => clients = Some(value("--clients")?.parse().context("--clients")?),
            "--migrations" => {
                migrations = Some(sizes(&value("--migrations")?).context("--migrations")?)
            }
            "--list" => {
                println!("nemesis: test");
                return Ok(Parsed::Skip("listed"));
            }
            "--ignored" => return Ok(Parsed::Skip("only ignored tests were asked for")),
            // libtest's flags (cargo test -- --nocapture ...) mean nothing here.
            flag if flag.starts_with('-') => eprintln!("nemesis: ignoring {flag}"),
            filter if !"nemesis".contains(filter) => {
                return Ok(Parsed::Skip("the filter does not name this test"));
            }
            _ => {}
        }
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let nodes = nodes.unwrap_or_else(|| vec![3, 5]);
    let migrations = migrations.unwrap_or_else(|| vec![3]);
    if let Some(bad) = nodes
        .iter()
        .chain(&migrations)
        .find(|n| !(1..=9).contains(*n))
    {
        bail!("--nodes: a cluster of {bad} nodes is not supported (1 to 9)");
    }
    Ok(Parsed::Run(Options {
        seed,
        nodes,
        migrations,
        duration: duration.unwrap_or(if long {
            Duration::from_secs(600)
        } else {
            Duration::from_secs(40)
        }),
        clients: clients.unwrap_or(8),
        profile: if long { "long" } else { "short" },
        peer_tls,
    }))
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Skip(why)) => {
            eprintln!("nemesis: skipped ({why})");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("nemesis: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = checker_self_test() {
        eprintln!("nemesis: the checker does not catch a known anomaly: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    eprintln!(
        "nemesis: {} profile, seed {}, {:?} of faults per cluster, clusters of {:?} nodes and of \
         {:?} nodes with storage migrations, {} clients \
         (replay: cargo test -p scarab --test nemesis -- --seed {}{}{})",
        opts.profile,
        opts.seed,
        opts.duration,
        opts.nodes,
        opts.migrations,
        opts.clients,
        opts.seed,
        if opts.profile == "long" {
            format!(
                " --long --duration {}",
                humantime::format_duration(opts.duration)
            )
        } else {
            String::new()
        },
        if opts.peer_tls { " --peer-tls" } else { "" }
    );
    let mut failed = false;
    let mut reports = Vec::new();
    let runs = opts
        .nodes
        .iter()
        .map(|n| (*n, false))
        .chain(opts.migrations.iter().map(|n| (*n, true)));
    for (i, (n, migrating)) in runs.enumerate() {
        // The first run with the trust boundary on: every node with authentication (a root
        // token bootstrapped from a file the harness wrote) and TLS on both listeners, every
        // client with the token and the CA.
        let secured = i == 0;
        harness::auth::set_cluster_token(secured.then(harness::auth::new_token));
        match runtime.block_on(run_one(&opts, n, migrating, secured)) {
            Ok(report) => {
                failed |= !report.anomalies.is_empty();
                reports.push(report);
            }
            Err(e) => {
                eprintln!("nemesis: the {n}-node run could not complete: {e:#}");
                failed = true;
            }
        }
    }
    for r in &reports {
        eprintln!("{}", r.summary());
    }
    eprintln!(
        "nemesis: seed {} {}",
        opts.seed,
        if failed { "FAILED" } else { "passed" }
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

struct Report {
    nodes: u64,
    /// Run with authentication and TLS on (every node, every client).
    secured: bool,
    /// Storage migrations finished during the run (a migration run).
    migrations: Option<usize>,
    seed: u64,
    records: usize,
    tally: BTreeMap<String, BTreeMap<&'static str, u64>>,
    faults: BTreeMap<&'static str, u64>,
    skipped_faults: usize,
    verdict_ops: usize,
    keys: usize,
    check_time: Duration,
    run_time: Duration,
    /// Changes each watcher was given.
    watched: usize,
    anomalies: Vec<String>,
    saved: Option<PathBuf>,
}

impl Report {
    fn summary(&self) -> String {
        let mut s = format!(
            "nemesis summary: {} nodes{}{}, seed {}: {} operations recorded, {} checked on {} keys in \
             {:.1?} (run {:.0?}); faults applied {:?} (skipped {}); operations {:?}; {} changes \
             watched by each of {WATCHERS} watchers; {} anomalies",
            self.nodes,
            if self.secured {
                " with authentication and TLS (client API and peers)"
            } else {
                ""
            },
            match self.migrations {
                Some(n) => format!(" with {n} storage migrations"),
                None => String::new(),
            },
            self.seed,
            self.records,
            self.verdict_ops,
            self.keys,
            self.check_time,
            self.run_time,
            self.faults,
            self.skipped_faults,
            self.tally,
            self.watched,
            self.anomalies.len()
        );
        for a in &self.anomalies {
            s.push_str(&format!("\n  anomaly: {a}"));
        }
        if let Some(p) = &self.saved {
            s.push_str(&format!(
                "\n  history and schedule saved in {}",
                p.display()
            ));
        }
        s
    }
}

async fn run_one(opts: &Options, nodes: u64, migrating: bool, secured: bool) -> Result<Report> {
    let started = Instant::now();
    let schedule = Schedule::generate(opts.seed, nodes, opts.duration);
    let mut cluster_opts = ClusterOptions::new(nodes).args(NODE_ARGS);
    harness::tls::set_client_ca(None);
    if secured {
        // TLS on both listeners (the client API and peer mutual TLS), with authentication.
        cluster_opts = cluster_opts.tls()?;
    } else if opts.peer_tls {
        cluster_opts = cluster_opts.peer_tls()?;
    }
    let mut cluster = Cluster::start(cluster_opts).await?;
    let ids = cluster.ids();
    let leader = cluster.wait_leader(&ids, FORM_TIMEOUT).await?;
    let kinds: &[harness::Kind] = if migrating {
        &[STORE, STORE_V2]
    } else {
        &[STORE]
    };
    for kind in kinds {
        let reply = cluster.api(leader).register_kind(*kind).await?;
        if !reply.status.is_success() {
            bail!("registering {kind:?}: {reply}");
        }
    }
    cluster
        .wait_schemas(&ids, kinds.len() as u64, FORM_TIMEOUT)
        .await?;

    let start = Instant::now();
    let history = History::new(start);
    let stop = CancellationToken::new();
    let apis: Arc<Vec<(NodeId, Api)>> =
        Arc::new(ids.iter().map(|&id| (id, cluster.api(id))).collect());
    let mut clients = Vec::new();
    let ctx = ClientCtx {
        clients: opts.clients,
        seed: opts.seed,
        apis: apis.clone(),
        history: history.clone(),
        start,
        stop: stop.clone(),
        migrating,
    };
    for i in 0..opts.clients {
        clients.push(tokio::spawn(client(i, ctx.clone())));
    }
    let migrations = migrating.then(|| tokio::spawn(migrator(apis.clone(), stop.clone())));
    let (watch_until, until) = tokio::sync::watch::channel(None);
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|i| tokio::spawn(watcher(i, opts.seed, apis.clone(), until.clone())))
        .collect();
    let applied = nemesis::run(&mut cluster, &schedule, start, CancellationToken::new()).await;
    stop.cancel();
    for c in clients {
        c.await.context("a client task")?;
    }
    let migrations = match migrations {
        Some(m) => Some(m.await.context("the migration task")?),
        None => None,
    };
    let applied = applied?;

    // Every fault is healed: the cluster must converge, then tell one story.
    let mut anomalies = Vec::new();
    let converged = cluster.wait_converged(&ids, FORM_TIMEOUT).await;
    if let Err(e) = &converged {
        anomalies.push(format!("the healed cluster did not converge: {e:#}"));
    }
    let keys: BTreeSet<String> = history.records().iter().map(|r| r.key.clone()).collect();
    let mut migrations_done = None;
    if let Some(m) = &migrations {
        let leader = cluster.wait_leader(&ids, FORM_TIMEOUT).await?;
        let (done, found) = finish_migrations(&cluster.api(leader), m).await;
        migrations_done = Some(done);
        anomalies.extend(found);
    }
    if converged.is_ok() {
        anomalies.extend(final_reads(&cluster, &ids, &keys, &history).await?);
    }
    let records = history.records();
    let mut watched = 0;
    if converged.is_ok() {
        let leader = cluster.api(cluster.wait_leader(&ids, FORM_TIMEOUT).await?);
        let last = leader.status().await?.revision;
        watch_until.send_replace(Some(last));
        let mut streams = Vec::new();
        for (i, w) in watchers.into_iter().enumerate() {
            match tokio::time::timeout(FORM_TIMEOUT, w).await {
                Err(_) => anomalies.push(format!(
                    "watcher {i} did not reach revision {last} within {FORM_TIMEOUT:?}"
                )),
                Ok(joined) => match joined.context("a watcher task")? {
                    Ok(stream) => streams.push(stream),
                    Err(why) => anomalies.push(format!("watcher {i}: {why}")),
                },
            }
        }
        watched = streams.first().map_or(0, Vec::len);
        anomalies.extend(check_watches(&streams, &records, &leader, &keys).await?);
    }
    let verdict = history::check_with(&records, CHECK_BUDGET, !migrating);
    anomalies.extend(verdict.anomalies.iter().cloned());
    anomalies.extend(records.iter().filter_map(|r| match &r.outcome {
        Outcome::Fail { why } if why.contains("conversion_failed") => Some(format!(
            "a read of {} at another version failed to convert: {why}",
            r.key
        )),
        _ => None,
    }));

    let mut saved = None;
    if !anomalies.is_empty() {
        let dir = save_run(opts, nodes, &schedule, &applied, &records, &anomalies)?;
        eprintln!("nemesis: node directories kept:\n{}", cluster.log_tails(0));
        saved = Some(dir);
    } else {
        cluster.pass();
    }
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    for a in applied.iter().filter(|a| a.skipped.is_none()) {
        *faults.entry(a.fault.name()).or_default() += 1;
    }
    Ok(Report {
        nodes,
        secured,
        migrations: migrations_done,
        seed: opts.seed,
        records: records.len(),
        tally: history::tally(&records),
        faults,
        skipped_faults: applied.iter().filter(|a| a.skipped.is_some()).count(),
        verdict_ops: verdict.ops_checked,
        keys: verdict.keys_checked,
        check_time: verdict.check_time,
        run_time: started.elapsed(),
        watched,
        anomalies,
        saved,
    })
}

/// A process id that no client uses: the final reads.
const FINAL_PROCESS: u64 = u64::MAX;

/// Reads every key through the leader (recorded in the history, after everything else), then
/// from every node's own state: each must match the leader's value and revision, and every
/// node must list the same configs.
async fn final_reads(
    cluster: &Cluster,
    ids: &[NodeId],
    keys: &BTreeSet<String>,
    history: &History,
) -> Result<Vec<String>> {
    let mut anomalies = Vec::new();
    let leader = cluster.wait_leader(ids, FORM_TIMEOUT).await?;
    let http = http_client()?;
    let client = |id: NodeId| node_client(&http, cluster.api(id).base_url(), CLIENT_TIMEOUT);
    let through_leader = client(leader);
    let mut expected: BTreeMap<String, Option<(u64, u64)>> = BTreeMap::new();
    for key in keys {
        let inv = history.invoke();
        let outcome = perform(&through_leader, key, Op::Read, None, None).await;
        let record = history.complete(
            inv,
            FINAL_PROCESS,
            usize::MAX,
            leader,
            key,
            Op::Read,
            outcome,
        );
        match record.outcome {
            Outcome::Ok {
                ret: Ret::Read { value },
                revision,
            } => {
                expected.insert(key.clone(), value.zip(revision));
            }
            other => bail!("the final read of {key} through the leader failed: {other:?}"),
        }
    }
    for &id in ids {
        let node = cluster.api(id);
        let local = client(id);
        for (key, want) in &expected {
            let got = match local.get_with(key, &ReadOptions::new().stale()).await {
                Ok(entry) => value_of(&entry.value).zip(Some(entry.meta.revision)),
                Err(e) if e.api().is_some_and(|e| e.status == 404) => None,
                Err(e) => bail!("stale read of {key} on node {id}: {e}"),
            };
            if got != *want {
                anomalies.push(format!(
                    "node {id} holds {got:?} (value, revision) for {key}; the leader {leader} \
                     holds {want:?}"
                ));
            }
        }
        let listed: BTreeMap<String, u64> = node
            .list_all(Some("nemesis/"), Some(1000))
            .await?
            .into_iter()
            .map(|i| (i.meta.key, i.meta.revision))
            .collect();
        let want: BTreeMap<String, u64> = expected
            .iter()
            .filter_map(|(k, v)| v.map(|(_, rev)| (k.clone(), rev)))
            .collect();
        if listed != want {
            anomalies.push(format!(
                "node {id} lists {} configs under nemesis/, the leader's reads found {}: {:?} vs {:?}",
                listed.len(),
                want.len(),
                listed,
                want
            ));
        }
    }
    Ok(anomalies)
}

fn http_client() -> Result<reqwest::Client> {
    // No connection reuse: a request either fails to connect (it never left: a definite
    // failure) or was sent on a fresh connection (its failure is an unknown outcome).
    Ok(harness::client_builder()
        .timeout(CLIENT_TIMEOUT)
        .connect_timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(0)
        .build()?)
}

/// A typed client of each node alone (one attempt per call, no failover: the history records
/// the node each operation went to), over `http`, each attempt within `timeout`.
fn node_clients(
    apis: &[(NodeId, Api)],
    http: &reqwest::Client,
    timeout: Duration,
) -> Vec<(NodeId, Client)> {
    apis.iter()
        .map(|(id, api)| (*id, node_client(http, api.base_url(), timeout)))
        .collect()
}

/// What every client of a run shares.
#[derive(Clone)]
struct ClientCtx {
    clients: usize,
    seed: u64,
    apis: Arc<Vec<(NodeId, Api)>>,
    history: History,
    start: Instant,
    stop: CancellationToken,
    /// Storage migrations run meanwhile: no compare-and-set, reads at either version.
    migrating: bool,
}

/// One client: a closed loop of random operations through random nodes until `stop`.
async fn client(i: usize, ctx: ClientCtx) {
    let ClientCtx {
        clients,
        seed,
        apis,
        history,
        start,
        stop,
        migrating,
    } = ctx;
    let http = http_client().expect("an HTTP client");
    let nodes = node_clients(&apis, &http, CLIENT_TIMEOUT);
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(7919 * (i as u64 + 1)));
    let mut process = i as u64;
    let mut counter = 0u64;
    // What this client last saw of each key: (value, revision).
    let mut seen: HashMap<String, (u64, u64)> = HashMap::new();
    while !stop.is_cancelled() {
        let epoch = start.elapsed().as_secs() / EPOCH.as_secs();
        let key = format!("nemesis/e{epoch}/k{}", rng.random_range(0..KEYS));
        let (node, client) = &nodes[rng.random_range(0..nodes.len())];
        let roll = rng.random_range(0..100);
        let think = Duration::from_millis(rng.random_range(0..5));
        counter += 1;
        // Unique across clients and runs of this process.
        let value = (i as u64 + 1) * 1_000_000_000 + counter;
        let last = seen.get(&key).copied();
        let op = match roll {
            0..40 => Op::Read,
            40..65 => Op::Write { value },
            // A migration changes revisions: no compare-and-set on them then.
            65..85 if migrating => Op::Write { value },
            65..85 => match last {
                Some((expect, _)) => Op::Cas { expect, value },
                None => Op::Create { value },
            },
            85..92 => Op::Create { value },
            _ => Op::Delete,
        };
        // With migrations going on, reads ask for either version (or the stored one).
        let read_at = if migrating {
            [None, Some(1), Some(2)][rng.random_range(0..3)]
        } else {
            None
        };
        let inv = history.invoke();
        let outcome = perform(client, &key, op, last.map(|l| l.1), read_at).await;
        let unknown = matches!(outcome, Outcome::Info { .. });
        let failed = matches!(outcome, Outcome::Fail { .. });
        let record = history.complete(inv, process, i, *node, &key, op, outcome);
        if let Outcome::Ok { ret, revision } = record.outcome {
            match (ret, op.written(), revision) {
                (Ret::Read { value: Some(v) }, _, Some(rev)) => {
                    seen.insert(key, (v, rev));
                }
                (Ret::Read { value: None }, _, _) => {
                    seen.remove(&key);
                }
                (Ret::Done, Some(v), Some(rev)) => {
                    seen.insert(key, (v, rev));
                }
                (Ret::Done, None, _) => {
                    seen.remove(&key);
                }
                _ => {}
            }
        }
        if unknown {
            // A process never has two operations open: continue as a new one.
            process += clients as u64;
        }
        if failed {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(think).await;
    }
}

/// Watchers following `nemesis/` through the faults.
const WATCHERS: usize = 2;

/// One change as a watcher saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Watched {
    revision: u64,
    key: String,
    deleted: bool,
    /// The value a client wrote (`None` for a delete).
    value: Option<u64>,
}

/// Follows every change under `nemesis/` from the first revision on with long polls through
/// random nodes, moving to another node on any error and resuming from the revision after
/// the last one it was given, until it has everything up to the revision `until` announces
/// (once the healed cluster has converged). A watch that falls behind retention is an error.
async fn watcher(
    i: usize,
    seed: u64,
    apis: Arc<Vec<(NodeId, Api)>>,
    until: tokio::sync::watch::Receiver<Option<u64>>,
) -> Result<Vec<Watched>, String> {
    let http = harness::client_builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .map_err(|e| e.to_string())?;
    // A long poll of 1 s, 5 s at most in all.
    let wait = Duration::from_secs(1);
    let nodes = node_clients(&apis, &http, Duration::from_secs(5) - wait);
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(104_729 * (i as u64 + 1)));
    let mut stream = Vec::new();
    let mut next = 1u64;
    let mut node = rng.random_range(0..nodes.len());
    loop {
        if until.borrow().is_some_and(|last| next > last) {
            return Ok(stream);
        }
        let opts = WatchOptions::prefix("nemesis/").from_revision(next);
        match nodes[node].1.watch_poll(&opts, wait, None).await {
            Ok(poll) => {
                for change in &poll.changes {
                    for e in &change.events {
                        stream.push(Watched {
                            revision: e.meta.revision,
                            key: e.meta.key.clone(),
                            deleted: e.kind == ChangeKind::Delete,
                            value: value_of(&e.value),
                        });
                    }
                }
                next = poll.next_from_revision;
            }
            Err(Error::Api(e)) if e.status == 410 => {
                return Err(format!("the watch from {next} fell behind retention: {e}"));
            }
            // Faults: no leader, a paused or killed node, a cut link. Elsewhere, then.
            Err(_) => {
                node = rng.random_range(0..nodes.len());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Checks the watchers' streams against each other, the clients' history and each key's
/// replicated history (see the module doc).
async fn check_watches(
    streams: &[Vec<Watched>],
    records: &[Record],
    leader: &Api,
    keys: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let mut anomalies = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        if let Some(w) = s.windows(2).find(|w| w[0].revision >= w[1].revision) {
            anomalies.push(format!(
                "watcher {i} saw revision {} after {}: {:?} then {:?}",
                w[1].revision, w[0].revision, w[0], w[1]
            ));
        }
        if let Some(other) = streams.get(i + 1)
            && s != other
        {
            let at = s.iter().zip(other).position(|(a, b)| a != b);
            anomalies.push(format!(
                "watchers {i} and {} saw different streams ({} and {} changes; first difference at {at:?})",
                i + 1,
                s.len(),
                other.len()
            ));
        }
    }
    let Some(stream) = streams.first() else {
        return Ok(anomalies);
    };
    let by_revision: BTreeMap<u64, &Watched> = stream.iter().map(|w| (w.revision, w)).collect();
    // Acknowledged changes are in the stream at their revision.
    for r in records {
        let Outcome::Ok {
            ret: Ret::Done,
            revision: Some(rev),
        } = r.outcome
        else {
            continue;
        };
        let want = Watched {
            revision: rev,
            key: r.key.clone(),
            deleted: r.op.written().is_none(),
            value: r.op.written(),
        };
        if by_revision.get(&rev) != Some(&&want) {
            anomalies.push(format!(
                "acknowledged {:?} of {} at revision {rev} was watched as {:?}",
                r.op,
                r.key,
                by_revision.get(&rev)
            ));
        }
    }
    // Nothing a client did not ask for (a migration rewrites a value a client wrote).
    let attempted: BTreeSet<(&str, u64)> = records
        .iter()
        .filter_map(|r| Some((r.key.as_str(), r.op.written()?)))
        .collect();
    for w in stream {
        if let Some(v) = w.value
            && !attempted.contains(&(w.key.as_str(), v))
        {
            anomalies.push(format!("watched a change no client asked for: {w:?}"));
        }
    }
    // Each key's revisions are exactly those of its replicated history.
    for key in keys {
        let page: HistoryPage = match leader
            .typed()
            .history(key, &HistoryOptions::new().limit(1000))
            .await
        {
            Ok(page) => page.into_inner(),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e).with_context(|| format!("the history of {key}")),
        };
        let kept: BTreeSet<u64> = page.items.iter().map(|i| i.meta.revision).collect();
        let floor = page.compacted_through.unwrap_or(0);
        let watched: BTreeSet<u64> = stream
            .iter()
            .filter(|w| w.key == *key && w.revision > floor)
            .map(|w| w.revision)
            .collect();
        if watched != kept {
            anomalies.push(format!(
                "{key}: watched revisions {watched:?}, its history holds {kept:?}"
            ));
        }
    }
    Ok(anomalies)
}

/// What the migration task saw: the migrations it followed to their end, and the one still
/// running when the run stopped.
#[derive(Default)]
struct Migrations {
    finished: Vec<Migration>,
    pending: Option<u64>,
}

/// Keeps storage migrations of `store` going, to v2 then back to v1 and so on, through random
/// nodes, until `stop`. Errors (5xx, timeouts, refused connections) are retried: the faults
/// cause them; what must hold is checked at the end (`finish_migrations`).
async fn migrator(apis: Arc<Vec<(NodeId, Api)>>, stop: CancellationToken) -> Migrations {
    let mut seen = Migrations::default();
    let mut target = 2;
    let mut turn = 0usize;
    let mut next_node = || {
        turn += 1;
        apis[turn % apis.len()].1.typed().clone()
    };
    while !stop.is_cancelled() {
        let node = next_node();
        let id = match node.start_migration("store", target).await {
            Ok(started) => Some(started.id),
            // Started by an earlier attempt whose answer was lost: follow the running one.
            Err(e) if e.code() == Some(&ErrorCode::MigrationRunning) => {
                let list = node.migrations("store").await;
                list.ok().and_then(|l| {
                    l.migrations
                        .iter()
                        .find(|m| m.status == MigrationStatus::Running)
                        .map(|m| m.id)
                })
            }
            Err(_) => None,
        };
        let Some(id) = id else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        seen.pending = Some(id);
        while !stop.is_cancelled() {
            let node = next_node().with_consistency(Consistency::Stale);
            if let Ok(m) = node.migration("store", id).await
                && m.status == MigrationStatus::Done
            {
                seen.finished.push(m.into_inner());
                seen.pending = None;
                target = if target == 2 { 1 } else { 2 };
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    seen
}

/// After the faults: the pending migration must finish, every finished one must have no
/// failure, and one more migration must bring every config to v2. Returns how many finished,
/// and the anomalies.
async fn finish_migrations(leader: &Api, seen: &Migrations) -> (usize, Vec<String>) {
    let mut anomalies = Vec::new();
    let mut finished: Vec<Migration> = seen.finished.clone();
    let client = leader.typed();
    let wait_done = |id: u64| async move {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            match client.migration("store", id).await {
                Ok(m) if m.status == MigrationStatus::Done => return Ok(m.into_inner()),
                Ok(m) if Instant::now() >= deadline => {
                    return Err(format!(
                        "migration {id} not done after the faults: {:?}",
                        m.body
                    ));
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("migration {id}: {e:#}"));
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    };
    if let Some(id) = seen.pending {
        match wait_done(id).await {
            Ok(m) => finished.push(m),
            Err(e) => anomalies.push(e),
        }
    }
    // Whatever else is running (started by a request whose answer was lost) ends too.
    if let Ok(list) = client.migrations("store").await {
        for m in &list.migrations {
            if m.status == MigrationStatus::Running
                && let Err(e) = wait_done(m.id).await
            {
                anomalies.push(e);
            }
        }
    }
    match client.start_migration("store", 2).await {
        Ok(started) => match wait_done(started.id).await {
            Ok(m) => finished.push(m),
            Err(e) => anomalies.push(e),
        },
        Err(e) => anomalies.push(format!("the final migration did not start: {e}")),
    }
    for m in &finished {
        if m.failed_count != 0 {
            anomalies.push(format!("migration {} had failures: {m:?}", m.id));
        }
    }
    match leader.list_all(Some("nemesis/"), None).await {
        Ok(items) => {
            for item in items.iter().filter(|i| i.meta.schema_version != 2) {
                anomalies.push(format!(
                    "{} is at version {} after the final migration to v2",
                    item.meta.key, item.meta.schema_version
                ));
            }
        }
        Err(e) => anomalies.push(format!("listing after the final migration: {e:#}")),
    }
    (finished.len(), anomalies)
}

/// The `data_dir` of a `store` config ends with the value: `/var/lib/scarab/nemesis/v<value>`.
fn value_of(value: &Value) -> Option<u64> {
    value["data_dir"]
        .as_str()?
        .rsplit_once("/v")?
        .1
        .parse()
        .ok()
}

fn document(key: &str, value: u64) -> PutConfig {
    let store_id = key.rsplit('/').next().unwrap_or(key);
    PutConfig::new(
        "store",
        1,
        json!({
            "store_id": store_id,
            "data_dir": format!("/var/lib/scarab/nemesis/v{value}"),
            "timeout_ms": 5000,
            "auto_start": true,
            "priority": "normal",
            "resource_limits": {"max_memory_mb": 512, "max_connections": 2000}
        }),
    )
}

/// Sends `op` through `client` (one node, one attempt) and classifies the answer (see
/// `harness::history` for ok, fail and info).
async fn perform(
    client: &Client,
    key: &str,
    op: Op,
    last_revision: Option<u64>,
    read_at: Option<u32>,
) -> Outcome {
    let written = match op {
        Op::Read => {
            let opts = ReadOptions {
                schema_version: read_at,
                ..ReadOptions::new()
            };
            return read_outcome(client.get_with(key, &opts).await);
        }
        Op::Delete => client.delete(key).await.map(|d| d.revision),
        Op::Write { value } => client
            .put(key, &document(key, value))
            .await
            .map(|w| w.revision),
        Op::Cas { value, .. } => {
            let opts = WriteOptions::new().if_match(last_revision.expect("a CAS has a revision"));
            client
                .put_with(key, &document(key, value), &opts)
                .await
                .map(|w| w.revision)
        }
        Op::Create { value } => {
            let opts = WriteOptions::new().if_none_match_any();
            client
                .put_with(key, &document(key, value), &opts)
                .await
                .map(|w| w.revision)
        }
    };
    match written {
        Ok(revision) => Outcome::Ok {
            ret: Ret::Done,
            revision: Some(revision),
        },
        Err(e) => change_failed(key, op, e),
    }
}

/// A read: its value, absent (404), or a failure, whatever went wrong (reads change nothing).
fn read_outcome(read: Result<Read<ConfigEntry>, Error>) -> Outcome {
    match read {
        Ok(entry) => match value_of(&entry.value) {
            Some(v) => Outcome::Ok {
                ret: Ret::Read { value: Some(v) },
                revision: Some(entry.meta.revision),
            },
            None => Outcome::Fail {
                why: format!("a value without a readable data_dir: {:?}", entry.value),
            },
        },
        Err(Error::Api(e)) if e.status == 404 => Outcome::Ok {
            ret: Ret::Read { value: None },
            revision: None,
        },
        Err(
            e @ Error::Transport {
                maybe_sent: false, ..
            },
        ) => Outcome::Fail {
            why: format!("not connected: {e}"),
        },
        Err(e) => Outcome::Fail { why: e.to_string() },
    }
}

/// A change that failed: refused by its condition, certainly not applied, or unknown.
fn change_failed(key: &str, op: Op, e: Error) -> Outcome {
    match &e {
        // Nothing left: the connection could not be made.
        Error::Transport {
            maybe_sent: false, ..
        } => Outcome::Fail {
            why: format!("not connected: {e}"),
        },
        // It may have reached the server: a timeout, a reset after sending.
        Error::Transport { .. } => Outcome::Info {
            why: format!("{e:?}").chars().take(300).collect(),
        },
        Error::Api(api) => match (op, api.status) {
            (Op::Cas { .. } | Op::Create { .. }, 412) | (Op::Delete, 404) => Outcome::Ok {
                ret: Ret::Refused,
                revision: None,
            },
            // The server's contract: `no_leader` means no leader took the write (every attempt
            // was refused as "not the leader" or never connected), so it certainly did not
            // happen. Every other 5xx (`timeout`, `leader_unreachable`, but also `not_ready`,
            // which a proposal that failed on the leader answers) may have been applied.
            (_, 503) if api.code == ErrorCode::NoLeader => Outcome::Fail {
                why: format!("HTTP 503 {}", api.code),
            },
            (_, s) if (500..600).contains(&s) => Outcome::Info {
                why: format!("HTTP {s} {}", api.code),
            },
            // Any other 4xx is a bug of this test or of the server: it did not happen, but say so.
            (_, s) => {
                eprintln!("nemesis: unexpected HTTP {s} for {op:?} on {key}: {api}");
                Outcome::Fail {
                    why: format!("HTTP {s} {api}"),
                }
            }
        },
        // An answer that is not the API's (a body that does not decode): what happened is
        // unknown, and the wire types and the server disagree: say so.
        Error::Decode { .. } => {
            eprintln!("nemesis: undecodable answer for {op:?} on {key}: {e}");
            Outcome::Info {
                why: format!("{e}").chars().take(300).collect(),
            }
        }
        // Refused by the client before sending: nothing happened, and it is a bug of this test.
        _ => {
            eprintln!("nemesis: {op:?} on {key} not sent: {e}");
            Outcome::Fail { why: e.to_string() }
        }
    }
}

/// Saves the history, the schedule, the applied faults and the anomalies of a failed run.
fn save_run(
    opts: &Options,
    nodes: u64,
    schedule: &Schedule,
    applied: &[Applied],
    records: &[Record],
    anomalies: &[String],
) -> Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("nemesis")
        .join(format!("seed-{}-{nodes}n-{stamp}", opts.seed));
    std::fs::create_dir_all(&dir)?;
    history::save(records, &dir.join("history.jsonl"))?;
    std::fs::write(
        dir.join("schedule.json"),
        serde_json::to_string_pretty(schedule)?,
    )?;
    std::fs::write(
        dir.join("applied.json"),
        serde_json::to_string_pretty(applied)?,
    )?;
    std::fs::write(dir.join("anomalies.txt"), anomalies.join("\n") + "\n")?;
    Ok(dir)
}

/// The checker must reject histories known to be wrong, or its passes mean nothing.
fn checker_self_test() -> Result<()> {
    let rec = |process: u64, op: Op, s: (u64, u64), outcome: Outcome| Record {
        process,
        client: process as usize,
        node: 1,
        key: "k".into(),
        op,
        invoke_seq: s.0,
        complete_seq: s.1,
        invoke_ms: 0.0,
        complete_ms: 0.0,
        outcome,
    };
    let ok = |ret: Ret, revision: Option<u64>| Outcome::Ok { ret, revision };
    let done = |rev: u64| ok(Ret::Done, Some(rev));
    let read = |v: Option<u64>, rev: Option<u64>| ok(Ret::Read { value: v }, rev);
    // A stale read: 2 was acknowledged before the read of 1 began.
    let stale = vec![
        rec(0, Op::Write { value: 1 }, (0, 1), done(10)),
        rec(0, Op::Write { value: 2 }, (2, 3), done(11)),
        rec(1, Op::Read, (4, 5), read(Some(1), Some(10))),
        rec(FINAL_PROCESS, Op::Read, (6, 7), read(Some(2), Some(11))),
    ];
    let v = history::check(&stale, Duration::from_secs(10));
    if !v.anomalies.iter().any(|a| a.contains("not linearizable")) {
        bail!("a stale read passed: {:?}", v.anomalies);
    }
    // A lost write: acknowledged, and gone at the end.
    let lost = vec![
        rec(0, Op::Write { value: 1 }, (0, 1), done(10)),
        rec(0, Op::Write { value: 2 }, (2, 3), done(11)),
        rec(FINAL_PROCESS, Op::Read, (6, 7), read(Some(1), Some(10))),
    ];
    let v = history::check(&lost, Duration::from_secs(10));
    if !v.anomalies.iter().any(|a| a.contains("is lost")) {
        bail!("a lost write passed: {:?}", v.anomalies);
    }
    // An unknown write may or may not have happened: both are fine.
    for fin in [Some(1), Some(2)] {
        let maybe = vec![
            rec(0, Op::Write { value: 1 }, (0, 1), done(10)),
            rec(
                0,
                Op::Write { value: 2 },
                (2, 3),
                Outcome::Info {
                    why: "timeout".into(),
                },
            ),
            rec(
                FINAL_PROCESS,
                Op::Read,
                (6, 7),
                read(fin, Some(10 + fin.unwrap_or(0) - 1)),
            ),
        ];
        let v = history::check(&maybe, Duration::from_secs(10));
        if !v.anomalies.is_empty() {
            bail!(
                "an unknown write was held against the history: {:?}",
                v.anomalies
            );
        }
    }
    // A CAS that succeeded against a value that was not there.
    let bad_cas = vec![
        rec(0, Op::Write { value: 1 }, (0, 1), done(10)),
        rec(0, Op::Write { value: 2 }, (2, 3), done(11)),
        rec(
            1,
            Op::Cas {
                expect: 1,
                value: 3,
            },
            (4, 5),
            done(12),
        ),
        rec(FINAL_PROCESS, Op::Read, (6, 7), read(Some(3), Some(12))),
    ];
    let v = history::check(&bad_cas, Duration::from_secs(10));
    if !v.anomalies.iter().any(|a| a.contains("not linearizable")) {
        bail!("a CAS on a stale value passed: {:?}", v.anomalies);
    }
    // Two revisions for one value.
    let two_revs = vec![
        rec(0, Op::Write { value: 1 }, (0, 1), done(10)),
        rec(FINAL_PROCESS, Op::Read, (6, 7), read(Some(1), Some(12))),
    ];
    let v = history::check(&two_revs, Duration::from_secs(10));
    if !v.anomalies.iter().any(|a| a.contains("revision")) {
        bail!("a value seen at two revisions passed: {:?}", v.anomalies);
    }
    Ok(())
}
