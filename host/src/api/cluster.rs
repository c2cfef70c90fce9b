//! `/v1/cluster` and `/v1/readyz`: membership and readiness.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use scarab_types::auth::Action;

use super::authn::Principal;
use super::{ApiError, AppState};
use crate::cluster::{JoinRequest, SelfInfo};

#[derive(serde::Deserialize, Default)]
pub struct ViewParams {
    #[serde(default)]
    consistency: super::Consistency,
}

/// `GET /v1/cluster`: the leader's view when it is reachable (it alone knows every member's
/// matched index); with `?consistency=stale`, this node's own view (its own configuration,
/// e.g. to see a membership change that has not committed on a node without a leader).
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

pub async fn promote(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(Action::ClusterAdmin, "")?;
    let id = member_id(&id)?;
    Ok(Json(state.cluster.promote(id).await?).into_response())
}

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
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.cluster.read_barrier().await {
        Ok(()) => (StatusCode::OK, Json(scarab_types::Ready { ready: true })).into_response(),
        Err(e) => ApiError::unavailable(format!("not ready: {e}")).into_response(),
    }
}
