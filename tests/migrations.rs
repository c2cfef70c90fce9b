//! Schema versions that carry their migration: the plugin contract's two versions, version-aware
//! reads, the data-aware compatibility gate, write policies and storage migrations, on real
//! `scarab serve` processes.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use futures::TryStreamExt as _;
use scarab_client::types::{Migration, MigrationStatus};
use scarab_client::{Client, ListOptions};
use serde_json::{Value, json};

use harness::cluster::{Cluster, ClusterOptions};
use harness::{
    Api, Node, NodeOptions, Reply, assert_status, examples_file, plugin_wasm, read_json,
    scarab_bin, schema_file, wait_until,
};

const MIGRATION_TIMEOUT: Duration = Duration::from_secs(120);

/// A directory of failpoints with `migration-slow` on: migrations wait 200 ms per batch.
fn slow_migrations() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("migration-slow"), b"")?;
    Ok(dir)
}

fn failpoints_env(dir: &tempfile::TempDir) -> Vec<(String, String)> {
    vec![(
        "SCARAB_FAILPOINTS_DIR".to_string(),
        dir.path().display().to_string(),
    )]
}

/// The test schema `chain`: `{"a": ..}` at v1, `{"b": ..}` at v2, `{"c": ..}` at v3.
fn chain_schema(field: &str) -> Value {
    json!({"type": "object", "required": [field], "additionalProperties": false,
           "properties": {field: {}}})
}

async fn register_chain(api: &Api) -> Result<()> {
    assert_status(
        &api.register_schema("chain", 1, chain_schema("a"), None)
            .await?,
        201,
    );
    assert_status(
        &api.register_schema(
            "chain",
            2,
            chain_schema("b"),
            Some(&plugin_wasm("chain_v2")),
        )
        .await?,
        201,
    );
    assert_status(
        &api.register_schema(
            "chain",
            3,
            chain_schema("c"),
            Some(&plugin_wasm("chain_v3")),
        )
        .await?,
        201,
    );
    Ok(())
}

async fn register_store(api: &Api, version: u32) -> Result<Reply> {
    api.register_schema(
        "store",
        version,
        schema_file("store", version),
        Some(&plugin_wasm(&format!("store_v{version}"))),
    )
    .await
}

/// Writes every valid `store` v1 sample; returns key → value.
async fn write_store_v1_samples(api: &Api) -> Result<BTreeMap<String, Value>> {
    let examples = read_json(&examples_file("store", 1));
    let mut written = BTreeMap::new();
    for sample in examples["valid"].as_array().context("valid samples")? {
        let key = sample["key"].as_str().context("key")?;
        assert_status(
            &api.put_config(key, "store", 1, &sample["value"]).await?,
            201,
        );
        written.insert(key.to_string(), sample["value"].clone());
    }
    Ok(written)
}

/// `n` store v1 configs `bulk/s0000`.. with distinct timeouts, written 16 at a time.
async fn write_store_v1_bulk(api: &Api, n: usize) -> Result<()> {
    let keys: Vec<usize> = (0..n).collect();
    for chunk in keys.chunks(16) {
        let writes = chunk.iter().map(|i| {
            let api = api.clone();
            async move {
                let id = format!("s{i:04}");
                api.put_config(
                    &format!("bulk/{id}"),
                    "store",
                    1,
                    &store_v1(&id, 1000 + *i as u64),
                )
                .await
            }
        });
        for reply in futures::future::join_all(writes).await {
            assert_status(&reply?, 201);
        }
    }
    Ok(())
}

fn store_v1(id: &str, timeout_ms: u64) -> Value {
    json!({
        "store_id": id,
        "data_dir": format!("/var/lib/scarab/{id}"),
        "timeout_ms": timeout_ms,
        "auto_start": true,
        "priority": "normal",
        "resource_limits": {"max_memory_mb": 64, "max_connections": 100}
    })
}

async fn get_at(api: &Api, key: &str, version: u32) -> Result<Reply> {
    api.get(&format!("/v1/configs/{key}?schema_version={version}"))
        .await
}

async fn start_migration(api: &Api, name: &str, target: u32, dry_run: bool) -> Result<Reply> {
    api.post_json(
        &format!("/v1/schemas/{name}/migrations"),
        &json!({"target_version": target, "dry_run": dry_run}),
    )
    .await
}

/// Polls a migration until it is done; returns its final record.
async fn wait_migration_done(client: &Client, name: &str, id: u64) -> Result<Migration> {
    let deadline = std::time::Instant::now() + MIGRATION_TIMEOUT;
    loop {
        let last = match client.migration(name, id).await {
            Ok(m) if m.status == MigrationStatus::Done => return Ok(m.into_inner()),
            Ok(m) => format!("{:?}", m.body),
            Err(e) => format!("{e:#}"),
        };
        ensure!(
            std::time::Instant::now() < deadline,
            "migration {id} not done within {MIGRATION_TIMEOUT:?}: {last}"
        );
        tokio::time::sleep(harness::POLL_INTERVAL).await;
    }
}

#[tokio::test]
async fn a_plugin_built_against_wit_0_1_0_still_validates() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    assert_status(
        &node
            .register_schema(
                "legacy",
                1,
                json!({"type": "object"}),
                Some(&plugin_wasm("legacy_v0_1")),
            )
            .await?,
        201,
    );
    let version = node.get_schema_version("legacy", 1).await?;
    assert_eq!(version.body["plugin_contract"]["wit"], "0.1.0", "{version}");
    assert_eq!(version.body["plugin_contract"]["migration"], Value::Null);
    assert_status(
        &node
            .put_config("l/ok", "legacy", 1, &json!({"x": 1}))
            .await?,
        201,
    );
    let refused = node
        .put_config("l/no", "legacy", 1, &json!({"legacy_reject": true}))
        .await?;
    assert_status(&refused, 422);
    assert_eq!(refused.violations()[0]["code"], "legacy", "{refused}");
    Ok(())
}

#[tokio::test]
async fn registration_records_what_the_plugin_declares() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    assert_status(&register_store(node.api(), 1).await?, 201);
    assert_status(&register_store(node.api(), 2).await?, 201);
    let v1 = node.get_schema_version("store", 1).await?;
    assert_eq!(
        v1.body["plugin_contract"],
        json!({"wit": "0.2.0", "migration": null})
    );
    let v2 = node.get_schema_version("store", 2).await?;
    assert_eq!(
        v2.body["plugin_contract"],
        json!({"wit": "0.2.0", "migration": {"from_version": 1, "downgrade": true}})
    );
    Ok(())
}

#[tokio::test]
async fn a_migrator_must_upgrade_from_the_previous_registered_version() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    // chain_v2 upgrades from 1, which does not exist yet.
    let early = node
        .register_schema(
            "chain",
            2,
            chain_schema("b"),
            Some(&plugin_wasm("chain_v2")),
        )
        .await?;
    assert_status(&early, 422);
    ensure!(early.error_code() == Some("invalid_plugin"), "{early}");
    ensure!(
        early.text().contains("version 1, which is not registered"),
        "{early}"
    );

    assert_status(
        &node
            .register_schema("chain", 1, chain_schema("a"), None)
            .await?,
        201,
    );
    let misplaced = node
        .register_schema(
            "chain",
            3,
            chain_schema("b"),
            Some(&plugin_wasm("chain_v2")),
        )
        .await?;
    assert_status(&misplaced, 422);
    ensure!(
        misplaced.text().contains("can only be version 2"),
        "{misplaced}"
    );
    Ok(())
}

#[tokio::test]
async fn reads_convert_up_and_down_a_chain_of_three_versions() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    register_chain(node.api()).await?;
    assert_status(
        &node
            .put_config("c/low", "chain", 1, &json!({"a": 1}))
            .await?,
        201,
    );
    assert_status(
        &node
            .put_config("c/high", "chain", 3, &json!({"c": 5}))
            .await?,
        201,
    );

    let up = get_at(node.api(), "c/low", 3).await?;
    assert_status(&up, 200);
    assert_eq!(up.body["value"], json!({"c": 1}));
    assert_eq!(up.body["schema_version"], 3);
    assert_eq!(up.body["converted_from"], 1);

    let down = get_at(node.api(), "c/high", 1).await?;
    assert_eq!(down.body["value"], json!({"a": 5}), "{down}");
    let middle = get_at(node.api(), "c/high", 2).await?;
    assert_eq!(middle.body["value"], json!({"b": 5}), "{middle}");

    // The stored version reads as stored, without `converted_from`.
    let same = get_at(node.api(), "c/low", 1).await?;
    assert_eq!(same.body["value"], json!({"a": 1}));
    assert!(same.body.get("converted_from").is_none(), "{same}");

    let list = node
        .get("/v1/configs?prefix=c/&schema=chain&schema_version=2")
        .await?;
    assert_status(&list, 200);
    let values: Vec<&Value> = list.body["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(|i| &i["value"])
        .collect();
    assert_eq!(values, [&json!({"b": 5}), &json!({"b": 1})], "{list}");
    Ok(())
}

#[tokio::test]
async fn a_failing_conversion_step_names_the_step_the_plugin_and_the_reason() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    register_chain(node.api()).await?;
    assert_status(
        &node
            .put_config("c/r", "chain", 1, &json!({"a": "refuse"}))
            .await?,
        201,
    );
    let refused = get_at(node.api(), "c/r", 3).await?;
    assert_status(&refused, 422);
    ensure!(
        refused.error_code() == Some("conversion_failed"),
        "{refused}"
    );
    let text = refused.text();
    ensure!(
        text.contains("upgrade 1 → 2")
            && text.contains("sha256:")
            && text.contains("cannot be converted"),
        "{refused}"
    );

    // Converted fine, but not valid at the target version: the violations come along.
    assert_status(
        &node
            .put_config("c/neg", "chain", 1, &json!({"a": -1}))
            .await?,
        201,
    );
    let invalid = get_at(node.api(), "c/neg", 2).await?;
    assert_status(&invalid, 422);
    ensure!(invalid.text().contains("validation at 2"), "{invalid}");
    assert_eq!(
        invalid.violations()[0]["code"],
        "chain-negative",
        "{invalid}"
    );
    Ok(())
}

#[tokio::test]
async fn store_v2_is_accepted_over_stored_v1_configs_after_the_round_trip_check() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    assert_status(&register_store(node.api(), 1).await?, 201);
    let written = write_store_v1_samples(node.api()).await?;
    let v2 = register_store(node.api(), 2).await?;
    assert_status(&v2, 201);
    assert_eq!(v2.body["compatibility"]["checked"], written.len(), "{v2}");
    assert_eq!(v2.body["compatibility"]["compatible"], true, "{v2}");
    for (key, value) in &written {
        let at2 = get_at(node.api(), key, 2).await?;
        assert_status(&at2, 200);
        assert_eq!(
            at2.body["value"]["timeouts"]["request_ms"], value["timeout_ms"],
            "{at2}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_gate_refuses_a_version_that_breaks_stored_configs_unless_forced() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    assert_status(&register_store(node.api(), 1).await?, 201);
    write_store_v1_samples(node.api()).await?;
    // A stricter v2: request timeouts of at most ten seconds. The archive sample has ten minutes.
    let mut strict = read_json(&schema_file("store", 2));
    strict["properties"]["timeouts"]["properties"]["request_ms"]["maximum"] = json!(10_000);
    let strict_bytes = serde_json::to_vec(&strict)?;
    let plugin = std::fs::read(plugin_wasm("store_v2"))?;

    let dry = node
        .upload_schema(
            reqwest::Method::POST,
            "/v1/schemas/store/versions/2/compatibility",
            strict_bytes.clone(),
            Some(plugin.clone()),
        )
        .await?;
    assert_status(&dry, 200);
    assert_eq!(dry.body["compatibility"]["compatible"], false, "{dry}");
    assert!(
        node.get_schema_version("store", 2).await?.status == 404,
        "a dry run registers nothing"
    );

    let refused = node
        .upload_schema(
            reqwest::Method::PUT,
            "/v1/schemas/store/versions/2",
            strict_bytes.clone(),
            Some(plugin.clone()),
        )
        .await?;
    assert_status(&refused, 409);
    ensure!(
        refused.error_code() == Some("incompatible_schema_version"),
        "{refused}"
    );
    let failures = refused.body["error"]["report"]["failures"]
        .as_array()
        .context("failures in the report")?;
    assert_eq!(failures.len(), 1, "{refused}");
    assert_eq!(failures[0]["key"], "stores/archive-2024");
    assert_eq!(failures[0]["step"], "validate");
    assert_eq!(failures[0]["violations"][0]["path"], "/timeouts/request_ms");
    assert_eq!(
        dry.body["compatibility"]["failures"],
        refused.body["error"]["report"]["failures"]
    );

    let forced = node
        .upload_schema(
            reqwest::Method::PUT,
            "/v1/schemas/store/versions/2?force=true",
            strict_bytes,
            Some(plugin),
        )
        .await?;
    assert_status(&forced, 201);
    Ok(())
}

#[tokio::test]
async fn a_migrator_that_loops_traps_or_returns_invalid_json_fails_only_its_config() -> Result<()> {
    let node = Node::start(NodeOptions {
        plugin_timeout: Some("100ms".into()),
        ..NodeOptions::default()
    })
    .await?;
    assert_status(
        &node
            .register_schema("wild", 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    for mode in ["ok", "loop", "trap", "memory", "not-json", "error", "lossy"] {
        assert_status(
            &node
                .put_config(&format!("w/{mode}"), "wild", 1, &json!({"mode": mode}))
                .await?,
            201,
        );
    }
    let refused = node
        .register_schema(
            "wild",
            2,
            json!({"type": "object"}),
            Some(&plugin_wasm("hostile_migrator")),
        )
        .await?;
    assert_status(&refused, 409);
    let report = &refused.body["error"]["report"];
    let reason = |key: &str| -> String {
        report["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["key"] == key)
            .map(|f| format!("{} {}", f["step"], f["reason"]))
            .unwrap_or_default()
    };
    assert_eq!(report["checked"], 7, "{refused}");
    assert_eq!(report["failed"], 6, "{refused}");
    ensure!(
        reason("w/loop").contains("time budget"),
        "{}",
        reason("w/loop")
    );
    ensure!(reason("w/trap").contains("trapped"), "{}", reason("w/trap"));
    ensure!(
        reason("w/memory").contains("memory limit"),
        "{}",
        reason("w/memory")
    );
    ensure!(
        reason("w/not-json").contains("not JSON"),
        "{}",
        reason("w/not-json")
    );
    ensure!(
        reason("w/error").contains("on purpose"),
        "{}",
        reason("w/error")
    );
    ensure!(
        reason("w/lossy").starts_with("\"round_trip\""),
        "{}",
        reason("w/lossy")
    );
    ensure!(reason("w/ok").is_empty());

    // The node is fine, and with the version forced in, only the bad configs fail to convert.
    assert_status(&node.health().await?, 200);
    assert_status(
        &node
            .upload_schema(
                reqwest::Method::PUT,
                "/v1/schemas/wild/versions/2?force=true",
                serde_json::to_vec(&json!({"type": "object"}))?,
                Some(std::fs::read(plugin_wasm("hostile_migrator"))?),
            )
            .await?,
        201,
    );
    assert_status(&get_at(node.api(), "w/ok", 2).await?, 200);
    let looped = get_at(node.api(), "w/loop", 2).await?;
    assert_status(&looped, 422);
    ensure!(looped.text().contains("time budget"), "{looped}");
    Ok(())
}

#[tokio::test]
async fn writes_at_an_older_version_are_refused_when_the_policy_requires_the_latest() -> Result<()>
{
    let node = Node::start(NodeOptions::default()).await?;
    register_chain(node.api()).await?;
    assert_status(
        &node
            .put_config("p/old", "chain", 1, &json!({"a": 1}))
            .await?,
        201,
    );
    let set = node
        .send(
            node.client()
                .put(node.url("/v1/schemas/chain/policy"))
                .json(&json!({"writes": "latest"})),
        )
        .await?;
    assert_status(&set, 200);
    let refused = node
        .put_config("p/old2", "chain", 1, &json!({"a": 1}))
        .await?;
    assert_status(&refused, 422);
    ensure!(
        refused.error_code() == Some("schema_version_not_latest"),
        "{refused}"
    );
    assert_status(
        &node
            .put_config("p/new", "chain", 3, &json!({"c": 1}))
            .await?,
        201,
    );
    let policy = node.get("/v1/schemas/chain/policy").await?;
    assert_eq!(policy.body["policy"], json!({"writes": "latest"}));
    Ok(())
}

#[tokio::test]
async fn a_storage_migration_rewrites_every_config_and_reports_progress() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    assert_status(&register_store(node.api(), 1).await?, 201);
    write_store_v1_bulk(node.api(), 150).await?;
    assert_status(&register_store(node.api(), 2).await?, 201);

    let dry = start_migration(node.api(), "store", 2, true).await?;
    assert_status(&dry, 200);
    assert_eq!(dry.body["total"], 150, "{dry}");
    assert_eq!(dry.body["convertible"], 150, "{dry}");
    let still_v1 = node.get_config("bulk/s0000").await?;
    assert_eq!(
        still_v1.body["schema_version"], 1,
        "a dry run writes nothing"
    );

    let started = start_migration(node.api(), "store", 2, false).await?;
    assert_status(&started, 202);
    assert_eq!(started.body["total"], 150);
    let id = started.body["id"].as_u64().context("id")?;
    let done = wait_migration_done(node.typed(), "store", id).await?;
    assert_eq!(done.done, 150, "{done:?}");
    assert_eq!(done.failed_count, 0, "{done:?}");
    for i in [0usize, 77, 149] {
        let c = node.get_config(&format!("bulk/s{i:04}")).await?;
        assert_eq!(c.body["schema_version"], 2, "{c}");
        assert_eq!(
            c.body["value"]["timeouts"]["request_ms"],
            1000 + i as u64,
            "{c}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_concurrent_write_during_a_storage_migration_is_never_overwritten() -> Result<()> {
    let failpoints = slow_migrations()?;
    let node = Node::start(NodeOptions {
        env: failpoints_env(&failpoints),
        ..NodeOptions::default()
    })
    .await?;
    assert_status(&register_store(node.api(), 1).await?, 201);
    write_store_v1_bulk(node.api(), 300).await?;
    assert_status(&register_store(node.api(), 2).await?, 201);
    let started = start_migration(node.api(), "store", 2, false).await?;
    let id = started.body["id"].as_u64().context("id")?;

    // Meanwhile a client keeps rewriting some keys at v1 with new timeouts.
    let mut last_written: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..5u64 {
        for i in (0..300).step_by(25) {
            let id = format!("s{i:04}");
            let timeout = 50_000 + round * 1000 + i as u64;
            let reply = node
                .put_config(&format!("bulk/{id}"), "store", 1, &store_v1(&id, timeout))
                .await?;
            assert_status(&reply, 200);
            last_written.insert(format!("bulk/{id}"), timeout);
        }
    }
    let during = node.typed().migration("store", id).await?;
    assert_eq!(
        during.status,
        MigrationStatus::Running,
        "the writes raced the migration: {:?}",
        during.body
    );
    let done = wait_migration_done(node.typed(), "store", id).await?;
    assert_eq!(done.failed_count, 0, "{done:?}");
    for (key, timeout) in &last_written {
        // Converted after the client's last write, never from an older value.
        let c = node.get_config(key).await?;
        assert_eq!(c.body["schema_version"], 2, "{key}: {c}");
        assert_eq!(
            c.body["value"]["timeouts"]["request_ms"], *timeout,
            "{key}: {c}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_cli_follows_a_migration_to_its_end() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    assert_status(&register_store(node.api(), 1).await?, 201);
    write_store_v1_bulk(node.api(), 40).await?;
    assert_status(&register_store(node.api(), 2).await?, 201);
    let out = tokio::process::Command::new(scarab_bin())
        .args([
            "schema",
            "migrate",
            "store",
            "--to",
            "2",
            "-o",
            "json",
            "-s",
            node.base_url(),
        ])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "scarab schema migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(last["status"], "done", "{last}");
    assert_eq!(last["done"], 40, "{last}");
    Ok(())
}

#[tokio::test]
async fn a_migration_resumes_to_completion_after_the_leader_is_killed() -> Result<()> {
    let failpoints = slow_migrations()?;
    let mut cluster = Cluster::start(ClusterOptions::new(3).env(
        "SCARAB_FAILPOINTS_DIR",
        &failpoints.path().display().to_string(),
    ))
    .await?;
    let leader = cluster
        .wait_leader(&[1, 2, 3], Duration::from_secs(30))
        .await?;
    let api = cluster.api(leader);
    assert_status(&register_store(&api, 1).await?, 201);
    write_store_v1_bulk(&api, 600).await?;
    assert_status(&register_store(&api, 2).await?, 201);
    let started = start_migration(&api, "store", 2, false).await?;
    assert_status(&started, 202);
    let id = started.body["id"].as_u64().context("id")?;
    wait_until(
        Duration::from_secs(60),
        "the migration to make progress",
        || async {
            api.typed()
                .migration("store", id)
                .await
                .is_ok_and(|m| m.done > 0)
        },
    )
    .await?;
    let before = api.typed().migration("store", id).await?;
    assert_eq!(
        before.status,
        MigrationStatus::Running,
        "killed mid-migration: {:?}",
        before.body
    );
    cluster.kill(leader).await?;
    let others: Vec<_> = [1, 2, 3].into_iter().filter(|n| *n != leader).collect();
    cluster
        .wait_leader(&others, Duration::from_secs(30))
        .await?;
    // The migration is followed through the cluster: whichever node answers.
    let client = cluster.client();
    let done = wait_migration_done(&client, "store", id).await?;
    assert_eq!(done.failed_count, 0, "{done:?}");
    assert!(done.done >= 600, "{done:?}");
    let items: Vec<_> = client
        .list(ListOptions::prefix("bulk/").limit(1000))
        .try_collect()
        .await?;
    let left = items.iter().filter(|i| i.meta.schema_version != 2).count();
    assert_eq!(left, 0, "every config is at version 2");
    cluster.restart(leader).await?;
    cluster
        .wait_converged(&[1, 2, 3], Duration::from_secs(60))
        .await?;
    cluster.pass();
    Ok(())
}
