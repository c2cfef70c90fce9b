//! `/v1/auth`: users, roles and tokens, and `whoami`; and the bootstrap of a cluster's first
//! principal.
//!
//! Owns: the wire side of access management (who may manage what: `auth:admin`, and every
//! principal its own tokens) and making a token (its secret is made here and shown once; only
//! its hash is proposed). Does not own: applying the changes (`store/auth.rs`) nor checking
//! requests (`api/authn.rs`).

use std::io::Write;
use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use super::extract::Path;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use scarab_types::ErrorCode;
use scarab_types::auth::{
    ADMIN_ROLE, Action, CreateToken, CreatedToken, Grant, Permission, PutRole, PutUser, Role,
    TokenInfo, User, WhoAmI,
};

use super::authn::{Principal, Via, new_token};
use super::{
    ApiError, AppState, SMALL_BODY_BYTES, caller, parse_json, read_body, require_json, rfc3339,
};
use crate::store::{AuthChange, AuthChanged, ROOT_USER, TokenRecord};

/// The longest validity a token may be given.
const MAX_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// User and role names: 1 to 128 visible ASCII characters, no `/`, `%`, `*`.
fn checked_name(what: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'%' | b'*'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::malformed(format!(
            "a {what} name is 1 to 128 visible ASCII characters without /, % or *; got {name:?}"
        )))
    }
}

async fn change(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    change: AuthChange,
) -> Result<AuthChanged, ApiError> {
    let caller = caller(principal, headers)?;
    state.propose(caller, change).await
}

/// Applies `change`, then answers with user `name` as it now is.
async fn change_user(
    state: AppState,
    principal: Principal,
    headers: &HeaderMap,
    name: String,
    change_: AuthChange,
) -> Result<Response, ApiError> {
    change(&state, &principal, headers, change_).await?;
    get_user(principal, State(state), Path(name))
        .await
        .map(IntoResponse::into_response)
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /v1/auth/whoami`.
#[utoipa::path(get, path = "/v1/auth/whoami", operation_id = "whoami", tag = "auth",
    responses((status = 200, description = "The principal of the request and its permissions.", body = scarab_types::auth::WhoAmI)))]
pub async fn whoami(principal: Principal, State(state): State<AppState>) -> Json<WhoAmI> {
    let view = state.store.auth();
    let (by, token_id) = match &principal.via {
        Via::Token(id) => ("token", Some(id.clone())),
        Via::Certificate => ("certificate", None),
        Via::Open => ("open", None),
        Via::Nobody => ("nobody", None),
    };
    let roles = view
        .users
        .get(&principal.name)
        .map(|u| u.roles.clone())
        .unwrap_or_default();
    let permissions = match principal.permissions() {
        Some(p) => p.to_vec(),
        None => Permission::admin(),
    };
    Json(WhoAmI {
        principal: principal.name.clone(),
        authenticated_by: by.into(),
        token_id,
        roles,
        permissions,
    })
}

fn user_view(name: &str, u: &crate::store::UserRecord) -> User {
    User {
        name: name.to_string(),
        roles: u.roles.clone(),
        created_at: rfc3339(u.created_ms),
        created_by: u.created_by.clone(),
    }
}

/// `GET /v1/auth/users`.
#[utoipa::path(get, path = "/v1/auth/users", operation_id = "list_users", tag = "auth",
    responses((status = 200, description = "Every user (`auth:admin`).", body = Vec<scarab_types::auth::User>)))]
pub async fn list_users(
    principal: Principal,
    State(state): State<AppState>,
) -> Result<Json<Vec<User>>, ApiError> {
    principal.require(Action::AuthAdmin, "")?;
    state.linearize().await?;
    let view = state.store.auth();
    Ok(Json(
        view.users.iter().map(|(n, u)| user_view(n, u)).collect(),
    ))
}

/// `GET /v1/auth/users/{name}`: `auth:admin`, or the user itself.
#[utoipa::path(get, path = "/v1/auth/users/{name}", operation_id = "get_user", tag = "auth",
    params(("name" = String, Path, description = "The user's name.")),
    responses((status = 200, description = "The user.", body = scarab_types::auth::User)))]
pub async fn get_user(
    principal: Principal,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<User>, ApiError> {
    if principal.name != name {
        principal.require(Action::AuthAdmin, "")?;
    }
    state.linearize().await?;
    let view = state.store.auth();
    let u = view
        .users
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("user {name} not found")))?;
    Ok(Json(user_view(&name, u)))
}

/// `PUT /v1/auth/users/{name}` with `{"roles": [...]}`: creates or replaces the user.
#[utoipa::path(put, path = "/v1/auth/users/{name}", operation_id = "put_user", tag = "auth",
    params(("name" = String, Path, description = "The user's name: 1 to 128 visible ASCII characters without `/`, `%` or `*`.")),
    request_body(content = scarab_types::auth::PutUser, content_type = "application/json"),
    responses((status = 200, description = "The user as it now is.", body = scarab_types::auth::User)))]
pub async fn put_user(
    principal: Principal,
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require(Action::AuthAdmin, "")?;
    checked_name("user", &name)?;
    require_json(&headers)?;
    let bytes = read_body(body, SMALL_BODY_BYTES).await?;
    let PutUser { roles } = parse_json(&state, &bytes, "{\"roles\": [role names]}")?;
    for r in &roles {
        checked_name("role", r)?;
    }
    change_user(
        state,
        principal,
        &headers,
        name.clone(),
        AuthChange::PutUser { name, roles },
    )
    .await
}

/// `DELETE /v1/auth/users/{name}`: the user and every token of theirs.
#[utoipa::path(delete, path = "/v1/auth/users/{name}", operation_id = "delete_user", tag = "auth",
    params(("name" = String, Path, description = "The user's name.")),
    responses((status = 204, description = "Deleted, with every token of the user.")))]
pub async fn delete_user(
    principal: Principal,
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(Action::AuthAdmin, "")?;
    change(
        &state,
        &principal,
        &headers,
        AuthChange::DeleteUser { name },
    )
    .await?;
    Ok(no_content())
}

/// `POST /v1/auth/users/{name}/roles` with `{"grant": "role"}`.
#[utoipa::path(post, path = "/v1/auth/users/{name}/roles", operation_id = "grant_role", tag = "auth",
    params(("name" = String, Path, description = "The user's name.")),
    request_body(content = scarab_types::auth::Grant<String>, content_type = "application/json"),
    responses((status = 200, description = "The user as it now is.", body = scarab_types::auth::User)))]
pub async fn grant_role(
    principal: Principal,
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require(Action::AuthAdmin, "")?;
    require_json(&headers)?;
    let bytes = read_body(body, SMALL_BODY_BYTES).await?;
    let Grant { grant: role } = parse_json::<Grant<String>>(&state, &bytes, "{\"grant\": role}")?;
    checked_name("role", &role)?;
    change_user(
        state,
        principal,
        &headers,
        user.clone(),
        AuthChange::GrantRole { user, role },
    )
    .await
}

/// `DELETE /v1/auth/users/{name}/roles/{role}`.
#[utoipa::path(delete, path = "/v1/auth/users/{name}/roles/{role}", operation_id = "revoke_role", tag = "auth",
    params(("name" = String, Path, description = "The user's name."), ("role" = String, Path, description = "The role to revoke.")),
    responses((status = 200, description = "The user as it now is.", body = scarab_types::auth::User)))]
pub async fn revoke_role(
    principal: Principal,
    State(state): State<AppState>,
    Path((user, role)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(Action::AuthAdmin, "")?;
    change_user(
        state,
        principal,
        &headers,
        user.clone(),
        AuthChange::RevokeRole { user, role },
    )
    .await
}

fn role_view(view: &crate::store::AuthView, name: &str) -> Option<Role> {
    Some(Role {
        name: name.to_string(),
        permissions: view.role(name)?,
        builtin: name == ADMIN_ROLE,
    })
}

/// `GET /v1/auth/roles`: the built-in `admin` first.
#[utoipa::path(get, path = "/v1/auth/roles", operation_id = "list_roles", tag = "auth",
    responses((status = 200, description = "Every role, the built-in `admin` first.", body = Vec<scarab_types::auth::Role>)))]
pub async fn list_roles(
    principal: Principal,
    State(state): State<AppState>,
) -> Result<Json<Vec<Role>>, ApiError> {
    principal.require(Action::AuthAdmin, "")?;
    state.linearize().await?;
    let view = state.store.auth();
    let names = std::iter::once(ADMIN_ROLE).chain(view.roles.keys().map(String::as_str));
    Ok(Json(names.filter_map(|n| role_view(&view, n)).collect()))
}

/// `GET /v1/auth/roles/{name}`.
#[utoipa::path(get, path = "/v1/auth/roles/{name}", operation_id = "get_role", tag = "auth",
    params(("name" = String, Path, description = "The role's name.")),
    responses((status = 200, description = "The role.", body = scarab_types::auth::Role)))]
pub async fn get_role(
    principal: Principal,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Role>, ApiError> {
    principal.require(Action::AuthAdmin, "")?;
    state.linearize().await?;
    role_view(&state.store.auth(), &name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("role {name} not found")))
}

/// `PUT /v1/auth/roles/{name}` with `{"permissions": [...]}`.
#[utoipa::path(put, path = "/v1/auth/roles/{name}", operation_id = "put_role", tag = "auth",
    params(("name" = String, Path, description = "The role's name: 1 to 128 visible ASCII characters without `/`, `%` or `*`.")),
    request_body(content = scarab_types::auth::PutRole, content_type = "application/json"),
    responses((status = 200, description = "The role as it now is.", body = scarab_types::auth::Role)))]
pub async fn put_role(
    principal: Principal,
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require(Action::AuthAdmin, "")?;
    checked_name("role", &name)?;
    if name == ADMIN_ROLE {
        return Err(ApiError::malformed(
            "the role admin is built in and cannot be changed",
        ));
    }
    require_json(&headers)?;
    let bytes = read_body(body, SMALL_BODY_BYTES).await?;
    let PutRole { permissions } = parse_json(
        &state,
        &bytes,
        "{\"permissions\": [{\"action\": \"config:read\", \"resource\": \"prefix/\"}]}",
    )?;
    if permissions.len() > 256 {
        return Err(ApiError::malformed("a role has at most 256 permissions"));
    }
    for p in &permissions {
        p.check().map_err(|e| ApiError::malformed(e.to_string()))?;
    }
    change(
        &state,
        &principal,
        &headers,
        AuthChange::PutRole {
            name: name.clone(),
            permissions,
        },
    )
    .await?;
    get_role(principal, State(state), Path(name))
        .await
        .map(IntoResponse::into_response)
}

/// `DELETE /v1/auth/roles/{name}`: only a role no user holds (409 `role_in_use`).
#[utoipa::path(delete, path = "/v1/auth/roles/{name}", operation_id = "delete_role", tag = "auth",
    params(("name" = String, Path, description = "The role's name.")),
    responses((status = 204, description = "Deleted.")))]
pub async fn delete_role(
    principal: Principal,
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(Action::AuthAdmin, "")?;
    change(
        &state,
        &principal,
        &headers,
        AuthChange::DeleteRole { name },
    )
    .await?;
    Ok(no_content())
}

fn token_view(t: &TokenRecord) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        principal: t.principal.clone(),
        created_at: rfc3339(t.created_ms),
        created_by: t.created_by.clone(),
        expires_at: t.expires_ms.map(rfc3339),
        description: t.description.clone(),
    }
}

/// `GET /v1/auth/tokens`: every token with `auth:admin`, otherwise the principal's own.
#[utoipa::path(get, path = "/v1/auth/tokens", operation_id = "list_tokens", tag = "auth",
    responses((status = 200, description = "Every token (`auth:admin`), or the principal's own; never a secret.", body = Vec<scarab_types::auth::TokenInfo>)))]
pub async fn list_tokens(
    principal: Principal,
    State(state): State<AppState>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let all = principal.allows(Action::AuthAdmin, "");
    state.linearize().await?;
    let view = state.store.auth();
    let mut tokens: Vec<TokenInfo> = view
        .tokens
        .values()
        .filter(|t| all || t.principal == principal.name)
        .map(token_view)
        .collect();
    tokens.sort_by(|a, b| {
        (&a.principal, &a.created_at, &a.id).cmp(&(&b.principal, &b.created_at, &b.id))
    });
    Ok(Json(tokens))
}

/// `POST /v1/auth/tokens` with `{"principal", "ttl"?, "description"?}`: `auth:admin`, or a
/// principal making a token for itself. Answers the token once.
#[utoipa::path(post, path = "/v1/auth/tokens", operation_id = "create_token", tag = "auth",
    request_body(content = scarab_types::auth::CreateToken, content_type = "application/json"),
    responses((status = 201, description = "The token: its secret is shown this once.", body = scarab_types::auth::CreatedToken)))]
pub async fn create_token(
    principal: Principal,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let bytes = read_body(body, SMALL_BODY_BYTES).await?;
    let req: CreateToken = parse_json(
        &state,
        &bytes,
        "{\"principal\": user, \"ttl\": \"30d\" (optional), \"description\": text (optional)}",
    )?;
    if req.principal != principal.name {
        principal.require(Action::AuthAdmin, "")?;
    }
    checked_name("user", &req.principal)?;
    if req.description.as_ref().is_some_and(|d| d.len() > 256) {
        return Err(ApiError::malformed("a description is at most 256 bytes"));
    }
    let now = crate::clock::now_ms();
    let expires_ms = match &req.ttl {
        None => None,
        Some(ttl) => {
            let d = humantime::parse_duration(ttl)
                .map_err(|e| ApiError::malformed(format!("ttl {ttl:?}: {e}")))?;
            if d < Duration::from_secs(1) || d > MAX_TTL {
                return Err(ApiError::malformed("ttl must be between 1s and 10 years"));
            }
            Some(now + d.as_millis() as u64)
        }
    };
    let live = state.store.auth().tokens.len();
    if live >= state.config.max_tokens {
        return Err(ApiError::new(
            ErrorCode::TooManyTokens,
            format!(
                "the cluster holds {live} tokens, the most --max-tokens allows; revoke unused ones first"
            ),
        ));
    }
    let t = new_token()?;
    let record = TokenRecord {
        id: t.id,
        hash: t.hash,
        principal: req.principal,
        created_ms: now,
        created_by: principal.name.clone(),
        expires_ms,
        description: req.description,
    };
    let info = token_view(&record);
    change(
        &state,
        &principal,
        &headers,
        AuthChange::CreateToken(record),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: t.text,
            info,
        }),
    )
        .into_response())
}

/// `DELETE /v1/auth/tokens/{id}`: `auth:admin`, or the token's own principal.
#[utoipa::path(delete, path = "/v1/auth/tokens/{id}", operation_id = "revoke_token", tag = "auth",
    params(("id" = String, Path, description = "The token's id (16 hex digits).")),
    responses((status = 204, description = "Revoked.")))]
pub async fn revoke_token(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let own = state
        .store
        .auth()
        .tokens
        .get(&id)
        .is_some_and(|t| t.principal == principal.name);
    if !own {
        principal.require(Action::AuthAdmin, "")?;
    }
    change(&state, &principal, &headers, AuthChange::RevokeToken { id }).await?;
    Ok(no_content())
}

/// Where the root token of a new cluster goes: `--root-token-file`, or DATA_DIR/root-token.
fn root_token_path(state: &AppState) -> PathBuf {
    state
        .config
        .root_token_file
        .clone()
        .unwrap_or_else(|| state.config.data_dir.join("root-token"))
}

#[derive(Debug, thiserror::Error)]
enum BootstrapError {
    #[error("cannot write the root token file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("the root token file {0} does not hold a Scarab token")]
    NotAToken(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The token of the root token file: the one an operator put there, or a new one written
/// with mode 0600 (`created`: by this call).
fn root_token(path: &FsPath) -> Result<(String, bool), BootstrapError> {
    let write_err = |source| BootstrapError::Write {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok((text.trim().to_string(), false)),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(write_err(e)),
        Err(_) => {}
    }
    let t = new_token()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(write_err)?;
    file.write_all(format!("{}\n", t.text).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_err)?;
    Ok((t.text, true))
}

/// With authentication on: once this node leads a cluster that has no user yet, creates
/// user `root` (role `admin`) with the token of the root token file. Every node runs this;
/// the state machine applies only the first bootstrap.
pub async fn bootstrap(state: AppState) {
    loop {
        if state.store.auth().bootstrapped() {
            return;
        }
        let leader = state.cluster.leader().map(|(id, _)| id) == Some(state.cluster.node_id());
        if leader {
            match bootstrap_once(&state).await {
                Ok(()) => return,
                Err(e) => tracing::error!(error = %e, "cannot bootstrap authentication; retrying"),
            }
        }
        tokio::select! {
            _ = state.stopping.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

async fn bootstrap_once(state: &AppState) -> Result<(), BootstrapError> {
    let path = root_token_path(state);
    let (text, created) = root_token(&path)?;
    let (id, hash) = super::authn::token_parts(&text)
        .ok_or_else(|| BootstrapError::NotAToken(path.display().to_string()))?;
    let record = TokenRecord {
        id,
        hash,
        principal: ROOT_USER.into(),
        created_ms: crate::clock::now_ms(),
        created_by: "scarab".into(),
        expires_ms: None,
        description: Some("root token, made when authentication was bootstrapped".into()),
    };
    let caller = super::Caller {
        actor: "scarab".into(),
        context: Default::default(),
    };
    let AuthChanged { changed } = state.propose(caller, AuthChange::Bootstrap(record)).await?;
    if changed {
        tracing::info!(
            path = %path.display(),
            "authentication bootstrapped: user root (role admin); its token is in this file (mode 0600) and is not shown anywhere else"
        );
    } else if created {
        // Another node bootstrapped first: this file's token is not valid.
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}
