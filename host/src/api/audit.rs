//! `GET /v1/audit`: the audit trail, newest first, filtered. Read-only: the trail is written
//! by apply alone (see `store/audit.rs`), so there is no route that changes it.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::configs::{DEFAULT_PAGE, MAX_PAGE};
use super::{ApiError, AppState, Consistency, rfc3339};
use crate::store::{AuditFilter, AuditRecord, Provenance};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Records whose object (a key, `schema/...`, `migration/...`, `settings/...`,
    /// `cluster`) starts with this.
    #[serde(default)]
    prefix: String,
    actor: Option<String>,
    /// An action (`config.update`) or its family (`config`).
    action: Option<String>,
    /// Time range, RFC 3339 or milliseconds since the epoch: `since` <= at < `until`.
    since: Option<String>,
    until: Option<String>,
    /// Paging: records with a sequence number below this (`next_before` of the last page).
    #[serde(default, deserialize_with = "super::strict::opt_u64")]
    before: Option<u64>,
    #[serde(default, deserialize_with = "super::strict::opt_usize")]
    limit: Option<usize>,
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
#[derive(Serialize)]
struct View<'a> {
    seq: u64,
    log_index: u64,
    at: Option<String>,
    actor: &'a str,
    action: &'a str,
    object: &'a str,
    revision_before: Option<u64>,
    revision_after: Option<u64>,
    reason: Option<&'a str>,
    validation: Option<&'a Provenance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a serde_json::Value>,
}

impl<'a> From<&'a AuditRecord> for View<'a> {
    fn from(r: &'a AuditRecord) -> Self {
        Self {
            seq: r.seq,
            log_index: r.log_index,
            at: r.at_ms.map(rfc3339),
            actor: &r.actor,
            action: &r.action,
            object: &r.object,
            revision_before: r.revision_before,
            revision_after: r.revision_after,
            reason: r.reason.as_deref(),
            validation: r.validation.as_ref(),
            detail: r.detail.as_ref(),
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    Query(p): Query<AuditParams>,
) -> Result<Response, ApiError> {
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
    let items: Vec<View> = page.items.iter().map(View::from).collect();
    let mut resp =
        Json(serde_json::json!({"items": items, "next_before": page.next_before})).into_response();
    if let Some(v) = stale {
        resp.headers_mut().insert("x-scarab-consistency", v);
    }
    Ok(state.with_revision(resp))
}
