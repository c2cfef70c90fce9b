//! Cluster membership and serving from any node: forming a cluster (bootstrap, join,
//! bootstrap-expect), adding, promoting and removing members, and forwarding what only the
//! leader can do (proposals, read-index) to it.
//!
//! Owns: who is in the cluster and how a request reaches the leader. Does not own: the Raft
//! protocol itself (openraft, [`crate::raft`]) or what a proposal means ([`crate::store`]).

mod batch;
mod error;
pub mod form;
mod guard;
mod membership;
mod routes;
mod view;

pub use error::{ClusterError, Forwarded, Stage};
pub use guard::guard;
pub use routes::router;
pub use scarab_types::{ClusterView, JoinRequest, SelfInfo};

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::raft::{NodeId, NodeInfo, Raft};
use crate::store::{Command, CommandResult};
use crate::transport::PeerTransport;

/// How long probing a member's endpoints may take.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the leader looks for a membership change left half-done, and how long such a
/// change stays as it is before the leader finishes it.
pub(super) const FINISH_CHECK: Duration = Duration::from_millis(500);
pub(super) const FINISH_GRACE: Duration = Duration::from_secs(2);

/// Handle used by the API and by start-up.
#[derive(Clone)]
pub struct Cluster {
    raft: Raft,
    me: NodeId,
    info: NodeInfo,
    http: reqwest::Client,
    /// For other nodes' client APIs (probing a new member): never carries the cluster secret.
    api_http: reqwest::Client,
    batcher: batch::Batcher,
    read_index: batch::ReadIndexBatcher,
    /// How long a write or a membership change may wait for a leader and a commit.
    write_timeout: Duration,
    /// How long a linearizable read may wait for its read index.
    read_timeout: Duration,
    /// Where this node's peer connections come from (see `new`).
    /// How this node reaches its peers (source address, credentials).
    transport: PeerTransport,
    /// Held by the membership change this node (as the leader) is making, so that two changes
    /// never interleave their steps.
    changes: Arc<tokio::sync::Mutex<()>>,
}

impl Cluster {
    /// `transport`: how forwarded requests reach the leader (the same source and credentials
    /// as Raft RPCs).
    pub fn new(
        raft: Raft,
        me: NodeId,
        info: NodeInfo,
        transport: PeerTransport,
        write_timeout: Duration,
        read_timeout: Duration,
        max_pending_proposals: usize,
    ) -> Self {
        let http = transport.client(Duration::from_millis(500));
        let api_http = transport.api_client(Duration::from_millis(500));
        let cluster = Self {
            batcher: batch::Batcher::start(raft.clone(), max_pending_proposals),
            read_index: batch::ReadIndexBatcher::start(raft.clone(), read_timeout),
            raft,
            me,
            info,
            http,
            api_http,
            write_timeout,
            read_timeout,
            transport,
            changes: Arc::new(tokio::sync::Mutex::new(())),
        };
        tokio::spawn(cluster.clone().finish_half_done_changes());
        cluster
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn node_id(&self) -> NodeId {
        self.me
    }

    pub fn transport(&self) -> &PeerTransport {
        &self.transport
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
                    ClusterError::unreachable(e)
                } else if e.is_timeout() {
                    ClusterError::Timeout(Stage::ForwardedRequest)
                } else {
                    ClusterError::forward(e)
                }
            })?;
        resp.json()
            .await
            .map_err(|e| ClusterError::BadAnswer(Arc::new(e)))
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
        // The gate before the log for every proposal made on this node (the API, the
        // migration worker), once: a follower never forwards what the leader would refuse.
        crate::raft::prove_encodes(&cmd, crate::json::MAX_MAX_DEPTH)
            .map_err(|e| ClusterError::InvalidCommand(e.to_string()))?;
        let deadline = Instant::now() + self.write_timeout;
        loop {
            let (leader_id, leader) = self.wait_leader(deadline).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = if leader_id == self.me {
                match tokio::time::timeout(left, self.batcher.propose(cmd.clone())).await {
                    Err(_) => return Err(ClusterError::Timeout(Stage::Write)),
                    Ok(outcome) => outcome,
                }
            } else {
                self.forward_retryable(&leader, "/internal/propose", &cmd, left)
                    .await?
            };
            match outcome {
                Forwarded::Ok(r) => return Ok(r),
                Forwarded::Err(e) => return Err(e),
                Forwarded::NotLeader => {
                    if Instant::now() >= deadline {
                        return Err(ClusterError::NoLeader);
                    }
                    // Leadership is moving: give the election a moment.
                    self.leader_moves(leader_id).await;
                }
            }
        }
    }

    /// Waits until this node learns of another leader than `was` (or none), at most 50 ms:
    /// a retry after a refused forward goes as soon as the election says where.
    async fn leader_moves(&self, was: NodeId) {
        let mut metrics = self.raft.metrics();
        let cap = Duration::from_millis(50);
        // Raft shut down (its metrics closed): no spinning until the deadline.
        let closed = matches!(
            tokio::time::timeout(cap, metrics.wait_for(|m| m.current_leader != Some(was))).await,
            Ok(Err(_))
        );
        if closed {
            tokio::time::sleep(cap).await;
        }
    }

    /// The leader side of a forwarded proposal.
    pub async fn propose_as_leader(&self, cmd: Command) -> Forwarded<CommandResult> {
        // The gate before the log for what a follower forwards (it checked it too, but a
        // peer request is network input); local proposals pass it in `propose`.
        if let Err(e) = crate::raft::prove_encodes(&cmd, crate::json::MAX_MAX_DEPTH) {
            return Forwarded::Err(ClusterError::InvalidCommand(e.to_string()));
        }
        match tokio::time::timeout(self.write_timeout, self.batcher.propose(cmd)).await {
            Err(_) => Forwarded::Err(ClusterError::Timeout(Stage::Write)),
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
                        .map_err(|_| ClusterError::Timeout(Stage::CatchingUpToReadIndex));
                }
                Forwarded::Err(e) => return Err(e),
                Forwarded::NotLeader if Instant::now() >= deadline => {
                    return Err(ClusterError::NoLeader);
                }
                Forwarded::NotLeader => self.leader_moves(leader_id).await,
            }
        }
    }
}
