//! Test plugin: version 2 of the test schema `chain` (`{"a": ..}` at v1, `{"b": ..}` at v2,
//! `{"c": ..}` at v3). It renames `a` to `b` and back, so that the host's tests can convert
//! across a chain of three versions, up and down. A document whose field is the string
//! `"refuse"` cannot be upgraded.

use scarab_plugin_sdk::{Context, Migrator, Validator, Violation, register_migrator};
use serde_json::Value;

pub struct ChainV2;

/// Moves the value of `from` to `to`; refuses the value `"refuse"`.
pub fn rename(doc: Value, from: &str, to: &str) -> Result<Value, String> {
    let Value::Object(mut map) = doc else {
        return Err("a chain document is an object".into());
    };
    let value = map.remove(from).ok_or(format!("{from} is missing"))?;
    if value == "refuse" {
        return Err(format!("{from} is \"refuse\", which cannot be converted"));
    }
    map.insert(to.into(), value);
    Ok(Value::Object(map))
}

impl Validator for ChainV2 {
    fn validate(_: &Context, doc: &Value) -> Result<Vec<Violation>, String> {
        Ok(match doc.get("b") {
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n < 0) => {
                vec![Violation::new("/b", "b must not be negative").with_code("chain-negative")]
            }
            _ => vec![],
        })
    }
}

impl Migrator for ChainV2 {
    const FROM_VERSION: u32 = 1;
    const DOWNGRADE: bool = true;

    fn upgrade(_: &Context, doc: Value) -> Result<Value, String> {
        rename(doc, "a", "b")
    }

    fn downgrade(_: &Context, doc: Value) -> Result<Value, String> {
        rename(doc, "b", "a")
    }
}

register_migrator!(ChainV2);
