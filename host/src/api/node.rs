//! `/v1/health`, `/v1/status` and the cluster-wide settings (`/v1/settings/...`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use openraft::ServerState;
use serde::Serialize;

use super::{ApiError, AppState, SMALL_BODY_BYTES, caller, parse_json, read_body, require_json};
use crate::store::{HistoryRetention, HistoryRetentionSet, SetHistoryRetention};

/// `GET /v1/settings/history`: how many revisions of each key are kept.
pub async fn get_history_retention(State(state): State<AppState>) -> Result<Response, ApiError> {
    state.linearize().await?;
    Ok(Json(state.store.applied().history).into_response())
}

/// `PUT /v1/settings/history` with `{"keep": N, "max_age_seconds": S}` (N >= 1, S optional).
/// Replicated: every node keeps the same history. `keep` applies to a key from its next write
/// on; the age from the next change on (see `store/history.rs`).
pub async fn set_history_retention(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let caller = caller(&headers)?;
    let bytes = read_body(body, SMALL_BODY_BYTES).await?;
    let retention: HistoryRetention = parse_json(
        &state,
        &bytes,
        "{\"keep\": integer, \"max_age_seconds\": integer (optional)}",
    )?;
    if retention.keep == 0 {
        return Err(ApiError::malformed(
            "keep must be at least 1 (the current revision is always kept)",
        ));
    }
    let HistoryRetentionSet {
        retention,
        revision,
    } = state
        .propose(caller, SetHistoryRetention { retention })
        .await?;
    Ok(Json(serde_json::json!({
        "keep": retention.keep,
        "max_age_seconds": retention.max_age_seconds,
        "revision": revision,
    }))
    .into_response())
}

pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Serialize)]
pub struct Status {
    pub node_id: u64,
    pub role: &'static str,
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    /// Index of the last log entry covered by this node's current snapshot.
    pub snapshot_index: Option<u64>,
    /// Entries up to this index have been purged from this node's log.
    pub purged_index: Option<u64>,
    pub revision: u64,
    pub configs: u64,
    pub schemas: u64,
    pub plugins: crate::plugins::PluginStats,
}

pub fn role_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

pub async fn status(State(state): State<AppState>) -> Response {
    let m = state.raft.metrics().borrow().clone();
    let sm = state.store.applied();
    let status = Status {
        node_id: m.id,
        role: role_name(m.state),
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        last_applied_index: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        revision: sm.revision,
        configs: sm.live_configs,
        schemas: sm.schema_versions,
        plugins: state.registry.plugins().stats(),
    };
    state.with_revision(Json(status).into_response())
}
