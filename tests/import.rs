//! `scarab import` and `scarab export` against a real node: static files (JSON, TOML, YAML)
//! and environment variables become validated configs, a dry run writes nothing, a real run
//! writes all or nothing per batch and is safe to run again, and export then import into an
//! empty node gives the same configs.
//!
//! Needs the plugins: `cargo plugins` before `cargo test`.

mod harness;

use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use futures::StreamExt as _;
use serde_json::{Value, json};

use harness::{Node, NodeOptions, STORE, assert_status};

/// A node with `store` v1 (JSON Schema and plugin) registered.
async fn store_node() -> Result<Node> {
    let node = Node::start(NodeOptions::default()).await?;
    assert_status(&node.register_kind(STORE).await?, 201);
    Ok(node)
}

/// `scarab ARGS -s node` with extra environment: exit code, stdout, stderr.
fn scarab(node: &Node, args: &[&str], env: &[(&str, &str)]) -> Result<(i32, String, String)> {
    let out = std::process::Command::new(harness::scarab_bin())
        .args(args)
        .args(["-s", node.base_url()])
        .envs(env.iter().copied())
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn store(id: &str) -> Value {
    json!({
        "store_id": id, "data_dir": format!("/var/lib/scarab/{id}"), "timeout_ms": 5000,
        "auto_start": true, "priority": "normal",
        "resource_limits": {"max_memory_mb": 512, "max_connections": 2000}
    })
}

/// `orders.json`, `billing.toml` and `eu/payments.yaml`, all valid `store` v1 documents.
fn write_stores(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("eu"))?;
    std::fs::write(
        dir.join("orders.json"),
        serde_json::to_vec_pretty(&store("orders"))?,
    )?;
    std::fs::write(
        dir.join("billing.toml"),
        r#"store_id = "billing"
data_dir = "/var/lib/scarab/billing"
timeout_ms = 5000
auto_start = true
priority = "normal"

[resource_limits]
max_memory_mb = 512
max_connections = 2000
"#,
    )?;
    std::fs::write(
        dir.join("eu/payments.yaml"),
        "store_id: payments\ndata_dir: /var/lib/scarab/payments\ntimeout_ms: 5000\nauto_start: true\npriority: normal\nresource_limits:\n  max_memory_mb: 512\n  max_connections: 2000\n",
    )?;
    Ok(())
}

/// Every config under `prefix`: key → value.
async fn configs(node: &Node, prefix: &str) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    let mut list = std::pin::pin!(
        node.typed()
            .list(scarab_client::ListOptions::prefix(prefix))
    );
    while let Some(e) = list.next().await {
        let e = e?;
        out.push((e.meta.key, e.value));
    }
    Ok(out)
}

const IMPORT: [&str; 7] = [
    "import",
    "--schema",
    "store",
    "--schema-version",
    "1",
    "--prefix",
    "stores/",
];

#[tokio::test]
async fn a_dry_run_lists_every_violation_of_every_file_and_writes_nothing() -> Result<()> {
    let node = store_node().await?;
    let dir = tempfile::tempdir()?;
    write_stores(dir.path())?;
    let mut bad = store("broken");
    bad["data_dir"] = json!("relative/dir");
    bad["timeout_ms"] = json!(0);
    std::fs::write(dir.path().join("broken.json"), serde_json::to_vec(&bad)?)?;
    let path = dir.path().to_str().context("path")?;
    let (code, out, err) = scarab(&node, &[&IMPORT[..], &[path, "--dry-run"]].concat(), &[])?;
    assert_eq!(code, 1, "{out}\n{err}");
    ensure!(out.contains("INVALID stores/broken"), "{out}");
    ensure!(
        out.contains("/timeout_ms") && out.contains("data-dir-not-absolute"),
        "{out}"
    );
    ensure!(out.contains("valid   stores/eu/payments"), "{out}");
    ensure!(out.contains("3 valid, 1 invalid, nothing written"), "{out}");
    ensure!(configs(&node, "").await?.is_empty());
    // A real run writes nothing of the batch holding it.
    let (code, out, err) = scarab(&node, &[&IMPORT[..], &[path]].concat(), &[])?;
    assert_eq!(code, 1, "{out}\n{err}");
    ensure!(
        err.contains("nothing of it written") && err.contains("stores/broken"),
        "{err}"
    );
    ensure!(configs(&node, "").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_import_creates_updates_and_leaves_identical_values_alone() -> Result<()> {
    let node = store_node().await?;
    let dir = tempfile::tempdir()?;
    write_stores(dir.path())?;
    let path = dir.path().to_str().context("path")?;
    let (code, out, err) = scarab(&node, &[&IMPORT[..], &[path]].concat(), &[])?;
    assert_eq!(code, 0, "{out}\n{err}");
    ensure!(out.contains("3 created, 0 updated, 0 unchanged"), "{out}");
    let keys: Vec<String> = configs(&node, "stores/")
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        ["stores/billing", "stores/eu/payments", "stores/orders"]
    );
    let revision = node.status().await?.revision;
    let (code, out, _) = scarab(&node, &[&IMPORT[..], &[path]].concat(), &[])?;
    assert_eq!(code, 0);
    ensure!(out.contains("0 created, 0 updated, 3 unchanged"), "{out}");
    assert_eq!(node.status().await?.revision, revision, "a rerun wrote");
    let mut orders = store("orders");
    orders["timeout_ms"] = json!(9000);
    std::fs::write(dir.path().join("orders.json"), serde_json::to_vec(&orders)?)?;
    let (code, out, _) = scarab(
        &node,
        &[&IMPORT[..], &[path, "--key-from", "file-stem"]].concat(),
        &[],
    )?;
    assert_eq!(code, 0, "{out}");
    // By file stem, eu/payments.yaml names stores/payments: created.
    ensure!(out.contains("1 created, 1 updated, 1 unchanged"), "{out}");
    assert_eq!(
        node.typed().get("stores/orders").await?.body.value["timeout_ms"],
        9000
    );
    Ok(())
}

#[tokio::test]
async fn environment_variables_import_as_one_nested_typed_document() -> Result<()> {
    let node = store_node().await?;
    let env = [
        ("SHOP_STORE_ID", "orders"),
        ("SHOP_DATA_DIR", "/var/lib/scarab/orders"),
        ("SHOP_TIMEOUT_MS", "7000"),
        ("SHOP_AUTO_START", "true"),
        ("SHOP_PRIORITY", "high"),
        ("SHOP_RESOURCE_LIMITS__MAX_MEMORY_MB", "256"),
        ("SHOP_RESOURCE_LIMITS__MAX_CONNECTIONS", "100"),
    ];
    let args = [&IMPORT[..], &["--from-env", "SHOP_", "--env-key", "orders"]].concat();
    let (code, out, err) = scarab(&node, &args, &env)?;
    assert_eq!(code, 0, "{out}\n{err}");
    let stored = node.typed().get("stores/orders").await?.body.value;
    assert_eq!(
        stored,
        json!({"store_id": "orders", "data_dir": "/var/lib/scarab/orders", "timeout_ms": 7000,
               "auto_start": true, "priority": "high",
               "resource_limits": {"max_memory_mb": 256, "max_connections": 100}})
    );
    Ok(())
}

#[tokio::test]
async fn export_then_import_into_an_empty_node_gives_the_same_configs() -> Result<()> {
    let source = store_node().await?;
    let dir = tempfile::tempdir()?;
    write_stores(dir.path())?;
    let path = dir.path().to_str().context("path")?;
    assert_eq!(scarab(&source, &[&IMPORT[..], &[path]].concat(), &[])?.0, 0);
    for format in ["json", "toml", "yaml"] {
        let out = tempfile::tempdir()?;
        let out_path = out.path().to_str().context("path")?;
        let (code, text, err) = scarab(
            &source,
            &[
                "export", "--prefix", "stores/", "--out", out_path, "--format", format,
            ],
            &[],
        )?;
        assert_eq!(code, 0, "{text}\n{err}");
        let target = store_node().await?;
        let (code, text, err) = scarab(&target, &[&IMPORT[..], &[out_path]].concat(), &[])?;
        assert_eq!(code, 0, "{format}: {text}\n{err}");
        assert_eq!(
            configs(&target, "").await?,
            configs(&source, "").await?,
            "{format}"
        );
    }
    Ok(())
}
