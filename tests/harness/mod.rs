//! Test harness: starts real `scarab` processes and talks to them over HTTP.
//!
//! Shared by the integration tests (`tests/single_node.rs`, `tests/lifecycle.rs`,
//! `tests/cluster.rs`), each of which uses it with `mod harness;`. Every test binary uses only
//! part of it. Clusters of nodes (with a partition proxy per node) are in `cluster` and `proxy`.
//!
//! Two ways to talk to a node: `Api::typed()`, the typed client (`scarab-client`, decoding
//! the server's wire types of `scarab-types`), for everything that reads what an answer
//! means; and the raw requests of `Api` returning a `Reply` (status, headers, bytes), for
//! tests about the wire itself: status codes, headers, malformed bodies.
#![allow(dead_code)]

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{RequestBuilder, StatusCode};
use scarab_client::types::{ConfigEntry, Role, Status};
use scarab_client::{ListOptions, SchemaUpload};
use serde::Deserialize;
use serde_json::{Value, json};

pub mod auth;
pub mod browser;
pub mod cluster;
pub mod dev;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod tls;

/// How long a node may take to become ready after it is spawned.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `Node::stop` waits for the process to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval of every "wait until" loop in the harness.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Overall timeout of one HTTP request made by the harness clients (a guard against hangs).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Set this environment variable to keep every node's directory (data and log) after the test.
pub const KEEP_DIRS_ENV: &str = "SCARAB_TEST_KEEP_DIRS";

// ---------------------------------------------------------------------------------------------
// Workspace files: the binary, the schemas and their examples, the prebuilt plugins.
// ---------------------------------------------------------------------------------------------

/// The `scarab` binary cargo built for this test, or `SCARAB_TEST_BIN` (to run a suite
/// against another build, e.g. to see which tests an older one fails).
pub fn scarab_bin() -> PathBuf {
    std::env::var_os("SCARAB_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_scarab")))
}

/// The workspace root (the tests are integration tests of `host/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent directory")
        .to_path_buf()
}

/// Where the harness puts its temporary directories (cargo's `target/tmp`).
fn tmp_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// A prebuilt plugin, e.g. `plugin_wasm("store_v1")`: `target/wasm32-wasip2/plugin/store_v1.wasm`.
/// Panics, saying to run `cargo plugins`, if it has not been built.
pub fn plugin_wasm(name: &str) -> PathBuf {
    let path = workspace_root()
        .join("target/wasm32-wasip2/plugin")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "plugin {} is missing: run `cargo plugins` (from {}) before the tests",
        path.display(),
        workspace_root().display()
    );
    path
}

/// `schemas/<name>/v<version>.json`.
pub fn schema_file(name: &str, version: u32) -> PathBuf {
    workspace_root()
        .join("schemas")
        .join(name)
        .join(format!("v{version}.json"))
}

/// `schemas/<name>/v<version>.examples.json`.
pub fn examples_file(name: &str, version: u32) -> PathBuf {
    workspace_root()
        .join("schemas")
        .join(name)
        .join(format!("v{version}.examples.json"))
}

/// Reads and parses a JSON file, panicking with the path on failure.
pub fn read_json(path: &Path) -> Value {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// A kind of config shipped with the workspace: a schema in `schemas/` and its plugin.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    /// Schema name, e.g. `store` (also the directory under `schemas/`).
    pub schema: &'static str,
    pub version: u32,
    /// Plugin file stem under `target/wasm32-wasip2/plugin/`.
    pub plugin: &'static str,
}

pub const STORE: Kind = Kind {
    schema: "store",
    version: 1,
    plugin: "store_v1",
};
/// Version 2 of `store`, whose plugin also migrates from v1 (register `STORE` first).
pub const STORE_V2: Kind = Kind {
    schema: "store",
    version: 2,
    plugin: "store_v2",
};
pub const HTTP_SERVICE: Kind = Kind {
    schema: "http-service",
    version: 1,
    plugin: "http_service_v1",
};
/// Every kind shipped in `schemas/` with a plugin in `plugins/examples/`, each version after
/// the one it migrates from.
pub const KINDS: &[Kind] = &[STORE, STORE_V2, HTTP_SERVICE];

impl Kind {
    pub fn schema_file(&self) -> PathBuf {
        schema_file(self.schema, self.version)
    }
    pub fn plugin_wasm(&self) -> PathBuf {
        plugin_wasm(self.plugin)
    }
    /// The samples of `schemas/<name>/v<version>.examples.json`; panics if the file is missing,
    /// malformed, or has no valid or no invalid sample.
    pub fn examples(&self) -> Examples {
        let path = examples_file(self.schema, self.version);
        let examples: Examples = serde_json::from_value(read_json(&path))
            .unwrap_or_else(|e| panic!("{} has not the examples shape: {e}", path.display()));
        assert!(
            !examples.valid.is_empty() && !examples.invalid.is_empty(),
            "{} must hold at least one valid and one invalid sample",
            path.display()
        );
        examples
    }
    /// The first valid sample.
    pub fn valid_sample(&self) -> Sample {
        self.examples().valid.remove(0)
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Examples {
    pub valid: Vec<Sample>,
    pub invalid: Vec<InvalidSample>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Sample {
    pub name: String,
    pub key: String,
    pub value: Value,
}

#[derive(Clone, Debug, Deserialize)]
pub struct InvalidSample {
    pub name: String,
    pub key: String,
    pub value: Value,
    pub violations: Vec<ExpectedViolation>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ExpectedViolation {
    pub path: String,
    pub source: String,
    #[serde(default)]
    pub code: Option<String>,
}

impl ExpectedViolation {
    pub fn new(path: &str, source: &str, code: Option<&str>) -> Self {
        ExpectedViolation {
            path: path.to_string(),
            source: source.to_string(),
            code: code.map(str::to_string),
        }
    }

    /// Whether `actual` (a violation of a response) is this one: same path and source, and same
    /// code when one is expected.
    pub fn matches(&self, actual: &Value) -> bool {
        actual["path"].as_str() == Some(self.path.as_str())
            && actual["source"].as_str() == Some(self.source.as_str())
            && self
                .code
                .as_deref()
                .is_none_or(|code| actual["code"].as_str() == Some(code))
    }
}

// ---------------------------------------------------------------------------------------------
// Plugin cache shared by every node of this test process.
// ---------------------------------------------------------------------------------------------

static PLUGIN_CACHE: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_plugin_cache() {
    if let Some(dir) = PLUGIN_CACHE.get() {
        let _ = fs::remove_dir_all(dir);
    }
}

/// One `--plugin-cache-dir` per test process, so components are compiled once per test binary.
/// Removed when the process exits.
pub fn shared_plugin_cache() -> &'static Path {
    PLUGIN_CACHE.get_or_init(|| {
        fs::create_dir_all(tmp_root()).expect("create target/tmp");
        let dir = tempfile::Builder::new()
            .prefix("plugin-cache-")
            .tempdir_in(tmp_root())
            .expect("create the shared plugin cache dir")
            .keep();
        if std::env::var_os(KEEP_DIRS_ENV).is_none() {
            // SAFETY: registers a plain extern "C" function with no preconditions.
            unsafe {
                libc::atexit(remove_plugin_cache);
            }
        }
        dir
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP replies.
// ---------------------------------------------------------------------------------------------

/// A response: status, headers, raw bytes, and the body parsed as JSON (`Value::Null` when the
/// body is empty or not JSON; see `text()`).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Bytes,
    pub body: Value,
}

impl Reply {
    pub async fn from_response(response: reqwest::Response) -> Result<Reply> {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .context("reading the response body")?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            bytes,
            body,
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `ETag` header.
    pub fn etag(&self) -> Option<&str> {
        self.header("etag")
    }

    /// The `X-Scarab-Revision` header, parsed.
    pub fn applied_revision(&self) -> Option<u64> {
        self.header("x-scarab-revision")?.trim().parse().ok()
    }

    /// `body.revision`; panics if absent.
    pub fn revision(&self) -> u64 {
        self.body["revision"]
            .as_u64()
            .unwrap_or_else(|| panic!("no numeric \"revision\" in {self}"))
    }

    /// `body.error.code`, if the body is an error.
    pub fn error_code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    /// `body.error.violations` (empty if absent).
    pub fn violations(&self) -> Vec<Value> {
        self.body["error"]["violations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.text();
        if text.len() > 2000 {
            let mut end = 2000;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
        }
        write!(f, "HTTP {} {}", self.status, text)
    }
}

/// Preconditions and actor of a write (`PUT`/`DELETE` of a config).
#[derive(Clone, Debug, Default)]
pub struct WriteOpts {
    pub actor: Option<String>,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

impl WriteOpts {
    pub fn new() -> Self {
        Self::default()
    }
    /// `X-Scarab-Actor: <actor>`.
    pub fn actor(mut self, actor: &str) -> Self {
        self.actor = Some(actor.to_string());
        self
    }
    /// `If-Match: "<revision>"`.
    pub fn if_match(mut self, revision: u64) -> Self {
        self.if_match = Some(format!("\"{revision}\""));
        self
    }
    /// `If-None-Match: *`.
    pub fn if_none_match_any(mut self) -> Self {
        self.if_none_match = Some("*".to_string());
        self
    }

    fn apply(&self, mut request: RequestBuilder) -> RequestBuilder {
        if let Some(actor) = &self.actor {
            request = request.header("x-scarab-actor", actor);
        }
        if let Some(tag) = &self.if_match {
            request = request.header("if-match", tag);
        }
        if let Some(tag) = &self.if_none_match {
            request = request.header("if-none-match", tag);
        }
        request
    }
}

/// The JSON Schema of a registration: a file (sent byte for byte) or a value.
#[derive(Clone, Debug)]
pub enum SchemaSource {
    File(PathBuf),
    Json(Value),
}

impl SchemaSource {
    fn bytes(&self) -> Result<Vec<u8>> {
        match self {
            SchemaSource::File(path) => {
                fs::read(path).with_context(|| format!("reading schema {}", path.display()))
            }
            SchemaSource::Json(value) => Ok(serde_json::to_vec(value)?),
        }
    }
}

impl From<&Path> for SchemaSource {
    fn from(path: &Path) -> Self {
        SchemaSource::File(path.to_path_buf())
    }
}
impl From<PathBuf> for SchemaSource {
    fn from(path: PathBuf) -> Self {
        SchemaSource::File(path)
    }
}
impl From<&PathBuf> for SchemaSource {
    fn from(path: &PathBuf) -> Self {
        SchemaSource::File(path.clone())
    }
}
impl From<Value> for SchemaSource {
    fn from(value: Value) -> Self {
        SchemaSource::Json(value)
    }
}
impl From<&Value> for SchemaSource {
    fn from(value: &Value) -> Self {
        SchemaSource::Json(value.clone())
    }
}

/// The body of a config PUT.
pub fn config_body(schema: &str, version: u32, value: &Value) -> Value {
    json!({"schema": schema, "schema_version": version, "value": value})
}

// ---------------------------------------------------------------------------------------------
// HTTP client of one node.
// ---------------------------------------------------------------------------------------------

/// A cheap, cloneable HTTP handle on one node (stays valid across restarts: same port).
/// Paths and config keys are put into the URL verbatim: percent-encode them yourself where needed.
///
/// `typed()` is the typed client of this node alone; the other methods send raw requests.
#[derive(Clone, Debug)]
pub struct Api {
    pub addr: SocketAddr,
    base: String,
    client: reqwest::Client,
    typed: scarab_client::Client,
}

/// A typed client of exactly one node: `base` as its only endpoint and one attempt per call
/// (no failover, no retry, so that nothing hides what the node answered), each attempt within
/// `timeout`, over `http` (whose connection pool it shares).
pub fn node_client(http: &reqwest::Client, base: &str, timeout: Duration) -> scarab_client::Client {
    scarab_client::Client::builder()
        .endpoint(base)
        .http_client(http.clone())
        .timeout(timeout)
        .max_attempts(1)
        .build()
        .unwrap_or_else(|e| panic!("a typed client of {base}: {e}"))
}

/// The HTTP client under every harness client: no proxy (the nodes are on loopback).
pub fn http_client() -> reqwest::Client {
    client_builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("build the HTTP client")
}

/// What every harness HTTP client starts from: no proxy, the cluster token if there is one
/// ([`auth::set_cluster_token`]), and the client CA if nodes serve TLS
/// ([`tls::set_client_ca`]).
pub fn client_builder() -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .default_headers(auth::default_headers());
    if let Some(ca) = tls::client_ca() {
        let pem = fs::read(&ca).unwrap_or_else(|e| panic!("reading {}: {e}", ca.display()));
        builder = builder
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a CA certificate"));
    }
    builder
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        let client = http_client();
        let base = format!("{}://{addr}", tls::api_scheme());
        let typed = node_client(&client, &base, REQUEST_TIMEOUT);
        Api {
            addr,
            base,
            client,
            typed,
        }
    }

    /// The typed client of this node (only this node, one attempt per call).
    pub fn typed(&self) -> &scarab_client::Client {
        &self.typed
    }

    /// The typed client of this node with a shorter timeout, for polling a node that may not
    /// answer (shares the connection pool).
    pub fn typed_within(&self, timeout: Duration) -> scarab_client::Client {
        node_client(&self.client, &self.base, timeout)
    }

    /// `http://127.0.0.1:PORT` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request built with `client()` and collects the reply.
    pub async fn send(&self, request: RequestBuilder) -> Result<Reply> {
        let response = request.send().await.context("sending the request")?;
        Reply::from_response(response).await
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn delete(&self, path: &str) -> Result<Reply> {
        self.send(self.client.delete(self.url(path))).await
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<Reply> {
        self.get("/v1/health").await
    }

    /// `GET /v1/status` (typed).
    pub async fn status(&self) -> Result<Status> {
        let status = self
            .typed
            .status()
            .await
            .with_context(|| format!("GET /v1/status of {}", self.base))?;
        Ok(status.into_inner())
    }

    // --- schemas ---

    /// `PUT /v1/schemas/{name}/versions/{version}` (multipart: "schema" and optional "plugin").
    pub async fn register_schema(
        &self,
        name: &str,
        version: u32,
        schema: impl Into<SchemaSource>,
        plugin: Option<&Path>,
    ) -> Result<Reply> {
        let schema = schema.into().bytes()?;
        let plugin = match plugin {
            Some(path) => {
                Some(fs::read(path).with_context(|| format!("reading plugin {}", path.display()))?)
            }
            None => None,
        };
        self.register_schema_bytes(name, version, schema, plugin)
            .await
    }

    /// Registration with raw bytes for both parts.
    pub async fn register_schema_bytes(
        &self,
        name: &str,
        version: u32,
        schema: Vec<u8>,
        plugin: Option<Vec<u8>>,
    ) -> Result<Reply> {
        let path = format!("/v1/schemas/{name}/versions/{version}");
        self.upload_schema(reqwest::Method::PUT, &path, schema, plugin)
            .await
    }

    /// A multipart schema upload (`schema` and optional `plugin` parts) to `path`: `PUT`
    /// registers (`?force=true` past the compatibility check), `POST .../compatibility`
    /// only checks.
    pub async fn upload_schema(
        &self,
        method: reqwest::Method,
        path: &str,
        schema: Vec<u8>,
        plugin: Option<Vec<u8>>,
    ) -> Result<Reply> {
        use reqwest::multipart::{Form, Part};
        let mut form = Form::new().part(
            "schema",
            Part::bytes(schema)
                .file_name("schema.json")
                .mime_str("application/json")?,
        );
        if let Some(plugin) = plugin {
            form = form.part(
                "plugin",
                Part::bytes(plugin)
                    .file_name("plugin.wasm")
                    .mime_str("application/wasm")?,
            );
        }
        let url = self.url(path);
        self.send(self.client.request(method, url).multipart(form))
            .await
    }

    /// Registers a shipped kind: its schema file and its plugin.
    pub async fn register_kind(&self, kind: Kind) -> Result<Reply> {
        self.register_schema(
            kind.schema,
            kind.version,
            kind.schema_file(),
            Some(&kind.plugin_wasm()),
        )
        .await
    }

    /// `GET /v1/schemas/{name}/versions/{version}`.
    pub async fn get_schema_version(&self, name: &str, version: u32) -> Result<Reply> {
        self.get(&format!("/v1/schemas/{name}/versions/{version}"))
            .await
    }

    /// `GET /v1/schemas/{name}/versions/{version}/plugin`.
    pub async fn get_plugin(&self, name: &str, version: u32) -> Result<Reply> {
        self.get(&format!("/v1/schemas/{name}/versions/{version}/plugin"))
            .await
    }

    /// `DELETE /v1/schemas/{name}/versions/{version}`.
    pub async fn delete_schema_version(&self, name: &str, version: u32) -> Result<Reply> {
        self.delete(&format!("/v1/schemas/{name}/versions/{version}"))
            .await
    }

    /// `POST /v1/schemas/{name}/versions/{version}/validate[?key=KEY]` with `document` as body.
    pub async fn validate(
        &self,
        name: &str,
        version: u32,
        key: Option<&str>,
        document: &Value,
    ) -> Result<Reply> {
        let mut request = self
            .client
            .post(self.url(&format!("/v1/schemas/{name}/versions/{version}/validate")))
            .json(document);
        if let Some(key) = key {
            request = request.query(&[("key", key)]);
        }
        self.send(request).await
    }

    // --- configs ---

    /// `PUT /v1/configs/{key}` of `value` under `schema`/`version`, no precondition, default actor.
    pub async fn put_config(
        &self,
        key: &str,
        schema: &str,
        version: u32,
        value: &Value,
    ) -> Result<Reply> {
        self.put_config_with(key, &config_body(schema, version, value), &WriteOpts::new())
            .await
    }

    /// `PUT /v1/configs/{key}` of a whole request body (see `config_body`) with `opts`.
    pub async fn put_config_with(
        &self,
        key: &str,
        body: &Value,
        opts: &WriteOpts,
    ) -> Result<Reply> {
        let request = self
            .client
            .put(self.url(&format!("/v1/configs/{key}")))
            .json(body);
        self.send(opts.apply(request)).await
    }

    /// `PUT /v1/configs/{key}` of raw bytes with the given Content-Type.
    pub async fn put_config_raw(
        &self,
        key: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<Reply> {
        let request = self
            .client
            .put(self.url(&format!("/v1/configs/{key}")))
            .header(CONTENT_TYPE, content_type)
            .body(body);
        self.send(request).await
    }

    /// `GET /v1/configs/{key}`.
    pub async fn get_config(&self, key: &str) -> Result<Reply> {
        self.get(&format!("/v1/configs/{key}")).await
    }

    /// `GET /v1/configs?prefix=..&limit=..&after=..` (absent parameters are not sent).
    pub async fn list_configs(
        &self,
        prefix: Option<&str>,
        limit: Option<u32>,
        after: Option<&str>,
    ) -> Result<Reply> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(prefix) = prefix {
            query.push(("prefix", prefix.to_string()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        let request = self.client.get(self.url("/v1/configs")).query(&query);
        self.send(request).await
    }

    /// Every config under `prefix` (linearizable), page after page of `limit` (typed).
    pub async fn list_all(
        &self,
        prefix: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<ConfigEntry>> {
        use futures::TryStreamExt as _;
        let mut opts = ListOptions::prefix(prefix.unwrap_or_default());
        opts.limit = limit;
        self.typed
            .list(opts)
            .try_collect()
            .await
            .with_context(|| format!("listing {prefix:?} through {}", self.base))
    }

    /// `DELETE /v1/configs/{key}` with `opts` (actor, If-Match).
    pub async fn delete_config(&self, key: &str, opts: &WriteOpts) -> Result<Reply> {
        let request = self.client.delete(self.url(&format!("/v1/configs/{key}")));
        self.send(opts.apply(request)).await
    }

    /// The base URL, `http://IP:PORT` (what a node advertises as its API by default).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET path` with its own (shorter) timeout, for polling nodes that may not answer.
    pub async fn get_within(&self, path: &str, timeout: Duration) -> Result<Reply> {
        self.send(self.client.get(self.url(path)).timeout(timeout))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    /// `GET /v1/configs/{key}?consistency=stale`.
    pub async fn get_config_stale(&self, key: &str) -> Result<Reply> {
        self.get(&format!("/v1/configs/{key}?consistency=stale"))
            .await
    }

    /// `GET /v1/readyz`.
    pub async fn readyz(&self) -> Result<Reply> {
        self.get("/v1/readyz").await
    }

    /// `GET /v1/cluster` (the leader's view when it is reachable).
    pub async fn cluster_view(&self) -> Result<Reply> {
        self.get("/v1/cluster").await
    }

    /// `GET /v1/cluster/self`.
    pub async fn cluster_self(&self) -> Result<Reply> {
        self.get("/v1/cluster/self").await
    }

    /// `POST /v1/cluster/members` {"node_id","api","peer","voter"}.
    pub async fn add_member(
        &self,
        node_id: u64,
        api: &str,
        peer: &str,
        voter: bool,
    ) -> Result<Reply> {
        self.post_json(
            "/v1/cluster/members",
            &json!({"node_id": node_id, "api": api, "peer": peer, "voter": voter}),
        )
        .await
    }

    /// `POST /v1/cluster/members/{id}/promote`.
    pub async fn promote_member(&self, id: u64) -> Result<Reply> {
        self.send(
            self.client
                .post(self.url(&format!("/v1/cluster/members/{id}/promote"))),
        )
        .await
    }

    /// `DELETE /v1/cluster/members/{id}`.
    pub async fn remove_member(&self, id: u64) -> Result<Reply> {
        self.delete(&format!("/v1/cluster/members/{id}")).await
    }

    /// Probe used while waiting for a node: `Ok(role)` once health and status answer.
    async fn probe(&self) -> Result<Role> {
        let client = self.typed_within(PROBE_TIMEOUT);
        client.health().await.context("GET /v1/health")?;
        match client.status().await {
            Ok(status) => Ok(status.role),
            // Authentication on, and the cluster's root token not bootstrapped (or not
            // replicated here) yet: the node serves, its role is not known.
            Err(e) if e.api().is_some_and(|a| a.status == 401) => Ok(Role::Follower),
            Err(e) => Err(anyhow::Error::new(e).context("GET /v1/status")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes.
// ---------------------------------------------------------------------------------------------

/// When `Node::start`/`Node::restart` consider the node up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// `/v1/health` is 200 and `/v1/status` says role "leader" (a single node).
    Leader,
    /// `/v1/health` is 200 and `/v1/status` answers (any role: cluster members).
    Serving,
    /// Do not wait at all.
    Spawned,
}

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub node_id: u64,
    /// The loopback IP the node listens on (API and, with `peer_port`, peer): 127.0.0.1 by
    /// default. Outgoing peer connections of a node come from its peer listener's IP.
    pub ip: IpAddr,
    /// Port to listen on; a free port on `ip` is picked when `None`.
    pub port: Option<u16>,
    /// `--peer-listen IP:PORT` (same IP as the API); without it the node serves its peer RPCs
    /// on the API listener.
    pub peer_port: Option<u16>,
    /// `--peer-advertise URL`: the peer URL other nodes use (e.g. a partition proxy).
    pub peer_advertise: Option<String>,
    /// `--advertise URL`.
    pub advertise: Option<String>,
    /// How the node finds its cluster on its first start.
    pub formation: Formation,
    /// `--max-value-bytes`.
    pub max_value_bytes: Option<u64>,
    /// `--plugin-timeout`, e.g. "50ms".
    pub plugin_timeout: Option<String>,
    /// `--plugin-memory`, e.g. "32MiB".
    pub plugin_memory: Option<String>,
    /// Further arguments after the ones above (cluster membership, ...).
    pub extra_args: Vec<String>,
    /// Environment variables for the process (e.g. `SCARAB_FAILPOINTS_DIR`).
    pub env: Vec<(String, String)>,
    pub ready: Ready,
    pub startup_timeout: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            node_id: 1,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: None,
            peer_port: None,
            peer_advertise: None,
            advertise: None,
            formation: Formation::Implicit,
            max_value_bytes: None,
            plugin_timeout: None,
            plugin_memory: None,
            extra_args: Vec::new(),
            env: Vec::new(),
            ready: Ready::Leader,
            startup_timeout: STARTUP_TIMEOUT,
        }
    }
}

/// How a node without Raft state finds its cluster (the formation flags of `scarab serve`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Formation {
    /// No formation flag: the server's default (a lone node bootstraps).
    #[default]
    Implicit,
    /// `--bootstrap`: a new cluster with this node as its only voter.
    Bootstrap,
    /// `--join URL,...`: join through any of these members (API URLs).
    Join(Vec<String>),
    /// `--bootstrap-expect N --join URL,...`: the lowest id initialises once N nodes met.
    Expect { expect: usize, join: Vec<String> },
}

/// Picks a free loopback port (binds 127.0.0.1:0, reads the port, drops the listener).
/// A one-node cluster with the schema `note` v1 = `{"type": "object"}` registered (for tests
/// about storage, not validation), started with `extra_args`.
pub async fn start_note_node(extra_args: &[&str]) -> Result<Node> {
    let node = Node::start(NodeOptions {
        extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        ..NodeOptions::default()
    })
    .await?;
    let registered = node
        .typed()
        .register_schema("note", 1, &SchemaUpload::new(&json!({"type": "object"})))
        .await
        .context("registering note")?;
    anyhow::ensure!(
        registered.created,
        "note was registered already: {registered:?}"
    );
    Ok(node)
}

pub fn free_port() -> u16 {
    free_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Picks a free port on `ip` (binds IP:0, reads the port, drops the listener) that this test
/// process has not handed out before: a test picks its nodes' peer ports up front, and a node
/// started before the others must not get one of them as its API port (the later node could
/// not bind it, and its retry only picks a new API port).
pub fn free_port_on(ip: IpAddr) -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    // Held until a new port comes up, so that the kernel does not offer the same one again.
    let mut held = Vec::new();
    loop {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("bind {ip}:0: {e}"))
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
        held.push(listener);
    }
}

/// A `scarab serve` process with its own directory `root/` holding `data/` and `node-<id>.log`
/// (stdout and stderr of every run of the process, appended). The directory outlives restarts
/// of the process and is removed with the `Node`, unless the test panicked or
/// `SCARAB_TEST_KEEP_DIRS` is set (then its path is printed).
pub struct Node {
    pub opts: NodeOptions,
    api: Api,
    root: tempfile::TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    runs: u32,
    /// Keep the directory and print the log tail on drop (set by `keep_on_drop`).
    keep: bool,
}

impl std::ops::Deref for Node {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Node {
    /// Spawns a node with a fresh data dir and waits until it is ready (`opts.ready`).
    pub async fn start(opts: NodeOptions) -> Result<Node> {
        fs::create_dir_all(tmp_root())?;
        let root = tempfile::Builder::new()
            .prefix(&format!("node-{}-", opts.node_id))
            .tempdir_in(tmp_root())
            .context("creating the node directory")?;
        let data_dir = root.path().join("data");
        let log_path = root.path().join(format!("node-{}.log", opts.node_id));
        let ip = opts.ip;
        let port = opts.port.unwrap_or_else(|| free_port_on(ip));
        let mut node = Node {
            api: Api::new(SocketAddr::new(ip, port)),
            opts,
            root,
            data_dir,
            log_path,
            child: None,
            runs: 0,
            keep: false,
        };
        // The port is free when picked, but another process may grab it before the node binds
        // it: then try again with another port (only when the port was not chosen by the test).
        let mut attempts = 0;
        loop {
            attempts += 1;
            node.spawn()?;
            match node.wait_ready().await {
                Ok(()) => return Ok(node),
                Err(e)
                    if attempts < 3
                        && node.opts.port.is_none()
                        && node.exited()
                        && node.log_mentions_addr_in_use() =>
                {
                    eprintln!("node {}: port taken, retrying: {e:#}", node.opts.node_id);
                    let port = free_port_on(ip);
                    node.api = Api::new(SocketAddr::new(ip, port));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts the process again on the same port and data dir (after `kill` or `stop`) and
    /// waits until it is ready.
    pub async fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            bail!(
                "node {} is still running: kill or stop it first",
                self.opts.node_id
            );
        }
        self.spawn()?;
        self.wait_ready().await
    }

    /// The HTTP handle of this node (cloneable, e.g. for concurrent tasks).
    pub fn api(&self) -> &Api {
        &self.api
    }

    pub fn port(&self) -> u16 {
        self.api.addr.port()
    }

    pub fn id(&self) -> u64 {
        self.opts.node_id
    }

    /// The API URL this node advertises (`--advertise`, else `http://IP:PORT`).
    pub fn api_url(&self) -> String {
        self.opts
            .advertise
            .clone()
            .unwrap_or_else(|| self.api.base_url().to_string())
    }

    /// The peer URL this node advertises (`--peer-advertise`, else its peer listener, else
    /// its API URL).
    pub fn peer_url(&self) -> String {
        match (&self.opts.peer_advertise, self.opts.peer_port) {
            (Some(url), _) => url.clone(),
            (None, Some(port)) => format!("http://{}", SocketAddr::new(self.opts.ip, port)),
            (None, None) => self.api_url(),
        }
    }

    /// Keep the node's directory and print its log tail when it is dropped, as after a panic
    /// (for tests that fail by returning an error).
    pub fn keep_on_drop(&mut self) {
        self.keep = true;
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The process id of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive (not yet exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits up to `timeout` for the process to exit by itself and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self
                .child
                .as_mut()
                .ok_or_else(|| anyhow!("node {} is not running", self.opts.node_id))?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                self.note(&format!("exited: {status}"));
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "node {} still runs after {timeout:?}; log {}:\n{}",
                    self.opts.node_id,
                    self.log_path.display(),
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Starts the process again on the same data dir and expects it to refuse to start:
    /// waits for it to exit by itself and returns its status and what this run logged. An
    /// error if it still runs after `timeout`.
    pub async fn restart_expecting_exit(
        &mut self,
        timeout: Duration,
    ) -> Result<(ExitStatus, String)> {
        if self.is_running() {
            bail!(
                "node {} is still running: kill or stop it first",
                self.opts.node_id
            );
        }
        let before = fs::metadata(&self.log_path).map(|m| m.len()).unwrap_or(0);
        self.spawn()?;
        let status = self.wait_exit(timeout).await?;
        let log = fs::read(&self.log_path)?;
        let run = String::from_utf8_lossy(&log[(before as usize).min(log.len())..]).into_owned();
        Ok((status, run))
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("node {} is not running", self.opts.node_id))?;
        // std's Child::kill sends SIGKILL (and is a no-op error if it already exited).
        let _ = child.kill();
        let status = child.wait()?;
        self.note(&format!("killed (SIGKILL): {status}"));
        Ok(status)
    }

    /// Sends `signal` to the running process (SIGSTOP/SIGCONT pause and resume it).
    pub fn signal(&mut self, signal: libc::c_int) -> Result<()> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("node {} is not running", self.opts.node_id))?;
        let pid = libc::pid_t::try_from(child.id())?;
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!("signal {signal}: {}", std::io::Error::last_os_error());
        }
        self.note(&format!("sent signal {signal}"));
        Ok(())
    }

    /// SIGTERM, then waits up to `STOP_TIMEOUT` for the process to exit (SIGKILL and an error
    /// past the deadline).
    pub async fn stop(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("node {} is not running", self.opts.node_id))?;
        let pid = libc::pid_t::try_from(child.id())?;
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!("SIGTERM: {}", std::io::Error::last_os_error());
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                self.note(&format!("stopped (SIGTERM): {status}"));
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "node {} did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed); log: {}\n{}",
                    self.opts.node_id,
                    self.log_path.display(),
                    self.log_tail(60)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--node-id".into(),
            self.opts.node_id.to_string(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--listen".into(),
            self.api.addr.to_string(),
            "--plugin-cache-dir".into(),
            shared_plugin_cache().display().to_string(),
        ];
        if let Some(n) = self.opts.max_value_bytes {
            args.extend(["--max-value-bytes".into(), n.to_string()]);
        }
        if let Some(t) = &self.opts.plugin_timeout {
            args.extend(["--plugin-timeout".into(), t.clone()]);
        }
        if let Some(m) = &self.opts.plugin_memory {
            args.extend(["--plugin-memory".into(), m.clone()]);
        }
        if let Some(port) = self.opts.peer_port {
            args.extend([
                "--peer-listen".into(),
                SocketAddr::new(self.opts.ip, port).to_string(),
            ]);
        }
        if let Some(url) = &self.opts.peer_advertise {
            args.extend(["--peer-advertise".into(), url.clone()]);
        }
        if let Some(url) = &self.opts.advertise {
            args.extend(["--advertise".into(), url.clone()]);
        }
        match &self.opts.formation {
            Formation::Implicit => {}
            Formation::Bootstrap => args.push("--bootstrap".into()),
            Formation::Join(urls) => args.extend(["--join".into(), urls.join(",")]),
            Formation::Expect { expect, join } => args.extend([
                "--bootstrap-expect".into(),
                expect.to_string(),
                "--join".into(),
                join.join(","),
            ]),
        }
        if auth::cluster_token().is_some() && !self.opts.extra_args.iter().any(|a| a == "--auth") {
            args.extend([
                "--auth".into(),
                "--root-token-file".into(),
                self.cluster_token_file().display().to_string(),
            ]);
        }
        args.extend(self.opts.extra_args.iter().cloned());
        args
    }

    /// Where a node of a cluster with a harness token reads it as its root token.
    fn cluster_token_file(&self) -> PathBuf {
        self.root.path().join("cluster-root-token")
    }

    fn spawn(&mut self) -> Result<()> {
        self.runs += 1;
        if let Some(token) = auth::cluster_token() {
            fs::write(self.cluster_token_file(), format!("{token}\n"))?;
        }
        let args = self.args();
        self.note(&format!("run {}: scarab {}", self.runs, args.join(" ")));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let mut command = Command::new(scarab_bin());
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // The command line alone configures the node: drop SCARAB_* settings of the caller.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SCARAB_") {
                command.env_remove(name);
            }
        }
        if let Some(filter) = std::env::var_os("RUST_LOG") {
            command.env("RUST_LOG", filter);
        }
        command.envs(self.opts.env.iter().map(|(k, v)| (k, v)));
        // Do not leave servers behind if the test process dies (the signal is sent when the
        // spawning thread exits; nodes are dropped before their test's thread ends anyway).
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("spawning {}", scarab_bin().display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls until the node is ready (per `opts.ready`), the process exits, or the deadline.
    async fn wait_ready(&mut self) -> Result<()> {
        if self.opts.ready == Ready::Spawned {
            return Ok(());
        }
        let started = Instant::now();
        let deadline = started + self.opts.startup_timeout;
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "node {} exited during startup ({status}); log {}:\n{}",
                    self.opts.node_id,
                    self.log_path.display(),
                    self.log_tail(60)
                );
            }
            let last = match self.api.probe().await {
                Ok(role) if self.opts.ready == Ready::Serving || role == Role::Leader => {
                    self.note(&format!("ready ({role:?}) after {:?}", started.elapsed()));
                    return Ok(());
                }
                Ok(role) => format!("role {role:?}"),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "node {} not ready ({:?}) within {:?}: last: {last}; log {}:\n{}",
                    self.opts.node_id,
                    self.opts.ready,
                    self.opts.startup_timeout,
                    self.log_path.display(),
                    self.log_tail(60)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    fn log_mentions_addr_in_use(&self) -> bool {
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        log.contains("ddress already in use") || log.contains("AddrInUse")
    }

    /// Appends a harness line to the node's log, to tell runs apart.
    fn note(&self, line: &str) {
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
        {
            let _ = writeln!(f, "==== harness: {line}");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.keep || std::thread::panicking() || std::env::var_os(KEEP_DIRS_ENV).is_some() {
            self.root.disable_cleanup(true);
            eprintln!(
                "node {}: kept {} (log {}); last lines of the log:\n{}",
                self.opts.node_id,
                self.root.path().display(),
                self.log_path.display(),
                self.log_tail(40)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Assertions.
// ---------------------------------------------------------------------------------------------

/// The reply is `status` with an error body `{"error":{"code":code,"message":<non-empty>}}`,
/// with a "violations" array exactly when the code is validation_failed.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "expected {status} {code}, got {reply}"
    );
    let error = &reply.body["error"];
    assert!(error.is_object(), "no \"error\" object in {reply}");
    assert_eq!(
        error["code"].as_str(),
        Some(code),
        "wrong error code in {reply}"
    );
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| !m.trim().is_empty()),
        "no error message in {reply}"
    );
    if code == "validation_failed" {
        assert!(
            error["violations"].is_array(),
            "no violations array in {reply}"
        );
    } else {
        assert!(
            error.get("violations").is_none(),
            "violations in a {code} error: {reply}"
        );
    }
}

/// The reply has the expected status (for successes), with the reply in the message.
#[track_caller]
pub fn assert_status(reply: &Reply, status: u16) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "expected {status}, got {reply}"
    );
}

/// Every violation has the documented shape: path (a JSON pointer), message, code (string or
/// null) and source ("schema" or "plugin").
#[track_caller]
pub fn assert_violation_shapes(violations: &[Value]) {
    for v in violations {
        let path = v["path"]
            .as_str()
            .unwrap_or_else(|| panic!("no path in {v}"));
        assert!(
            path.is_empty() || path.starts_with('/'),
            "path is not a JSON pointer: {v}"
        );
        assert!(v["message"].is_string(), "no message in {v}");
        assert!(
            v["code"].is_string() || v["code"].is_null(),
            "bad code in {v}"
        );
        assert!(
            matches!(v["source"].as_str(), Some("schema" | "plugin")),
            "bad source in {v}"
        );
    }
}

/// `violations` contains one that matches `expected`.
#[track_caller]
pub fn assert_has_violation(violations: &[Value], expected: &ExpectedViolation, context: &str) {
    assert!(
        violations.iter().any(|v| expected.matches(v)),
        "{context}: expected a violation {expected:?} among {}",
        Value::Array(violations.to_vec())
    );
}

/// An RFC 3339 UTC timestamp with milliseconds: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
#[track_caller]
pub fn assert_timestamp(value: &Value) {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {value}"));
    let b = s.as_bytes();
    let ok = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(ok, "not an RFC 3339 UTC timestamp with milliseconds: {s:?}");
}

/// A plugin digest: `sha256:<64 lowercase hex>`.
#[track_caller]
pub fn assert_digest(value: &Value) -> String {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("digest is not a string: {value}"));
    let hex = s
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("digest without sha256: prefix: {s}"));
    assert!(
        hex.len() == 64 && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
        "digest is not sha256:<64 hex>: {s}"
    );
    s.to_string()
}

/// Polls `condition` every `POLL_INTERVAL` until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
