//! The HTTP API (axum): routes, request parsing, and the mapping of every outcome to a
//! response. Handlers validate, propose through Raft and wait for the applied result; they
//! never write state directly.
//!
//! Owns: the wire contract of `/v1`. Does not own: what a write means ([`crate::store`]) or
//! how it is validated ([`crate::schema`]).

mod audit;
mod auth;
pub mod authn;
mod backup;
mod cluster;
mod configs;
pub mod error;
mod extract;
mod migrations;
mod node;
mod openapi;
mod requests;
mod schemas;
mod strict;
mod txn;
mod ui;
mod watch;

use scarab_types::{Consistency, ErrorCode};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use auth::bootstrap as auth_bootstrap;
pub use error::ApiError;

use crate::cluster::Cluster;
use crate::config::NodeConfig;
use crate::propose::ProposeError;
use crate::raft::Raft;
use crate::schema::SchemaRegistry;
use crate::store::{Context, Proposal, StateStore};

/// Everything a handler needs, behind one `Arc`. axum clones the state for every middleware
/// layer and every extractor of every request: cloning and dropping the fields one by one (the
/// cluster's node info, clients and batchers) was 3 % of a node's CPU under PUTs
/// (BENCHMARKS.md); one reference count is not.
#[derive(Clone)]
pub struct AppState(Arc<Handles>);

impl AppState {
    pub fn new(handles: Handles) -> Self {
        Self(Arc::new(handles))
    }
}

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}

/// What [`AppState`] shares: handles to the node's parts.
pub struct Handles {
    pub raft: Raft,
    pub store: Arc<StateStore>,
    pub registry: Arc<SchemaRegistry>,
    pub config: Arc<NodeConfig>,
    pub cluster: Cluster,
    /// Cancelled when the node begins to shut down (ends watches).
    pub stopping: tokio_util::sync::CancellationToken,
    /// Open watches (`--max-watches` permits).
    pub watches: Arc<tokio::sync::Semaphore>,
    /// One backup at a time: each is a full copy on disk while it is written.
    pub backups: Arc<tokio::sync::Semaphore>,
}

pub fn router(state: AppState) -> Router {
    use utoipa_axum::routes;
    let (routes, doc) = utoipa_axum::router::OpenApiRouter::with_openapi(
        <openapi::ApiDoc as utoipa::OpenApi>::openapi(),
    )
    .routes(routes!(node::health))
    .routes(routes!(node::status))
    .routes(routes!(backup::backup))
    .routes(routes!(cluster::readyz))
    .routes(routes!(cluster::view))
    .routes(routes!(cluster::self_info))
    .routes(routes!(cluster::join))
    .routes(routes!(cluster::add))
    .routes(routes!(cluster::promote))
    .routes(routes!(cluster::remove))
    .routes(routes!(auth::whoami))
    .routes(routes!(auth::list_users))
    .routes(routes!(auth::get_user, auth::put_user, auth::delete_user))
    .routes(routes!(auth::grant_role))
    .routes(routes!(auth::revoke_role))
    .routes(routes!(auth::list_roles))
    .routes(routes!(auth::get_role, auth::put_role, auth::delete_role))
    .routes(routes!(auth::list_tokens, auth::create_token))
    .routes(routes!(auth::revoke_token))
    .routes(routes!(configs::list))
    // One wildcard for a key, its history and its rollback: documented by
    // `openapi::ConfigRoutes` as three paths.
    .route(
        "/v1/configs/{*key}",
        get(configs::get)
            .put(configs::put)
            .delete(configs::delete)
            .post(configs::post),
    )
    .routes(routes!(
        node::get_history_retention,
        node::set_history_retention
    ))
    .routes(routes!(
        node::get_audit_retention,
        node::set_audit_retention
    ))
    .routes(routes!(txn::txn))
    .routes(routes!(watch::watch))
    .routes(routes!(audit::list))
    .routes(routes!(schemas::list))
    .routes(routes!(schemas::list_versions))
    .routes(routes!(schemas::register, schemas::get, schemas::delete))
    .routes(routes!(schemas::plugin))
    .routes(routes!(schemas::validate))
    .routes(routes!(schemas::compatibility))
    .routes(routes!(migrations::list, migrations::start))
    .routes(routes!(migrations::get))
    .routes(routes!(schemas::get_policy, schemas::set_policy))
    .split_for_parts();
    let doc = openapi::finish(doc);
    let doc = Bytes::from(doc.to_json().expect("the OpenAPI document serialises"));
    routes
        .route("/metrics", get(node::metrics))
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|uri: axum::http::Uri| async move {
            // The config wildcard takes the union of its resources' methods; each resource
            // says its own (axum's `Allow` would list them all).
            match uri.path().strip_prefix("/v1/configs/") {
                Some(path) => configs::method_not_allowed(configs::Resource::of(path).allow()),
                None => ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    "this route does not take that method",
                )
                .into_response(),
            }
        })
        // Handlers read bodies themselves, with their own limits, to answer 413 as JSON.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            authn::Gate::new(&state),
            authn::authenticate,
        ))
        // The console's files, outside authentication: they hold no data.
        .merge(ui::router())
        .layer(axum::middleware::from_fn(strict::no_percent_escapes))
        // Outermost: the id and the timing cover everything, refusals included.
        .layer(axum::middleware::from_fn_with_state(
            requests::SlowRequest(state.config.slow_request),
            requests::track,
        ))
        // Outside authentication: a preflight carries no credentials.
        .layer(tower::util::option_layer(cors(&state.config.cors_origin)))
        .with_state(state)
}

/// `--cors-origin`: which browser origins may call the API, with the headers the API reads
/// and the ones a page needs to see (ETag, the revision, the request id). No origin: no layer
/// (a CORS layer answers every `OPTIONS` itself, allowed or not).
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok()),
        )
    };
    let names = |list: &[&'static str]| {
        list.iter()
            .map(|n| HeaderName::from_static(n))
            .collect::<Vec<_>>()
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::PUT, Method::POST, Method::DELETE])
        .allow_headers(names(&[
            "authorization",
            "content-type",
            "if-match",
            "if-none-match",
            "last-event-id",
            "x-request-id",
            "x-scarab-actor",
            "x-scarab-reason",
        ]))
        .expose_headers(names(&[
            "etag",
            "location",
            "x-request-id",
            "x-scarab-revision",
        ]))
        .max_age(std::time::Duration::from_secs(600));
    Some(layer)
}

pub(crate) fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Reads a body up to `limit` bytes; more is 413.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body exceeds {limit} bytes"),
        )
    })
}

/// Parses a JSON request body of shape `T` (described by `shape` in the error) after the
/// strict check of [`crate::json`]: nesting within the configured depth plus the body's own
/// envelope, no duplicate keys, numbers in range.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    bytes: &[u8],
    shape: &str,
) -> Result<T, ApiError> {
    crate::json::check(
        bytes,
        state.config.max_json_depth + crate::json::ENVELOPE_DEPTH,
    )?;
    object_body(bytes, shape)?;
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::malformed(format!("the body must be {shape}: {e}")))
}

/// Refuses a body that is not a JSON object: serde would read a request struct from an array
/// of its fields in order (`["store", 1, {...}]`), a second spelling no client should rely on.
pub(crate) fn object_body(bytes: &[u8], shape: &str) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(ApiError::malformed(format!(
            "the body must be a JSON object: {shape}"
        ))),
    }
}

/// Refuses a JSON document (`what`) nested deeper than `--max-json-depth`.
pub(crate) fn check_depth(
    state: &AppState,
    value: &serde_json::Value,
    what: &str,
) -> Result<(), ApiError> {
    let max = state.config.max_json_depth;
    let depth = crate::json::depth(value);
    if depth > max {
        return Err(ApiError::new(
            ErrorCode::JsonTooDeep,
            format!(
                "{what} is nested {depth} levels deep; at most {max} are allowed (--max-json-depth)"
            ),
        ));
    }
    Ok(())
}

/// A response with a list of items rendered as JSON text (spliced, not serialised again):
/// `value`, serialised with that list (its field `field`) empty, is split between the list's
/// brackets. The answer is the first part, with room for `capacity` bytes of items, and the
/// rest: write the items, separated by commas, into the first, then append the rest.
pub(crate) fn split_list(
    value: &impl serde::Serialize,
    field: &str,
    capacity: usize,
) -> (Vec<u8>, Vec<u8>) {
    let text = serde_json::to_vec(value).expect("a response serialises");
    let empty = format!("\"{field}\":[]");
    let at = text
        .windows(empty.len())
        .position(|w| w == empty.as_bytes())
        .unwrap_or_else(|| panic!("the response has no empty list `{field}`"))
        + empty.len()
        - 1;
    let mut head = Vec::with_capacity(text.len() + capacity);
    head.extend_from_slice(&text[..at]);
    (head, text[at..].to_vec())
}

/// Bodies of small requests (settings, policies, membership, rollback): 64 KiB.
pub(crate) const SMALL_BODY_BYTES: usize = 64 << 10;

/// Who makes a request and why: the authenticated principal (and `X-Scarab-Actor` if it may
/// impersonate; with authentication off, the header or `anonymous`) and `X-Scarab-Reason`,
/// recorded in the audit trail with the change.
pub(crate) struct Caller {
    pub actor: String,
    pub context: Context,
}

fn header_text(headers: &HeaderMap, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(name) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::malformed(format!("{name} must be visible ASCII")))?
        .trim();
    if s.is_empty() || s.len() > max {
        return Err(ApiError::malformed(format!(
            "{name} must be 1 to {max} characters"
        )));
    }
    Ok(Some(s.to_string()))
}

pub(crate) fn caller(
    principal: &authn::Principal,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let (actor, on_behalf_of) = principal.actor(header_text(headers, "x-scarab-actor", 128)?);
    Ok(Caller {
        actor: if actor.is_empty() {
            "anonymous".into()
        } else {
            actor
        },
        context: Context {
            reason: header_text(headers, "x-scarab-reason", 1024)?,
            on_behalf_of,
            ..Context::default()
        },
    })
}

pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("expected Content-Type application/json, got {ct:?}"),
        ))
    }
}

impl AppState {
    /// Proposes a change through Raft as `caller` and returns its applied result: the
    /// result of that kind of change, never another's (see [`crate::propose`]).
    pub(crate) async fn propose<P: Proposal>(
        &self,
        caller: Caller,
        proposal: P,
    ) -> Result<P::Output, ApiError> {
        let started = std::time::Instant::now();
        let result =
            crate::propose::propose(&self.cluster, caller.actor, caller.context, proposal).await;
        requests::add_raft(started);
        Ok(result?)
    }

    /// Validates a write against a schema version. A version this node does not know yet may
    /// just have been registered through another node: after a read barrier (which makes
    /// every acknowledged registration visible here) the lookup is tried once more.
    pub(crate) async fn validate_write(
        &self,
        schema: &str,
        version: u32,
        key: &str,
        doc: serde_json::Value,
        text: String,
    ) -> Result<(crate::schema::Verdict, String), ApiError> {
        if !self.store.has_schema(schema, version)? {
            self.linearize().await?;
        }
        let started = std::time::Instant::now();
        let verdict = self
            .registry
            .validate_async(schema.to_string(), version, key.to_string(), doc, text)
            .await;
        requests::add_validation(started);
        Ok(verdict?)
    }

    /// Waits until this node may serve a linearizable read: the leader's read index is
    /// applied here (on the leader or on a follower).
    pub(crate) async fn linearize(&self) -> Result<(), ApiError> {
        Ok(self.cluster.read_barrier().await?)
    }

    /// Serves a read at `consistency`: after a read barrier, or from local state (and then
    /// says so in `X-Scarab-Consistency: stale`).
    pub(crate) async fn read_at(
        &self,
        consistency: Consistency,
    ) -> Result<Option<HeaderValue>, ApiError> {
        match consistency {
            Consistency::Linearizable => {
                self.linearize().await?;
                Ok(None)
            }
            Consistency::Stale => Ok(Some(HeaderValue::from_static("stale"))),
        }
    }

    /// Adds `X-Scarab-Revision` (this node's applied revision) to a read response.
    pub(crate) fn with_revision(&self, mut resp: Response) -> Response {
        let rev = self.store.applied().revision;
        resp.headers_mut()
            .insert("x-scarab-revision", HeaderValue::from(rev));
        resp
    }
}

/// The one place where a proposal's failure becomes HTTP: the cluster's and the state
/// machine's errors as everywhere, a result of the wrong kind as an internal error.
impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::Cluster(e) => e.into(),
            ProposeError::Rejected(r) => r.into(),
            e @ ProposeError::Unexpected(_) => ApiError::internal(e.to_string()),
        }
    }
}
