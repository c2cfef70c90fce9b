//! The client, its builder, and the requests it sends with failover.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{
    CONTENT_TYPE, ETAG, HeaderMap, HeaderName, HeaderValue, IF_MATCH, IF_NONE_MATCH,
};
use reqwest::{Method, Url};
use scarab_types::{
    AuditPage, AuditRecord, AuditRetention, AuditRetentionSet, ClusterView, CompatibilityCheck,
    ConfigEntry, ConfigMeta, ConfigPage, Consistency, Deleted, DryRun, Entry, ErrorBody, Health,
    HistoryEntry, HistoryPage, HistoryRetention, HistoryRetentionSet, JoinRequest, Migration,
    MigrationList, PolicySet, PolicyView, PutConfig, Ready, Registered, RollbackRequest,
    RolledBack, SchemaList, SchemaPolicy, SchemaVersion, SchemaVersions, SelfInfo, StartMigration,
    Status, TxnRequest, TxnResponse, ValidateResult, WatchPoll, headers,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Error};
use crate::options::{
    AuditQuery, HistoryOptions, ListOptions, ReadOptions, SchemaUpload, WatchOptions, WriteOptions,
};
use crate::paging::{self, Paged};
use crate::retry::{Failure, Idempotency, RetryPolicy, may_retry};
use crate::watch::WatchStream;

// The routes, one concern per file (they use the sending machinery of this file).
mod admin;
pub use admin::BackupStream;
mod auth;
mod configs;
mod schemas;

/// A client of one Scarab cluster: a list of endpoints (the nodes' client API URLs), tried
/// in turn.
///
/// Cheap to clone: clones share the connection pool and the endpoint last found working.
/// [`Client::with_actor`], [`Client::with_reason`] and [`Client::with_consistency`] give a
/// clone with other defaults.
///
/// **Failover.** A call goes to the endpoint that last answered, and moves on to the next
/// one only when repeating it cannot apply a change twice:
///
/// - the request was never sent (connection refused, unreachable, connect timeout);
/// - the server answered a retry-safe code ([`ErrorCode::is_retry_safe`]: `no_leader`,
///   `overloaded`, `too_many_connections`, … — nothing was applied);
/// - for reads, also `timeout`, `leader_unreachable`, `not_ready` and a lost answer; for a
///   conditional write with [`WriteOptions::retry_unknown_outcome`], too.
///
/// Every other error is returned at once. After each round of the endpoints the client
/// pauses (100 ms, doubling, at most 2 s); a call makes at most three rounds (see
/// [`ClientBuilder::max_attempts`]). Calls about one node (`health`, `ready`, `status`,
/// `cluster_self`) move on only when the request was never sent.
///
/// [`ErrorCode::is_retry_safe`]: scarab_types::ErrorCode::is_retry_safe
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// `Authorization: Bearer …` (marked sensitive: never in debug output or logs).
    token: Option<HeaderValue>,
    actor: Option<HeaderValue>,
    reason: Option<HeaderValue>,
    consistency: Consistency,
}

struct Inner {
    http: reqwest::Client,
    endpoints: Vec<Url>,
    /// The endpoint that last answered: calls start there.
    preferred: AtomicUsize,
    timeout: Duration,
    retry: RetryPolicy,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints)
            .field("actor", &self.actor)
            .field("consistency", &self.consistency)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`]: `Client::builder().endpoints([...]).build()`.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    token: Option<Secret>,
    actor: Option<String>,
    reason: Option<String>,
    consistency: Consistency,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    http: Option<reqwest::Client>,
    #[cfg(feature = "rustls-tls")]
    tls: crate::tls::TlsOptions,
    /// A file that could not be read by a builder method, reported by `build`.
    #[cfg(feature = "rustls-tls")]
    tls_error: Option<String>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            token: None,
            actor: None,
            reason: None,
            consistency: Consistency::Linearizable,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            retry: RetryPolicy::default(),
            http: None,
            #[cfg(feature = "rustls-tls")]
            tls: Default::default(),
            #[cfg(feature = "rustls-tls")]
            tls_error: None,
        }
    }
}

impl ClientBuilder {
    /// Adds an endpoint: a node's client API base URL (`http://10.0.0.1:7070`; a path
    /// prefix is kept).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoints.push(url.into());
        self
    }

    /// Adds endpoints, tried in this order (from the one that last answered).
    pub fn endpoints<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoints.extend(urls.into_iter().map(Into::into));
        self
    }

    /// The bearer token every request carries (`Authorization: Bearer <token>`): what a
    /// node with authentication on knows the caller by.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret(token.into()));
        self
    }

    /// `X-Scarab-Actor` of every change. With authentication on, the server records it only
    /// for a principal allowed to act for others (`auth:impersonate`), next to the
    /// principal; with authentication off, it is the actor (else `anonymous`).
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// `X-Scarab-Reason` of every change (recorded in the audit trail).
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The consistency of reads that do not say (default: linearizable).
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// The longest one attempt may take, answer included (default 30 s; a long poll adds
    /// its wait). Not applied to the stream of an SSE watch.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest a connection may take to open (default 3 s). Ignored with
    /// [`ClientBuilder::http_client`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// At most this many attempts per call, over all endpoints (default: three rounds of
    /// the endpoints). `1`: no retry.
    pub fn max_attempts(mut self, attempts: usize) -> Self {
        self.retry.max_attempts = Some(attempts.max(1));
        self
    }

    /// The pause after the first round of the endpoints, doubling after each round up to
    /// `max` (default 100 ms up to 2 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry.initial_backoff = initial;
        self.retry.max_backoff = max.max(initial);
        self
    }

    /// Uses this `reqwest` client (for TLS settings, proxies, …). Without one, the client
    /// builds its own, plain HTTP unless a TLS feature of `reqwest` is enabled in the
    /// build.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Trusts this CA (PEM, one or more certificates) for `https` endpoints. Only the CAs
    /// given are trusted: without one, an `https` endpoint fails to verify. Ignored with
    /// [`ClientBuilder::http_client`].
    #[cfg(feature = "rustls-tls")]
    pub fn ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.roots.push(pem.into());
        self
    }

    /// [`ClientBuilder::ca_cert_pem`] from a file (read now; a failure is reported by
    /// [`ClientBuilder::build`]).
    #[cfg(feature = "rustls-tls")]
    pub fn ca_cert_file(self, path: impl AsRef<std::path::Path>) -> Self {
        let path = path.as_ref();
        match std::fs::read(path) {
            Ok(pem) => self.ca_cert_pem(pem),
            Err(e) => self.tls_failed(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Presents this client certificate (PEM chain) and key (PEM) to servers that ask for
    /// one (its subject names the client). Ignored with [`ClientBuilder::http_client`].
    #[cfg(feature = "rustls-tls")]
    pub fn identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.tls.identity = Some((cert.into(), key.into()));
        self
    }

    /// [`ClientBuilder::identity_pem`] from files.
    #[cfg(feature = "rustls-tls")]
    pub fn identity_files(
        self,
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> Self {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        match (read(cert.as_ref()), read(key.as_ref())) {
            (Ok(c), Ok(k)) => self.identity_pem(c, k),
            (Err(e), _) | (_, Err(e)) => self.tls_failed(e),
        }
    }

    #[cfg(feature = "rustls-tls")]
    fn tls_failed(mut self, why: String) -> Self {
        self.tls_error.get_or_insert(why);
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        #[cfg(feature = "rustls-tls")]
        if let Some(e) = self.tls_error {
            return Err(Error::InvalidArgument(e));
        }
        if self.endpoints.is_empty() {
            return Err(Error::InvalidArgument(
                "a client needs at least one endpoint".into(),
            ));
        }
        let endpoints = self
            .endpoints
            .iter()
            .map(|e| parse_endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        let http = match self.http {
            Some(http) => http,
            None => {
                #[allow(unused_mut)]
                let mut builder = reqwest::Client::builder()
                    .connect_timeout(self.connect_timeout)
                    .tcp_nodelay(true)
                    .user_agent(concat!("scarab-client/", env!("CARGO_PKG_VERSION")));
                #[cfg(feature = "rustls-tls")]
                if !self.tls.is_empty() {
                    builder = builder.use_preconfigured_tls(self.tls.config()?);
                }
                builder.build()
            }
            .map_err(|e| Error::InvalidArgument(format!("cannot build the HTTP client: {e}")))?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoints,
                preferred: AtomicUsize::new(0),
                timeout: self.timeout,
                retry: self.retry,
            }),
            token: self.token.map(|t| bearer(&t.0)).transpose()?,
            actor: self
                .actor
                .map(|a| header_text(headers::ACTOR, &a, 128))
                .transpose()?,
            reason: self
                .reason
                .map(|r| header_text(headers::REASON, &r, 1024))
                .transpose()?,
            consistency: self.consistency,
        })
    }
}

/// A token, kept out of `Debug` output.
#[derive(Clone)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<token>")
    }
}

fn bearer(token: &str) -> Result<HeaderValue, Error> {
    let token = token.trim();
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .ok()
        .filter(|_| !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| Error::InvalidArgument("a token is visible ASCII without spaces".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

fn parse_endpoint(text: &str) -> Result<Url, Error> {
    let bad = |reason: &str| Error::InvalidUrl {
        url: text.to_string(),
        reason: reason.to_string(),
    };
    if !text.contains("://") {
        return Err(bad(&format!(
            "it has no scheme: write http://{0} (or https://{0})",
            text.trim()
        )));
    }
    let mut url = Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(bad("not a base URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a base URL has no query or fragment"));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// A header the server takes: 1 to `max` visible ASCII characters.
fn header_text(name: &str, text: &str, max: usize) -> Result<HeaderValue, Error> {
    let t = text.trim();
    if t.is_empty() || t.len() > max || !t.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Error::InvalidArgument(format!(
            "{name} must be 1 to {max} visible ASCII characters"
        )));
    }
    HeaderValue::from_str(t).map_err(|e| Error::InvalidArgument(format!("{name}: {e}")))
}

/// A read's answer, with what the response headers say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Read<T> {
    /// The answer's body.
    pub body: T,
    /// `X-Scarab-Revision`: the answering node's applied revision when it answered.
    pub applied_revision: Option<u64>,
    /// `X-Scarab-Consistency: stale`: served from the node's local state.
    pub stale: bool,
    /// The endpoint that answered.
    pub endpoint: Url,
}

impl<T> Read<T> {
    pub fn into_inner(self) -> T {
        self.body
    }

    /// The same answer with `f` applied to its body.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Read<U> {
        Read {
            body: f(self.body),
            applied_revision: self.applied_revision,
            stale: self.stale,
            endpoint: self.endpoint,
        }
    }
}

impl<T> std::ops::Deref for Read<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.body
    }
}

/// A change's answer: the value, and whether it created the resource (201) or changed or
/// confirmed an existing one (200).
#[derive(Debug, Clone, PartialEq)]
pub struct Written<T> {
    /// The answer's body.
    pub body: T,
    pub created: bool,
}

impl<T> Written<T> {
    pub fn into_inner(self) -> T {
        self.body
    }
}

impl<T> std::ops::Deref for Written<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.body
    }
}

/// A schema version's plugin component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// `sha256:…` (from the `ETag`).
    pub digest: Option<String>,
    pub bytes: Bytes,
}

/// One request, as sent to whichever endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    method: Method,
    path: Vec<String>,
    query: Vec<(&'static str, String)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Body,
    pub(crate) idempotency: Idempotency,
    /// Added to the client's timeout (a long poll's wait).
    extra_time: Duration,
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Bytes),
    Multipart {
        schema: Bytes,
        plugin: Option<Bytes>,
    },
}

impl Call {
    pub(crate) fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    pub(crate) fn opt_query(self, name: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.query(name, v),
            None => self,
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value));
        self
    }

    fn json(mut self, body: &impl Serialize) -> Self {
        let bytes = serde_json::to_vec(body).expect("request bodies serialise");
        self.body = Body::Json(bytes.into());
        self
    }

    fn consistency(self, consistency: Consistency) -> Self {
        match consistency {
            Consistency::Linearizable => self,
            Consistency::Stale => self.query("consistency", consistency.as_str()),
        }
    }

    fn idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = idempotency;
        self
    }
}

/// A buffered answer with a 2xx status.
pub(crate) struct Answer {
    endpoint: Url,
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Decode {
            endpoint: self.endpoint.clone(),
            status: self.status,
            message: format!("{e}: {}", snippet(&self.body)),
        })
    }

    fn read<T: DeserializeOwned>(self) -> Result<Read<T>, Error> {
        let header = |name: &str| self.headers.get(name).and_then(|v| v.to_str().ok());
        Ok(Read {
            body: self.json()?,
            applied_revision: header(headers::REVISION).and_then(|v| v.trim().parse().ok()),
            stale: header(headers::CONSISTENCY) == Some("stale"),
            endpoint: self.endpoint,
        })
    }

    fn written<T: DeserializeOwned>(self) -> Result<Written<T>, Error> {
        Ok(Written {
            body: self.json()?,
            created: self.status == 201,
        })
    }
}

/// The start of a body, for messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    if body.len() > 200 {
        format!("{text}…")
    } else {
        text.into_owned()
    }
}

/// A transport error's source.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) fn transport(endpoint: &Url, maybe_sent: bool, source: impl Into<BoxError>) -> Error {
    Error::Transport {
        endpoint: endpoint.clone(),
        maybe_sent,
        source: source.into(),
    }
}

/// The error of a non-2xx answer.
pub(crate) fn answer_error(endpoint: &Url, status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => ApiError::from_body(status, b).into(),
        Err(_) => Error::Decode {
            endpoint: endpoint.clone(),
            status,
            message: format!("not an API error body: {}", snippet(body)),
        },
    }
}

/// No answer within the client's timeout (SSE connections, whose reqwest timeout is off).
#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?}")]
pub(crate) struct TimedOut(pub Duration);

fn reqwest_error(endpoint: &Url, e: reqwest::Error) -> Error {
    // A connect error (refused, unreachable, connect timeout, TLS handshake): the request
    // never left. Anything else may have reached the server.
    let maybe_sent = !e.is_connect();
    transport(endpoint, maybe_sent, e)
}

/// Refuses a key that would address another route (`…/history`, `…/rollback`), or that
/// URL normalisation would change (empty, `.` and `..` segments). The server checks the
/// rest; [`scarab_types::validate_key`] has all of its rules.
fn key_segments(key: &str) -> Result<impl Iterator<Item = &str>, Error> {
    let segments: Vec<&str> = key.split('/').collect();
    let bad = |why: &str| Err(Error::InvalidArgument(format!("key {key:?}: {why}")));
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return bad("empty, `.` and `..` segments are not keys");
    }
    if segments.len() > 1 && matches!(segments.last(), Some(&("history" | "rollback"))) {
        return bad("a last segment `history` or `rollback` names a sub-resource");
    }
    Ok(segments.into_iter())
}

impl Client {
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client of one node (or of a load balancer in front of several).
    pub fn new(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder().endpoint(url).build()
    }

    /// The endpoints, in the order they are tried.
    pub fn endpoints(&self) -> &[Url] {
        &self.inner.endpoints
    }

    /// A clone that authenticates with `token` instead.
    pub fn with_token(&self, token: &str) -> Result<Self, Error> {
        Ok(Self {
            token: Some(bearer(token)?),
            ..self.clone()
        })
    }

    /// A clone whose changes are made as `actor`.
    pub fn with_actor(&self, actor: &str) -> Result<Self, Error> {
        Ok(Self {
            actor: Some(header_text(headers::ACTOR, actor, 128)?),
            ..self.clone()
        })
    }

    /// A clone whose changes carry `reason` (or none).
    pub fn with_reason(&self, reason: Option<&str>) -> Result<Self, Error> {
        Ok(Self {
            reason: reason
                .map(|r| header_text(headers::REASON, r, 1024))
                .transpose()?,
            ..self.clone()
        })
    }

    /// A clone whose reads are `consistency` unless they say otherwise.
    pub fn with_consistency(&self, consistency: Consistency) -> Self {
        Self {
            consistency,
            ..self.clone()
        }
    }

    // ---------------------------------------------------------------- sending

    pub(crate) fn call(&self, method: Method, path: &[&str]) -> Call {
        let idempotency = if method == Method::GET {
            Idempotency::Read
        } else {
            Idempotency::Write {
                retry_unknown: false,
            }
        };
        let mut headers = Vec::new();
        if let Some(t) = &self.token {
            headers.push((reqwest::header::AUTHORIZATION, t.clone()));
        }
        if let Some(a) = &self.actor {
            headers.push((HeaderName::from_static(headers::ACTOR), a.clone()));
        }
        if let Some(r) = &self.reason {
            headers.push((HeaderName::from_static(headers::REASON), r.clone()));
        }
        Call {
            method,
            path: std::iter::once("v1")
                .chain(path.iter().copied())
                .map(str::to_string)
                .collect(),
            query: Vec::new(),
            headers,
            body: Body::None,
            idempotency,
            extra_time: Duration::ZERO,
        }
    }

    fn config_call(&self, method: Method, key: &str, suffix: Option<&str>) -> Result<Call, Error> {
        let mut call = self.call(method, &["configs"]);
        call.path.extend(key_segments(key)?.map(str::to_string));
        call.path.extend(suffix.map(str::to_string));
        Ok(call)
    }

    fn url(endpoint: &Url, call: &Call) -> Url {
        let mut url = endpoint.clone();
        url.path_segments_mut()
            .expect("endpoints are base URLs")
            .pop_if_empty()
            .extend(&call.path);
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends `call` to endpoint `index` once. `stream`: the body is read as a stream (no
    /// overall timeout; the answer's head must come within the client's timeout).
    pub(crate) async fn send_once(
        &self,
        index: usize,
        call: &Call,
        stream: bool,
    ) -> Result<reqwest::Response, Error> {
        let endpoint = &self.inner.endpoints[index];
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), Self::url(endpoint, call));
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        request = match &call.body {
            Body::None => request,
            Body::Json(bytes) => request
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Multipart { schema, plugin } => {
                let part = |b: &Bytes, mime: &str| {
                    reqwest::multipart::Part::bytes(b.to_vec())
                        .mime_str(mime)
                        .expect("a static MIME type")
                };
                let mut form = reqwest::multipart::Form::new()
                    .part("schema", part(schema, "application/json"));
                if let Some(p) = plugin {
                    form = form.part("plugin", part(p, "application/wasm"));
                }
                request.multipart(form)
            }
        };
        let limit = self.inner.timeout + call.extra_time;
        let response = if stream {
            match tokio::time::timeout(limit, request.send()).await {
                Err(_) => return Err(transport(endpoint, true, TimedOut(limit))),
                Ok(r) => r,
            }
        } else {
            request.timeout(limit).send().await
        }
        .map_err(|e| reqwest_error(endpoint, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = match tokio::time::timeout(limit, response.bytes()).await {
            Err(_) => return Err(transport(endpoint, true, TimedOut(limit))),
            Ok(body) => body.map_err(|e| transport(endpoint, true, e))?,
        };
        Err(answer_error(endpoint, status.as_u16(), &body))
    }

    /// Runs `attempt` on endpoint after endpoint, from the one that last answered, while
    /// [`may_retry`] allows and attempts are left, pausing after each round of the
    /// endpoints.
    async fn failover<T, F, Fut>(
        &self,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<T, Error>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let n = self.inner.endpoints.len();
        let start = self.preferred_endpoint();
        let attempts = self.inner.retry.attempts(n);
        let mut tried = 0;
        loop {
            let index = (start + tried) % n;
            let error = match attempt(index).await {
                Ok(value) => {
                    self.set_preferred_endpoint(index);
                    return Ok(value);
                }
                Err(e) => e,
            };
            tried += 1;
            if tried >= attempts || !may_retry(Failure::of(&error), idempotency) {
                return Err(error);
            }
            if tried.is_multiple_of(n) {
                tokio::time::sleep(self.inner.retry.backoff(tried / n)).await;
            }
        }
    }

    /// Sends `call` with failover and buffers the answer.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Answer, Error> {
        self.failover(call.idempotency, |index| async move {
            let mut response = self.send_once(index, call, false).await?;
            let endpoint = self.inner.endpoints[index].clone();
            let status = response.status().as_u16();
            // Taken, not cloned: reading the body does not need them.
            let headers = std::mem::take(response.headers_mut());
            let body = response
                .bytes()
                .await
                .map_err(|e| transport(&endpoint, true, e))?;
            Ok(Answer {
                endpoint,
                status,
                headers,
                body,
            })
        })
        .await
    }

    pub(crate) fn preferred_endpoint(&self) -> usize {
        self.inner.preferred.load(Ordering::Relaxed) % self.inner.endpoints.len()
    }

    pub(crate) fn set_preferred_endpoint(&self, index: usize) {
        self.inner.preferred.store(index, Ordering::Relaxed);
    }

    pub(crate) fn backoff(&self, round: usize) -> Duration {
        self.inner.retry.backoff(round)
    }

    pub(crate) fn endpoint_count(&self) -> usize {
        self.inner.endpoints.len()
    }

    pub(crate) fn endpoint_url(&self, index: usize) -> &Url {
        &self.inner.endpoints[index]
    }

    fn write_call(&self, call: Call, opts: &WriteOptions) -> Result<Call, Error> {
        let mut call = call;
        if let Some(a) = &opts.actor {
            call = call.header(
                HeaderName::from_static(headers::ACTOR),
                header_text(headers::ACTOR, a, 128)?,
            );
        }
        if let Some(r) = &opts.reason {
            call = call.header(
                HeaderName::from_static(headers::REASON),
                header_text(headers::REASON, r, 1024)?,
            );
        }
        if opts.retry_unknown_outcome && !opts.conditional() {
            return Err(Error::InvalidArgument(
                "retry_unknown_outcome needs a condition (if_match or if_none_match_any): without one a repeated write could apply twice".into(),
            ));
        }
        if let Some(revision) = opts.if_match {
            let tag = HeaderValue::from_str(&format!("\"{revision}\"")).expect("digits");
            call = call.header(IF_MATCH, tag);
        }
        if opts.if_none_match_any {
            call = call.header(IF_NONE_MATCH, HeaderValue::from_static("*"));
        }
        Ok(call.idempotency(Idempotency::Write {
            retry_unknown: opts.retry_unknown_outcome,
        }))
    }
}
