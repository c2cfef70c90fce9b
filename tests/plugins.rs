//! What a plugin author meets, against a real `scarab serve` process: the deterministic WASI
//! subset a plugin may import (a clock standing at the epoch, the same random bytes on every
//! call, no files, no network, no timers), registration trying the plugin before accepting it,
//! and the plugin limits with the flags that raise them.
//!
//! Needs the plugins: `cargo plugins` before `cargo test`.

mod harness;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use harness::{Node, NodeOptions, Reply, assert_status, plugin_wasm};

/// Upper bound for a request served by a misbehaving plugin: catches hangs, not a performance
/// assertion.
const HANG_BOUND: Duration = Duration::from_secs(10);

async fn start_with(args: &[&str]) -> Result<Node> {
    Node::start(NodeOptions {
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        ..NodeOptions::default()
    })
    .await
}

/// A node with the `hostile` test plugin registered as `hostile` v1.
async fn hostile_node() -> Result<Node> {
    let node = start_with(&[]).await?;
    let r = node
        .register_schema("hostile", 1, json!({}), Some(&plugin_wasm("hostile")))
        .await?;
    assert_status(&r, 201);
    Ok(node)
}

/// The message of the one violation the hostile plugin answers `mode` with.
async fn answer(node: &Node, mode: &str) -> Result<Reply> {
    node.validate("hostile", 1, None, &json!({ "mode": mode }))
        .await
}

fn only_message(r: &Reply) -> Result<String> {
    let found = r.body["violations"].as_array().context("no violations")?;
    ensure!(found.len() == 1, "{r}");
    Ok(found[0]["message"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_plugins_clock_stands_at_the_unix_epoch() -> Result<()> {
    let node = hostile_node().await?;
    let r = answer(&node, "clock").await?;
    assert_status(&r, 200);
    assert_eq!(only_message(&r)?, "wall 0 s; monotonic moved 0ns", "{r}");
    Ok(())
}

/// The host's random source starts from the same seed for every call and every new instance,
/// so a runtime seeding itself as it starts (hash keys) is seeded the same on every node. (What
/// a plugin keeps between calls on one instance is its own state: std's `RandomState` moves
/// its keys on for each new hasher.)
#[tokio::test]
async fn a_plugin_draws_the_same_random_bytes_on_every_node_and_every_start() -> Result<()> {
    let mut node = hostile_node().await?;
    let other = hostile_node().await?;
    let first = only_message(&answer(&node, "random").await?)?;
    ensure!(first.len() == 64, "{first}");
    assert_eq!(only_message(&answer(&other, "random").await?)?, first);
    node.stop().await?;
    node.restart().await?;
    assert_eq!(only_message(&answer(&node, "random").await?)?, first);
    Ok(())
}

#[tokio::test]
async fn a_plugin_can_open_no_file() -> Result<()> {
    let node = hostile_node().await?;
    let r = answer(&node, "file").await?;
    assert_status(&r, 200);
    let message = only_message(&r)?;
    ensure!(message.starts_with("Err("), "read a file: {message}");
    Ok(())
}

#[tokio::test]
async fn a_plugin_that_opens_a_socket_fails_its_own_call() -> Result<()> {
    let node = hostile_node().await?;
    let r = answer(&node, "net").await?;
    assert_status(&r, 422);
    assert_eq!(r.error_code(), Some("plugin_failed"), "{r}");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("no access to `wasi:sockets/"), "{message}");
    // The node still validates.
    assert_status(&answer(&node, "ok").await?, 200);
    Ok(())
}

#[tokio::test]
async fn a_plugin_that_sleeps_is_refused_at_once_not_blocked() -> Result<()> {
    let node = hostile_node().await?;
    let started = Instant::now();
    let r = answer(&node, "sleep").await?;
    ensure!(
        started.elapsed() < HANG_BOUND,
        "took {:?}",
        started.elapsed()
    );
    assert_status(&r, 422);
    assert_eq!(r.error_code(), Some("plugin_failed"), "{r}");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains("no access to `wasi:clocks/monotonic-clock"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn registration_refuses_a_plugin_that_cannot_validate_its_schemas_examples() -> Result<()> {
    let node = start_with(&[]).await?;
    let hostile = plugin_wasm("hostile");
    let r = node
        .register_schema(
            "hostile",
            1,
            json!({"examples": [{"mode": "ok"}, {"mode": "trap"}]}),
            Some(&hostile),
        )
        .await?;
    assert_status(&r, 422);
    assert_eq!(r.error_code(), Some("invalid_plugin"), "{r}");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains(r#"{"mode":"trap"}"#) && message.contains("trapped on purpose"),
        "{message}"
    );
    // Nothing was registered; examples it answers (even with violations) register.
    assert_status(&node.get_schema_version("hostile", 1).await?, 404);
    let r = node
        .register_schema(
            "hostile",
            1,
            json!({"examples": [{"mode": "ok"}, {"mode": "violation"}]}),
            Some(&hostile),
        )
        .await?;
    assert_status(&r, 201);
    Ok(())
}

/// `--max-plugin-bytes` takes a size with a suffix; a plugin of exactly that size registers,
/// one byte more is 413 naming the flag.
#[tokio::test]
async fn a_plugin_at_max_plugin_bytes_registers_and_one_byte_more_is_413_naming_the_flag()
-> Result<()> {
    let plugin = plugin_wasm("hostile");
    let size = std::fs::metadata(&plugin)?.len();
    let at = start_with(&["--max-plugin-bytes", &size.to_string()]).await?;
    assert_status(
        &at.register_schema("hostile", 1, json!({}), Some(&plugin))
            .await?,
        201,
    );
    let past = start_with(&["--max-plugin-bytes", &(size - 1).to_string()]).await?;
    let r = past
        .register_schema("hostile", 1, json!({}), Some(&plugin))
        .await?;
    assert_status(&r, 413);
    assert_eq!(r.error_code(), Some("payload_too_large"));
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains(&format!("the plugin is {size} bytes"))
            && message.contains("--max-plugin-bytes"),
        "{message}"
    );
    let kib = start_with(&["--max-plugin-bytes", "64KiB"]).await?;
    let r = kib
        .register_schema("hostile", 1, json!({}), Some(&plugin))
        .await?;
    assert_status(&r, 413);
    Ok(())
}

/// The core module instances of a component, from the refusal of a node allowing one.
fn core_instances_of(refusal: &Value) -> Result<u32> {
    let message = refusal["error"]["message"].as_str().unwrap_or_default();
    let count = message
        .split("contains ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no count in {message:?}"))?;
    Ok(count)
}

#[tokio::test]
async fn a_component_at_plugin_core_instances_registers_and_past_it_is_refused_naming_the_flag()
-> Result<()> {
    let plugin = plugin_wasm("store_v1");
    let one = start_with(&["--plugin-core-instances", "1"]).await?;
    let r = one
        .register_schema("store", 1, json!({}), Some(&plugin))
        .await?;
    assert_status(&r, 422);
    assert_eq!(r.error_code(), Some("invalid_plugin"), "{r}");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("--plugin-core-instances"), "{message}");
    let needed = core_instances_of(&r.body)?;
    ensure!(needed > 1, "{message}");
    let at = start_with(&["--plugin-core-instances", &needed.to_string()]).await?;
    assert_status(
        &at.register_schema("store", 1, json!({}), Some(&plugin))
            .await?,
        201,
    );
    let past = start_with(&["--plugin-core-instances", &(needed - 1).to_string()]).await?;
    let r = past
        .register_schema("store", 1, json!({}), Some(&plugin))
        .await?;
    assert_status(&r, 422);
    Ok(())
}
