//! `POST /v1/txn`: conditions on keys, then puts and deletes applied together as one revision,
//! or nothing at all.
//!
//! Every put is validated here exactly like a single write (JSON Schema, plugin, write
//! policy); the conditions are checked in apply, against the state the operations change, so
//! nothing can slip in between.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use scarab_types::{ErrorCode, TxnOpKind};
use serde::Deserialize;
use serde_json::Value;

use scarab_types::auth::Action;

use super::authn::Principal;
use super::configs::{
    ENVELOPE_SLACK, check_write_policy, checked_key, json_response, meta_view, value_text,
};
use super::{ApiError, AppState, caller, check_depth, parse_json, read_body, require_json};
use crate::store::{Condition, Test, Txn, TxnApplied, TxnOp, Validation};

/// `scarab_types::TxnRequest`, parsed more strictly: an unknown `op` is refused with the
/// operation's index (see [`OpBody::into_op`]), and a condition is not taken from a short
/// array (`scarab_types::Condition`, whose fields default, would take `["key", 1]`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnBody {
    #[serde(default)]
    conditions: Vec<ConditionBody>,
    ops: Vec<OpBody>,
}

/// `{"key", "revision"}`, `{"key", "exists"}` or `{"key", "pointer", "equals"}`
/// (`scarab_types::Condition`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionBody {
    key: String,
    revision: Option<u64>,
    exists: Option<bool>,
    pointer: Option<String>,
    equals: Option<Value>,
}

/// `{"op": "put", "key", "schema", "schema_version", "value"}` or `{"op": "delete", "key"}`
/// (`scarab_types::TxnOp`). A plain struct, not an internally tagged enum: serde buffers
/// those, and the buffer loses numbers kept as written (see `crate::json`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpBody {
    op: String,
    key: String,
    schema: Option<String>,
    schema_version: Option<u32>,
    value: Option<Value>,
}

enum TxnOpBody {
    Put {
        key: String,
        schema: String,
        schema_version: u32,
        value: Value,
    },
    Delete {
        key: String,
    },
}

impl OpBody {
    fn into_op(self, index: usize) -> Result<TxnOpBody, ApiError> {
        let bad = |m: &str| ApiError::malformed(format!("ops[{index}]: {m}"));
        match (
            self.op.as_str(),
            self.schema,
            self.schema_version,
            self.value,
        ) {
            ("put", Some(schema), Some(schema_version), Some(value)) => Ok(TxnOpBody::Put {
                key: self.key,
                schema,
                schema_version,
                value,
            }),
            ("put", ..) => Err(bad("a put needs schema, schema_version and value")),
            ("delete", None, None, None) => Ok(TxnOpBody::Delete { key: self.key }),
            ("delete", ..) => Err(bad("a delete takes only a key")),
            (other, ..) => Err(bad(&format!(
                "op must be \"put\" or \"delete\", not {other:?}"
            ))),
        }
    }
}

fn condition(state: &AppState, index: usize, c: ConditionBody) -> Result<Condition, ApiError> {
    checked_key(&c.key)?;
    let bad = |m: &str| ApiError::malformed(format!("conditions[{index}]: {m}"));
    let test = match (c.revision, c.exists, c.pointer, c.equals) {
        (Some(r), None, None, None) => Test::Revision(r),
        (None, Some(e), None, None) => Test::Exists(e),
        (None, None, Some(pointer), Some(equals)) => {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(bad(
                    "pointer must be a JSON pointer (\"\" or starting with /)",
                ));
            }
            check_depth(state, &equals, &format!("conditions[{index}].equals"))?;
            let equals = serde_json::to_string(&equals).expect("a JSON value serialises");
            Test::ValueEquals { pointer, equals }
        }
        _ => {
            return Err(bad(
                "give exactly one of revision, exists, or pointer with equals",
            ));
        }
    };
    Ok(Condition { key: c.key, test })
}

/// `POST /v1/txn`.
#[utoipa::path(post, path = "/v1/txn", operation_id = "txn", tag = "configs",
    params(("X-Scarab-Reason" = Option<String>, Header, description = "Why, kept in the audit trail.")),
    request_body(content = scarab_types::TxnRequest, content_type = "application/json"),
    responses((status = 200, description = "Every operation applied, at one revision.", body = scarab_types::TxnResponse)))]
pub async fn txn(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let mut caller = caller(&principal, &headers)?;
    let max_ops = state.config.max_txn_ops;
    let value_limit = state.config.max_value_bytes;
    let txn_limit = state.config.max_txn_bytes;
    // Room for the values written with whitespace, and for each operation's envelope.
    let body_limit = txn_limit
        .saturating_mul(2)
        .saturating_add(max_ops.saturating_mul(ENVELOPE_SLACK));
    let bytes = read_body(body, body_limit).await?;
    let TxnBody { conditions, ops } = parse_json(
        &state,
        &bytes,
        "{\"conditions\": [...], \"ops\": [{\"op\": \"put\"|\"delete\", \"key\": ...}]}",
    )?;
    if ops.is_empty() || ops.len() > max_ops || conditions.len() > max_ops {
        return Err(ApiError::new(
            ErrorCode::TxnTooLarge,
            format!(
                "a transaction has 1 to {max_ops} operations and at most {max_ops} conditions (--max-txn-ops); this one has {} and {}",
                ops.len(),
                conditions.len()
            ),
        ));
    }
    let conditions = conditions
        .into_iter()
        .enumerate()
        .map(|(i, c)| condition(&state, i, c))
        .collect::<Result<Vec<_>, _>>()?;
    // Every permission of every condition and operation, before anything is validated: a
    // condition reads its key (its outcome tells whether the key holds a value).
    for c in &conditions {
        principal.require(Action::ConfigRead, &c.key)?;
    }
    for op in &ops {
        let action = match op.op.as_str() {
            "delete" => Action::ConfigDelete,
            _ => Action::ConfigWrite,
        };
        principal.require(action, &op.key)?;
    }
    // Bytes of values the transaction carries, checked before anything is validated.
    let mut carried: usize = conditions
        .iter()
        .map(|c| match &c.test {
            Test::ValueEquals { equals, .. } => equals.len(),
            _ => 0,
        })
        .sum();
    let too_large = |carried: usize| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the transaction carries at least {carried} bytes of values; at most {txn_limit} are allowed (--max-txn-bytes)"
            ),
        )
    };
    if carried > txn_limit {
        return Err(too_large(carried));
    }
    let mut seen = std::collections::HashSet::new();
    let mut txn_ops = Vec::with_capacity(ops.len());
    let mut violations = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        let op = op.into_op(i)?;
        let key = match &op {
            TxnOpBody::Put { key, .. } | TxnOpBody::Delete { key } => key.clone(),
        };
        checked_key(&key)?;
        if !seen.insert(key.clone()) {
            return Err(ApiError::malformed(format!(
                "ops[{i}]: key {key} appears in more than one operation"
            )));
        }
        match op {
            TxnOpBody::Delete { key } => txn_ops.push(TxnOp::Delete { key }),
            TxnOpBody::Put {
                key,
                schema,
                schema_version,
                value,
            } => {
                check_write_policy(&state, &schema, schema_version)?;
                check_depth(&state, &value, &format!("ops[{i}].value"))?;
                let text = value_text(&value, value_limit)?;
                carried += text.len();
                if carried > txn_limit {
                    return Err(too_large(carried));
                }
                let (verdict, text) = state
                    .validate_write(&schema, schema_version, &key, value, text)
                    .await?;
                // Paths point into the request, so that a client sees which put failed.
                violations.extend(verdict.violations.into_iter().map(|mut v| {
                    v.path = format!("/ops/{i}/value{}", v.path);
                    v
                }));
                caller.context.validations.push(Validation {
                    key: key.clone(),
                    elapsed_us: verdict.elapsed_us,
                });
                txn_ops.push(TxnOp::Put {
                    key,
                    schema,
                    schema_version,
                    plugin_digest: verdict.plugin_digest,
                    value: text,
                });
            }
        }
    }
    if !violations.is_empty() {
        return Err(ApiError::validation(violations));
    }
    let txn = Txn {
        conditions,
        ops: txn_ops,
    };
    let TxnApplied { revision, results } = state.propose(caller, txn).await?;
    let body = scarab_types::TxnResponse {
        revision,
        results: results
            .iter()
            .map(|meta| scarab_types::TxnResult {
                op: if meta.deleted {
                    TxnOpKind::Delete
                } else {
                    TxnOpKind::Put
                },
                meta: meta_view(meta),
            })
            .collect(),
    };
    Ok(state.with_revision(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("serialises"),
    )))
}
