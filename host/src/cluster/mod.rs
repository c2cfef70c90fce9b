//! Cluster membership and serving from any node: forming a cluster (bootstrap, join,
//! bootstrap-expect), adding, promoting and removing members, and forwarding what only the
//! leader can do (proposals, read-index) to it.
//!
//! Owns: who is in the cluster and how a request reaches the leader. Does not own: the Raft
//! protocol itself (openraft, [`crate::raft`]) or what a proposal means ([`crate::store`]).

mod batch;
pub mod form;
mod routes;

pub use routes::router;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use crate::raft::{NodeId, NodeInfo, Raft};
use crate::store::{Command, CommandResult};

/// Why a cluster operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no leader is known; the cluster may be electing one or may have lost its quorum")]
    NoLeader,
    #[error("{0} did not complete in time; its outcome is unknown")]
    Timeout(&'static str),
    #[error("node {id} is already a member with other addresses ({existing}); remove it first")]
    Conflict { id: NodeId, existing: String },
    #[error("{0}")]
    Refused(String),
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    #[error("cannot reach the leader: {0}")]
    Forward(String),
    #[error("the leader is unreachable: {0}")]
    Unreachable(String),
    #[error("consensus: {0}")]
    Raft(String),
}

/// The answer of the leader to a forwarded request.
#[derive(Serialize, Deserialize, Debug)]
pub enum Forwarded<T> {
    Ok(T),
    /// The receiver is not (or no longer) the leader; try again.
    NotLeader,
    /// Refused for a reason that retrying will not change (a conflicting member).
    Conflict(String),
    Failed(String),
}

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
}

/// Handle used by the API and by start-up.
#[derive(Clone)]
pub struct Cluster {
    raft: Raft,
    me: NodeId,
    info: NodeInfo,
    http: reqwest::Client,
    batcher: batch::Batcher,
    read_index: batch::ReadIndexBatcher,
    /// How long a write or a membership change may wait for a leader and a commit.
    write_timeout: Duration,
    /// How long a linearizable read may wait for its read index.
    read_timeout: Duration,
}

impl Cluster {
    /// `local_ip`: where forwarded requests come from (the peer listener's IP, as for Raft
    /// RPCs), so that every peer connection this node opens has the same source.
    pub fn new(
        raft: Raft,
        me: NodeId,
        info: NodeInfo,
        local_ip: Option<std::net::IpAddr>,
        write_timeout: Duration,
        read_timeout: Duration,
    ) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .local_address(local_ip)
            .build()
            .expect("build forwarding http client");
        Self {
            batcher: batch::Batcher::start(raft.clone()),
            read_index: batch::ReadIndexBatcher::start(raft.clone(), read_timeout),
            raft,
            me,
            info,
            http,
            write_timeout,
            read_timeout,
        }
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn node_id(&self) -> NodeId {
        self.me
    }

    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// The leader and its addresses, if known.
    pub fn leader(&self) -> Option<(NodeId, NodeInfo)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let info = m.membership_config.membership().get_node(&id).cloned()?;
        Some((id, info))
    }

    /// Waits until a leader is known, up to `deadline`.
    async fn wait_leader(&self, deadline: Instant) -> Result<(NodeId, NodeInfo), ClusterError> {
        let mut rx = self.raft.metrics();
        loop {
            if let Some(l) = self.leader() {
                return Ok(l);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClusterError::NoLeader);
            }
            let _ = tokio::time::timeout(left, rx.changed()).await;
        }
    }

    async fn forward<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        leader: &NodeInfo,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Forwarded<Resp>, ClusterError> {
        let resp = self
            .http
            .post(format!("{}{path}", leader.peer))
            .timeout(timeout)
            .json(req)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    // Never delivered: safe to retry once a leader is known again.
                    ClusterError::Unreachable(e.to_string())
                } else if e.is_timeout() {
                    ClusterError::Timeout("the forwarded request")
                } else {
                    ClusterError::Forward(e.to_string())
                }
            })?;
        resp.json()
            .await
            .map_err(|e| ClusterError::Forward(e.to_string()))
    }

    /// Forwards, treating an unreachable leader like "not the leader": the request was never
    /// delivered, so it is retried (until the deadline) once the cluster knows a leader again.
    async fn forward_retryable<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        leader: &NodeInfo,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Forwarded<Resp>, ClusterError> {
        match self.forward(leader, path, req, timeout).await {
            Err(ClusterError::Unreachable(e)) => {
                tracing::debug!(error = %e, "leader unreachable; waiting for a leader");
                Ok(Forwarded::NotLeader)
            }
            other => other,
        }
    }

    /// Proposes `cmd` through the leader, wherever it is, and returns the applied result.
    /// Retries only when the answer is a definite "not the leader"; a timeout is reported as
    /// such (the command may or may not have been committed).
    pub async fn propose(&self, cmd: Command) -> Result<CommandResult, ClusterError> {
        let deadline = Instant::now() + self.write_timeout;
        loop {
            let (leader_id, leader) = self.wait_leader(deadline).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = if leader_id == self.me {
                match tokio::time::timeout(left, self.batcher.propose(cmd.clone())).await {
                    Err(_) => return Err(ClusterError::Timeout("the write")),
                    Ok(outcome) => outcome,
                }
            } else {
                self.forward_retryable(&leader, "/internal/propose", &cmd, left)
                    .await?
            };
            match outcome {
                Forwarded::Ok(r) => return Ok(r),
                Forwarded::Failed(e) | Forwarded::Conflict(e) => return Err(ClusterError::Raft(e)),
                Forwarded::NotLeader => {
                    if Instant::now() >= deadline {
                        return Err(ClusterError::NoLeader);
                    }
                    // Leadership is moving: give the election a moment.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// The leader side of a forwarded proposal.
    pub async fn propose_as_leader(&self, cmd: Command) -> Forwarded<CommandResult> {
        match tokio::time::timeout(self.write_timeout, self.batcher.propose(cmd)).await {
            Err(_) => {
                Forwarded::Failed("the write did not commit in time; its outcome is unknown".into())
            }
            Ok(outcome) => outcome,
        }
    }

    /// The leader side of a read-index request: confirms leadership with a quorum and returns
    /// the index a linearizable read must wait for.
    pub async fn read_index_as_leader(&self) -> Forwarded<u64> {
        self.read_index.read_index().await
    }

    /// Waits until this node's state machine may serve a linearizable read: the leader
    /// confirms its leadership with a quorum and names a read index; this node waits until it
    /// has applied that index. Works on the leader and on followers.
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.read_timeout;
        loop {
            let (leader_id, leader) = self.wait_leader(deadline).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = if leader_id == self.me {
                self.read_index_as_leader().await
            } else {
                self.forward_retryable::<(), u64>(&leader, "/internal/read-index", &(), left)
                    .await?
            };
            match outcome {
                Forwarded::Ok(index) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    return self
                        .raft
                        .wait(Some(left))
                        .applied_index_at_least(Some(index), "read index")
                        .await
                        .map(|_| ())
                        .map_err(|_| ClusterError::Timeout("catching up to the read index"));
                }
                Forwarded::Failed(e) | Forwarded::Conflict(e) => return Err(ClusterError::Raft(e)),
                Forwarded::NotLeader if Instant::now() >= deadline => {
                    return Err(ClusterError::NoLeader);
                }
                Forwarded::NotLeader => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Sends a membership change to the leader and maps its answer.
    async fn forward_membership<Req: Serialize>(
        &self,
        leader: &NodeInfo,
        path: &str,
        req: &Req,
    ) -> Result<ClusterView, ClusterError> {
        match self.forward(leader, path, req, self.write_timeout).await? {
            Forwarded::Ok(v) => Ok(v),
            Forwarded::NotLeader => Err(ClusterError::NoLeader),
            Forwarded::Conflict(e) => Err(ClusterError::Refused(e)),
            Forwarded::Failed(e) => Err(ClusterError::Raft(e)),
        }
    }

    /// Adds a node (as a learner that catches up, then, if `voter`, promoted). Idempotent for
    /// a node that is already a member with the same addresses. Runs on the leader; followers
    /// forward it.
    pub async fn add_member(&self, req: JoinRequest) -> Result<ClusterView, ClusterError> {
        let deadline = Instant::now() + self.write_timeout;
        let (leader_id, leader) = self.wait_leader(deadline).await?;
        if leader_id != self.me {
            return self
                .forward_membership(&leader, "/internal/add-member", &req)
                .await;
        }
        let info = NodeInfo {
            api: req.api.clone(),
            peer: req.peer.clone(),
        };
        let membership = self.raft.metrics().borrow().membership_config.clone();
        if let Some(existing) = membership.membership().get_node(&req.node_id)
            && *existing != info
        {
            return Err(ClusterError::Conflict {
                id: req.node_id,
                existing: existing.to_string(),
            });
        }
        let is_voter = membership
            .membership()
            .voter_ids()
            .any(|v| v == req.node_id);
        if is_voter && req.without_state {
            return Err(ClusterError::Refused(format!(
                "node {id} is a voter of this cluster but came back without its Raft state (a lost or replaced data directory): as a voter it could help elect a leader that lacks committed entries. Remove it first (scarab cluster remove {id}), then start it again to join",
                id = req.node_id
            )));
        }
        let left = || deadline.saturating_duration_since(Instant::now());
        if !is_voter {
            // Blocking: returns once the learner has caught up with the leader's log.
            match tokio::time::timeout(left(), self.raft.add_learner(req.node_id, info, true)).await
            {
                Err(_) => return Err(ClusterError::Timeout("adding the learner")),
                Ok(Err(e)) => return Err(ClusterError::Raft(e.to_string())),
                Ok(Ok(_)) => {}
            }
            if req.voter {
                let promote = ChangeMembers::AddVoterIds(BTreeSet::from([req.node_id]));
                match tokio::time::timeout(left(), self.raft.change_membership(promote, false))
                    .await
                {
                    Err(_) => return Err(ClusterError::Timeout("promoting the learner")),
                    Ok(Err(e)) => return Err(ClusterError::Raft(e.to_string())),
                    Ok(Ok(_)) => {}
                }
            }
        }
        Ok(self.view())
    }

    /// Makes a learner a voter.
    pub async fn promote(&self, id: NodeId) -> Result<ClusterView, ClusterError> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let info = m
            .membership()
            .get_node(&id)
            .cloned()
            .ok_or(ClusterError::NotMember(id))?;
        self.add_member(JoinRequest {
            node_id: id,
            api: info.api,
            peer: info.peer,
            voter: true,
            without_state: false,
        })
        .await
    }

    /// Removes a member (voter or learner). Removing the leader makes it step down once the
    /// new configuration is committed; the remaining voters elect a new leader.
    pub async fn remove(&self, id: NodeId) -> Result<ClusterView, ClusterError> {
        let deadline = Instant::now() + self.write_timeout;
        let (leader_id, leader) = self.wait_leader(deadline).await?;
        if leader_id != self.me {
            return self
                .forward_membership(&leader, "/internal/remove-member", &id)
                .await;
        }
        let m = self.raft.metrics().borrow().membership_config.clone();
        let membership = m.membership();
        if membership.get_node(&id).is_none() {
            return Err(ClusterError::NotMember(id));
        }
        let change = if membership.voter_ids().any(|v| v == id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        match tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.raft.change_membership(change, false),
        )
        .await
        {
            Err(_) => Err(ClusterError::Timeout("removing the member")),
            Ok(Err(e)) => Err(ClusterError::Raft(e.to_string())),
            Ok(Ok(_)) => Ok(self.view()),
        }
    }

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
        ClusterView {
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: last,
            members,
            served_by: self.me,
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
