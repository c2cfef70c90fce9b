//! Validator plugin for `store` v1 (`schemas/store/v1.json`): the rules its JSON Schema cannot
//! say. Every rule is a plain function, skipped when its inputs are missing or mistyped (the JSON
//! Schema reports those).
//!
//! | code | path | rule |
//! | --- | --- | --- |
//! | `data-dir-not-absolute` | `/data_dir` | `data_dir` starts with `/` |
//! | `data-dir-not-normalized` | `/data_dir` | `data_dir` has no `..` segment |
//! | `data-dir-in-system-dir` | `/data_dir` | `data_dir` is not `/` nor inside `/etc`, `/usr`, ... |
//! | `auto-start-priority` | `/priority` | `auto_start: false` requires `priority: "low"` |
//! | `connections-per-memory` | `/resource_limits/max_connections` | at most 10 connections per MB |
//! | `store-id-key-mismatch` | `/store_id` | `store_id` is the key's last segment (non-empty key) |

use scarab_plugin_sdk::{Context, Validator, Violation, register_validator};
use serde_json::Value;

/// At most this many connections per MB of `max_memory_mb` (1000 per 100 MB).
pub const MAX_CONNECTIONS_PER_MB: u64 = 10;

pub struct StoreRules;

impl Validator for StoreRules {
    fn validate(ctx: &Context, doc: &Value) -> Result<Vec<Violation>, String> {
        Ok(check(ctx, doc))
    }
}

register_validator!(StoreRules);

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
        .and_then(|l| l.get("max_memory_mb"))
        .and_then(Value::as_u64);
    let connections = limits
        .and_then(|l| l.get("max_connections"))
        .and_then(Value::as_u64);
    if let (Some(memory), Some(connections)) = (memory, connections) {
        out.extend(connections_per_memory(memory, connections));
    }
    if let Some(store_id) = doc.get("store_id").and_then(Value::as_str) {
        out.extend(store_id_matches_key(store_id, &ctx.key));
    }
    out
}

/// `max_connections <= max_memory_mb * 10`: each connection needs about 100 KB.
pub fn connections_per_memory(max_memory_mb: u64, max_connections: u64) -> Option<Violation> {
    let allowed = max_memory_mb.saturating_mul(MAX_CONNECTIONS_PER_MB);
    (max_connections > allowed).then(|| {
        Violation::new(
            "/resource_limits/max_connections",
            format!(
                "{max_connections} connections need more than {max_memory_mb} MB: at most \
                 {allowed} connections ({MAX_CONNECTIONS_PER_MB} per MB) are allowed"
            ),
        )
        .with_code("connections-per-memory")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scarab_plugin_sdk::validate_document;
    use serde_json::json;

    fn code(v: Option<Violation>) -> Option<String> {
        v.and_then(|v| v.code)
    }

    fn good() -> Value {
        json!({
            "store_id": "orders",
            "data_dir": "/var/lib/scarab/orders",
            "timeout_ms": 5000,
            "auto_start": true,
            "priority": "normal",
            "resource_limits": {"max_memory_mb": 512, "max_connections": 200}
        })
    }

    fn ctx(key: &str) -> Context {
        Context::new(key, "store", 1)
    }

    #[test]
    fn data_dir_rules() {
        for ok in [
            "/var/lib/scarab",
            "/srv/data",
            "/data",
            "/library",
            "/usrdata",
            "/var/./lib//x/",
            "/home/etc",
        ] {
            assert_eq!(data_dir(ok), None, "{ok}");
        }
        for (dir, want) in [
            ("var/lib", "data-dir-not-absolute"),
            ("", "data-dir-not-absolute"),
            ("./data", "data-dir-not-absolute"),
            ("~/data", "data-dir-not-absolute"),
            ("/", "data-dir-in-system-dir"),
            ("//", "data-dir-in-system-dir"),
            ("/./", "data-dir-in-system-dir"),
            ("/etc", "data-dir-in-system-dir"),
            ("/etc/scarab", "data-dir-in-system-dir"),
            ("//etc/scarab", "data-dir-in-system-dir"),
            ("/./usr/local/data", "data-dir-in-system-dir"),
            ("/lib64/", "data-dir-in-system-dir"),
            ("/proc/self", "data-dir-in-system-dir"),
            ("/srv/../etc", "data-dir-not-normalized"),
            ("/srv/data/..", "data-dir-not-normalized"),
        ] {
            let v = data_dir(dir).unwrap_or_else(|| panic!("{dir:?} accepted"));
            assert_eq!(v.path, "/data_dir");
            assert_eq!(v.code.as_deref(), Some(want), "{dir:?}");
        }
        for top in SYSTEM_DIRS {
            assert_eq!(
                code(data_dir(&format!("/{top}/x"))).as_deref(),
                Some("data-dir-in-system-dir")
            );
        }
    }

    #[test]
    fn auto_start_priority_rule() {
        assert_eq!(auto_start_priority(true, "high"), None);
        assert_eq!(auto_start_priority(true, "low"), None);
        assert_eq!(auto_start_priority(false, "low"), None);
        let v = auto_start_priority(false, "normal").unwrap();
        assert_eq!(v.path, "/priority");
        assert_eq!(v.code.as_deref(), Some("auto-start-priority"));
        // Not one of the enum's values: the schema reports that, this rule still applies.
        assert!(auto_start_priority(false, "urgent").is_some());
    }

    #[test]
    fn connections_per_memory_rule() {
        assert_eq!(connections_per_memory(100, 1000), None);
        assert_eq!(connections_per_memory(16, 160), None);
        assert_eq!(connections_per_memory(u64::MAX, u64::MAX), None);
        let v = connections_per_memory(100, 1001).unwrap();
        assert_eq!(v.path, "/resource_limits/max_connections");
        assert_eq!(v.code.as_deref(), Some("connections-per-memory"));
        assert!(connections_per_memory(0, 1).is_some());
    }

    #[test]
    fn store_id_key_rule() {
        assert_eq!(store_id_matches_key("orders", "stores/orders"), None);
        assert_eq!(store_id_matches_key("orders", "orders"), None);
        assert_eq!(store_id_matches_key("anything", ""), None);
        assert_eq!(store_id_matches_key("orders", "a/b/orders"), None);
        let v = store_id_matches_key("orders", "stores/payments").unwrap();
        assert_eq!(v.path, "/store_id");
        assert_eq!(v.code.as_deref(), Some("store-id-key-mismatch"));
        assert!(store_id_matches_key("orders", "stores/orders/").is_some());
        assert!(store_id_matches_key("orders", "stores/Orders").is_some());
    }

    #[test]
    fn good_document_passes() {
        assert_eq!(check(&ctx("stores/orders"), &good()), vec![]);
        assert_eq!(check(&ctx(""), &good()), vec![]);
    }

    #[test]
    fn reports_every_rule_at_once() {
        let doc = json!({
            "store_id": "orders",
            "data_dir": "/etc/orders",
            "timeout_ms": 5000,
            "auto_start": false,
            "priority": "high",
            "resource_limits": {"max_memory_mb": 16, "max_connections": 100000}
        });
        let mut codes: Vec<_> = check(&ctx("stores/payments"), &doc)
            .into_iter()
            .filter_map(|v| v.code)
            .collect();
        codes.sort();
        assert_eq!(
            codes,
            [
                "auto-start-priority",
                "connections-per-memory",
                "data-dir-in-system-dir",
                "store-id-key-mismatch"
            ]
        );
    }

    #[test]
    fn tolerates_anything() {
        let docs = [
            json!(null),
            json!(42),
            json!("text"),
            json!([good()]),
            json!({}),
            json!({"store_id": 7, "data_dir": ["/etc"], "auto_start": "no", "priority": 1}),
            json!({"resource_limits": "big"}),
            json!({"resource_limits": {"max_memory_mb": -5, "max_connections": 1.5}}),
            json!({"resource_limits": {"max_memory_mb": 1e300, "max_connections": 99999999999u64}}),
            json!({"auto_start": false}),
            json!({"priority": "high"}),
        ];
        for doc in docs {
            assert_eq!(check(&ctx("stores/orders"), &doc), vec![], "{doc}");
        }
    }

    #[test]
    fn through_the_sdk() {
        let text = r#"{"store_id":"orders","data_dir":"data","timeout_ms":1,"auto_start":true,
                       "priority":"low","resource_limits":{"max_memory_mb":16,"max_connections":1}}"#;
        let got = validate_document::<StoreRules>(&ctx("stores/orders"), text).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].code.as_deref(), Some("data-dir-not-absolute"));
        assert!(validate_document::<StoreRules>(&ctx("stores/orders"), "{").is_err());
    }

    /// Every sample of `schemas/store/v1.examples.json` gets exactly its `plugin` violations.
    #[test]
    fn schema_examples_agree() {
        let text = include_str!("../../../../schemas/store/v1.examples.json");
        examples::check_plugin_violations::<StoreRules>("store", text);
    }

    mod examples {
        include!("../../examples_check.rs");
    }
}
