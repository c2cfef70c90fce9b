//! `/v1/schemas/{name}/migrations`: start a storage migration (or a dry run) and follow it.

use super::extract::{Path, Query};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scarab_types::ErrorCode;

use scarab_types::auth::Action;

use super::authn::Principal;
use super::schemas::{ReadParams, validate_name};
use super::{
    ApiError, AppState, SMALL_BODY_BYTES, caller, parse_json, read_body, require_json, rfc3339,
};
use crate::migrate;
use crate::store::{MigrationRecord, MigrationStatus, StartMigration};

/// A migration as the API shows it.
fn view(m: &MigrationRecord) -> scarab_types::Migration {
    scarab_types::Migration {
        id: m.id,
        schema: m.name.clone(),
        target_version: m.target_version,
        status: match m.status {
            MigrationStatus::Running => scarab_types::MigrationStatus::Running,
            MigrationStatus::Done => scarab_types::MigrationStatus::Done,
        },
        total: m.total,
        done: m.done,
        skipped: m.skipped,
        failed_count: m.failed_count,
        failed: m.failed.iter().map(migrate::failure_view).collect(),
        started_at: rfc3339(m.started_at),
        started_by: m.started_by.clone(),
        updated_at: rfc3339(m.updated_at),
        finished_at: m.finished_at.map(rfc3339),
    }
}

#[utoipa::path(post, path = "/v1/schemas/{name}/migrations", operation_id = "start_migration", tag = "migrations",
    params(("name" = String, Path, description = "The schema's name."),
        ("X-Scarab-Reason" = Option<String>, Header, description = "Why, kept in the audit trail.")),
    request_body(content = scarab_types::StartMigration, content_type = "application/json"),
    responses(
        (status = 200, description = "A dry run's report (`dry_run: true`): nothing was changed.", body = scarab_types::DryRun),
        (status = 202, description = "Started; follow it at `Location`.", body = scarab_types::Migration,
            headers(("Location" = String, description = "The migration's URL.")))))]
pub async fn start(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    validate_name(&name)?;
    principal.require(Action::SchemaMigrate, &name)?;
    require_json(&headers)?;
    let caller = caller(&principal, &headers)?;
    let bytes = read_body(body, SMALL_BODY_BYTES).await?;
    let scarab_types::StartMigration {
        target_version,
        dry_run,
    } = parse_json(
        &state,
        &bytes,
        "{\"target_version\": integer, \"dry_run\": boolean}",
    )?;
    state.linearize().await?;
    if state.store.get_schema(&name, target_version)?.is_none() {
        return Err(ApiError::new(
            ErrorCode::UnknownSchema,
            format!("schema {name} version {target_version} is not registered"),
        ));
    }
    if dry_run {
        let report = migrate::dry_run(&state.store, &state.registry, &name, target_version).await?;
        return Ok(Json(report).into_response());
    }
    let total = migrate::pending(&state.store, &name, target_version, &[])
        .await?
        .len() as u64;
    let start = StartMigration {
        name,
        target_version,
        total,
    };
    let m = state.propose(caller, start).await?;
    let location = format!("/v1/schemas/{}/migrations/{}", m.name, m.id);
    let mut resp = (StatusCode::ACCEPTED, Json(view(&m))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/v1/schemas/{name}/migrations", operation_id = "list_migrations", tag = "migrations",
    params(("name" = String, Path, description = "The schema's name."), super::schemas::ReadParams),
    responses((status = 200, description = "The schema's migrations, oldest first.", body = scarab_types::MigrationList)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    validate_name(&name)?;
    principal.require(Action::SchemaRead, &name)?;
    state.read_at(params.consistency).await?;
    let all = state.store.migrations(Some(&name))?;
    let migrations = all.iter().map(view).collect();
    Ok(state.with_revision(Json(scarab_types::MigrationList { migrations }).into_response()))
}

#[utoipa::path(get, path = "/v1/schemas/{name}/migrations/{id}", operation_id = "get_migration", tag = "migrations",
    params(("name" = String, Path, description = "The schema's name."), ("id" = u64, Path, description = "The migration's id."), super::schemas::ReadParams),
    responses((status = 200, description = "The migration and its progress.", body = scarab_types::Migration)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, id)): Path<(String, String)>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    validate_name(&name)?;
    principal.require(Action::SchemaRead, &name)?;
    let id: u64 = super::strict::canonical_u64(&id).ok_or_else(|| {
        ApiError::malformed(format!(
            "migration id {id:?} is not a number in canonical form"
        ))
    })?;
    state.read_at(params.consistency).await?;
    let m = state
        .store
        .migration(&name, id)?
        .ok_or_else(|| ApiError::not_found(format!("schema {name} has no migration {id}")))?;
    Ok(state.with_revision(Json(view(&m)).into_response()))
}
