//! `/v1/health`, `/v1/status` and the cluster-wide settings (`/v1/settings/...`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use openraft::ServerState;
use scarab_types::Role;

use scarab_types::auth::Action;

use super::authn::Principal;
use super::{ApiError, AppState, SMALL_BODY_BYTES, caller, parse_json, read_body, require_json};
use crate::plugins::PluginStats;
use crate::store::{
    AuditRetention, AuditRetentionSet, DEFAULT_WATCH_WINDOW, HistoryRetention, HistoryRetentionSet,
    SetAuditRetention, SetHistoryRetention,
};

/// The common start of a `PUT /v1/settings/...`: a cluster admin only, a JSON body within
/// the small-body bound parsed as `T` (`shape` says what is expected), and who asks.
async fn setting_change<T: serde::de::DeserializeOwned>(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    body: Body,
    shape: &str,
) -> Result<(super::Caller, T), ApiError> {
    principal.require(Action::ClusterAdmin, "")?;
    require_json(headers)?;
    let caller = caller(principal, headers)?;
    let bytes = read_body(body, SMALL_BODY_BYTES).await?;
    Ok((caller, parse_json(state, &bytes, shape)?))
}

/// `GET /v1/settings/history`: how many revisions of each key are kept.
#[utoipa::path(get, path = "/v1/settings/history", operation_id = "get_history_retention", tag = "node",
    responses((status = 200, description = "How many revisions of each key are kept, and for how long.", body = scarab_types::HistoryRetention)))]
pub async fn get_history_retention(
    State(state): State<AppState>,
    _principal: Principal,
) -> Result<Response, ApiError> {
    // Any authenticated principal: the setting says how far back history reads can go.
    state.linearize().await?;
    let HistoryRetention {
        keep,
        max_age_seconds,
        watch_window,
    } = state.store.applied().history;
    Ok(Json(scarab_types::HistoryRetention {
        keep,
        max_age_seconds,
        watch_window: Some(watch_window),
    })
    .into_response())
}

/// `PUT /v1/settings/history` with `{"keep": N, "max_age_seconds": S, "watch_window": W}`
/// (N >= 1, S optional, W >= 1 and 100,000 when absent). Replicated: every node keeps the
/// same history. `keep` applies to a key from its next write on; the age and the window from
/// the next change on (see `store/history.rs`).
#[utoipa::path(put, path = "/v1/settings/history", operation_id = "set_history_retention", tag = "node",
    params(("X-Scarab-Reason" = Option<String>, Header, description = "Why, kept in the audit trail.")),
    request_body(content = scarab_types::HistoryRetention, content_type = "application/json"),
    responses((status = 200, description = "The retention set, and the revision of the change.", body = scarab_types::HistoryRetentionSet)))]
pub async fn set_history_retention(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (caller, setting) = setting_change(
        &state,
        &principal,
        &headers,
        body,
        "{\"keep\": integer, \"max_age_seconds\": integer (optional), \"watch_window\": integer (optional)}",
    )
    .await?;
    let scarab_types::HistoryRetention {
        keep,
        max_age_seconds,
        watch_window,
    } = setting;
    if keep == 0 {
        return Err(ApiError::malformed(
            "keep must be at least 1 (the current revision is always kept)",
        ));
    }
    if watch_window == Some(0) {
        return Err(ApiError::malformed(
            "watch_window must be at least 1 revision (leave it out for the default, 100000)",
        ));
    }
    let HistoryRetentionSet {
        retention,
        revision,
    } = state
        .propose(
            caller,
            SetHistoryRetention {
                retention: HistoryRetention {
                    keep,
                    max_age_seconds,
                    watch_window: watch_window.unwrap_or(DEFAULT_WATCH_WINDOW),
                },
            },
        )
        .await?;
    Ok(Json(scarab_types::HistoryRetentionSet {
        keep: retention.keep,
        max_age_seconds: retention.max_age_seconds,
        watch_window: retention.watch_window,
        revision,
    })
    .into_response())
}

/// `GET /v1/settings/audit`: how much of the audit trail is kept.
#[utoipa::path(get, path = "/v1/settings/audit", operation_id = "get_audit_retention", tag = "node",
    responses((status = 200, description = "How many audit records are kept, and for how long.", body = scarab_types::AuditRetention)))]
pub async fn get_audit_retention(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    // Whoever may read the trail may know how far back it goes.
    principal.require(Action::AuditRead, "")?;
    state.linearize().await?;
    let AuditRetention {
        max_records,
        max_age_seconds,
    } = state.store.applied().audit;
    Ok(Json(scarab_types::AuditRetention {
        max_records,
        max_age_seconds,
    })
    .into_response())
}

/// `PUT /v1/settings/audit` with `{"max_records": N, "max_age_seconds": S}` (N >= 1, S
/// optional). Replicated, and itself audited as `settings.audit`; the oldest records beyond
/// it are dropped from the next change on, a bounded number per change (see
/// `store/audit.rs`).
#[utoipa::path(put, path = "/v1/settings/audit", operation_id = "set_audit_retention", tag = "node",
    params(("X-Scarab-Reason" = Option<String>, Header, description = "Why, kept in the audit trail.")),
    request_body(content = scarab_types::AuditRetention, content_type = "application/json"),
    responses((status = 200, description = "The retention set, and the revision of the change.", body = scarab_types::AuditRetentionSet)))]
pub async fn set_audit_retention(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (caller, setting) = setting_change(
        &state,
        &principal,
        &headers,
        body,
        "{\"max_records\": integer, \"max_age_seconds\": integer (optional)}",
    )
    .await?;
    let scarab_types::AuditRetention {
        max_records,
        max_age_seconds,
    } = setting;
    if max_records == 0 {
        return Err(ApiError::malformed(
            "max_records must be at least 1 (the record of this change is kept)",
        ));
    }
    let AuditRetentionSet {
        retention,
        revision,
    } = state
        .propose(
            caller,
            SetAuditRetention {
                retention: AuditRetention {
                    max_records,
                    max_age_seconds,
                },
            },
        )
        .await?;
    Ok(Json(scarab_types::AuditRetentionSet {
        max_records: retention.max_records,
        max_age_seconds: retention.max_age_seconds,
        revision,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/health", operation_id = "health", tag = "node",
    responses((status = 200, description = "The process answers (liveness).", body = scarab_types::Health)))]
pub async fn health() -> Json<scarab_types::Health> {
    Json(scarab_types::Health {
        status: "ok".to_string(),
    })
}

fn role(s: ServerState) -> Role {
    match s {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Shutdown,
    }
}

fn plugin_stats_view(p: PluginStats) -> scarab_types::PluginStats {
    scarab_types::PluginStats {
        loaded: p.loaded as u64,
        compiled: p.compiled,
        from_disk_cache: p.from_disk_cache,
        idle_instances: p.idle_instances as u64,
        misbehaving: p.misbehaving,
    }
}

#[utoipa::path(get, path = "/v1/status", operation_id = "status", tag = "node",
    responses((status = 200, description = "This node's Raft state, revision, counts and plugin statistics.", body = scarab_types::Status)))]
pub async fn status(State(state): State<AppState>, _principal: Principal) -> Response {
    let m = state.raft.metrics().borrow().clone();
    let sm = state.store.applied();
    let status = scarab_types::Status {
        node_id: m.id,
        role: role(m.state),
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        last_applied_index: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        revision: sm.revision,
        configs: sm.live_configs,
        schemas: sm.schema_versions,
        plugins: plugin_stats_view(state.registry.plugins().stats()),
    };
    state.with_revision(Json(status).into_response())
}

/// `GET /metrics`: the node's metrics in the Prometheus text format (see `crate::metrics`),
/// the state ones read now. Open, like `/v1/health`: it holds counts and timings, no keys and
/// no values.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let m = crate::metrics::get();
    let r = state.raft.metrics().borrow().clone();
    let as_i64 = |v: Option<u64>| v.map_or(0, |v| v as i64);
    m.raft_term.set(r.current_term as i64);
    m.raft_leader.set(as_i64(r.current_leader));
    m.raft_is_leader
        .set(i64::from(r.current_leader == Some(r.id)));
    m.raft_last_log_index.set(as_i64(r.last_log_index));
    m.raft_applied_index
        .set(as_i64(r.last_applied.map(|l| l.index)));
    m.raft_snapshot_index
        .set(as_i64(r.snapshot.map(|l| l.index)));
    let sm = state.store.applied();
    m.revision.set(sm.revision as i64);
    m.configs.set(sm.live_configs as i64);
    m.schema_versions.set(sm.schema_versions as i64);
    m.watches_open.set(
        state
            .config
            .max_watches
            .saturating_sub(state.watches.available_permits()) as i64,
    );
    let data = state.config.data_dir.clone();
    // The data directory's databases (`datadir::DataDir` names them; that layer is above
    // this one).
    let sizes = tokio::task::spawn_blocking(move || {
        ["raft", "state", "snapshots"].map(|db| (db, crate::metrics::dir_bytes(&data.join(db))))
    })
    .await
    .unwrap_or_default();
    for (db, bytes) in sizes {
        m.storage_bytes
            .get_or_create(&crate::metrics::DbLabels { db })
            .set(bytes as i64);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}
