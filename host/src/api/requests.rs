//! Every request's identity and timing: an id (`X-Request-Id`, taken from the request when it
//! is a sane one, else made here) echoed in the response and carried by every log line of the
//! request (a tracing span), and a warning for a request slower than `--slow-request`, with
//! its route template and where the time went (validation, Raft proposal to applied, the
//! rest).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// Time spent in the parts of one request, in microseconds.
#[derive(Default)]
pub struct Timings {
    validation_us: AtomicU64,
    raft_us: AtomicU64,
}

tokio::task_local! {
    static TIMINGS: Arc<Timings>;
}

/// Adds the time since `started` to the current request's validation time (if any request).
pub fn add_validation(started: Instant) {
    let us = started.elapsed().as_micros() as u64;
    let _ = TIMINGS.try_with(|t| t.validation_us.fetch_add(us, Ordering::Relaxed));
}

/// Adds the time since `started` to the current request's Raft time (proposal to applied).
pub fn add_raft(started: Instant) {
    let us = started.elapsed().as_micros() as u64;
    let _ = TIMINGS.try_with(|t| t.raft_us.fetch_add(us, Ordering::Relaxed));
}

/// An id a client sent that may be echoed and logged: 1 to 128 visible ASCII characters.
fn sane(id: &HeaderValue) -> Option<String> {
    let s = id.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_string())
}

/// A new id: 16 hex digits, random.
fn new_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        bytes = nanos.to_le_bytes();
    }
    hex::encode(bytes)
}

/// The threshold of the slow-request warning (`--slow-request`).
#[derive(Clone, Copy)]
pub struct SlowRequest(pub Duration);

pub async fn track(State(slow): State<SlowRequest>, request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(sane)
        .unwrap_or_else(new_id);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", |p| p.as_str())
        .to_string();
    let method = request.method().clone();
    // A label from a bounded set: any token is a valid HTTP method, and this runs before
    // authentication (a client inventing methods must not grow the metrics).
    let method_label = match method.as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    };
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let timings = Arc::new(Timings::default());
    let started = Instant::now();
    let mut response = TIMINGS
        .scope(timings.clone(), next.run(request).instrument(span.clone()))
        .await;
    let elapsed = started.elapsed();
    let m = crate::metrics::get();
    m.http_requests
        .get_or_create(&crate::metrics::HttpLabels {
            route: route.clone(),
            method: method_label.to_string(),
            status: response.status().as_u16(),
        })
        .inc();
    m.http_duration
        .get_or_create(&crate::metrics::RouteLabels {
            route: route.clone(),
            method: method_label.to_string(),
        })
        .observe(elapsed.as_secs_f64());
    // A watch waits by design (a long poll, an SSE stream): not a slow request.
    if elapsed >= slow.0 && route != "/v1/watch" {
        let validation = Duration::from_micros(timings.validation_us.load(Ordering::Relaxed));
        let raft = Duration::from_micros(timings.raft_us.load(Ordering::Relaxed));
        let rest = elapsed.saturating_sub(validation + raft);
        span.in_scope(|| {
            tracing::warn!(
                status = response.status().as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                validation_ms = validation.as_millis() as u64,
                raft_ms = raft.as_millis() as u64,
                other_ms = rest.as_millis() as u64,
                "slow request"
            )
        });
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
