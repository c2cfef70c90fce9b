//! The leader side of forwarded requests, served on the peer listener next to the Raft RPCs.
//! Bodies are JSON; every answer is a [`Forwarded`], so the sender can tell "not the leader,
//! retry" from a failure.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};

use super::{Cluster, ClusterView, Forwarded, JoinRequest};
use crate::raft::NodeId;
use crate::store::{Command, CommandResult};

pub fn router(cluster: Cluster) -> Router {
    Router::new()
        .route("/internal/propose", post(propose))
        .route("/internal/read-index", post(read_index))
        .route("/internal/add-member", post(add_member))
        .route("/internal/remove-member", post(remove_member))
        .route("/internal/view", post(view))
        // A forwarded proposal holds a whole value (up to --max-value-bytes).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(cluster)
}

async fn propose(
    State(c): State<Cluster>,
    Json(cmd): Json<Command>,
) -> Json<Forwarded<CommandResult>> {
    Json(c.propose_as_leader(cmd).await)
}

async fn read_index(State(c): State<Cluster>) -> Json<Forwarded<u64>> {
    Json(c.read_index_as_leader().await)
}

fn leader_only<T>(c: &Cluster, f: impl FnOnce() -> T) -> Forwarded<T> {
    if c.leader().map(|(id, _)| id) == Some(c.node_id()) {
        Forwarded::Ok(f())
    } else {
        Forwarded::NotLeader
    }
}

async fn add_member(
    State(c): State<Cluster>,
    Json(req): Json<JoinRequest>,
) -> Json<Forwarded<ClusterView>> {
    if c.leader().map(|(id, _)| id) != Some(c.node_id()) {
        return Json(Forwarded::NotLeader);
    }
    Json(match c.add_member(req).await {
        Ok(v) => Forwarded::Ok(v),
        Err(e @ (super::ClusterError::Conflict { .. } | super::ClusterError::Refused(_))) => {
            Forwarded::Conflict(e.to_string())
        }
        Err(e) => Forwarded::Failed(e.to_string()),
    })
}

async fn remove_member(
    State(c): State<Cluster>,
    Json(id): Json<NodeId>,
) -> Json<Forwarded<ClusterView>> {
    if c.leader().map(|(id, _)| id) != Some(c.node_id()) {
        return Json(Forwarded::NotLeader);
    }
    Json(match c.remove(id).await {
        Ok(v) => Forwarded::Ok(v),
        Err(e) => Forwarded::Failed(e.to_string()),
    })
}

async fn view(State(c): State<Cluster>) -> Json<Forwarded<ClusterView>> {
    Json(leader_only(&c, || c.view()))
}
