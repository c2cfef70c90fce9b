//! `/v1/configs`: create, read, list, update and delete configs.

use super::extract::{Path, Query};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scarab_types::ErrorCode;
use serde::Deserialize;
use serde_json::Value;

use scarab_types::auth::Action;

use super::authn::{Principal, Reach};
use super::{
    ApiError, AppState, Consistency, SMALL_BODY_BYTES, caller, check_depth, parse_json, read_body,
    require_json, rfc3339,
};
use crate::store::{
    AtRevision, ConfigDeleted, ConfigEntry, ConfigMeta, ConfigWritten, DeleteConfig, Precondition,
    PutConfig, Rejection, Validation, WritePolicy,
};

/// Room for the envelope (`schema`, `schema_version`, whitespace) around the value.
pub(super) const ENVELOPE_SLACK: usize = 64 * 1024;

pub(super) fn checked_key(key: &str) -> Result<(), ApiError> {
    scarab_types::validate_key(key).map_err(|e| ApiError::new(ErrorCode::InvalidKey, e.to_string()))
}

/// What a path under the config wildcard names (see `openapi.rs`): a key, its history or
/// its rollback, with the methods each takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Resource {
    Key,
    History,
    Rollback,
}

impl Resource {
    pub(super) fn of(path: &str) -> Resource {
        // `history` alone is a key; `a/history` is a's history.
        match path.rsplit_once('/') {
            Some((key, "history")) if !key.is_empty() => Resource::History,
            Some((key, "rollback")) if !key.is_empty() => Resource::Rollback,
            _ => Resource::Key,
        }
    }

    /// The `Allow` header of a 405 for this resource.
    pub(super) fn allow(self) -> &'static str {
        match self {
            Resource::Key => "GET,HEAD,PUT,DELETE",
            Resource::History => "GET,HEAD",
            Resource::Rollback => "POST",
        }
    }
}

/// 405 for a method `path`'s resource does not take, with the methods it does.
pub(super) fn method_not_allowed(allow: &'static str) -> Response {
    let mut resp = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("this route does not take that method; it takes {allow}"),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// `Some(405)` unless `path` names a resource of `kind`.
fn unless(path: &str, kind: Resource) -> Option<Response> {
    let actual = Resource::of(path);
    (actual != kind).then(|| {
        let mut resp = method_not_allowed(actual.allow());
        if actual != Resource::Key {
            // Most likely a write to a key named like a sub-resource: say so.
            let allow = actual.allow();
            let body = ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!(
                    "{path} is a sub-resource that takes {allow} only: a key's last segment cannot be `history` or `rollback`"
                ),
            )
            .into_response();
            *resp.body_mut() = body.into_body();
        }
        resp
    })
}

/// The metadata as the API shows it.
pub(super) fn meta_view(m: &ConfigMeta) -> scarab_types::ConfigMeta {
    scarab_types::ConfigMeta {
        key: m.key.clone(),
        schema: m.schema.clone(),
        schema_version: m.schema_version,
        revision: m.revision,
        key_version: m.key_version,
        created_at: rfc3339(m.created_at),
        created_by: m.created_by.clone(),
        updated_at: rfc3339(m.updated_at),
        updated_by: m.updated_by.clone(),
        plugin_digest: m.plugin_digest.clone(),
        converted_from: None,
    }
}

/// [`meta_view`] of a value shown at `version` of its schema (when `Some` and not the
/// stored one): that version, converted from the stored one.
pub(super) fn meta_view_at(m: &ConfigMeta, version: Option<u32>) -> scarab_types::ConfigMeta {
    let mut view = meta_view(m);
    if let Some(v) = version.filter(|v| *v != m.schema_version) {
        view.converted_from = Some(m.schema_version);
        view.schema_version = v;
    }
    view
}

/// Metadata plus `"value"`, spliced in as stored (no re-parse of the value).
fn entry_json(out: &mut Vec<u8>, entry: &ConfigEntry) {
    entry_json_as(out, entry, None, &entry.value);
}

/// [`entry_json`] of a value converted to `version` (when `Some`), with `value` in place of
/// the stored one.
fn entry_json_as(out: &mut Vec<u8>, entry: &ConfigEntry, version: Option<u32>, value: &str) {
    splice_value(out, &meta_view_at(&entry.meta, version), value);
}

/// A [`scarab_types::ConfigEntry`] as JSON, written from its metadata and the value's JSON
/// text, which is spliced in as it is (the metadata serialised, its closing brace replaced).
fn splice_value(out: &mut Vec<u8>, meta: &scarab_types::ConfigMeta, value: &str) {
    serde_json::to_writer(&mut *out, meta).expect("metadata serialises");
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"value\":");
    out.extend_from_slice(value.as_bytes());
    out.push(b'}');
}

/// The value of `entry` at `version` of its schema: as stored, or converted through the
/// chain of migrators and validated at `version`.
pub(super) async fn value_at(
    state: &AppState,
    entry: &ConfigEntry,
    version: Option<u32>,
) -> Result<Option<String>, ApiError> {
    match version {
        Some(v) if v != entry.meta.schema_version => Ok(Some(
            state
                .registry
                .convert_async(
                    entry.meta.schema.clone(),
                    entry.meta.key.clone(),
                    entry.meta.schema_version,
                    v,
                    entry.value.clone(),
                )
                .await?,
        )),
        _ => Ok(None),
    }
}

pub(super) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn etag(revision: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("digits are a valid header")
}

fn precondition(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let if_match = headers.get(header::IF_MATCH);
    let if_none_match = headers.get(header::IF_NONE_MATCH);
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(ApiError::malformed(
            "use either If-Match or If-None-Match, not both",
        )),
        (Some(v), None) => {
            let s = v.to_str().unwrap_or("").trim();
            let s = s.strip_prefix("W/").unwrap_or(s);
            let rev = s.trim_matches('"').parse::<u64>().map_err(|_| {
                ApiError::malformed(format!(
                    "If-Match must be a revision such as \"42\", got {s:?}"
                ))
            })?;
            Ok(Precondition::Revision(rev))
        }
        (None, Some(v)) => {
            if v.to_str().map(str::trim).ok() == Some("*") {
                Ok(Precondition::Absent)
            } else {
                Err(ApiError::malformed("If-None-Match supports only *"))
            }
        }
        (None, None) => Ok(Precondition::None),
    }
}

#[utoipa::path(
    put,
    path = "/v1/configs/{key}",
    operation_id = "put_config",
    tag = "configs",
    params(
        KeyParam,
        ("If-Match" = Option<String>, Header, description = "Write only if the key's current revision is this one (`\"42\"`); else 412 `precondition_failed`."),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create only; 412 `precondition_failed` if the key exists."),
        ("X-Scarab-Reason" = Option<String>, Header, description = "Why, kept in the audit trail."),
    ),
    request_body(content = scarab_types::PutConfig, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated: the new metadata.", body = scarab_types::ConfigMeta,
            headers(("ETag" = String, description = "The new revision, quoted."))),
        (status = 201, description = "Created: the new metadata.", body = scarab_types::ConfigMeta,
            headers(("ETag" = String, description = "The new revision, quoted."))),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    principal: Principal,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(refused) = unless(&key, Resource::Key) {
        return Ok(refused);
    }
    checked_key(&key)?;
    principal.require(Action::ConfigWrite, &key)?;
    require_json(&headers)?;
    let caller = caller(&principal, &headers)?;
    let precondition = precondition(&headers)?;
    let limit = state.config.max_value_bytes;
    let bytes = read_body(body, limit + ENVELOPE_SLACK).await?;
    let scarab_types::PutConfig {
        schema,
        schema_version,
        value,
    } = parse_json(
        &state,
        &bytes,
        "{\"schema\": string, \"schema_version\": integer, \"value\": any JSON}",
    )?;
    check_depth(&state, &value, "the value")?;
    check_write_policy(&state, &schema, schema_version)?;
    let text = value_text(&value, limit)?;
    let (verdict, value_text) = state
        .validate_write(&schema, schema_version, &key, value, text)
        .await?;
    if !verdict.violations.is_empty() {
        return Err(ApiError::validation(verdict.violations));
    }
    let mut caller = caller;
    caller.context.validations.push(Validation {
        key: key.clone(),
        elapsed_us: verdict.elapsed_us,
    });
    let put = PutConfig {
        key,
        schema,
        schema_version,
        plugin_digest: verdict.plugin_digest,
        value: value_text,
        precondition,
    };
    Ok(written(state.propose(caller, put).await?, None))
}

/// The answer to a write (`PUT`, or a rollback, which says which revision it restored): 201
/// if it created the key, else 200, with the new metadata and its revision as the ETag.
fn written(w: ConfigWritten, rolled_back_to: Option<u64>) -> Response {
    let status = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let meta = meta_view(&w.meta);
    let body = match rolled_back_to {
        None => serde_json::to_vec(&meta),
        Some(rolled_back_to) => serde_json::to_vec(&scarab_types::RolledBack {
            meta,
            rolled_back_to,
        }),
    }
    .expect("metadata serialises");
    let mut resp = json_response(status, body);
    resp.headers_mut()
        .insert(header::ETAG, etag(w.meta.revision));
    resp
}

/// Refuses a write below the latest version of a schema whose policy is `latest` (checked
/// again in apply, which decides).
pub(super) fn check_write_policy(
    state: &AppState,
    schema: &str,
    version: u32,
) -> Result<(), ApiError> {
    let policy = state.store.schema_policy(schema)?;
    if policy.writes == WritePolicy::Latest
        && let Some(latest) = state.store.list_schemas(Some(schema))?.last()
        && latest.version != version
    {
        return Err(Rejection::NotLatest {
            name: schema.to_string(),
            version,
            latest: latest.version,
        }
        .into());
    }
    Ok(())
}

/// The compact JSON text of a value to write, at most `limit` bytes.
pub(super) fn value_text(value: &Value, limit: usize) -> Result<String, ApiError> {
    let text = serde_json::to_string(value).expect("a JSON value serialises");
    if text.len() > limit {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the value is {} bytes as compact JSON; at most {limit} are allowed (--max-value-bytes)",
                text.len()
            ),
        ));
    }
    Ok(text)
}

/// The key in the path: 1 to 256 bytes of segments separated by `/`, each of
/// `A-Z a-z 0-9 . _ -` (not `.` or `..`), at most 32 segments; the last may not be `history`
/// or `rollback`. Sent as it is (a `/` is not escaped).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // describes the path for the OpenAPI document
pub struct KeyParam {
    /// The config's key, such as `stores/orders`.
    key: String,
}

/// `GET /v1/configs/{key}`.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// `linearizable` (default) or `stale` (this node's state, without asking the leader).
    #[serde(default)]
    consistency: Consistency,
    /// Read the value converted to this version of its schema.
    #[serde(default, deserialize_with = "super::strict::opt_u32")]
    #[param(value_type = Option<u32>, minimum = 1)]
    schema_version: Option<u32>,
    /// Read the key as it was at this revision (time travel).
    #[serde(default, deserialize_with = "super::strict::opt_u64")]
    #[param(value_type = Option<u64>)]
    revision: Option<u64>,
}

/// `GET /v1/configs/{key}/history`.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// `linearizable` (default) or `stale`.
    #[serde(default)]
    consistency: Consistency,
    /// At most this many records (1 to 1000, default 100).
    #[serde(default, deserialize_with = "super::strict::opt_usize")]
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only records strictly before this revision (`next_before` of the previous page).
    #[serde(default, deserialize_with = "super::strict::opt_u64")]
    #[param(value_type = Option<u64>)]
    before: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/v1/configs/{key}",
    operation_id = "get_config",
    tag = "configs",
    params(KeyParam, GetParams),
    responses(
        (status = 200, description = "The config: its metadata and value.", body = scarab_types::ConfigEntry,
            headers(("ETag" = String, description = "The config's revision, quoted."))),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    // One wildcard route serves the key and its history (see `openapi.rs`).
    if let Some(refused) = unless(&path, Resource::Key).and(unless(&path, Resource::History)) {
        return Ok(refused);
    }
    let query = |uri: &axum::http::Uri| uri.query().unwrap_or_default().to_string();
    if let Some(key) = path.strip_suffix("/history") {
        checked_key(key)?;
        principal.require(Action::ConfigRead, key)?;
        let params = super::extract::query(&query(&uri))?;
        return history(state, key, params).await;
    }
    let params: GetParams = super::extract::query(&query(&uri))?;
    let key = path;
    checked_key(&key)?;
    principal.require(Action::ConfigRead, &key)?;
    let stale = state.read_at(params.consistency).await?;
    let entry = match params.revision {
        None => state
            .store
            .get_config(&key)?
            .ok_or_else(|| ApiError::not_found(format!("config {key} not found")))?,
        Some(revision) => entry_at(&state, &key, revision)?,
    };
    let converted = value_at(&state, &entry, params.schema_version).await?;
    let mut body = Vec::with_capacity(entry.value.len() + 512);
    match &converted {
        Some(value) => entry_json_as(&mut body, &entry, params.schema_version, value),
        None => entry_json(&mut body, &entry),
    }
    let mut resp = json_response(StatusCode::OK, body);
    resp.headers_mut()
        .insert(header::ETAG, etag(entry.meta.revision));
    if let Some(v) = stale {
        resp.headers_mut().insert("x-scarab-consistency", v);
    }
    Ok(state.with_revision(resp))
}

/// `key` as it was at `revision`: 404 if it did not exist (or was deleted) then, 410 if that
/// part of its history was dropped by retention.
fn entry_at(state: &AppState, key: &str, revision: u64) -> Result<ConfigEntry, ApiError> {
    let current = state.store.applied().revision;
    if revision > current {
        return Err(ApiError::malformed(format!(
            "revision {revision} is in the future: the current revision is {current}"
        )));
    }
    match state.store.config_at(key, revision)? {
        AtRevision::Found(e) if !e.meta.deleted => Ok(e),
        AtRevision::Found(e) => Err(ApiError::not_found(format!(
            "config {key} was deleted at revision {} (at or before {revision})",
            e.meta.revision
        ))),
        AtRevision::Absent => Err(ApiError::not_found(format!(
            "config {key} did not exist at revision {revision}"
        ))),
        AtRevision::Compacted { oldest } => Err(ApiError::new(
            ErrorCode::RevisionCompacted,
            match oldest {
                Some(o) => format!(
                    "the history of {key} at revision {revision} was compacted; the oldest revision kept is {o}"
                ),
                None => format!("the history of {key} at revision {revision} was compacted"),
            },
        )),
    }
}

/// `GET /v1/configs/{key}/history`: every revision of the key, newest first, deletes included.
#[utoipa::path(
    get,
    path = "/v1/configs/{key}/history",
    operation_id = "config_history",
    tag = "configs",
    params(KeyParam, HistoryParams),
    responses(
        (status = 200, description = "Every revision of the key kept by the retention, newest first, deletes included.", body = scarab_types::HistoryPage),
    )
)]
async fn history(state: AppState, key: &str, params: HistoryParams) -> Result<Response, ApiError> {
    checked_key(key)?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::malformed(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let stale = state.read_at(params.consistency).await?;
    let page = state
        .store
        .history(key, params.before, limit, state.config.max_page_bytes)?;
    if page.items.is_empty() && params.before.is_none() && page.compacted_through.is_none() {
        return Err(ApiError::not_found(format!("config {key} has no history")));
    }
    let next_before = page
        .more
        .then(|| page.items.last().map(|e| e.meta.revision))
        .flatten();
    let (mut body, end) = super::split_list(
        &scarab_types::HistoryPage {
            items: Vec::new(),
            next_before,
            compacted_through: page.compacted_through,
        },
        "items",
        256 * page.items.len(),
    );
    for (i, entry) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        if entry.meta.deleted {
            let deleted = scarab_types::HistoryEntry {
                meta: meta_view(&entry.meta),
                deleted: true,
                value: Value::Null,
            };
            serde_json::to_writer(&mut body, &deleted).expect("metadata serialises");
        } else {
            entry_json(&mut body, entry);
        }
    }
    body.extend_from_slice(&end);
    let mut resp = json_response(StatusCode::OK, body);
    if let Some(v) = stale {
        resp.headers_mut().insert("x-scarab-consistency", v);
    }
    Ok(state.with_revision(resp))
}

/// `POST /v1/configs/{key}/rollback`.
#[utoipa::path(
    post,
    path = "/v1/configs/{key}/rollback",
    operation_id = "rollback_config",
    tag = "configs",
    params(
        KeyParam,
        ("X-Scarab-Reason" = Option<String>, Header, description = "Why, kept in the audit trail."),
    ),
    request_body(content = scarab_types::RollbackRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The value of that revision written back as a new revision.", body = scarab_types::RolledBack),
        (status = 201, description = "The key was deleted; the value of that revision created it again.", body = scarab_types::RolledBack),
    )
)]
pub async fn post(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(refused) = unless(&path, Resource::Rollback) {
        return Ok(refused);
    }
    let key = path.strip_suffix("/rollback").unwrap_or(&path);
    checked_key(key)?;
    // A rollback reads the old revision and writes it back.
    principal.require(Action::ConfigRead, key)?;
    principal.require(Action::ConfigWrite, key)?;
    require_json(&headers)?;
    let caller = caller(&principal, &headers)?;
    let bytes = read_body(body, SMALL_BODY_BYTES).await?;
    let scarab_types::RollbackRequest { revision } =
        parse_json(&state, &bytes, "{\"revision\": integer}")?;
    state.linearize().await?;
    let old = entry_at(&state, key, revision)?;
    let current = state.store.get_config(key)?;
    // The old value goes back at the version the key is at now (converted if it was written
    // at another one), or at its own version if the key is gone or changed schema.
    let schema = old.meta.schema.clone();
    let version = match &current {
        Some(c) if c.meta.schema == schema => c.meta.schema_version,
        _ => old.meta.schema_version,
    };
    let text = match value_at(&state, &old, Some(version)).await? {
        Some(converted) => converted,
        None => old.value.clone(),
    };
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::internal(format!("stored value is not JSON: {e}")))?;
    let (verdict, value_text) = state
        .validate_write(&schema, version, key, doc, text)
        .await?;
    if !verdict.violations.is_empty() {
        return Err(ApiError::validation(verdict.violations));
    }
    let mut caller = caller;
    caller.context.rollback_of = Some(revision);
    caller.context.validations.push(Validation {
        key: key.to_string(),
        elapsed_us: verdict.elapsed_us,
    });
    // Against the revision read here: a change meanwhile makes this a 412, not a lost update.
    let precondition = match &current {
        Some(c) => Precondition::Revision(c.meta.revision),
        None => Precondition::Absent,
    };
    let put = PutConfig {
        key: key.to_string(),
        schema,
        schema_version: version,
        plugin_digest: verdict.plugin_digest,
        value: value_text,
        precondition,
    };
    Ok(written(state.propose(caller, put).await?, Some(revision)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only keys that start with this (text, not segments: `stores/o` matches `stores/orders`).
    #[serde(default)]
    prefix: String,
    /// Only keys after this one (`next` of the previous page).
    after: Option<String>,
    /// At most this many configs (1 to 1000, default 100).
    #[serde(default, deserialize_with = "super::strict::opt_usize")]
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `linearizable` (default) or `stale`.
    #[serde(default)]
    consistency: Consistency,
    /// Only configs of this schema.
    schema: Option<String>,
    /// Values converted to this version of `schema` (which is then required).
    #[serde(default, deserialize_with = "super::strict::opt_u32")]
    #[param(value_type = Option<u32>, minimum = 1)]
    schema_version: Option<u32>,
}

pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

#[utoipa::path(
    get,
    path = "/v1/configs",
    operation_id = "list_configs",
    tag = "configs",
    params(ListParams),
    responses(
        (status = 200, description = "A page of configs in key order.", body = scarab_types::ConfigPage),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    // A prefix the principal may read only parts of lists only those parts; one it may read
    // nothing of is 403 (an empty list would hide that the keys may exist).
    let reach = principal.reach(Action::ConfigRead, &params.prefix)?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::malformed(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    if params.schema_version.is_some() && params.schema.is_none() {
        return Err(ApiError::malformed(
            "schema_version needs schema: the version of which schema?",
        ));
    }
    let stale = state.read_at(params.consistency).await?;
    let revision = state.store.applied().revision;
    // Only the readable parts are read, in key order: a page (and its cursor) never holds
    // a key the principal may not read.
    let parts = match reach {
        Reach::All => vec![params.prefix.clone()],
        Reach::Some => principal.narrower_prefixes(Action::ConfigRead, &params.prefix),
    };
    let mut page = crate::store::ConfigPage {
        items: Vec::new(),
        more: false,
    };
    for part in &parts {
        let left = limit - page.items.len();
        let got = state.store.list_configs(
            part,
            params.after.as_deref(),
            left,
            state.config.max_page_bytes,
        )?;
        page.items.extend(got.items);
        if got.more || page.items.len() == limit {
            page.more = true;
            break;
        }
    }
    let next = page
        .more
        .then(|| page.items.last().map(|e| e.meta.key.clone()))
        .flatten();
    let (mut body, end) = super::split_list(
        &scarab_types::ConfigPage {
            items: Vec::new(),
            next,
            revision,
        },
        "items",
        256 * page.items.len(),
    );
    let mut first = true;
    for entry in &page.items {
        // Filtered after paging: a page may hold fewer items, `next` stays a valid cursor.
        if params
            .schema
            .as_ref()
            .is_some_and(|s| *s != entry.meta.schema)
        {
            continue;
        }
        if !first {
            body.push(b',');
        }
        first = false;
        match value_at(&state, entry, params.schema_version).await? {
            Some(value) => entry_json_as(&mut body, entry, params.schema_version, &value),
            None => entry_json(&mut body, entry),
        }
    }
    body.extend_from_slice(&end);
    let mut resp = json_response(StatusCode::OK, body);
    if let Some(v) = stale {
        resp.headers_mut().insert("x-scarab-consistency", v);
    }
    Ok(state.with_revision(resp))
}

#[utoipa::path(
    delete,
    path = "/v1/configs/{key}",
    operation_id = "delete_config",
    tag = "configs",
    params(
        KeyParam,
        ("If-Match" = Option<String>, Header, description = "Delete only if the key's current revision is this one; else 412."),
        ("X-Scarab-Reason" = Option<String>, Header, description = "Why, kept in the audit trail."),
    ),
    responses(
        (status = 200, description = "Deleted.", body = scarab_types::Deleted),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(refused) = unless(&key, Resource::Key) {
        return Ok(refused);
    }
    checked_key(&key)?;
    principal.require(Action::ConfigDelete, &key)?;
    let caller = caller(&principal, &headers)?;
    let precondition = precondition(&headers)?;
    let ConfigDeleted { meta } = state
        .propose(caller, DeleteConfig { key, precondition })
        .await?;
    let body = serde_json::to_vec(&scarab_types::Deleted {
        key: meta.key,
        revision: meta.revision,
        deleted_at: rfc3339(meta.updated_at),
        deleted_by: meta.updated_by,
    })
    .expect("serialises");
    Ok(json_response(StatusCode::OK, body))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A stored config's metadata.
    pub(in crate::api) fn stored_meta(deleted: bool) -> ConfigMeta {
        ConfigMeta {
            key: "stores/orders".into(),
            schema: "store".into(),
            schema_version: 1,
            revision: 7,
            key_version: 2,
            created_at: 1_795_000_000_000,
            created_by: "alice".into(),
            updated_at: 1_795_000_000_555,
            updated_by: "bob \"the\" builder".into(),
            plugin_digest: Some("sha256:7d6c".into()),
            deleted,
        }
    }

    /// A value's text as the store keeps it: serde_json's compact text.
    pub(in crate::api) fn stored_value() -> String {
        let written = r#"{ "z": 1E2, "a": [18446744073709551617, 1.50, "é\"\u0041"], "m": null }"#;
        serde_json::from_str::<Value>(written).unwrap().to_string()
    }

    #[test]
    fn an_entry_is_the_wire_type_with_its_value_spliced() {
        let entry = ConfigEntry {
            meta: stored_meta(false),
            value: stored_value(),
        };
        for version in [None, Some(1), Some(2)] {
            let mut out = Vec::new();
            entry_json_as(&mut out, &entry, version, &entry.value);
            let wire = scarab_types::ConfigEntry {
                meta: meta_view_at(&entry.meta, version),
                value: serde_json::from_str(&entry.value).unwrap(),
            };
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&wire).unwrap()
            );
        }
        let converted = meta_view_at(&entry.meta, Some(2));
        assert_eq!(
            (converted.schema_version, converted.converted_from),
            (2, Some(1))
        );
        assert_eq!(meta_view_at(&entry.meta, Some(1)).converted_from, None);
        assert_eq!(converted.updated_at, "2026-11-18T11:06:40.555Z");
    }

    /// Pages are their wire types, with the items spliced in by [`super::super::split_list`].
    #[test]
    fn pages_are_the_wire_types_with_their_items_spliced() {
        let entry = ConfigEntry {
            meta: stored_meta(false),
            value: stored_value(),
        };
        let item = || scarab_types::ConfigEntry {
            meta: meta_view(&entry.meta),
            value: serde_json::from_str(&entry.value).unwrap(),
        };
        for (n, next) in [(0, None), (1, None), (2, Some("stores/x".to_string()))] {
            let page = scarab_types::ConfigPage {
                items: Vec::new(),
                next,
                revision: 9,
            };
            let (mut body, end) = super::super::split_list(&page, "items", 0);
            for i in 0..n {
                if i > 0 {
                    body.push(b',');
                }
                entry_json(&mut body, &entry);
            }
            body.extend_from_slice(&end);
            let page = scarab_types::ConfigPage {
                items: (0..n).map(|_| item()).collect(),
                ..page
            };
            assert_eq!(
                String::from_utf8(body).unwrap(),
                serde_json::to_string(&page).unwrap()
            );
        }
        let page = scarab_types::HistoryPage {
            items: Vec::new(),
            next_before: Some(3),
            compacted_through: None,
        };
        let (mut body, end) = super::super::split_list(&page, "items", 0);
        entry_json(&mut body, &entry);
        body.extend_from_slice(&end);
        let page = scarab_types::HistoryPage {
            items: vec![scarab_types::HistoryEntry {
                meta: meta_view(&entry.meta),
                deleted: false,
                value: serde_json::from_str(&entry.value).unwrap(),
            }],
            ..page
        };
        assert_eq!(
            String::from_utf8(body).unwrap(),
            serde_json::to_string(&page).unwrap()
        );
    }
}
