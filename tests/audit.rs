//! The audit trail (`GET /v1/audit`) on real `scarab serve` processes and a cluster: every kind
//! of change is recorded with actor, time, revisions, reason and validation provenance; it
//! filters; it is the same on every node and cannot be changed through the API.

mod harness;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use futures::TryStreamExt as _;
use scarab_client::AuditQuery;
use scarab_client::types::{AuditRecord, Consistency, MigrationStatus};
use serde_json::{Value, json};

use harness::cluster::{Cluster, ClusterOptions};
use harness::{Api, Node, NodeOptions, Reply, STORE, STORE_V2, assert_status, wait_until};

const SETTLE: Duration = Duration::from_secs(30);

/// Every record `query` selects, newest first (pages of 1000).
async fn audit(api: &Api, query: AuditQuery) -> Result<Vec<AuditRecord>> {
    let records = api.typed().audit(query.limit(1000)).try_collect().await?;
    Ok(records)
}

/// A write with actor and reason headers.
async fn send_as(
    api: &Api,
    req: reqwest::RequestBuilder,
    actor: &str,
    reason: &str,
) -> Result<Reply> {
    api.send(
        req.header("x-scarab-actor", actor)
            .header("x-scarab-reason", reason),
    )
    .await
}

fn find<'a>(items: &'a [AuditRecord], action: &str, object: &str) -> Result<&'a AuditRecord> {
    items
        .iter()
        .find(|r| r.action == action && r.object == object)
        .with_context(|| format!("no {action} of {object} in {items:#?}"))
}

/// A record's `detail` (`null` when it has none).
fn detail(record: &AuditRecord) -> &Value {
    record.detail.as_ref().unwrap_or(&Value::Null)
}

#[tokio::test]
async fn every_kind_of_change_is_recorded_with_actor_time_revisions_and_reason() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let api = node.api();
    let c = api.client();
    assert_status(&api.register_kind(STORE).await?, 201);
    // The store plugin wants `store_id` to be the key's last segment.
    let mut sample = STORE.valid_sample().value;
    sample["store_id"] = json!("a");
    let body = json!({"schema": "store", "schema_version": 1, "value": sample});
    let created = send_as(
        api,
        c.put(api.url("/v1/configs/stores/a")).json(&body),
        "alice",
        "first",
    )
    .await?;
    assert_status(&created, 201);
    let mut changed = sample.clone();
    changed["timeout_ms"] = json!(6000);
    let body2 = json!({"schema": "store", "schema_version": 1, "value": changed});
    let updated = send_as(
        api,
        c.put(api.url("/v1/configs/stores/a")).json(&body2),
        "bob",
        "rename",
    )
    .await?;
    assert_status(&updated, 200);
    let rolled = send_as(
        api,
        c.post(api.url("/v1/configs/stores/a/rollback"))
            .json(&json!({"revision": created.revision()})),
        "carol",
        "undo the rename",
    )
    .await?;
    assert_status(&rolled, 200);
    sample["store_id"] = json!("b");
    let txn = json!({"ops": [{"op": "put", "key": "stores/b", "schema": "store",
                               "schema_version": 1, "value": sample}]});
    assert_status(
        &send_as(api, c.post(api.url("/v1/txn")).json(&txn), "dave", "txn").await?,
        200,
    );
    assert_status(
        &send_as(
            api,
            c.delete(api.url("/v1/configs/stores/b")),
            "erin",
            "cleanup",
        )
        .await?,
        200,
    );
    let keep = json!({"keep": 50});
    assert_status(
        &send_as(
            api,
            c.put(api.url("/v1/settings/history")).json(&keep),
            "ops",
            "disk",
        )
        .await?,
        200,
    );
    assert_status(&api.register_kind(STORE_V2).await?, 201);
    let policy = json!({"writes": "any"});
    assert_status(
        &send_as(
            api,
            c.put(api.url("/v1/schemas/store/policy")).json(&policy),
            "ops",
            "policy",
        )
        .await?,
        200,
    );
    let start = json!({"target_version": 2});
    let started = send_as(
        api,
        c.post(api.url("/v1/schemas/store/migrations")).json(&start),
        "ops",
        "upgrade",
    )
    .await?;
    assert_status(&started, 202);
    let id = started.body["id"].as_u64().context("id")?;
    wait_until(SETTLE, "the migration to finish", || async {
        api.typed()
            .migration("store", id)
            .await
            .is_ok_and(|m| m.status == MigrationStatus::Done)
    })
    .await?;
    assert_status(
        &api.register_schema("tmp", 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    assert_status(&api.delete_schema_version("tmp", 1).await?, 200);

    let items = audit(api, AuditQuery::new()).await?;
    let create = find(&items, "config.create", "stores/a")?;
    assert_eq!(create.actor, "alice");
    assert_eq!(create.reason.as_deref(), Some("first"));
    assert_eq!(create.revision_before, None);
    assert_eq!(create.revision_after, Some(created.revision()));
    assert!(create.at.is_some(), "{create:?}");
    let validation = create.validation.as_ref().context("validation")?;
    assert_eq!(validation.schema, "store");
    assert!(validation.plugin_digest.is_some(), "{create:?}");
    assert!(validation.elapsed_us.is_some(), "{create:?}");
    let update = find(&items, "config.update", "stores/a")?;
    assert_eq!(update.actor, "bob");
    assert_eq!(update.revision_before, Some(created.revision()));
    assert_eq!(update.revision_after, Some(updated.revision()));
    let rollback = find(&items, "config.rollback", "stores/a")?;
    assert_eq!(rollback.reason.as_deref(), Some("undo the rename"));
    assert_eq!(detail(rollback)["to"], created.revision());
    assert_eq!(find(&items, "config.create", "stores/b")?.actor, "dave");
    assert!(detail(find(&items, "config.create", "stores/b")?)["txn"].is_object());
    assert_eq!(
        find(&items, "config.delete", "stores/b")?.reason.as_deref(),
        Some("cleanup")
    );
    assert_eq!(
        detail(find(&items, "settings.history", "settings/history")?)["keep"],
        50
    );
    find(&items, "schema.register", "schema/store/1")?;
    find(&items, "schema.register", "schema/store/2")?;
    find(&items, "schema.policy", "schema/store")?;
    find(&items, "schema.delete", "schema/tmp/1")?;
    assert_eq!(
        find(&items, "migration.start", &format!("migration/store/{id}"))?
            .reason
            .as_deref(),
        Some("upgrade")
    );
    find(&items, "migration.finish", &format!("migration/store/{id}"))?;
    let migrated = find(&items, "config.migrate", "stores/a")?;
    assert_eq!(
        migrated.validation.as_ref().map(|v| v.schema_version),
        Some(2)
    );
    assert!(detail(find(&items, "membership.change", "cluster")?)["voters"].is_array());
    // Newest first, numbered without gaps.
    let seqs: Vec<u64> = items.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] == w[1] + 1), "{seqs:?}");
    Ok(())
}

#[tokio::test]
async fn the_audit_trail_filters_by_prefix_actor_action_and_time() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let api = node.api();
    let c = api.client();
    assert_status(
        &api.register_schema("note", 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    let put = |key: &str, n: u32| {
        c.put(api.url(&format!("/v1/configs/{key}")))
            .json(&json!({"schema": "note", "schema_version": 1, "value": {"n": n}}))
    };
    send_as(api, put("a/1", 1), "alice", "r").await?;
    send_as(api, put("a/2", 1), "bob", "r").await?;
    send_as(api, put("b/1", 1), "alice", "r").await?;
    send_as(api, put("a/1", 2), "alice", "r").await?;
    let objects = |items: Vec<AuditRecord>| -> Vec<String> {
        items
            .iter()
            .map(|r| format!("{} {}", r.action, r.object))
            .collect()
    };
    let query = AuditQuery::new;
    assert_eq!(
        objects(audit(api, query().prefix("a/")).await?),
        [
            "config.update a/1",
            "config.create a/2",
            "config.create a/1"
        ]
    );
    assert_eq!(
        objects(audit(api, query().prefix("a/").actor("alice")).await?),
        ["config.update a/1", "config.create a/1"]
    );
    assert_eq!(
        objects(audit(api, query().action("config.update")).await?),
        ["config.update a/1"]
    );
    assert_eq!(audit(api, query().action("config")).await?.len(), 4);
    assert_eq!(audit(api, query().action("schema")).await?.len(), 1);
    // Time: everything is before a minute from now and nothing is from after it.
    let later = "2999-01-01T00:00:00Z";
    assert_eq!(
        audit(api, query().prefix("a/").until(later)).await?.len(),
        3
    );
    assert!(audit(api, query().since(later)).await?.is_empty());
    // Paging with next_before.
    let page = api
        .typed()
        .audit_page(&query().prefix("a/").limit(2))
        .await?;
    let before = page.next_before.context("next_before")?;
    let rest = AuditQuery {
        before: Some(before),
        ..query().prefix("a/")
    };
    assert_eq!(objects(audit(api, rest).await?), ["config.create a/1"]);
    let bad = api.get("/v1/audit?since=yesterday").await?;
    harness::assert_error(&bad, 400, "malformed_request");
    Ok(())
}

#[tokio::test]
async fn the_audit_trail_is_the_same_on_every_node_and_cannot_be_changed_through_the_api()
-> Result<()> {
    let mut cluster = Cluster::start(ClusterOptions::new(3)).await?;
    let leader = cluster.wait_leader(&cluster.ids(), SETTLE).await?;
    let api = cluster.api(leader);
    assert_status(
        &api.register_schema("note", 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    for n in 0..5 {
        let r = api
            .put_config(&format!("k/{n}"), "note", 1, &json!({ "n": n }))
            .await?;
        assert_status(&r, 201);
    }
    let ids = cluster.ids();
    cluster.wait_converged(&ids, SETTLE).await?;
    let reference = audit(&api, AuditQuery::new()).await?;
    ensure!(
        reference
            .iter()
            .filter(|r| r.action == "membership.change")
            .count()
            >= 1,
        "the formation, a membership change, is recorded: {reference:#?}"
    );
    for id in cluster.ids() {
        let stale = AuditQuery {
            consistency: Some(Consistency::Stale),
            ..AuditQuery::new()
        };
        assert_eq!(
            audit(&cluster.api(id), stale).await?,
            reference,
            "node {id}"
        );
        for method in [
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
            reqwest::Method::POST,
        ] {
            let reply = api
                .send(
                    api.client()
                        .request(method.clone(), api.url("/v1/audit"))
                        .json(&json!({})),
                )
                .await?;
            harness::assert_error(&reply, 405, "method_not_allowed");
        }
    }
    cluster.pass();
    Ok(())
}

/// The audit trail's retention is a replicated setting: set through the API (and audited
/// itself), it keeps exactly the newest records on every node as writes go on.
#[tokio::test]
async fn the_audit_retention_is_set_through_the_api_audited_and_the_same_on_every_node()
-> Result<()> {
    let mut cluster = Cluster::start(ClusterOptions::new(3)).await?;
    let leader = cluster.wait_leader(&cluster.ids(), SETTLE).await?;
    let api = cluster.api(leader);
    let c = api.client();
    let initial = api.get("/v1/settings/audit").await?;
    assert_status(&initial, 200);
    assert_eq!(initial.body, json!({"max_records": 100_000}));
    let zero = api
        .send(
            c.put(api.url("/v1/settings/audit"))
                .json(&json!({"max_records": 0})),
        )
        .await?;
    harness::assert_error(&zero, 400, "malformed_request");
    let set = send_as(
        &api,
        c.put(api.url("/v1/settings/audit"))
            .json(&json!({"max_records": 10, "max_age_seconds": 86_400})),
        "ops",
        "keep the trail small",
    )
    .await?;
    assert_status(&set, 200);
    assert_eq!(set.body["max_records"], 10);
    let recorded = audit(&api, AuditQuery::new().prefix("settings/")).await?;
    let record = find(&recorded, "settings.audit", "settings/audit")?;
    assert_eq!(record.reason.as_deref(), Some("keep the trail small"));
    assert_eq!(
        detail(record),
        &json!({"max_records": 10, "max_age_seconds": 86_400})
    );
    assert_status(
        &api.register_schema("note", 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    let mut last = 0;
    for n in 0..30 {
        let r = api
            .put_config(&format!("k/{}", n % 3), "note", 1, &json!({ "n": n }))
            .await?;
        assert_status(&r, if n < 3 { 201 } else { 200 });
        last = r.body["revision"].as_u64().context("revision")?;
    }
    let ids = cluster.ids();
    cluster.wait_converged(&ids, SETTLE).await?;
    for id in ids {
        let stale = AuditQuery {
            consistency: Some(Consistency::Stale),
            ..AuditQuery::new()
        };
        let kept = audit(&cluster.api(id), stale).await?;
        assert_eq!(kept.len(), 10, "node {id}: {kept:#?}");
        assert_eq!(kept[0].revision_after, Some(last), "node {id}");
        assert!(
            kept.iter().all(|r| r.action == "config.update"),
            "node {id}: {kept:#?}"
        );
    }
    cluster.pass();
    Ok(())
}

/// The retention settings are state: they decode again from the log and the state after a
/// restart, and the trail is still cut to them.
#[tokio::test]
async fn the_retention_settings_survive_a_restart() -> Result<()> {
    let mut node = Node::start(NodeOptions::default()).await?;
    let api = node.api();
    let c = api.client();
    let set = api
        .send(
            c.put(api.url("/v1/settings/audit"))
                .json(&json!({"max_records": 3})),
        )
        .await?;
    assert_status(&set, 200);
    let set = api
        .send(
            c.put(api.url("/v1/settings/history"))
                .json(&json!({"keep": 5, "watch_window": 70})),
        )
        .await?;
    assert_status(&set, 200);
    node.kill()?;
    node.restart().await?;
    let api = node.api();
    assert_eq!(
        api.get("/v1/settings/audit").await?.body,
        json!({"max_records": 3})
    );
    assert_eq!(
        api.get("/v1/settings/history").await?.body,
        json!({"keep": 5, "watch_window": 70})
    );
    assert_status(
        &api.register_schema("note", 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    assert_eq!(audit(api, AuditQuery::new()).await?.len(), 3);
    Ok(())
}

#[tokio::test]
async fn the_cli_applies_a_transaction_watches_its_changes_and_shows_the_audit_trail() -> Result<()>
{
    use tokio::io::AsyncBufReadExt;

    let node = Node::start(NodeOptions::default()).await?;
    let api = node.api();
    assert_status(
        &api.register_schema("note", 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    let from = node.status().await?.revision + 1;
    let mut watch = tokio::process::Command::new(harness::scarab_bin())
        .args(["config", "watch", "--prefix", "cli/", "--from-revision"])
        .arg(from.to_string())
        .args(["-s", node.base_url()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("txn.json");
    let ops = json!({"ops": [
        {"op": "put", "key": "cli/a", "schema": "note", "schema_version": 1, "value": {"n": 1}},
        {"op": "put", "key": "cli/b", "schema": "note", "schema_version": 1, "value": {"n": 2}}
    ]});
    std::fs::write(&file, ops.to_string())?;
    let out = tokio::process::Command::new(harness::scarab_bin())
        .arg("txn")
        .arg(&file)
        .args([
            "-o",
            "json",
            "--actor",
            "alice",
            "--reason",
            "from the cli",
            "-s",
            node.base_url(),
        ])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "scarab txn: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied: Value = serde_json::from_slice(&out.stdout)?;
    let revision = applied["revision"].as_u64().context("revision")?;

    let mut lines = tokio::io::BufReader::new(watch.stdout.take().context("stdout")?).lines();
    let mut watched = Vec::new();
    while watched.len() < 2 {
        let line = tokio::time::timeout(SETTLE, lines.next_line())
            .await
            .context("no change from scarab config watch")??
            .context("scarab config watch ended")?;
        watched.push(serde_json::from_str::<Value>(&line)?);
    }
    watch.kill().await?;
    assert_eq!(watched[0]["key"], "cli/a");
    assert_eq!(watched[1]["key"], "cli/b");
    assert!(
        watched.iter().all(|e| e["revision"] == revision),
        "{watched:?}"
    );

    let out = tokio::process::Command::new(harness::scarab_bin())
        .args([
            "audit",
            "--by",
            "alice",
            "-o",
            "json",
            "-s",
            node.base_url(),
        ])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "scarab audit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Value = serde_json::from_slice(&out.stdout)?;
    let items = page["items"].as_array().context("items")?;
    assert_eq!(items.len(), 2, "{page}");
    assert!(
        items.iter().all(|r| r["reason"] == "from the cli"),
        "{page}"
    );
    Ok(())
}
