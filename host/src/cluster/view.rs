//! What a node says about the cluster: the view `GET /v1/cluster` returns (and every
//! membership change answers with), built from the Raft metrics. The view, what a node says
//! about itself (`/v1/cluster/self`) and a node's request to join are the wire types of
//! `scarab-types`, which peers exchange too.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use scarab_types::{ClusterView, MemberRole, MemberView};

use super::{Cluster, Forwarded};
use crate::raft::NodeId;

/// A member the leader has not heard from in ten heartbeat intervals, and at least a second,
/// is unreachable.
fn reachable_within(heartbeat_ms: u64) -> Duration {
    Duration::from_millis(heartbeat_ms.saturating_mul(10).max(1000))
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
        let leading = m.current_leader == Some(self.me);
        let contacts = self.transport.contacts();
        let within = reachable_within(self.raft.config().heartbeat_interval);
        let members = membership
            .nodes()
            .map(|(id, info)| {
                let matched_index = if *id == self.me {
                    last
                } else {
                    matched.get(id).copied().flatten()
                };
                let since = (*id != self.me).then(|| contacts.since(*id)).flatten();
                let reachable = if *id == self.me {
                    Some(true)
                } else if leading {
                    Some(since.is_some_and(|s| s < within))
                } else {
                    None
                };
                MemberView {
                    node_id: *id,
                    api: info.api.clone(),
                    peer: info.peer.clone(),
                    role: if voters.contains(id) {
                        MemberRole::Voter
                    } else {
                        MemberRole::Learner
                    },
                    leader: m.current_leader == Some(*id),
                    matched_index,
                    lag: match (last, matched_index) {
                        (Some(l), Some(mi)) => Some(l.saturating_sub(mi)),
                        (Some(l), None) if m.current_leader == Some(self.me) => Some(l),
                        _ => None,
                    },
                    reachable,
                    last_contact_ms: since.map(|s| s.as_millis() as u64),
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
