//! `POST /v1/txn`: conditions, then puts and deletes applied together at one revision.
//!
//! The request types are plain structs, not tagged enums: the server parses numbers as
//! written (`arbitrary_precision`), which serde's buffering of tagged enums would lose.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::config::{ConfigMeta, required, take};

/// The body of `POST /v1/txn`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TxnRequest {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub ops: Vec<TxnOp>,
}

impl TxnRequest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a condition.
    pub fn when(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// Adds an operation.
    pub fn op(mut self, op: TxnOp) -> Self {
        self.ops.push(op);
        self
    }
}

/// A condition on a key, checked when the transaction is applied: give exactly one of
/// `revision`, `exists`, or `pointer` with `equals` (the constructors do).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub key: String,
    /// The key's revision is this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub revision: Option<u64>,
    /// The key exists (or does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub exists: Option<bool>,
    /// A JSON pointer into the key's value (`""` or starting with `/`)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub pointer: Option<String>,
    /// …whose value equals this (numbers compared by value: `1` equals `1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub equals: Option<Value>,
}

impl Condition {
    /// The key's current revision is `revision`.
    pub fn revision(key: impl Into<String>, revision: u64) -> Self {
        Self {
            revision: Some(revision),
            ..Self::bare(key)
        }
    }

    /// The key exists (`true`) or does not (`false`).
    pub fn exists(key: impl Into<String>, exists: bool) -> Self {
        Self {
            exists: Some(exists),
            ..Self::bare(key)
        }
    }

    /// The value at `pointer` in the key's value equals `equals`.
    pub fn equals(key: impl Into<String>, pointer: impl Into<String>, equals: Value) -> Self {
        Self {
            pointer: Some(pointer.into()),
            equals: Some(equals),
            ..Self::bare(key)
        }
    }

    fn bare(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            revision: None,
            exists: None,
            pointer: None,
            equals: None,
        }
    }
}

/// What an operation does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TxnOpKind {
    Put,
    Delete,
}

/// An operation: `{"op": "put", "key", "schema", "schema_version", "value"}` or
/// `{"op": "delete", "key"}` (the constructors make either).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TxnOp {
    pub op: TxnOpKind,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub schema_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub value: Option<Value>,
}

impl TxnOp {
    /// Writes `value` at `key`, validated at `schema` version `schema_version`.
    pub fn put(
        key: impl Into<String>,
        schema: impl Into<String>,
        schema_version: u32,
        value: Value,
    ) -> Self {
        Self {
            op: TxnOpKind::Put,
            key: key.into(),
            schema: Some(schema.into()),
            schema_version: Some(schema_version),
            value: Some(value),
        }
    }

    /// Deletes `key` (which must exist, else the transaction is 404).
    pub fn delete(key: impl Into<String>) -> Self {
        Self {
            op: TxnOpKind::Delete,
            key: key.into(),
            schema: None,
            schema_version: None,
            value: None,
        }
    }
}

/// The answer to a transaction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TxnResponse {
    /// The one revision of every change.
    pub revision: u64,
    /// One per operation, in order.
    pub results: Vec<TxnResult>,
}

/// The outcome of one operation: the key's metadata after it.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(try_from = "Map<String, Value>")]
pub struct TxnResult {
    pub op: TxnOpKind,
    pub meta: ConfigMeta,
}

impl TryFrom<Map<String, Value>> for TxnResult {
    type Error = serde_json::Error;

    fn try_from(mut map: Map<String, Value>) -> Result<Self, Self::Error> {
        let op = required(take(&mut map, "op")?, "op")?;
        Ok(Self {
            op,
            meta: serde_json::from_value(Value::Object(map))?,
        })
    }
}

impl Serialize for TxnResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.meta.serialize_fields(&mut map)?;
        map.serialize_entry("op", &self.op)?;
        map.end()
    }
}

/// The fields of [`ConfigMeta`] and `op`, in one flat object.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TxnResult {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::openapi::{Flat, described, reference};
        Flat::of::<ConfigMeta>(
            "The outcome of one operation: the key's metadata after it (the fields of \
             `ConfigMeta`) and the operation, in one object.",
        )
        .property(
            "op",
            described(reference::<TxnOpKind>().into(), "The operation."),
            true,
        )
        .build()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TxnResult {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("TxnResult")
    }

    fn schemas(schemas: &mut crate::openapi::Schemas) {
        <ConfigMeta as utoipa::ToSchema>::schemas(schemas);
        crate::openapi::collect::<TxnOpKind>(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_request_is_what_the_readme_shows() {
        let txn = TxnRequest::new()
            .when(Condition::revision("stores/orders", 42))
            .when(Condition::exists("stores/audit", false))
            .when(Condition::equals("flags/checkout", "/enabled", json!(true)))
            .op(TxnOp::put("stores/orders", "store", 1, json!({"n": 1})))
            .op(TxnOp::delete("stores/legacy"));
        let text = serde_json::to_string(&txn).unwrap();
        assert_eq!(
            text,
            r#"{"conditions":[{"key":"stores/orders","revision":42},{"key":"stores/audit","exists":false},{"key":"flags/checkout","pointer":"/enabled","equals":true}],"ops":[{"op":"put","key":"stores/orders","schema":"store","schema_version":1,"value":{"n":1}},{"op":"delete","key":"stores/legacy"}]}"#
        );
        assert_eq!(serde_json::from_str::<TxnRequest>(&text).unwrap(), txn);
    }

    #[test]
    fn results_carry_their_op() {
        let text = r#"{"revision":43,"results":[{"key":"a","schema":"s","schema_version":1,"revision":43,"key_version":2,"created_at":"t","created_by":"x","updated_at":"t","updated_by":"x","plugin_digest":null,"op":"put"}]}"#;
        let r: TxnResponse = serde_json::from_str(text).unwrap();
        assert_eq!(r.results[0].op, TxnOpKind::Put);
        assert_eq!(r.results[0].meta.key_version, 2);
        assert_eq!(serde_json::to_string(&r).unwrap(), text);
    }
}
