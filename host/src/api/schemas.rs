//! `/v1/schemas`: register, read and delete schema versions; validate without storing.

use super::extract::{Path, Query};
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scarab_types::ErrorCode;
use serde::Deserialize;
use serde_json::Value;

use scarab_types::auth::Action;

use super::authn::Principal;
use super::{ApiError, AppState, Consistency, caller, read_body, require_json, rfc3339};
use crate::plugins::digest;
use crate::schema::{CompatReport, NewVersion, SchemaError};
use crate::store::{
    DeleteSchema, PluginContract, PutSchema, SchemaDeleted, SchemaPolicy, SchemaPolicySet,
    SchemaRecord, SchemaRegistered, SetSchemaPolicy, WritePolicy,
};

/// A schema name: 1 to 64 characters of `[a-z0-9-]`, starting with a letter.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    scarab_types::validate_schema_name(name)
        .map_err(|e| ApiError::new(ErrorCode::InvalidSchemaName, e.to_string()))
}

fn parse_version(version: &str) -> Result<u32, ApiError> {
    match super::strict::canonical_u64(version).and_then(|v| u32::try_from(v).ok()) {
        Some(v) if v >= 1 => Ok(v),
        _ => Err(ApiError::new(
            ErrorCode::InvalidSchemaVersion,
            format!("schema version {version:?} must be an integer from 1"),
        )),
    }
}

/// JSON text with object keys sorted and no whitespace: equal documents, equal text.
pub fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).expect("string serialises"));
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&serde_json::to_string(scalar).expect("scalar serialises")),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// A registered version as the API shows it, with its JSON Schema if `with_schema`.
fn version_view(r: &SchemaRecord, with_schema: bool) -> scarab_types::SchemaVersion {
    scarab_types::SchemaVersion {
        name: r.name.clone(),
        version: r.version,
        plugin_digest: r.plugin_digest.clone(),
        revision: r.revision,
        registered_at: rfc3339(r.registered_at),
        registered_by: r.registered_by.clone(),
        plugin_contract: r.plugin_contract.as_ref().map(contract_view),
        references: r
            .refs
            .iter()
            .map(|t| scarab_types::SchemaReference {
                uri: t.uri.clone(),
                name: t.name.clone(),
                version: t.version,
            })
            .collect(),
        schema: with_schema.then(|| serde_json::from_str(&r.schema).unwrap_or(Value::Null)),
    }
}

fn contract_view(c: &PluginContract) -> scarab_types::PluginContract {
    scarab_types::PluginContract {
        wit: c.wit.clone(),
        migration: c.migration.map(|m| scarab_types::MigrationSpec {
            from_version: m.from_version,
            downgrade: m.downgrade,
        }),
    }
}

/// A compatibility report as the API shows it (also in the error that refuses a
/// registration).
pub(super) fn compat_view(r: &CompatReport) -> scarab_types::CompatReport {
    scarab_types::CompatReport {
        name: r.name.clone(),
        version: r.version,
        from_version: r.from_version,
        checked: r.checked as u64,
        compatible: r.compatible,
        failed: r.failed as u64,
        failures: r
            .failures
            .iter()
            .map(|f| scarab_types::CompatFailure {
                key: f.key.clone(),
                revision: f.revision,
                step: compat_step(f.step),
                reason: f.reason.clone(),
                violations: f.violations.clone(),
            })
            .collect(),
    }
}

/// The step of a compatibility failure (the registry names it `upgrade`, `validate` or
/// `round_trip`).
fn compat_step(step: &str) -> scarab_types::CompatStep {
    use scarab_types::CompatStep as S;
    match step {
        "upgrade" => S::Upgrade,
        "validate" => S::Validate,
        "round_trip" => S::RoundTrip,
        other => {
            debug_assert!(false, "a compatibility step the API does not know: {other}");
            S::Unknown
        }
    }
}

fn policy_view(p: &SchemaPolicy) -> scarab_types::SchemaPolicy {
    scarab_types::SchemaPolicy {
        writes: match p.writes {
            WritePolicy::Any => scarab_types::WritePolicy::Any,
            WritePolicy::Latest => scarab_types::WritePolicy::Latest,
        },
    }
}

/// A version upload as `multipart/form-data` (described for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the upload is read part by part (read_upload)
struct UploadForm {
    /// The JSON Schema (draft 2020-12) as JSON text.
    schema: Value,
    /// The plugin: a WebAssembly component implementing a released plugin world.
    #[schema(value_type = Option<String>, format = Binary, content_media_type = "application/wasm")]
    plugin: Option<Vec<u8>>,
}

/// The parts of a version upload: the JSON Schema and the optional plugin.
struct Upload {
    schema: Value,
    plugin: Option<Vec<u8>>,
}

/// Reads a `multipart/form-data` upload with a `schema` part and an optional `plugin` part.
async fn read_upload(
    state: &AppState,
    headers: &HeaderMap,
    request: Request,
) -> Result<Upload, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "upload a schema version as multipart/form-data with a `schema` part and an optional `plugin` part",
        ));
    }
    // Buffer with our own limit first, so that an oversized upload is a JSON 413.
    let (parts, body) = request.into_parts();
    let (max_plugin, max_schema) = (state.config.max_plugin_bytes, state.config.max_value_bytes);
    let too_large = |what: &str| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "{what}: a plugin may be at most {max_plugin} bytes (--max-plugin-bytes) and a JSON Schema at most {max_schema} bytes (--max-value-bytes)"
            ),
        )
    };
    let bytes = read_body(body, max_plugin + max_schema)
        .await
        .map_err(|_| {
            too_large("the upload is larger than a plugin and a JSON Schema together may be")
        })?;
    let request = Request::from_parts(parts, Body::from(bytes));
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::malformed(format!("multipart body: {e}")))?;
    let mut schema: Option<Value> = None;
    let mut plugin: Option<Vec<u8>> = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::malformed(format!("multipart body: {e}")))?
    {
        match field.name() {
            Some("schema") => {
                if schema.is_some() {
                    return Err(ApiError::malformed(
                        "the `schema` part appears more than once",
                    ));
                }
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::malformed(format!("schema part: {e}")))?;
                if data.len() > max_schema {
                    return Err(too_large(&format!(
                        "the JSON Schema is {} bytes",
                        data.len()
                    )));
                }
                crate::json::check(&data, state.config.max_json_depth)?;
                let doc: Value = serde_json::from_slice(&data).map_err(|e| {
                    ApiError::malformed(format!("the schema part is not JSON: {e}"))
                })?;
                schema = Some(doc);
            }
            Some("plugin") if plugin.is_some() => {
                return Err(ApiError::malformed(
                    "the `plugin` part appears more than once",
                ));
            }
            Some("plugin") => {
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::malformed(format!("plugin part: {e}")))?;
                if data.len() > max_plugin {
                    return Err(too_large(&format!("the plugin is {} bytes", data.len())));
                }
                plugin = Some(data.to_vec());
            }
            other => {
                return Err(ApiError::malformed(format!(
                    "unexpected multipart part {other:?}; expected `schema` and optionally `plugin`"
                )));
            }
        }
    }
    let schema = schema.ok_or_else(|| ApiError::malformed("the `schema` part is missing"))?;
    Ok(Upload { schema, plugin })
}

/// Checks an upload as version `version` of `name` (see `SchemaRegistry::check_new_version`),
/// after a read barrier, so that the compatibility report covers every acknowledged write.
async fn check_upload(
    state: &AppState,
    name: &str,
    version: u32,
    upload: &Upload,
) -> Result<NewVersion, ApiError> {
    state.linearize().await?;
    let registry = state.registry.clone();
    let (name, schema, plugin) = (
        name.to_string(),
        upload.schema.clone(),
        upload.plugin.clone(),
    );
    Ok(tokio::task::spawn_blocking(move || {
        let digest = plugin.as_deref().map(digest);
        let p = digest.as_deref().zip(plugin.as_deref());
        registry.check_new_version(&name, version, &schema, p)
    })
    .await
    .map_err(|e| ApiError::internal(format!("check task: {e}")))??)
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegisterParams {
    /// Register even if stored configs would not survive the upgrade.
    #[serde(default)]
    force: bool,
}

#[utoipa::path(put, path = "/v1/schemas/{name}/versions/{version}", operation_id = "register_schema_version", tag = "schemas",
    params(("name" = String, Path, description = "The schema's name: 1 to 128 of `A-Z a-z 0-9 . _ -`."), ("version" = u32, Path, minimum = 1, description = "The version, from 1."), RegisterParams,
        ("X-Scarab-Reason" = Option<String>, Header, description = "Why, kept in the audit trail.")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The same content was registered already: nothing changed.", body = scarab_types::Registered),
        (status = 201, description = "Registered, with the compatibility report over the stored configs.", body = scarab_types::Registered)))]
pub async fn register(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, version)): Path<(String, String)>,
    Query(params): Query<RegisterParams>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    validate_name(&name)?;
    principal.require(Action::SchemaRegister, &name)?;
    let version = parse_version(&version)?;
    let caller = caller(&principal, &headers)?;
    let upload = read_upload(&state, &headers, request).await?;
    let checked = check_upload(&state, &name, version, &upload).await?;
    let report = checked.report;
    if !report.compatible && !params.force {
        return Err(SchemaError::Incompatible {
            name,
            version,
            from: report.from_version.unwrap_or_default(),
            checked: report.checked,
            failed: report.failed,
            report: Box::new(report),
        }
        .into());
    }
    let plugin_digest = upload.plugin.as_deref().map(digest);
    let put = PutSchema {
        name,
        version,
        schema: canonical_json(&upload.schema),
        plugin_digest,
        plugin: upload.plugin,
        plugin_contract: checked.contract,
        refs: checked.refs,
    };
    let SchemaRegistered { record, created } = state.propose(caller, put).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = scarab_types::Registered {
        version: version_view(&record, false),
        compatibility: compat_view(&report),
    };
    Ok((status, Json(body)).into_response())
}

/// `POST .../compatibility`: the report registering this upload would produce, without
/// registering anything (a dry run).
#[utoipa::path(post, path = "/v1/schemas/{name}/versions/{version}/compatibility", operation_id = "check_compatibility", tag = "schemas",
    params(("name" = String, Path, description = "The schema's name: 1 to 128 of `A-Z a-z 0-9 . _ -`."), ("version" = u32, Path, minimum = 1, description = "The version, from 1.")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The report registering this upload would produce; nothing is registered.", body = scarab_types::CompatibilityCheck)))]
pub async fn compatibility(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    validate_name(&name)?;
    principal.require(Action::SchemaRead, &name)?;
    let version = parse_version(&version)?;
    let upload = read_upload(&state, &headers, request).await?;
    let checked = check_upload(&state, &name, version, &upload).await?;
    Ok(Json(scarab_types::CompatibilityCheck {
        plugin_contract: checked.contract.as_ref().map(contract_view),
        compatibility: compat_view(&checked.report),
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/schemas/{name}/policy", operation_id = "get_schema_policy", tag = "schemas",
    params(("name" = String, Path, description = "The schema's name."), ReadParams),
    responses((status = 200, description = "The schema's write policy.", body = scarab_types::PolicyView)))]
pub async fn get_policy(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    validate_name(&name)?;
    principal.require(Action::SchemaRead, &name)?;
    state.read_at(params.consistency).await?;
    if state.store.list_schemas(Some(&name))?.is_empty() {
        return Err(ApiError::not_found(format!(
            "schema {name} has no registered version"
        )));
    }
    let policy = policy_view(&state.store.schema_policy(&name)?);
    Ok(state.with_revision(Json(scarab_types::PolicyView { name, policy }).into_response()))
}

#[utoipa::path(put, path = "/v1/schemas/{name}/policy", operation_id = "set_schema_policy", tag = "schemas",
    params(("name" = String, Path, description = "The schema's name."), ("X-Scarab-Reason" = Option<String>, Header, description = "Why, kept in the audit trail.")),
    request_body(content = scarab_types::SchemaPolicy, content_type = "application/json"),
    responses((status = 200, description = "The policy set, and the revision of the change.", body = scarab_types::PolicySet)))]
pub async fn set_policy(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    validate_name(&name)?;
    principal.require(Action::SchemaRegister, &name)?;
    require_json(&headers)?;
    let caller = caller(&principal, &headers)?;
    let bytes = read_body(body, super::SMALL_BODY_BYTES).await?;
    let policy: scarab_types::SchemaPolicy =
        super::parse_json(&state, &bytes, "{\"writes\": \"any\" | \"latest\"}")?;
    let policy = SchemaPolicy {
        writes: match policy.writes {
            scarab_types::WritePolicy::Any => WritePolicy::Any,
            scarab_types::WritePolicy::Latest => WritePolicy::Latest,
        },
    };
    let SchemaPolicySet {
        name,
        policy,
        revision,
    } = state
        .propose(caller, SetSchemaPolicy { name, policy })
        .await?;
    Ok(Json(scarab_types::PolicySet {
        name,
        policy: policy_view(&policy),
        revision,
    })
    .into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// `linearizable` (default) or `stale`.
    #[serde(default)]
    pub consistency: Consistency,
}

#[utoipa::path(get, path = "/v1/schemas", operation_id = "list_schemas", tag = "schemas",
    params(ReadParams),
    responses((status = 200, description = "Every schema the principal may read, with its versions.", body = scarab_types::SchemaList)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    state.read_at(params.consistency).await?;
    let mut schemas: Vec<scarab_types::SchemaSummary> = Vec::new();
    for r in state.store.list_schemas(None)? {
        // Only the schemas the principal may read.
        if !principal.allows(Action::SchemaRead, &r.name) {
            continue;
        }
        match schemas.last_mut() {
            Some(last) if last.name == r.name => last.versions.push(r.version),
            _ => schemas.push(scarab_types::SchemaSummary {
                name: r.name,
                versions: vec![r.version],
            }),
        }
    }
    Ok(state.with_revision(Json(scarab_types::SchemaList { schemas }).into_response()))
}

#[utoipa::path(get, path = "/v1/schemas/{name}", operation_id = "list_schema_versions", tag = "schemas",
    params(("name" = String, Path, description = "The schema's name."), ReadParams),
    responses((status = 200, description = "The schema's versions (without their JSON Schemas).", body = scarab_types::SchemaVersions)))]
pub async fn list_versions(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    validate_name(&name)?;
    principal.require(Action::SchemaRead, &name)?;
    state.read_at(params.consistency).await?;
    let records = state.store.list_schemas(Some(&name))?;
    if records.is_empty() {
        return Err(ApiError::not_found(format!(
            "schema {name} has no registered version"
        )));
    }
    let versions = records.iter().map(|r| version_view(r, false)).collect();
    Ok(state.with_revision(Json(scarab_types::SchemaVersions { name, versions }).into_response()))
}

fn record(state: &AppState, name: &str, version: &str) -> Result<SchemaRecord, ApiError> {
    validate_name(name)?;
    let version = parse_version(version)?;
    state.store.get_schema(name, version)?.ok_or_else(|| {
        ApiError::not_found(format!("schema {name} version {version} is not registered"))
    })
}

#[utoipa::path(get, path = "/v1/schemas/{name}/versions/{version}", operation_id = "get_schema_version", tag = "schemas",
    params(("name" = String, Path, description = "The schema's name: 1 to 128 of `A-Z a-z 0-9 . _ -`."), ("version" = u32, Path, minimum = 1, description = "The version, from 1."), ReadParams),
    responses((status = 200, description = "The version with its JSON Schema.", body = scarab_types::SchemaVersion)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, version)): Path<(String, String)>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    principal.require(Action::SchemaRead, &name)?;
    state.read_at(params.consistency).await?;
    let r = record(&state, &name, &version)?;
    Ok(state.with_revision(Json(version_view(&r, true)).into_response()))
}

#[utoipa::path(get, path = "/v1/schemas/{name}/versions/{version}/plugin", operation_id = "get_plugin", tag = "schemas",
    params(("name" = String, Path, description = "The schema's name: 1 to 128 of `A-Z a-z 0-9 . _ -`."), ("version" = u32, Path, minimum = 1, description = "The version, from 1."), ReadParams),
    responses((status = 200, description = "The version's plugin, a WebAssembly component.", content_type = "application/wasm", body = Vec<u8>,
        headers(("ETag" = String, description = "The plugin's digest, quoted.")))))]
pub async fn plugin(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, version)): Path<(String, String)>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    principal.require(Action::SchemaRead, &name)?;
    state.read_at(params.consistency).await?;
    let r = record(&state, &name, &version)?;
    let digest = r.plugin_digest.ok_or_else(|| {
        ApiError::not_found(format!("schema {name} version {version} has no plugin"))
    })?;
    let bytes = state
        .store
        .plugin_bytes(&digest)?
        .ok_or_else(|| ApiError::internal(format!("plugin {digest} is missing from the store")))?;
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/wasm"),
            ),
            (
                header::ETAG,
                HeaderValue::from_str(&format!("\"{digest}\"")).expect("hex digest"),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[utoipa::path(delete, path = "/v1/schemas/{name}/versions/{version}", operation_id = "delete_schema_version", tag = "schemas",
    params(("name" = String, Path, description = "The schema's name: 1 to 128 of `A-Z a-z 0-9 . _ -`."), ("version" = u32, Path, minimum = 1, description = "The version, from 1."), ("X-Scarab-Reason" = Option<String>, Header, description = "Why, kept in the audit trail.")),
    responses((status = 200, description = "The version deleted.", body = scarab_types::SchemaVersion)))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    validate_name(&name)?;
    principal.require(Action::SchemaDelete, &name)?;
    let version = parse_version(&version)?;
    let caller = caller(&principal, &headers)?;
    let SchemaDeleted { record } = state
        .propose(caller, DeleteSchema { name, version })
        .await?;
    Ok(Json(version_view(&record, false)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ValidateParams {
    /// The key the document would be written under (a plugin may check it).
    #[serde(default)]
    key: String,
}

#[utoipa::path(post, path = "/v1/schemas/{name}/versions/{version}/validate", operation_id = "validate", tag = "schemas",
    params(("name" = String, Path, description = "The schema's name: 1 to 128 of `A-Z a-z 0-9 . _ -`."), ("version" = u32, Path, minimum = 1, description = "The version, from 1."), ValidateParams),
    request_body(content = serde_json::Value, content_type = "application/json", description = "The document to check (any JSON)."),
    responses((status = 200, description = "Whether the document is valid, with every violation; nothing is written.", body = scarab_types::ValidateResult)))]
pub async fn validate(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, version)): Path<(String, String)>,
    Query(params): Query<ValidateParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    validate_name(&name)?;
    principal.require(Action::SchemaRead, &name)?;
    let version = parse_version(&version)?;
    require_json(&headers)?;
    if !params.key.is_empty() {
        super::configs::checked_key(&params.key)?;
    }
    // The one size rule of a document (as for a write, a transaction op and a rollback): its
    // compact JSON within --max-value-bytes, whatever whitespace it arrives with.
    let limit = state.config.max_value_bytes;
    let bytes = read_body(body, limit + super::configs::ENVELOPE_SLACK).await?;
    crate::json::check(&bytes, state.config.max_json_depth)?;
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::malformed(format!("the body is not JSON: {e}")))?;
    let text = super::configs::value_text(&doc, limit)?;
    let (verdict, _) = state
        .validate_write(&name, version, &params.key, doc, text)
        .await?;
    Ok(Json(scarab_types::ValidateResult {
        valid: verdict.violations.is_empty(),
        violations: verdict.violations,
        plugin_digest: verdict.plugin_digest,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::{canonical_json, compat_step};

    #[test]
    fn compat_steps_keep_their_names() {
        for step in ["upgrade", "validate", "round_trip"] {
            let json = serde_json::to_string(&compat_step(step)).unwrap();
            assert_eq!(json, format!("\"{step}\""));
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":0,"y":1}],"c":null}}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[1,{"y":1,"z":0}]},"b":1}"#
        );
    }
}
