//! Consensus: the openraft type configuration, the durable log store on fjall and the peer
//! network.
//!
//! Owns: how entries and votes are persisted (group-committed fsyncs) and how Raft RPCs travel.
//! Does not own: what an entry means (that is [`crate::store`]) or who may propose one
//! (that is [`crate::api`], after validation).

pub mod log_store;
pub mod network;

use std::io;

use serde::{Deserialize, Serialize};

use crate::store::command::{Command, CommandResult};

/// How to reach a member: its client API and its peer (Raft RPC) endpoint, as base URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub api: String,
    pub peer: String,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "api {} peer {}", self.api, self.peer)
    }
}

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

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type Vote = openraft::Vote<NodeId>;

/// Wraps an I/O-ish failure as the storage error openraft expects.
pub(crate) fn io_err(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    StorageError::from_io_error(subject, verb, io::Error::other(e.to_string()))
}
