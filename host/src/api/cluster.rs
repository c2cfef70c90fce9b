//! `/v1/cluster` and `/v1/readyz`: membership and readiness.

use super::extract::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use scarab_types::auth::Action;

use super::authn::Principal;
use super::{ApiError, AppState};
use crate::cluster::{JoinRequest, SelfInfo};

#[derive(serde::Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewParams {
    /// `linearizable` (default): the leader's view; `stale`: this node's own.
    #[serde(default)]
    consistency: super::Consistency,
}

/// `GET /v1/cluster`: the leader's view when it is reachable (it alone knows every member's
/// matched index); with `?consistency=stale`, this node's own view (its own configuration,
/// e.g. to see a membership change that has not committed on a node without a leader).
#[utoipa::path(get, path = "/v1/cluster", operation_id = "cluster_view", tag = "cluster",
    params(ViewParams),
    responses((status = 200, description = "Members, roles, leader, term and each member's progress.", body = scarab_types::ClusterView)))]
pub async fn view(
    State(state): State<AppState>,
    _principal: Principal,
    Query(params): Query<ViewParams>,
) -> Json<crate::cluster::ClusterView> {
    Json(match params.consistency {
        super::Consistency::Stale => state.cluster.view(),
        super::Consistency::Linearizable => state.cluster.leader_view().await,
    })
}

/// What this node says about itself, also before it belongs to a cluster.
#[utoipa::path(get, path = "/v1/cluster/self", operation_id = "self_info", tag = "cluster",
    responses((status = 200, description = "This node's id and addresses, also before it belongs to a cluster.", body = scarab_types::SelfInfo)))]
pub async fn self_info(State(state): State<AppState>) -> Json<SelfInfo> {
    let info = state.cluster.info();
    Json(SelfInfo {
        node_id: state.cluster.node_id(),
        api: info.api.clone(),
        peer: info.peer.clone(),
        initialized: state.raft.is_initialized().await.unwrap_or(false),
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    super::object_body(body, "{\"node_id\": integer, \"api\": URL, \"peer\": URL}")?;
    serde_json::from_slice(body)
        .map_err(|e| ApiError::malformed(format!("the body is not a valid request: {e}")))
}

/// `POST /v1/cluster/join` (a starting node) and `POST /v1/cluster/members` (an operator):
/// add a node as a learner, then promote it once it has caught up (unless `voter: false`).
#[utoipa::path(post, path = "/v1/cluster/members", operation_id = "add_member", tag = "cluster",
    request_body(content = scarab_types::JoinRequest, content_type = "application/json"),
    responses((status = 200, description = "The membership after the change.", body = scarab_types::ClusterView)))]
pub async fn add(
    State(state): State<AppState>,
    principal: Principal,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    principal.require(Action::ClusterAdmin, "")?;
    let body = super::read_body(body, super::SMALL_BODY_BYTES).await?;
    let req: JoinRequest = parse(&body)?;
    if req.node_id == 0 || req.api.is_empty() || req.peer.is_empty() {
        return Err(ApiError::malformed(
            "node_id (from 1), api and peer are required",
        ));
    }
    if req.api.len() > 2048 || req.peer.len() > 2048 {
        return Err(ApiError::malformed(
            "api and peer are URLs of at most 2048 bytes",
        ));
    }
    let view = state.cluster.add_member(req).await?;
    Ok(Json(view).into_response())
}

/// `POST /v1/cluster/join`: what a starting node calls; the same as `POST /v1/cluster/members`.
#[utoipa::path(post, path = "/v1/cluster/join", operation_id = "join_cluster", tag = "cluster",
    request_body(content = scarab_types::JoinRequest, content_type = "application/json"),
    responses((status = 200, description = "The membership after the change.", body = scarab_types::ClusterView)))]
pub async fn join(
    state: State<AppState>,
    principal: Principal,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    add(state, principal, body).await
}

/// A member id from the path: canonical decimal, at least 1.
fn member_id(id: &str) -> Result<u64, ApiError> {
    super::strict::canonical_u64(id)
        .filter(|id| *id >= 1)
        .ok_or_else(|| {
            ApiError::malformed(format!(
                "node id {id:?} must be a number from 1 in canonical form (no sign, no leading zeros)"
            ))
        })
}

#[utoipa::path(post, path = "/v1/cluster/members/{id}/promote", operation_id = "promote_member", tag = "cluster",
    params(("id" = u64, Path, minimum = 1, description = "The learner's node id.")),
    responses((status = 200, description = "The membership after the change.", body = scarab_types::ClusterView)))]
pub async fn promote(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(Action::ClusterAdmin, "")?;
    let id = member_id(&id)?;
    Ok(Json(state.cluster.promote(id).await?).into_response())
}

#[utoipa::path(delete, path = "/v1/cluster/members/{id}", operation_id = "remove_member", tag = "cluster",
    params(("id" = u64, Path, minimum = 1, description = "The member's node id.")),
    responses((status = 200, description = "The membership after the change.", body = scarab_types::ClusterView)))]
pub async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(Action::ClusterAdmin, "")?;
    let id = member_id(&id)?;
    Ok(Json(state.cluster.remove(id).await?).into_response())
}

/// 200 when this node can serve linearizable requests right now (a leader is known and
/// confirms its leadership, and this node has applied up to its read index), else 503.
#[utoipa::path(get, path = "/v1/readyz", operation_id = "readyz", tag = "cluster",
    responses((status = 200, description = "This node can serve linearizable requests now.", body = scarab_types::Ready)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.cluster.read_barrier().await {
        Ok(()) => (StatusCode::OK, Json(scarab_types::Ready { ready: true })).into_response(),
        Err(e) => ApiError::unavailable(format!("not ready: {e}")).into_response(),
    }
}
