//! `scarab_client::Mirror`, the last-known-good cache a service keeps: following a real
//! 3-node cluster through a leader `kill -9` and a stop of the whole cluster, restarting from
//! its cache while the cluster is down, and rebuilding a damaged cache.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use scarab_client::types::PutConfig;
use scarab_client::{Client, Mirror, MirrorOptions};
use serde_json::{Value, json};

use harness::cluster::{Cluster, ClusterOptions};
use harness::{Node, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

fn options(dir: &std::path::Path) -> MirrorOptions {
    let mut opts = MirrorOptions::new(dir.join("mirror.cache"), ["app/"]);
    opts.progress = Duration::from_millis(200);
    opts
}

/// The mirror's values under `app/`, by key.
fn values(mirror: &Mirror) -> BTreeMap<String, Value> {
    mirror
        .list("app/")
        .into_iter()
        .map(|e| (e.meta.key, e.value))
        .collect()
}

async fn put(client: &Client, key: &str, n: i64) -> Result<()> {
    client
        .put(key, &PutConfig::new("note", 1, &json!({ "n": n })))
        .await
        .with_context(|| format!("put {key}"))?;
    Ok(())
}

async fn wait_for(mirror: &Mirror, what: &str, want: &BTreeMap<String, Value>) -> Result<()> {
    wait_until(DEADLINE, what, || async { &values(mirror) == want }).await
}

#[tokio::test]
async fn a_mirror_follows_a_cluster_through_a_failover_and_an_outage_without_relisting()
-> Result<()> {
    let mut cluster = Cluster::start(ClusterOptions::new(3)).await?;
    let client = cluster.client();
    client
        .register_schema(
            "note",
            1,
            &scarab_client::SchemaUpload::new(&json!({"type": "object"})),
        )
        .await?;
    let mut want = BTreeMap::new();
    for i in 1..=3 {
        put(&client, &format!("app/{i}"), i).await?;
        want.insert(format!("app/{i}"), json!({ "n": i }));
    }
    let dir = tempfile::tempdir()?;
    let mirror = Mirror::start(client.clone(), options(dir.path()));
    let mut applied = mirror.changes();
    wait_for(&mirror, "the first sync", &want).await?;

    // The leader dies; the changes made meanwhile arrive.
    let leader = cluster.wait_leader(&cluster.ids(), DEADLINE).await?;
    cluster.kill(leader).await?;
    put(&client, "app/4", 4).await?;
    client.delete("app/1").await?;
    want.insert("app/4".into(), json!({"n": 4}));
    want.remove("app/1");
    wait_for(&mirror, "the changes across the failover", &want).await?;

    // The whole cluster stops: the mirror keeps serving, and says it is not current.
    for id in cluster.running() {
        cluster.kill(id).await?;
    }
    wait_until(DEADLINE, "the mirror to notice", || async {
        !mirror.freshness().current
    })
    .await?;
    assert_eq!(values(&mirror), want);
    let stale = mirror.freshness();
    ensure!(
        stale.error.is_some() && stale.last_contact.is_some(),
        "{stale:?}"
    );

    // It comes back: the mirror resumes its watch, and sees what changes next.
    for id in cluster.ids() {
        cluster.restart(id).await?;
    }
    cluster.wait_leader(&cluster.ids(), DEADLINE).await?;
    put(&client, "app/5", 5).await?;
    want.insert("app/5".into(), json!({"n": 5}));
    wait_for(&mirror, "the change after the outage", &want).await?;
    wait_until(DEADLINE, "current again", || async {
        mirror.freshness().current
    })
    .await?;
    assert_eq!(mirror.relists(), 1, "it listed again instead of resuming");
    // Every change was applied once: app/4 and the delete of app/1 and app/5, no repeats.
    let mut seen = Vec::new();
    while let Ok(a) = applied.try_recv() {
        seen.extend(a.changed.into_iter().map(|k| (a.revision, k)));
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "{seen:?}");
    Ok(())
}

/// A node with `note` registered and two configs, and its client.
async fn note_node() -> Result<(Node, Client)> {
    let node = harness::start_note_node(&[]).await?;
    let client = node.typed().clone();
    put(&client, "app/a", 1).await?;
    put(&client, "app/b", 2).await?;
    Ok((node, client))
}

#[tokio::test]
async fn a_mirror_restarted_while_the_cluster_is_down_serves_its_cache_at_once() -> Result<()> {
    let (mut node, client) = note_node().await?;
    let dir = tempfile::tempdir()?;
    let want = BTreeMap::from([
        ("app/a".to_string(), json!({"n": 1})),
        ("app/b".to_string(), json!({"n": 2})),
    ]);
    {
        let mirror = Mirror::start(client.clone(), options(dir.path()));
        wait_for(&mirror, "the first sync", &want).await?;
        mirror.save()?;
    }
    node.kill()?;
    let mirror = Mirror::start(client.clone(), options(dir.path()));
    // Served from the cache before any answer from the cluster.
    assert_eq!(values(&mirror), want);
    let fresh = mirror.freshness();
    ensure!(!fresh.current && fresh.revision > 0, "{fresh:?}");
    // The node returns; the mirror resumes from its cached revision.
    node.restart().await?;
    put(&client, "app/c", 3).await?;
    let mut want = want;
    want.insert("app/c".into(), json!({"n": 3}));
    wait_for(&mirror, "the change after the restart", &want).await?;
    assert_eq!(
        mirror.relists(),
        0,
        "it listed instead of resuming from its cache"
    );
    Ok(())
}

#[tokio::test]
async fn a_damaged_cache_is_discarded_and_rebuilt_from_the_cluster() -> Result<()> {
    let (_node, client) = note_node().await?;
    let dir = tempfile::tempdir()?;
    let want = BTreeMap::from([
        ("app/a".to_string(), json!({"n": 1})),
        ("app/b".to_string(), json!({"n": 2})),
    ]);
    {
        let mirror = Mirror::start(client.clone(), options(dir.path()));
        wait_for(&mirror, "the first sync", &want).await?;
        mirror.save()?;
    }
    // One byte of a value changed on disk: {"n":1} becomes {"n":3}.
    let path = dir.path().join("mirror.cache");
    let mut bytes = std::fs::read(&path)?;
    let at = bytes
        .windows(5)
        .position(|w| w == b"\"n\":1")
        .context("the value in the cache")?;
    bytes[at + 4] = b'3';
    std::fs::write(&path, &bytes)?;
    let mirror = Mirror::start(client.clone(), options(dir.path()));
    ensure!(
        values(&mirror).get("app/a") != Some(&json!({"n": 3})),
        "a damaged cache was trusted"
    );
    wait_for(&mirror, "the rebuild", &want).await?;
    assert_eq!(mirror.relists(), 1);
    Ok(())
}
