//! Watch (`GET /v1/watch`, Server-Sent Events and long poll) on real `scarab serve` processes
//! and clusters: every change under a prefix exactly once, in revision order, from any node,
//! across reconnects and a leader's `kill -9`.

mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use futures::StreamExt;
use scarab_client::WatchOptions;
use scarab_client::types::{ChangeBatch, ChangeKind, PutConfig};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use harness::cluster::{Cluster, ClusterOptions};
use harness::{Api, Node, NodeOptions, STORE, STORE_V2, assert_error, assert_status, wait_until};

const SETTLE: Duration = Duration::from_secs(30);

async fn note_node(args: &[&str]) -> Result<Node> {
    harness::start_note_node(args).await
}

/// A 3-node cluster with `note` v1 registered on every node: the cluster, its leader and the
/// first revision after the registration.
async fn note_cluster() -> Result<(Cluster, u64, u64)> {
    let cluster = Cluster::start(ClusterOptions::new(3)).await?;
    let leader = cluster.wait_leader(&cluster.ids(), SETTLE).await?;
    let reply = cluster
        .api(leader)
        .register_schema("note", 1, json!({"type": "object"}), None)
        .await?;
    assert_status(&reply, 201);
    cluster.wait_schemas(&cluster.ids(), 1, SETTLE).await?;
    let start = cluster.status(leader).await?.revision + 1;
    Ok((cluster, leader, start))
}

async fn put(api: &Api, key: &str, value: Value) -> Result<u64> {
    let written = api
        .typed()
        .put(key, &PutConfig::new("note", 1, value))
        .await?;
    Ok(written.revision)
}

/// One long poll of 2 s (10 s at most in all) through that node: (changes,
/// next_from_revision).
async fn poll(api: &Api, opts: &WatchOptions) -> Result<(Vec<ChangeBatch>, u64)> {
    let wait = Duration::from_secs(2);
    let poll = api
        .typed_within(Duration::from_secs(10) - wait)
        .watch_poll(opts, wait, None)
        .await?
        .into_inner();
    Ok((poll.changes, poll.next_from_revision))
}

/// Changes under `prefix` from revision `from` on.
fn from(prefix: &str, from: u64) -> WatchOptions {
    WatchOptions::prefix(prefix).from_revision(from)
}

/// (revision, key, kind, value) of every event of `changes`.
fn events(changes: &[ChangeBatch]) -> Vec<(u64, String, ChangeKind, Value)> {
    changes
        .iter()
        .flat_map(|c| &c.events)
        .map(|e| (e.meta.revision, e.meta.key.clone(), e.kind, e.value.clone()))
        .collect()
}

/// A Server-Sent Events reader over a streaming response.
struct Sse {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

#[derive(Debug)]
struct SseEvent {
    event: String,
    id: Option<u64>,
    data: Value,
}

impl Sse {
    async fn open(api: &Api, query: &str, last_event_id: Option<u64>) -> Result<Sse> {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let mut req = client.get(api.url(&format!("/v1/watch?{query}")));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await?;
        ensure!(
            resp.status() == 200,
            "watch answered {}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
        Ok(Sse {
            body: resp.bytes_stream().boxed(),
            buf: String::new(),
        })
    }

    async fn next(&mut self, timeout: Duration) -> Result<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        ev.id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                ev.data = serde_json::from_str(&data).context("event data")?;
                return Ok(ev);
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => bail!("no event within {timeout:?}"),
                Ok(None) => bail!("the stream ended"),
                Ok(Some(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk?)),
            }
        }
    }

    /// The next `change` event (skipping progress events).
    async fn next_change(&mut self) -> Result<SseEvent> {
        loop {
            let ev = self.next(Duration::from_secs(10)).await?;
            if ev.event == "change" {
                return Ok(ev);
            }
        }
    }
}

#[tokio::test]
async fn a_long_poll_delivers_every_change_under_the_prefix_once_in_revision_order() -> Result<()> {
    let node = note_node(&[]).await?;
    let api = node.api();
    let from_rev = put(api, "w/a", json!({"n": 1})).await?;
    put(api, "other/x", json!({"n": 1})).await?;
    put(api, "w/b", json!({"n": 2})).await?;
    put(api, "w/a", json!({"n": 3})).await?;
    assert_status(
        &node
            .delete_config("w/b", &harness::WriteOpts::new())
            .await?,
        200,
    );
    let (changes, next) = poll(api, &from("w/", from_rev)).await?;
    let got = events(&changes);
    let keys: Vec<_> = got.iter().map(|(_, k, t, _)| (*t, k.as_str())).collect();
    assert_eq!(
        keys,
        [
            (ChangeKind::Put, "w/a"),
            (ChangeKind::Put, "w/b"),
            (ChangeKind::Put, "w/a"),
            (ChangeKind::Delete, "w/b")
        ]
    );
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{got:?}");
    assert_eq!(got[2].3, json!({"n": 3}));
    assert_eq!(got[3].3, Value::Null);
    // Nothing more: the next poll waits, then answers empty with the same cursor.
    let (more, again) = poll(api, &from("w/", next)).await?;
    assert!(more.is_empty(), "{more:?}");
    assert_eq!(again, next);
    Ok(())
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_a_change_arrives() -> Result<()> {
    let node = note_node(&[]).await?;
    let client = node.typed().clone();
    let first = node.status().await?.revision + 1;
    // Asks to wait 5 minutes but gives up after 60 s: only an early answer passes.
    let waiting = tokio::spawn(async move {
        let opts = from("w/", first);
        let poll = client.watch_poll(&opts, Duration::from_secs(300), None);
        tokio::time::timeout(Duration::from_secs(60), poll).await
    });
    let rev = put(node.api(), "w/late", json!({"n": 1})).await?;
    let poll = waiting.await?.context("no answer within 60 s")??;
    assert_eq!(events(&poll.changes)[0].0, rev);
    Ok(())
}

#[tokio::test]
async fn an_sse_watch_streams_changes_and_resumes_from_last_event_id() -> Result<()> {
    let node = note_node(&[]).await?;
    let api = node.api();
    let first = put(api, "s/0", json!({"n": 0})).await?;
    let mut sse = Sse::open(api, &format!("prefix=s/&from_revision={first}"), None).await?;
    let mut seen = vec![sse.next_change().await?];
    for n in 1..3 {
        put(api, &format!("s/{n}"), json!({ "n": n })).await?;
        seen.push(sse.next_change().await?);
    }
    let last = seen.last().and_then(|e| e.id).context("id")?;
    drop(sse);
    // Written while nobody watches.
    let mut written = Vec::new();
    for n in 3..6 {
        written.push(put(api, &format!("s/{n}"), json!({ "n": n })).await?);
    }
    let mut resumed = Sse::open(api, "prefix=s/", Some(last)).await?;
    for rev in written {
        let ev = resumed.next_change().await?;
        assert_eq!(ev.id, Some(rev), "{ev:?}");
        assert_eq!(ev.data["revision"], rev);
        assert_eq!(ev.data["events"][0]["type"], "put");
    }
    let ids: Vec<_> = seen.iter().filter_map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    Ok(())
}

#[tokio::test]
async fn progress_events_carry_the_revision_while_nothing_under_the_prefix_changes() -> Result<()> {
    let node = note_node(&[]).await?;
    let mut sse = Sse::open(node.api(), "prefix=quiet/&progress=300ms", None).await?;
    let elsewhere = put(node.api(), "loud/a", json!({"n": 1})).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ev = sse.next(Duration::from_secs(5)).await?;
        assert_eq!(ev.event, "progress", "{ev:?}");
        let rev = ev.data["revision"].as_u64().context("revision")?;
        assert_eq!(ev.id, Some(rev));
        if rev >= elsewhere {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "progress never reached {elsewhere}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_watch_from_compacted_history_is_refused_with_gone() -> Result<()> {
    let node = note_node(&[]).await?;
    let api = node.api();
    let set = api
        .client()
        .put(api.url("/v1/settings/history"))
        .json(&json!({"keep": 2}));
    assert_status(&api.send(set).await?, 200);
    let first = put(api, "c/a", json!({"n": 1})).await?;
    for n in 2..5 {
        put(api, "c/a", json!({ "n": n })).await?;
    }
    let poll = api
        .get(&format!(
            "/v1/watch?prefix=c/&from_revision={first}&wait=1s"
        ))
        .await?;
    assert_error(&poll, 410, "revision_compacted");
    let sse = api
        .get(&format!("/v1/watch?prefix=c/&from_revision={first}"))
        .await?;
    assert_error(&sse, 410, "revision_compacted");
    // Another prefix from the same revision is complete, so it is served.
    let other = api
        .get(&format!(
            "/v1/watch?prefix=d/&from_revision={first}&wait=1s"
        ))
        .await?;
    assert_status(&other, 200);
    Ok(())
}

/// The revision index keeps a window of revisions (`watch_window`): a watch resumes within
/// it, and is refused with 410 beyond it, while every key keeps its history records.
#[tokio::test]
async fn a_watch_resumes_within_the_watch_window_and_is_gone_beyond_it() -> Result<()> {
    let node = note_node(&[]).await?;
    let api = node.api();
    // The window is at least one revision: 0 is refused, 1 is the limit.
    let zero = api
        .client()
        .put(api.url("/v1/settings/history"))
        .json(&json!({"keep": 1000, "watch_window": 0}));
    assert_error(&api.send(zero).await?, 400, "malformed_request");
    let one = api
        .client()
        .put(api.url("/v1/settings/history"))
        .json(&json!({"keep": 1000, "watch_window": 1}));
    assert_status(&api.send(one).await?, 200);
    let set = api
        .client()
        .put(api.url("/v1/settings/history"))
        .json(&json!({"keep": 1000, "watch_window": 10}));
    let set = api.send(set).await?;
    assert_status(&set, 200);
    assert_eq!(set.body["watch_window"], 10);
    let first = put(api, "w/a", json!({"n": 0})).await?;
    let mut last = first;
    // Past the window by more than the sweep's slack (64 revisions).
    for n in 1..100 {
        last = put(api, "w/a", json!({ "n": n })).await?;
    }
    let gone = api
        .get(&format!(
            "/v1/watch?prefix=w/&from_revision={first}&wait=1s"
        ))
        .await?;
    assert_error(&gone, 410, "revision_compacted");
    let edge = last - 9;
    let within = api
        .get(&format!("/v1/watch?prefix=w/&from_revision={edge}&wait=1s"))
        .await?;
    assert_status(&within, 200);
    assert_eq!(
        within.body["changes"].as_array().map(Vec::len),
        Some(10),
        "{}",
        within.body
    );
    // The window bounds the index, not the history.
    let history = api.get("/v1/configs/w/a/history?limit=1000").await?;
    assert_eq!(history.body["items"].as_array().map(Vec::len), Some(100));
    let settings = api.get("/v1/settings/history").await?;
    assert_eq!(settings.body, json!({"keep": 1000, "watch_window": 10}));
    Ok(())
}

/// With one revision kept per key, two writes of a key applied together (concurrent writes
/// are batched into one log entry) drop the first before any watcher can read it: an open SSE
/// stream must end with an `error` event then, never skip it silently.
#[tokio::test]
async fn an_sse_watcher_that_falls_behind_retention_gets_an_error_event() -> Result<()> {
    let node = note_node(&[]).await?;
    let api = node.api();
    let set = api
        .client()
        .put(api.url("/v1/settings/history"))
        .json(&json!({"keep": 1}));
    assert_status(&api.send(set).await?, 200);
    let mut sse = Sse::open(api, "prefix=burst/", None).await?;
    let deadline = Instant::now() + SETTLE;
    let mut round = 0;
    loop {
        ensure!(
            Instant::now() < deadline,
            "no error event after {round} bursts"
        );
        round += 1;
        let writers: Vec<_> = (0..16)
            .map(|w| {
                let api = api.clone();
                tokio::spawn(async move {
                    api.put_config("burst/a", "note", 1, &json!({ "w": w }))
                        .await
                })
            })
            .collect();
        for w in writers {
            w.await??;
        }
        // Drain what the burst produced; an error ends the stream.
        loop {
            match sse.next(Duration::from_millis(500)).await {
                Ok(ev) if ev.event == "error" => {
                    assert_eq!(ev.data["code"], "revision_compacted", "{ev:?}");
                    ensure!(
                        sse.next(Duration::from_secs(2)).await.is_err(),
                        "the stream goes on after its error event"
                    );
                    return Ok(());
                }
                Ok(ev) => ensure!(ev.event == "change", "{ev:?}"),
                Err(_) => break,
            }
        }
    }
}

#[tokio::test]
async fn a_watch_delivers_values_converted_to_the_subscribers_schema_version() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let api = node.api();
    assert_status(&api.register_kind(STORE).await?, 201);
    assert_status(&api.register_kind(STORE_V2).await?, 201);
    let sample = STORE.valid_sample();
    let reply = api
        .put_config("stores/orders", "store", 1, &sample.value)
        .await?;
    assert_status(&reply, 201);
    let rev = reply.revision();
    let (changes, _) = poll(api, &from("stores/", rev).schema("store").schema_version(2)).await?;
    let ev = &changes[0].events[0];
    assert_eq!(ev.meta.schema_version, 2, "{ev:?}");
    assert_eq!(ev.meta.converted_from, Some(1), "{ev:?}");
    assert!(ev.value["timeouts"].is_object(), "{ev:?}");
    assert!(ev.value.get("timeout_ms").is_none(), "{ev:?}");
    Ok(())
}

/// Every acknowledged write of the writer: revision -> (key, value).
type Acked = Arc<Mutex<BTreeMap<u64, (String, Value)>>>;

#[tokio::test]
async fn watchers_on_every_node_see_each_change_once_in_order_while_the_leader_is_killed()
-> Result<()> {
    let (mut cluster, leader, start) = note_cluster().await?;
    let ids = cluster.ids();
    let apis: Arc<Vec<Api>> = Arc::new(ids.iter().map(|id| cluster.api(*id)).collect());

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::default();
    let writer = {
        let (apis, stop, acked) = (apis.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("k/{}", n % 7);
                let value = json!({ "n": n });
                let api = &apis[(n as usize) % apis.len()];
                let put = PutConfig::new("note", 1, value.clone());
                if let Ok(written) = api.typed().put(&key, &put).await {
                    acked.lock().await.insert(written.revision, (key, value));
                }
                n += 1;
            }
        })
    };
    // One watcher per node, each starting at its node and moving to the next on any error.
    let mut watchers = Vec::new();
    for first in 0..apis.len() {
        let (apis, stop) = (apis.clone(), stop.clone());
        watchers.push(tokio::spawn(async move {
            let mut seen: Vec<(u64, String, ChangeKind, Value)> = Vec::new();
            let mut next = start;
            let mut node = first;
            let mut idle_after_stop = 0;
            loop {
                match poll(&apis[node], &from("k/", next)).await {
                    Ok((changes, n)) => {
                        let empty = changes.is_empty();
                        seen.extend(events(&changes));
                        next = n;
                        if stop.load(Ordering::Relaxed) && empty {
                            idle_after_stop += 1;
                            if idle_after_stop >= 2 {
                                return seen;
                            }
                        }
                    }
                    Err(_) => node = (node + 1) % apis.len(),
                }
            }
        }));
    }
    wait_until(SETTLE, "50 acknowledged writes before the kill", || async {
        acked.lock().await.len() >= 50
    })
    .await?;
    cluster.kill(leader).await?;
    let before = acked.lock().await.len();
    wait_until(
        SETTLE * 2,
        "50 acknowledged writes after the kill",
        || async { acked.lock().await.len() >= before + 50 },
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    writer.await?;
    let acked = acked.lock().await.clone();
    let last = *acked.keys().next_back().context("writes")?;
    for w in watchers {
        let seen = tokio::time::timeout(Duration::from_secs(120), w).await??;
        let revisions: Vec<u64> = seen.iter().map(|e| e.0).collect();
        ensure!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "not strictly increasing (duplicates or out of order): {revisions:?}"
        );
        let by_rev: BTreeMap<u64, (String, Value)> = seen
            .iter()
            .map(|(r, k, _, v)| (*r, (k.clone(), v.clone())))
            .collect();
        for (rev, (key, value)) in &acked {
            let got = by_rev.get(rev);
            ensure!(
                got == Some(&(key.clone(), value.clone())),
                "acknowledged write {key}={value} at {rev} watched as {got:?}"
            );
        }
        // Nothing but the writer's changes, each at most once: every watched change is a write
        // the writer sent (acknowledged or of unknown outcome).
        for (rev, (key, value)) in &by_rev {
            let n = value["n"].as_u64().context("n")?;
            ensure!(
                *key == format!("k/{}", n % 7),
                "phantom change {key}={value} at {rev}"
            );
        }
        ensure!(
            revisions.last() >= Some(&last),
            "a watcher stopped before {last}"
        );
    }
    cluster.pass();
    Ok(())
}

/// The typed client's watch (`scarab_client::Client::watch`, SSE) is what services use: it
/// must resume where it stopped, on another node, when the node it reads from dies.
#[tokio::test]
async fn the_client_watch_stream_resumes_on_another_node_when_its_node_is_killed() -> Result<()> {
    let (mut cluster, leader, start) = note_cluster().await?;
    let ids = cluster.ids();
    // The watch reads from the leader first (the node the test kills), then the others.
    let mut endpoints = vec![cluster.api(leader).base_url().to_string()];
    endpoints.extend(
        ids.iter()
            .filter(|id| **id != leader)
            .map(|id| cluster.api(*id).base_url().to_string()),
    );
    let watcher = scarab_client::Client::builder()
        .endpoints(endpoints)
        .http_client(harness::http_client())
        .build()?;
    let mut stream = watcher.watch(
        WatchOptions::prefix("k/")
            .from_revision(start)
            .progress(Duration::from_millis(200)),
    );
    let seen: Arc<Mutex<Vec<(u64, String, Value)>>> = Arc::default();
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                if let scarab_client::types::WatchEvent::Change(batch) = event? {
                    let mut seen = seen.lock().await;
                    for change in batch.events {
                        seen.push((batch.revision, change.meta.key, change.value));
                    }
                }
            }
            anyhow::Ok(())
        })
    };
    let writer = cluster.client();
    let mut acked = BTreeMap::new();
    let mut n = 0u64;
    let mut write_until = async |count: usize, acked: &mut BTreeMap<u64, (String, Value)>| {
        let goal = acked.len() + count;
        let deadline = Instant::now() + SETTLE * 2;
        while acked.len() < goal {
            ensure!(
                Instant::now() < deadline,
                "{count} writes were not acknowledged"
            );
            let (key, value) = (format!("k/{}", n % 5), json!({ "n": n }));
            n += 1;
            if let Ok(w) = writer
                .put(&key, &PutConfig::new("note", 1, value.clone()))
                .await
            {
                acked.insert(w.revision, (key, value));
            }
        }
        anyhow::Ok(())
    };
    write_until(30, &mut acked).await?;
    cluster.kill(leader).await?;
    write_until(30, &mut acked).await?;
    let last = *acked.keys().next_back().context("writes")?;
    wait_until(SETTLE * 2, "the watch reaching the last write", || async {
        seen.lock().await.last().is_some_and(|(r, _, _)| *r >= last)
    })
    .await?;
    reader.abort();
    let seen = seen.lock().await.clone();
    let revisions: Vec<u64> = seen.iter().map(|(r, _, _)| *r).collect();
    ensure!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "not strictly increasing (duplicates or out of order): {revisions:?}"
    );
    let by_rev: BTreeMap<u64, (String, Value)> =
        seen.into_iter().map(|(r, k, v)| (r, (k, v))).collect();
    for (rev, write) in &acked {
        ensure!(
            by_rev.get(rev) == Some(write),
            "acknowledged write {write:?} at {rev} watched as {:?}",
            by_rev.get(rev)
        );
    }
    cluster.pass();
    Ok(())
}
