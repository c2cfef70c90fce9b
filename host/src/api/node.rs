//! `/v1/health` and `/v1/status`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use openraft::ServerState;
use serde::Serialize;

use super::AppState;

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
