//! Test plugin: version 3 of the test schema `chain` (see `chain-v2`): renames `b` to `c` and
//! back.

use scarab_plugin_sdk::{Context, Migrator, Validator, Violation, register_migrator};
use serde_json::Value;

pub struct ChainV3;

impl Validator for ChainV3 {
    fn validate(_: &Context, _: &Value) -> Result<Vec<Violation>, String> {
        Ok(vec![])
    }
}

impl Migrator for ChainV3 {
    const FROM_VERSION: u32 = 2;
    const DOWNGRADE: bool = true;

    fn upgrade(_: &Context, doc: Value) -> Result<Value, String> {
        rename(doc, "b", "c")
    }

    fn downgrade(_: &Context, doc: Value) -> Result<Value, String> {
        rename(doc, "c", "b")
    }
}

register_migrator!(ChainV3);

fn rename(doc: Value, from: &str, to: &str) -> Result<Value, String> {
    let Value::Object(mut map) = doc else {
        return Err("a chain document is an object".into());
    };
    let value = map.remove(from).ok_or(format!("{from} is missing"))?;
    map.insert(to.into(), value);
    Ok(Value::Object(map))
}
