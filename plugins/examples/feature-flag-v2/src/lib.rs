//! Validator and migrator plugin for `feature-flag` v2 (`schemas/feature-flag/v2.json`), the
//! Rust twin of the Python and JavaScript plugins in `plugins/python` and `plugins/js`.
//!
//! The rules of v1 (`rollout-while-disabled` at `/rollout/percent`, `allow-deny-overlap`,
//! `key-outside-flags`), and the migration:
//!
//! - **Upgrade (v1 → v2):** `rollout_percent: n` becomes `rollout: {"percent": n, "sticky":
//!   true}`, in its place; everything else is kept.
//! - **Downgrade (v2 → v1):** back, unless the rollout is not sticky (v1 cannot say so) or holds
//!   fields v1 cannot hold: those are refused with the reason.

use scarab_plugin_sdk::{Context, Migrator, Validator, Violation, register_migrator};
use serde_json::{Map, Value, json};

include!("../../feature_flag_rules.rs");

pub struct FeatureFlagV2;

impl Validator for FeatureFlagV2 {
    fn validate(ctx: &Context, doc: &Value) -> Result<Vec<Violation>, String> {
        Ok(check_feature_flag(ctx, doc, 2))
    }
}

/// `doc` with member `old` replaced by `new: value`, at the same place in key order.
fn rename(doc: Map<String, Value>, old: &str, new: &str, value: Value) -> Value {
    let mut value = Some(value);
    Value::Object(
        doc.into_iter()
            .map(|(k, v)| {
                if k == old {
                    (new.to_string(), value.take().unwrap_or(Value::Null))
                } else {
                    (k, v)
                }
            })
            .collect(),
    )
}

fn object(doc: Value, version: u32) -> Result<Map<String, Value>, String> {
    match doc {
        Value::Object(map) => Ok(map),
        other => Err(format!(
            "a version {version} feature flag is a JSON object, not {other}"
        )),
    }
}

pub const NOT_STICKY: &str =
    "cannot downgrade a non-sticky rollout: version 1 has no sticky setting";

impl Migrator for FeatureFlagV2 {
    const FROM_VERSION: u32 = 1;
    const DOWNGRADE: bool = true;

    fn upgrade(_ctx: &Context, doc: Value) -> Result<Value, String> {
        let doc = object(doc, 1)?;
        let Some(percent) = doc.get("rollout_percent").cloned() else {
            // Nothing to move; the v2 schema reports the missing rollout.
            return Ok(Value::Object(doc));
        };
        if doc.contains_key("rollout") {
            return Err(
                "the document has both rollout_percent and rollout: version 1 has no rollout field"
                    .into(),
            );
        }
        Ok(rename(
            doc,
            "rollout_percent",
            "rollout",
            json!({"percent": percent, "sticky": true}),
        ))
    }

    fn downgrade(_ctx: &Context, doc: Value) -> Result<Value, String> {
        let doc = object(doc, 2)?;
        let Some(rollout) = doc.get("rollout").cloned() else {
            return Ok(Value::Object(doc));
        };
        let Value::Object(rollout) = rollout else {
            return Err(format!(
                "rollout is {rollout}, not an object: there is no percentage to move to rollout_percent"
            ));
        };
        if doc.contains_key("rollout_percent") {
            return Err("the document has both rollout and rollout_percent: version 2 has no rollout_percent field".into());
        }
        if rollout.get("sticky") == Some(&Value::Bool(false)) {
            return Err(NOT_STICKY.into());
        }
        let extra: Vec<&str> = rollout
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "percent" && *k != "sticky")
            .collect();
        if !extra.is_empty() {
            return Err(format!(
                "rollout has fields that version 1 cannot hold: {}",
                extra.join(", ")
            ));
        }
        let Some(percent) = rollout.get("percent").cloned() else {
            return Err(
                "rollout has no percent: there is no percentage to move to rollout_percent".into(),
            );
        };
        Ok(rename(doc, "rollout", "rollout_percent", percent))
    }
}

register_migrator!(FeatureFlagV2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_examples_agree() {
        let text = include_str!("../../../../schemas/feature-flag/v2.examples.json");
        examples::check_plugin_violations::<FeatureFlagV2>("feature-flag", text);
    }

    /// Every valid v1 example upgrades to a flag this plugin accepts, and comes back.
    #[test]
    fn every_v1_example_upgrades_and_round_trips() {
        let text = include_str!("../../../../schemas/feature-flag/v1.examples.json");
        let examples: Value = serde_json::from_str(text).unwrap();
        let ctx = Context::new("flags/x", "feature-flag", 2);
        for ex in examples["valid"].as_array().unwrap() {
            let v2 = FeatureFlagV2::upgrade(&ctx, ex["value"].clone()).unwrap();
            assert!(
                FeatureFlagV2::validate(&ctx, &v2).unwrap().is_empty(),
                "{v2}"
            );
            assert_eq!(FeatureFlagV2::downgrade(&ctx, v2).unwrap(), ex["value"]);
        }
    }

    #[test]
    fn a_non_sticky_rollout_does_not_downgrade() {
        let ctx = Context::new("flags/x", "feature-flag", 1);
        let doc = json!({"enabled": true, "rollout": {"percent": 5, "sticky": false}});
        assert_eq!(FeatureFlagV2::downgrade(&ctx, doc), Err(NOT_STICKY.into()));
    }

    mod examples {
        include!("../../examples_check.rs");
    }
}
