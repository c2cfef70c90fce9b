//! Validator and migrator plugin for `store` v2 (`schemas/store/v2.json`).
//!
//! Version 2 splits v1's `timeout_ms` into `timeouts.connect_ms` and `timeouts.request_ms`, and
//! groups the resource limits per resource (`memory_mb`, `connections.max`, and the new
//! `connections.idle_timeout_ms`).
//!
//! | code | path | rule |
//! | --- | --- | --- |
//! | `data-dir-not-absolute`, `data-dir-not-normalized`, `data-dir-in-system-dir` | `/data_dir` | as in v1 |
//! | `auto-start-priority` | `/priority` | as in v1 |
//! | `connections-per-memory` | `/resource_limits/connections/max` | at most 10 connections per MB |
//! | `store-id-key-mismatch` | `/store_id` | as in v1 |
//! | `connect-timeout-exceeds-request` | `/timeouts/connect_ms` | `connect_ms <= request_ms` |
//!
//! Migration:
//!
//! - **Upgrade (v1 → v2):** `request_ms` takes v1's `timeout_ms`, and `connect_ms` is the same
//!   value capped at [`DEFAULT_CONNECT_MS`]; `max_memory_mb` becomes `memory_mb`, and
//!   `max_connections` becomes `connections.max`. Other fields are kept as they are.
//! - **Downgrade (v2 → v1):** `timeout_ms` takes `request_ms`, the limits move back, and what v1
//!   cannot say (`connect_ms`, `idle_timeout_ms`) is dropped. So v1 → v2 → v1 gives the v1
//!   document back, which the host checks for every stored config when v2 is registered.

use scarab_plugin_sdk::{Context, Migrator, Validator, Violation, register_migrator};
use serde_json::{Map, Value, json};

/// At most this many connections per MB of `memory_mb`.
pub const MAX_CONNECTIONS_PER_MB: u64 = 10;

/// The connect timeout an upgraded config gets, unless its v1 timeout is shorter.
pub const DEFAULT_CONNECT_MS: u64 = 5_000;

pub struct StoreV2;

impl Validator for StoreV2 {
    fn validate(ctx: &Context, doc: &Value) -> Result<Vec<Violation>, String> {
        Ok(check(ctx, doc))
    }
}

impl Migrator for StoreV2 {
    const FROM_VERSION: u32 = 1;
    const DOWNGRADE: bool = true;

    fn upgrade(_ctx: &Context, doc: Value) -> Result<Value, String> {
        upgrade(doc)
    }

    fn downgrade(_ctx: &Context, doc: Value) -> Result<Value, String> {
        downgrade(doc)
    }
}

register_migrator!(StoreV2);

include!("../../store_rules.rs");

/// Runs every rule.
pub fn check(ctx: &Context, doc: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(dir) = doc.get("data_dir").and_then(Value::as_str) {
        out.extend(data_dir(dir));
    }
    let auto_start = doc.get("auto_start").and_then(Value::as_bool);
    let priority = doc.get("priority").and_then(Value::as_str);
    if let (Some(auto_start), Some(priority)) = (auto_start, priority) {
        out.extend(auto_start_priority(auto_start, priority));
    }
    let limits = doc.get("resource_limits");
    let memory = limits
        .and_then(|l| l.get("memory_mb"))
        .and_then(Value::as_u64);
    let connections = limits
        .and_then(|l| l.get("connections"))
        .and_then(|c| c.get("max"))
        .and_then(Value::as_u64);
    if let (Some(memory), Some(connections)) = (memory, connections) {
        out.extend(connections_per_memory(memory, connections));
    }
    if let Some(store_id) = doc.get("store_id").and_then(Value::as_str) {
        out.extend(store_id_matches_key(store_id, &ctx.key));
    }
    let timeouts = doc.get("timeouts");
    let connect = timeouts
        .and_then(|t| t.get("connect_ms"))
        .and_then(Value::as_u64);
    let request = timeouts
        .and_then(|t| t.get("request_ms"))
        .and_then(Value::as_u64);
    if let (Some(connect), Some(request)) = (connect, request) {
        out.extend(connect_within_request(connect, request));
    }
    out
}

/// `connections.max <= memory_mb * 10`: each connection needs about 100 KB.
pub fn connections_per_memory(memory_mb: u64, max_connections: u64) -> Option<Violation> {
    let allowed = memory_mb.saturating_mul(MAX_CONNECTIONS_PER_MB);
    (max_connections > allowed).then(|| {
        Violation::new(
            "/resource_limits/connections/max",
            format!(
                "{max_connections} connections need more than {memory_mb} MB: at most \
                 {allowed} connections ({MAX_CONNECTIONS_PER_MB} per MB) are allowed"
            ),
        )
        .with_code("connections-per-memory")
    })
}

/// Connecting may not take longer than the whole request.
pub fn connect_within_request(connect_ms: u64, request_ms: u64) -> Option<Violation> {
    (connect_ms > request_ms).then(|| {
        Violation::new(
            "/timeouts/connect_ms",
            format!(
                "the connect timeout ({connect_ms} ms) must not exceed the request timeout ({request_ms} ms)"
            ),
        )
        .with_code("connect-timeout-exceeds-request")
    })
}

fn object(doc: Value) -> Result<Map<String, Value>, String> {
    match doc {
        Value::Object(map) => Ok(map),
        other => Err(format!("a store config is an object, not {other}")),
    }
}

/// v1 → v2 (see the crate docs).
pub fn upgrade(doc: Value) -> Result<Value, String> {
    let mut doc = object(doc)?;
    let timeout = doc
        .remove("timeout_ms")
        .and_then(|t| t.as_u64())
        .ok_or("timeout_ms is missing or not a non-negative integer")?;
    doc.insert(
        "timeouts".into(),
        json!({"connect_ms": timeout.min(DEFAULT_CONNECT_MS), "request_ms": timeout}),
    );
    let mut limits = object(
        doc.remove("resource_limits")
            .ok_or("resource_limits is missing")?,
    )?;
    let memory = limits
        .remove("max_memory_mb")
        .ok_or("resource_limits.max_memory_mb is missing")?;
    let connections = limits
        .remove("max_connections")
        .ok_or("resource_limits.max_connections is missing")?;
    if let Some(extra) = limits.keys().next() {
        return Err(format!("resource_limits.{extra} has no place in version 2"));
    }
    doc.insert(
        "resource_limits".into(),
        json!({"memory_mb": memory, "connections": {"max": connections}}),
    );
    Ok(Value::Object(doc))
}

/// v2 → v1 (see the crate docs).
pub fn downgrade(doc: Value) -> Result<Value, String> {
    let mut doc = object(doc)?;
    let timeouts = object(doc.remove("timeouts").ok_or("timeouts is missing")?)?;
    let request = timeouts
        .get("request_ms")
        .cloned()
        .ok_or("timeouts.request_ms is missing")?;
    doc.insert("timeout_ms".into(), request);
    let limits = object(
        doc.remove("resource_limits")
            .ok_or("resource_limits is missing")?,
    )?;
    let memory = limits
        .get("memory_mb")
        .cloned()
        .ok_or("resource_limits.memory_mb is missing")?;
    let connections = limits
        .get("connections")
        .and_then(|c| c.get("max"))
        .cloned()
        .ok_or("resource_limits.connections.max is missing")?;
    doc.insert(
        "resource_limits".into(),
        json!({"max_memory_mb": memory, "max_connections": connections}),
    );
    Ok(Value::Object(doc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scarab_plugin_sdk::{downgrade_document, upgrade_document};

    fn v1() -> Value {
        json!({
            "store_id": "orders",
            "data_dir": "/var/lib/scarab/orders",
            "timeout_ms": 30000,
            "auto_start": true,
            "priority": "normal",
            "resource_limits": {"max_memory_mb": 512, "max_connections": 2000}
        })
    }

    fn ctx(key: &str) -> Context {
        Context::new(key, "store", 2)
    }

    #[test]
    fn upgrade_splits_the_timeout_and_groups_the_limits() {
        let up = upgrade(v1()).unwrap();
        assert_eq!(
            up["timeouts"],
            json!({"connect_ms": 5000, "request_ms": 30000})
        );
        assert_eq!(
            up["resource_limits"],
            json!({"memory_mb": 512, "connections": {"max": 2000}})
        );
        assert!(up.get("timeout_ms").is_none());
        assert_eq!(check(&ctx("stores/orders"), &up), vec![]);
    }

    #[test]
    fn a_short_v1_timeout_keeps_connect_within_request() {
        let mut doc = v1();
        doc["timeout_ms"] = json!(1);
        let up = upgrade(doc).unwrap();
        assert_eq!(up["timeouts"], json!({"connect_ms": 1, "request_ms": 1}));
        assert_eq!(check(&ctx("stores/orders"), &up), vec![]);
    }

    #[test]
    fn up_then_down_gives_the_v1_document_back() {
        let back = downgrade(upgrade(v1()).unwrap()).unwrap();
        assert_eq!(back, v1());
    }

    #[test]
    fn downgrade_drops_what_v1_cannot_say() {
        let v2 = json!({
            "store_id": "orders",
            "data_dir": "/var/lib/scarab/orders",
            "timeouts": {"connect_ms": 100, "request_ms": 900},
            "auto_start": true,
            "priority": "normal",
            "resource_limits": {"memory_mb": 64, "connections": {"max": 10, "idle_timeout_ms": 5}}
        });
        let down = downgrade(v2).unwrap();
        assert_eq!(down["timeout_ms"], json!(900));
        assert_eq!(
            down["resource_limits"],
            json!({"max_memory_mb": 64, "max_connections": 10})
        );
    }

    #[test]
    fn documents_that_cannot_be_converted_say_why() {
        assert!(upgrade(json!([1])).unwrap_err().contains("object"));
        let mut doc = v1();
        doc.as_object_mut().unwrap().remove("timeout_ms");
        assert!(upgrade(doc).unwrap_err().contains("timeout_ms"));
        assert!(downgrade(v1()).unwrap_err().contains("timeouts"));
    }

    #[test]
    fn through_the_sdk() {
        let up = upgrade_document::<StoreV2>(&ctx("stores/orders"), &v1().to_string()).unwrap();
        let down =
            downgrade_document::<StoreV2>(&Context::new("stores/orders", "store", 1), &up).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&down).unwrap(), v1());
    }

    #[test]
    fn connect_rule() {
        assert_eq!(connect_within_request(5, 5), None);
        let v = connect_within_request(6, 5).unwrap();
        assert_eq!(v.path, "/timeouts/connect_ms");
        assert_eq!(v.code.as_deref(), Some("connect-timeout-exceeds-request"));
    }

    /// Every sample of `schemas/store/v2.examples.json` gets exactly its `plugin` violations.
    #[test]
    fn schema_examples_agree() {
        let text = include_str!("../../../../schemas/store/v2.examples.json");
        examples::check_plugin_violations::<StoreV2>("store", text);
    }

    /// Every valid v1 sample upgrades to a config this plugin accepts, and comes back.
    #[test]
    fn every_v1_sample_upgrades_and_round_trips() {
        let text = include_str!("../../../../schemas/store/v1.examples.json");
        let examples: Value = serde_json::from_str(text).unwrap();
        for sample in examples["valid"].as_array().unwrap() {
            let key = sample["key"].as_str().unwrap();
            let up = upgrade(sample["value"].clone()).unwrap();
            assert_eq!(check(&ctx(key), &up), vec![], "{}", sample["name"]);
            assert_eq!(
                downgrade(up).unwrap(),
                sample["value"],
                "{}",
                sample["name"]
            );
        }
    }

    mod examples {
        include!("../../examples_check.rs");
    }
}
