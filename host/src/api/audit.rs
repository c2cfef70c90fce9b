//! `GET /v1/audit`: the audit trail, newest first, filtered. Read-only: the trail is written
//! by apply alone (see `store/audit.rs`), so there is no route that changes it.

use super::extract::Query;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use scarab_types::auth::Action;

use super::authn::Principal;
use super::configs::{DEFAULT_PAGE, MAX_PAGE};
use super::{ApiError, AppState, Consistency, rfc3339};
use crate::store::{AuditFilter, AuditRecord, Provenance};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Records whose object (a key, `schema/...`, `migration/...`, `settings/...`,
    /// `cluster`) starts with this.
    #[serde(default)]
    prefix: String,
    /// Records of this actor.
    actor: Option<String>,
    /// An action (`config.update`) or its family (`config`).
    action: Option<String>,
    /// Time range, RFC 3339 or milliseconds since the epoch: `since` <= at < `until`.
    since: Option<String>,
    /// The end of the time range (excluded).
    until: Option<String>,
    /// Paging: records with a sequence number below this (`next_before` of the last page).
    #[serde(default, deserialize_with = "super::strict::opt_u64")]
    #[param(value_type = Option<u64>)]
    before: Option<u64>,
    /// At most this many records (1 to 1000, default 100).
    #[serde(default, deserialize_with = "super::strict::opt_usize")]
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `linearizable` (default) or `stale`.
    #[serde(default)]
    consistency: Consistency,
}

fn time_ms(name: &str, text: &str) -> Result<u64, ApiError> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
        ApiError::malformed(format!(
            "{name} must be RFC 3339 (2026-11-26T15:00:00Z) or milliseconds since the epoch: {e}"
        ))
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64)
}

/// A record as the API shows it.
fn record_view(r: &AuditRecord) -> scarab_types::AuditRecord {
    scarab_types::AuditRecord {
        seq: r.seq,
        log_index: r.log_index,
        at: r.at_ms.map(rfc3339),
        actor: r.actor.clone(),
        on_behalf_of: r.on_behalf_of.clone(),
        action: r.action.clone(),
        object: r.object.clone(),
        revision_before: r.revision_before,
        revision_after: r.revision_after,
        reason: r.reason.clone(),
        validation: r.validation.as_ref().map(provenance_view),
        detail: r.detail.clone(),
    }
}

fn provenance_view(v: &Provenance) -> scarab_types::Provenance {
    scarab_types::Provenance {
        schema: v.schema.clone(),
        schema_version: v.schema_version,
        plugin_digest: v.plugin_digest.clone(),
        elapsed_us: v.elapsed_us,
    }
}

#[utoipa::path(get, path = "/v1/audit", operation_id = "audit", tag = "audit",
    params(AuditParams),
    responses((status = 200, description = "Audit records, newest first.", body = scarab_types::AuditPage)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(p): Query<AuditParams>,
) -> Result<Response, ApiError> {
    // The whole prefix asked for (`auth/`, `schema/` and `cluster` are objects too).
    principal.require(Action::AuditRead, &p.prefix)?;
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::malformed(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let filter = AuditFilter {
        prefix: p.prefix,
        actor: p.actor,
        action: p.action,
        since_ms: p
            .since
            .as_deref()
            .map(|t| time_ms("since", t))
            .transpose()?,
        until_ms: p
            .until
            .as_deref()
            .map(|t| time_ms("until", t))
            .transpose()?,
    };
    let stale = state.read_at(p.consistency).await?;
    let store = state.store.clone();
    let page = tokio::task::spawn_blocking(move || store.audit(&filter, p.before, limit))
        .await
        .map_err(|e| ApiError::internal(format!("audit read: {e}")))??;
    let body = scarab_types::AuditPage {
        items: page.items.iter().map(record_view).collect(),
        next_before: page.next_before,
    };
    let mut resp = Json(body).into_response();
    if let Some(v) = stale {
        resp.headers_mut().insert("x-scarab-consistency", v);
    }
    Ok(state.with_revision(resp))
}
