//! The leader side of forwarded requests, served on the peer listener next to the Raft RPCs.
//! Bodies are JSON; every answer is a [`Forwarded`], so the sender can tell "not the leader,
//! retry" from a failure.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use super::{Cluster, ClusterView, Forwarded, JoinRequest};
use crate::raft::NodeId;
use crate::store::{Command, CommandResult};

/// `body_limit`: the largest body a peer may send (`--max-peer-body-bytes`).
pub fn router(cluster: Cluster, body_limit: usize) -> Router {
    Router::new()
        .route("/internal/propose", post(propose))
        .route("/internal/read-index", post(read_index))
        .route("/internal/add-member", post(add_member))
        .route("/internal/remove-member", post(remove_member))
        .route("/internal/view", post(view))
        .route(super::guard::JOIN_PATH, post(join))
        // A forwarded proposal holds a whole value (up to --max-value-bytes) or plugin: the
        // bodies are read with the peer limit below, not axum's 2 MB default.
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(cluster)
}

/// A peer's JSON body (bounded by the layer above: a larger one is 413 before it is
/// buffered), parsed, or a 400 naming why.
async fn read<T: DeserializeOwned>(bytes: Bytes) -> Result<T, Response> {
    serde_json::from_slice(&bytes)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("peer request: {e}")).into_response())
}

/// A forwarded proposal. Its documents must be well-formed JSON and the command must survive
/// the log encoding (checked by `Cluster::propose_as_leader`, `raft::prove_encodes`); otherwise it is
/// `ClusterError::InvalidCommand` and nothing is proposed. Whether the sender may propose at all is
/// the authentication's concern.
async fn propose(
    State(c): State<Cluster>,
    body: Bytes,
) -> Result<Json<Forwarded<CommandResult>>, Response> {
    let cmd: Command = read(body).await?;
    Ok(Json(c.propose_as_leader(cmd).await))
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
    body: Bytes,
) -> Result<Json<Forwarded<ClusterView>>, Response> {
    let req: JoinRequest = read(body).await?;
    if c.leader().map(|(id, _)| id) != Some(c.node_id()) {
        return Ok(Json(Forwarded::NotLeader));
    }
    Ok(Json(match c.add_member(req).await {
        Ok(v) => Forwarded::Ok(v),
        Err(e) => Forwarded::Err(e),
    }))
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
        Err(e) => Forwarded::Err(e),
    })
}

async fn view(State(c): State<Cluster>) -> Json<Forwarded<ClusterView>> {
    Json(leader_only(&c, || c.view()))
}

/// `POST /internal/join`: a starting node asks to be added, as `POST /v1/cluster/join` does on
/// the client API (forwarded to the leader, which probes the node, adds it as a learner and
/// promotes it once caught up). The one peer route open to a node that is not a member yet
/// (`guard.rs`); the answer is the leader's, as for every forwarded request.
async fn join(
    State(c): State<Cluster>,
    body: Bytes,
) -> Result<Json<Forwarded<ClusterView>>, Response> {
    let req: JoinRequest = read(body).await?;
    if req.node_id == 0 || req.api.is_empty() || req.peer.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "peer request: node_id (from 1), api and peer are required",
        )
            .into_response());
    }
    if req.api.len() > 2048 || req.peer.len() > 2048 {
        return Err((
            StatusCode::BAD_REQUEST,
            "peer request: api and peer are URLs of at most 2048 bytes",
        )
            .into_response());
    }
    Ok(Json(match c.add_member(req).await {
        Ok(v) => Forwarded::Ok(v),
        Err(e) => Forwarded::Err(e),
    }))
}
