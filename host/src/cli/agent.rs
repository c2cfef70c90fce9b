//! `scarab agent`: a sidecar (like the AppConfig agent and consul-template) that keeps a
//! directory of files as a mirror of the configs under some prefixes, for a service that
//! reads files, and serves them on a local listener, from a last-known-good cache that
//! outlives the cluster and the agent itself (`scarab_client::Mirror`).
//!
//! Files: one per key (`DIR/<key>.<format>`), written atomically (temporary file, fsync,
//! rename, fsync of the directory) whenever the key changes, removed when it is deleted. A
//! reader sees the old file or the new one, never part of one. `--exec` runs after each batch
//! of changed files (debounced; at start too, for the files the agent created or changed),
//! with their keys in `SCARAB_CHANGED_KEYS`; a failure is logged and retried with the keys
//! accumulated, never dropped.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Args;

use scarab_client::{Freshness, Mirror, MirrorOptions, write_atomically};

use super::ClientOpts;
use super::formats::{self, Format};

#[derive(Args)]
pub struct AgentArgs {
    /// Keys starting with this (repeat for several prefixes).
    #[arg(long = "prefix", required = true)]
    prefixes: Vec<String>,
    /// The directory the files are kept in (made if missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Values converted to this schema's --schema-version (only configs of it).
    #[arg(long, requires = "schema_version")]
    schema: Option<String>,
    #[arg(long = "schema-version", requires = "schema")]
    schema_version: Option<u32>,
    /// A shell command run after each batch of changed files (and at start, for the files the
    /// agent created or changed), with `SCARAB_CHANGED_KEYS` (the keys, one per line; `*` when
    /// they would not fit in 64 KiB) and `SCARAB_CHANGED_COUNT`; retried while it fails.
    #[arg(long)]
    exec: Option<String>,
    /// How long --exec may run before it is killed (and retried).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    exec_timeout: Duration,
    /// Serve the mirror here (`GET /v1/configs/{key}`, `GET /v1/configs?prefix=`,
    /// `GET /healthz`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The last-known-good cache (default: OUT/.scarab-agent.cache).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// How long the watch may be silent before the agent reports itself stale (a third of
    /// it is the progress interval).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    stale_after: Duration,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let client = args.opts.client()?;
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let cache = args
        .cache
        .clone()
        .unwrap_or_else(|| args.out.join(".scarab-agent.cache"));
    let mut opts = MirrorOptions::new(cache, args.prefixes.clone());
    opts.progress = (args.stale_after / 3).max(Duration::from_millis(100));
    if let (Some(s), Some(v)) = (&args.schema, args.schema_version) {
        opts.schema_version = Some((s.clone(), v));
    }
    let mirror = Mirror::start(client, opts);
    let mut changes = mirror.changes();
    // Everything the cache holds, at once: the service has its files before the cluster
    // answers.
    let all: BTreeSet<String> = args
        .prefixes
        .iter()
        .flat_map(|p| mirror.list(p))
        .map(|e| e.meta.key)
        .collect();
    let started = render(&mirror, &args.out, args.format, &all);
    eprintln!(
        "scarab agent: {} config(s) in {} from the cache (revision {})",
        all.len(),
        args.out.display(),
        mirror.freshness().revision
    );
    if let Some(addr) = args.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let app = axum::Router::new()
            .route("/v1/configs", axum::routing::get(list))
            .route("/v1/configs/{*key}", axum::routing::get(get))
            .route("/healthz", axum::routing::get(health))
            .with_state(mirror.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        eprintln!("scarab agent: serving on http://{addr}");
    }
    // Files written at start are changes too (new, or different from what was on disk):
    // whether the first read of the cluster lands before the mirror is subscribed to (then
    // its keys are in `all`) or after (then they arrive as a change) must not decide whether
    // the service is told.
    let mut pending = started;
    let mut retry = RETRY_FIRST;
    loop {
        if let Some(cmd) = &args.exec
            && !pending.is_empty()
        {
            match run_exec(cmd, &pending, args.exec_timeout).await {
                Ok(()) => {
                    pending.clear();
                    retry = RETRY_FIRST;
                }
                Err(e) => {
                    eprintln!(
                        "scarab agent: --exec failed ({e}); retrying in {retry:?} with {} key(s)",
                        pending.len()
                    );
                }
            }
        }
        if args.exec.is_none() {
            pending.clear();
        }
        // Wait for a change, or until the failed --exec is due again.
        let first = if pending.is_empty() {
            changes.recv().await
        } else {
            let waited = tokio::time::timeout(retry, changes.recv()).await;
            retry = (retry * 2).min(RETRY_MAX);
            match waited {
                Ok(r) => r,
                Err(_) => continue,
            }
        };
        let mut batch: BTreeSet<String> = match first {
            Ok(a) => a.changed.into_iter().collect(),
            // Fell behind the change feed: render everything.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => all_keys(&mirror, &args),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
        };
        // Gather what follows shortly, so that one burst of writes is one --exec.
        let debounce = tokio::time::sleep(DEBOUNCE);
        tokio::pin!(debounce);
        loop {
            tokio::select! {
                _ = &mut debounce => break,
                next = changes.recv() => match next {
                    Ok(a) => batch.extend(a.changed),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        batch.extend(all_keys(&mirror, &args));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        pending.extend(render(&mirror, &args.out, args.format, &batch));
        for (key, error) in mirror.freshness().conversion_errors {
            eprintln!("scarab agent: {key}: kept the last good file: {error}");
        }
    }
}

/// The first wait before a failed `--exec` is run again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Changes that follow one another within this are one batch (one `--exec`).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Runs `--exec` once with `keys` in its environment; an error says how it failed.
async fn run_exec(cmd: &str, keys: &BTreeSet<String>, timeout: Duration) -> Result<(), String> {
    let mut list = keys.iter().cloned().collect::<Vec<_>>().join("\n");
    // One environment string is at most 128 KiB (Linux): past 64 KiB, say "all".
    if list.len() > 64 << 10 {
        list = "*".into();
    }
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("SCARAB_CHANGED_KEYS", &list)
        .env("SCARAB_CHANGED_COUNT", keys.len().to_string())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(timeout, child).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(status.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

fn all_keys(mirror: &Mirror, args: &AgentArgs) -> BTreeSet<String> {
    args.prefixes
        .iter()
        .flat_map(|p| mirror.list(p))
        .map(|e| e.meta.key)
        .collect()
}

/// `DIR/<key>.<ext>`.
fn file_of(out: &Path, key: &str, format: Format) -> PathBuf {
    out.join(format!("{key}.{}", format.extension()))
}

/// Writes (or removes) the file of each key, as the mirror has it now.
/// Writes (or removes) the file of each of `keys`; returns the keys whose file it changed:
/// created, rewritten with other contents, or removed. A file that already holds what would
/// be written is left alone (no rewrite, no fsync, and no `--exec` for it).
fn render(
    mirror: &Mirror,
    out: &Path,
    format: Format,
    keys: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut changed = BTreeSet::new();
    for key in keys {
        // Keys come from the server, which checks them; a path is made only of a valid one.
        if let Err(e) = scarab_client::types::validate_key(key) {
            eprintln!("scarab agent: {key:?}: not a valid key, not written: {e}");
            continue;
        }
        let path = file_of(out, key, format);
        match mirror.get(key) {
            Some(entry) => {
                let result = formats::render(&entry.value, format).and_then(|text| {
                    if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
                        return Ok(false);
                    }
                    write_atomically(&path, text.as_bytes())?;
                    Ok(true)
                });
                match result {
                    Ok(true) => {
                        changed.insert(key.clone());
                    }
                    Ok(false) => {}
                    Err(e) => eprintln!("scarab agent: {key}: not written: {e:#}"),
                }
            }
            None => match std::fs::remove_file(&path) {
                Ok(()) => {
                    changed.insert(key.clone());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => eprintln!("scarab agent: {key}: not removed: {e}"),
            },
        }
    }
    changed
}

/// `X-Scarab-Stale` and the age, when the mirror is not current.
fn stale_headers(f: &Freshness) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&f.revision.to_string()) {
        headers.insert("x-scarab-revision", v);
    }
    if !f.current {
        headers.insert("x-scarab-stale", HeaderValue::from_static("true"));
        let age = f
            .age()
            .map_or_else(|| "unknown".to_string(), |a| a.as_millis().to_string());
        if let Ok(v) = HeaderValue::from_str(&age) {
            headers.insert("x-scarab-age-ms", v);
        }
    }
    headers
}

fn not_found(key: &str) -> Response {
    let body = serde_json::json!({"error": {"code": "not_found", "message": format!("{key} is not in the mirror")}});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn get(State(mirror): State<Mirror>, UrlPath(key): UrlPath<String>) -> Response {
    let headers = stale_headers(&mirror.freshness());
    match mirror.get(&key) {
        Some(entry) => (headers, axum::Json(entry)).into_response(),
        None => not_found(&key),
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
}

async fn list(State(mirror): State<Mirror>, Query(q): Query<ListQuery>) -> Response {
    let fresh = mirror.freshness();
    let body = serde_json::json!({
        "items": mirror.list(&q.prefix),
        "next": null,
        "revision": fresh.revision,
    });
    (stale_headers(&fresh), axum::Json(body)).into_response()
}

async fn health(State(mirror): State<Mirror>) -> Response {
    let f = mirror.freshness();
    let body = serde_json::json!({
        "current": f.current,
        "revision": f.revision,
        "age_ms": f.age().map(|a| a.as_millis() as u64),
        "error": f.error,
        "conversion_errors": f.conversion_errors,
        // Full reads since start: 1 per prefix without a cache, +1 per compaction.
        "relists": mirror.relists(),
    });
    let status = if f.current {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, stale_headers(&f), axum::Json(body)).into_response()
}
