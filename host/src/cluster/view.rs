//! What a node says about the cluster and about itself: the views `GET /v1/cluster` and
//! `/v1/cluster/self` return, and a node's request to join.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Cluster, Forwarded};
use crate::raft::NodeId;

/// A node asking to become a member.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct JoinRequest {
    pub node_id: NodeId,
    pub api: String,
    pub peer: String,
    /// Join as a voter once caught up (the default), or stay a learner.
    #[serde(default = "yes")]
    pub voter: bool,
    /// Sent by a node that has no Raft state (a first start, or a lost data directory). Such
    /// a node must not be taken back as a voter it already is: it forgot what it
    /// acknowledged, and with its vote a leader could be elected without committed entries.
    #[serde(default)]
    pub without_state: bool,
}

fn yes() -> bool {
    true
}

/// What a node says about itself before it belongs to a cluster (for bootstrap-expect).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SelfInfo {
    pub node_id: NodeId,
    pub api: String,
    pub peer: String,
    pub initialized: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct MemberView {
    pub node_id: NodeId,
    pub api: String,
    pub peer: String,
    /// `voter` or `learner`.
    pub role: String,
    pub leader: bool,
    /// The last log index the leader knows this member holds (leader's view).
    pub matched_index: Option<u64>,
    /// How many entries this member is behind the leader's last log.
    pub lag: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ClusterView {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub members: Vec<MemberView>,
    /// The node that produced this view (the leader, when one is known).
    pub served_by: NodeId,
    /// The voter sets of the configuration in force: one, or two while a change is under way
    /// (joint consensus: every decision then needs a majority of each).
    #[serde(default)]
    pub voter_sets: Vec<BTreeSet<NodeId>>,
    /// The log index of that configuration.
    #[serde(default)]
    pub membership_index: Option<u64>,
    /// Whether that configuration is known to be committed (this node has applied it). A
    /// change that stays uncommitted blocks every other change: see `cluster/DESIGN.md`.
    /// (Absent from the view of an older leader: then not claimed to be stuck.)
    #[serde(default = "yes")]
    pub membership_committed: bool,
}

impl Cluster {
    /// This node's view of the cluster (the leader's view has matched indexes and lag).
    pub fn view(&self) -> ClusterView {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let matched: BTreeMap<NodeId, Option<u64>> = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default();
        let last = m.last_log_index;
        let members = membership
            .nodes()
            .map(|(id, info)| {
                let matched_index = if *id == self.me {
                    last
                } else {
                    matched.get(id).copied().flatten()
                };
                MemberView {
                    node_id: *id,
                    api: info.api.clone(),
                    peer: info.peer.clone(),
                    role: if voters.contains(id) {
                        "voter"
                    } else {
                        "learner"
                    }
                    .to_string(),
                    leader: m.current_leader == Some(*id),
                    matched_index,
                    lag: match (last, matched_index) {
                        (Some(l), Some(mi)) => Some(l.saturating_sub(mi)),
                        (Some(l), None) if m.current_leader == Some(self.me) => Some(l),
                        _ => None,
                    },
                }
            })
            .collect();
        let membership_index = m.membership_config.log_id().as_ref().map(|l| l.index);
        ClusterView {
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: last,
            members,
            served_by: self.me,
            voter_sets: membership.get_joint_config().clone(),
            membership_index,
            membership_committed: membership_index <= m.last_applied.as_ref().map(|l| l.index),
        }
    }

    /// The cluster view from the leader when one is reachable (it alone knows every member's
    /// matched index), else this node's own.
    pub async fn leader_view(&self) -> ClusterView {
        if let Some((id, leader)) = self.leader()
            && id != self.me
            && let Ok(Forwarded::Ok(v)) = self
                .forward::<(), ClusterView>(&leader, "/internal/view", &(), Duration::from_secs(2))
                .await
        {
            return v;
        }
        self.view()
    }
}
