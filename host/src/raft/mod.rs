//! Consensus: the openraft type configuration, the durable log store on fjall and the peer
//! network.
//!
//! Owns: how entries and votes are persisted (group-committed fsyncs) and how Raft RPCs travel.
//! Does not own: what an entry means (that is [`crate::store`]) or who may propose one
//! (that is [`crate::api`], after validation).

pub mod log_store;
pub mod network;
pub mod snapshot_policy;
pub mod state_machine;

use std::io;

/// Defined with the state that records them ([`crate::store`]).
pub use crate::store::{NodeId, NodeInfo};
pub use state_machine::StateMachine;

use crate::store::CommandResult;
use crate::store::command::{Command, CommandError};

openraft::declare_raft_types!(
    /// Scarab's Raft types: an entry carries the commands proposed together (group commit),
    /// applying it gives one result per command; snapshots are files on disk.
    pub TypeConfig:
        D = Vec<Command>,
        R = Vec<CommandResult>,
        NodeId = u64,
        Node = NodeInfo,
        SnapshotData = tokio::fs::File,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type Vote = openraft::Vote<NodeId>;

/// The gate before the log: `cmd`'s documents pass [`Command::check_documents`], and an
/// entry holding its shape ([`Command::shape`]: the command with its documents empty),
/// encoded as the log store encodes entries, decodes back to the same shape. A committed
/// entry that a node cannot decode stops that node for good (and every node that reaches
/// it), so nothing that fails here is ever proposed.
///
/// Why the shape: the documents are strings, and serde_json writes any string so that it
/// reads back the same (`any_string_reads_back_as_written` holds it to that), so what can
/// fail to decode is the structure around them: a nesting past serde_json's recursion limit
/// (what a probe once committed), a number, a variant. Sending the documents round too
/// escaped and unescaped every value once more: the round trip was 5.5 % of a node's CPU
/// under PUT c=64 (raft/DESIGN.md).
pub fn prove_encodes(cmd: &Command, max_depth: usize) -> Result<(), CommandError> {
    cmd.check_documents(max_depth)?;
    let shape = cmd.shape();
    let entry = Entry {
        log_id: LogId::default(),
        payload: openraft::EntryPayload::Normal(vec![shape]),
    };
    let bytes = serde_json::to_vec(&entry).map_err(|e| CommandError::Encoding(e.to_string()))?;
    let back: Entry =
        serde_json::from_slice(&bytes).map_err(|e| CommandError::Encoding(e.to_string()))?;
    match (back.payload, entry.payload) {
        (openraft::EntryPayload::Normal(back), openraft::EntryPayload::Normal(shape))
            if back == shape =>
        {
            Ok(())
        }
        _ => Err(CommandError::Encoding(
            "the entry decodes to another command".into(),
        )),
    }
}

/// Wraps an I/O-ish failure as the storage error openraft expects.
pub(crate) fn io_err(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    StorageError::from_io_error(subject, verb, io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::prove_encodes;
    use crate::store::{
        Command, Condition, MigrateBatch, MigrationWrite, Op, Precondition, PutConfig, PutSchema,
        Test, Txn, TxnOp,
    };

    /// Any JSON value, numbers spelt in every way JSON allows, up to 80 levels deep (past
    /// the API's 64, so both sides of the bound are drawn).
    fn json_text() -> impl Strategy<Value = String> {
        let number = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| format!("{n}0")),
            (any::<i32>(), 0u32..99).prop_map(|(m, e)| format!("{m}.{e}e{}", e as i32 - 50)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| f.to_string()),
        ];
        let leaf = prop_oneof![
            Just("null".to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            number,
            ".{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        leaf.prop_recursive(80, 400, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::btree_map("[a-z]{0,4}", inner, 0..4).prop_map(|m| {
                    let fields: Vec<String> = m
                        .into_iter()
                        .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }

    fn command(op: impl Into<Op>) -> Command {
        Command::new("prop".into(), 1, op.into())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever the API accepts (it passes the strict check and parses) goes into a value
        /// and a condition, and the command survives the log encoding unchanged.
        #[test]
        fn every_accepted_document_round_trips_through_the_log(text in json_text()) {
            let Ok(value) = crate::json::parse::<Value>(text.as_bytes(), crate::json::DEFAULT_MAX_DEPTH) else {
                return Ok(());
            };
            let compact = serde_json::to_string(&value).unwrap();
            let put = command(PutConfig {
                key: "k".into(),
                schema: "s".into(),
                schema_version: 1,
                plugin_digest: None,
                value: compact.clone(),
                precondition: Precondition::None,
            });
            prop_assert!(prove_encodes(&put, crate::json::DEFAULT_MAX_DEPTH).is_ok());
            let txn = command(Txn {
                conditions: vec![Condition {
                    key: "k".into(),
                    test: Test::ValueEquals { pointer: "".into(), equals: compact.clone() },
                }],
                ops: vec![TxnOp::Put {
                    key: "k".into(),
                    schema: "s".into(),
                    schema_version: 1,
                    plugin_digest: None,
                    value: compact.clone(),
                }],
            });
            prop_assert!(prove_encodes(&txn, crate::json::DEFAULT_MAX_DEPTH).is_ok());
            // The whole entry, documents and all, reads back as it was written.
            let entry = super::Entry {
                log_id: super::LogId::default(),
                payload: openraft::EntryPayload::Normal(vec![put.clone(), txn.clone()]),
            };
            let back: super::Entry = serde_json::from_slice(&serde_json::to_vec(&entry).unwrap()).unwrap();
            prop_assert!(matches!(back.payload, openraft::EntryPayload::Normal(c) if c == vec![put, txn]));
            // The stored text reads back as the same value.
            let back: Value = serde_json::from_str(&compact).unwrap();
            prop_assert_eq!(back, value);
        }

        /// What `prove_encodes` leaves out of its round trip: a command's documents are
        /// strings, and any string reads back from its encoding as it was written (control
        /// characters, quotes, backslashes, line separators and all), alone or inside an
        /// entry beside others.
        #[test]
        fn any_string_reads_back_as_written(
            chars in prop::collection::vec(any::<char>(), 0..64),
            other in "\\PC*",
        ) {
            let text: String = chars.into_iter().collect();
            let back: String = serde_json::from_slice(&serde_json::to_vec(&text).unwrap()).unwrap();
            prop_assert_eq!(&back, &text);
            let put = command(PutConfig {
                key: other.clone(),
                schema: "s".into(),
                schema_version: 1,
                plugin_digest: Some(other),
                value: text,
                precondition: Precondition::None,
            });
            let entry = super::Entry {
                log_id: super::LogId::default(),
                payload: openraft::EntryPayload::Normal(vec![put.clone()]),
            };
            let back: super::Entry = serde_json::from_slice(&serde_json::to_vec(&entry).unwrap()).unwrap();
            prop_assert!(matches!(back.payload, openraft::EntryPayload::Normal(c) if c == vec![put]));
        }

        /// Any bytes: the strict check answers (never panics), and what it passes parses.
        #[test]
        fn the_strict_check_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            if crate::json::check(&bytes, 8).is_ok() {
                let _ = serde_json::from_slice::<Value>(&bytes);
            }
        }
    }

    /// The shape keeps everything but the documents, and empties every one of them: a
    /// document the shape kept would be checked twice, a field it emptied that is not a
    /// document would go unproven.
    #[test]
    fn the_shape_empties_the_documents_and_nothing_else() {
        let txn = command(Txn {
            conditions: vec![Condition {
                key: "k".into(),
                test: Test::ValueEquals {
                    pointer: "/a".into(),
                    equals: "1".into(),
                },
            }],
            ops: vec![
                TxnOp::Put {
                    key: "k".into(),
                    schema: "s".into(),
                    schema_version: 1,
                    plugin_digest: Some("d".into()),
                    value: "{\"a\":1}".into(),
                },
                TxnOp::Delete { key: "j".into() },
            ],
        });
        let put = command(PutConfig {
            key: "k".into(),
            schema: "s".into(),
            schema_version: 2,
            plugin_digest: Some("d".into()),
            value: "[1]".into(),
            precondition: Precondition::Revision(7),
        });
        let schema = command(PutSchema {
            name: "s".into(),
            version: 3,
            schema: "{\"type\":\"object\"}".into(),
            plugin_digest: Some("d".into()),
            plugin: Some(vec![0, 97, 115, 109]),
            plugin_contract: None,
            refs: vec![],
        });
        let migrate = command(MigrateBatch {
            name: "s".into(),
            id: 4,
            writes: vec![MigrationWrite {
                key: "k".into(),
                expected_revision: 5,
                plugin_digest: Some("d".into()),
                value: "{\"v\":2}".into(),
            }],
            failures: vec![],
        });
        for cmd in [txn, put, schema, migrate] {
            let shape = cmd.shape();
            assert!(shape.documents().iter().all(|(_, text)| text.is_empty()));
            // Refill the emptied strings from the command: the shape is then the command, and
            // it took as many as the command has documents (all of them non-empty here).
            let mut encoded = serde_json::to_value(&shape).unwrap();
            let original = serde_json::to_value(&cmd).unwrap();
            let refilled = refill(&mut encoded, &original);
            assert_eq!(encoded, original);
            assert_eq!(refilled, cmd.documents().len());
        }
    }

    /// Copies into `shape` every string of `full` where `shape` has an empty one that `full`
    /// has not; returns how many.
    fn refill(shape: &mut Value, full: &Value) -> usize {
        match (shape, full) {
            (Value::String(s), Value::String(f)) if s.is_empty() && !f.is_empty() => {
                *s = f.clone();
                1
            }
            (Value::Array(s), Value::Array(f)) => {
                s.iter_mut().zip(f).map(|(s, f)| refill(s, f)).sum()
            }
            (Value::Object(s), Value::Object(f)) => s
                .iter_mut()
                .filter_map(|(k, v)| f.get(k).map(|f| refill(v, f)))
                .sum(),
            _ => 0,
        }
    }

    #[test]
    fn a_document_past_the_depth_never_enters_the_log() {
        let deep = "[".repeat(65) + &"]".repeat(65);
        let put = command(PutConfig {
            key: "k".into(),
            schema: "s".into(),
            schema_version: 1,
            plugin_digest: None,
            value: deep,
            precondition: Precondition::None,
        });
        assert!(prove_encodes(&put, 64).is_err());
        let not_json = command(PutConfig {
            key: "k".into(),
            schema: "s".into(),
            schema_version: 1,
            plugin_digest: None,
            value: "{".into(),
            precondition: Precondition::None,
        });
        assert!(prove_encodes(&not_json, 64).is_err());
    }
}
