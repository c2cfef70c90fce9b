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
/// entry holding it, encoded as the log store encodes entries, decodes back to the same
/// command. A committed entry that a node cannot decode stops that node for good (and every
/// node that reaches it), so nothing that fails here is ever proposed.
pub fn prove_encodes(cmd: &Command, max_depth: usize) -> Result<(), CommandError> {
    cmd.check_documents(max_depth)?;
    let entry = Entry {
        log_id: LogId::default(),
        payload: openraft::EntryPayload::Normal(vec![cmd.clone()]),
    };
    let bytes = serde_json::to_vec(&entry).map_err(|e| CommandError::Encoding(e.to_string()))?;
    let back: Entry =
        serde_json::from_slice(&bytes).map_err(|e| CommandError::Encoding(e.to_string()))?;
    match back.payload {
        openraft::EntryPayload::Normal(cmds) if cmds.len() == 1 && cmds[0] == *cmd => Ok(()),
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
    use crate::store::{Command, Condition, Op, Precondition, PutConfig, Test, Txn, TxnOp};

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
            // The stored text reads back as the same value.
            let back: Value = serde_json::from_str(&compact).unwrap();
            prop_assert_eq!(back, value);
        }

        /// Any bytes: the strict check answers (never panics), and what it passes parses.
        #[test]
        fn the_strict_check_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            if crate::json::check(&bytes, 8).is_ok() {
                let _ = serde_json::from_slice::<Value>(&bytes);
            }
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
