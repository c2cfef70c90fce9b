//! The Raft positions and membership as the state machine records them: the id and the
//! addresses of a member, and openraft's log id, membership and snapshot metadata over those.
//!
//! Owns: these types, because they are part of the stored state (`SmMeta` and the snapshot
//! header hold them) and so of its format. `crate::raft` re-exports them for its type
//! configuration. Does not own: the log, elections or the network (`crate::raft`), nor who may
//! join (`crate::cluster`).

use serde::{Deserialize, Serialize};

/// A member's id.
pub type NodeId = u64;

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

pub type LogId = openraft::LogId<NodeId>;
pub type Membership = openraft::Membership<NodeId, NodeInfo>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
