//! The SSE watch: a stream of revisions that reconnects, to the next endpoint when one
//! fails, and resumes after the last revision it delivered (`Last-Event-ID`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use scarab_types::{EVENT_ERROR, Status, WatchError, WatchEvent};

use crate::Client;
use crate::client::{Call, TimedOut, transport};
use crate::error::{ApiError, Error};
use crate::options::WatchOptions;
use crate::retry::{Failure, Idempotency, may_retry};
use crate::sse::{SseMessage, SseParser};

/// No revision delivered yet (the server refuses `u64::MAX` as a `Last-Event-ID`).
const NONE: u64 = u64::MAX;
/// The server's progress interval when the watch does not set one.
const DEFAULT_PROGRESS: Duration = Duration::from_secs(10);
/// The longest pause between reconnection rounds.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The changes under a prefix, as [`WatchEvent`]s: one
/// [`WatchEvent::Change`](scarab_types::WatchEvent::Change) per revision (all the changes of
/// a transaction together) and a [`WatchEvent::Progress`](scarab_types::WatchEvent::Progress)
/// after a quiet interval, in revision order.
///
/// When the connection breaks (the node stops, the network fails, nothing arrives for three
/// progress intervals), the stream connects again, from the next endpoint on, sending
/// `Last-Event-ID` with the last revision it delivered: every node applies the same log, so
/// it misses nothing and delivers nothing twice, also across a leader change. Connection
/// failures are retried (see [`WatchOptions::max_reconnect_attempts`]); they are not items.
///
/// The stream ends only with an error item that retrying cannot cure: 410
/// `revision_compacted` (the retention dropped revisions the watch still had to deliver:
/// read the current state and watch from its revision + 1), a refused request (400), an
/// `error` event of the server, or an event that does not decode.
pub struct WatchStream {
    inner: Pin<Box<dyn Stream<Item = Result<WatchEvent, Error>> + Send>>,
    last: Arc<AtomicU64>,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("last_revision", &self.last_revision())
            .finish_non_exhaustive()
    }
}

impl WatchStream {
    pub(crate) fn new(client: Client, opts: WatchOptions) -> Self {
        let last = Arc::new(AtomicU64::new(NONE));
        let state = Watcher {
            call: client.watch_call(&opts),
            endpoint: None,
            from: opts.from_revision.map(|r| r.max(1)),
            idle: opts.progress.unwrap_or(DEFAULT_PROGRESS) * 3,
            client,
            opts,
            last: last.clone(),
            conn: None,
            pending: VecDeque::new(),
            failures: 0,
            last_error: None,
            done: false,
        };
        let inner = futures_util::stream::unfold(state, |mut w| async move {
            let item = w.next().await?;
            Some((item, w))
        });
        Self {
            inner: Box::pin(inner),
            last,
        }
    }

    /// The revision of the last event delivered: a new watch from this + 1 goes on where
    /// this one stands.
    pub fn last_revision(&self) -> Option<u64> {
        match self.last.load(Ordering::Relaxed) {
            NONE => None,
            r => Some(r),
        }
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct Connection {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    parser: SseParser,
    endpoint: usize,
    /// Whether a message came on it (else its end counts as a failed attempt).
    heard: bool,
}

struct Watcher {
    client: Client,
    opts: WatchOptions,
    call: Call,
    /// The endpoint to connect to next (`None`: the one the client last found working).
    endpoint: Option<usize>,
    /// Where to start while no event was delivered (resolved from a node's status when the
    /// watch did not say).
    from: Option<u64>,
    /// A connection silent this long is broken.
    idle: Duration,
    last: Arc<AtomicU64>,
    conn: Option<Connection>,
    pending: VecDeque<Result<WatchEvent, Error>>,
    /// Connection attempts in a row that brought no message.
    failures: u32,
    last_error: Option<Error>,
    done: bool,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<WatchEvent, Error>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                match &item {
                    // Never twice, whatever a node sends.
                    Ok(WatchEvent::Change(c))
                        if self.last_revision().is_some_and(|last| c.revision <= last) =>
                    {
                        continue;
                    }
                    Ok(event) => self.last.store(event.revision(), Ordering::Relaxed),
                    Err(_) => {
                        self.done = true;
                        self.pending.clear();
                        self.conn = None;
                    }
                }
                return Some(item);
            }
            if self.done {
                return None;
            }
            let Some(conn) = self.conn.as_mut() else {
                if let Err(e) = self.connect().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            };
            let chunk = tokio::time::timeout(self.idle, conn.body.next()).await;
            let index = conn.endpoint;
            let broken = match chunk {
                Ok(Some(Ok(bytes))) => {
                    let mut messages = Vec::new();
                    conn.parser.feed(&bytes, &mut messages);
                    if !messages.is_empty() {
                        conn.heard = true;
                    }
                    for m in messages {
                        self.message(m, index);
                    }
                    continue;
                }
                Ok(Some(Err(e))) => {
                    Some(transport(self.client.endpoint_url(conn.endpoint), true, e))
                }
                // The node ended the stream (it is shutting down).
                Ok(None) => None,
                Err(_) => Some(transport(
                    self.client.endpoint_url(conn.endpoint),
                    true,
                    TimedOut(self.idle),
                )),
            };
            let conn = self.conn.take().expect("a connection");
            if conn.heard {
                self.failures = 0;
            } else {
                self.failures += 1;
            }
            self.last_error = broken.or(self.last_error.take());
            self.endpoint = Some((conn.endpoint + 1) % self.client.endpoint_count());
        }
    }

    fn last_revision(&self) -> Option<u64> {
        Some(self.last.load(Ordering::Relaxed)).filter(|r| *r != NONE)
    }

    /// Turns a message that came from endpoint `index` into an item.
    fn message(&mut self, m: SseMessage, index: usize) {
        let item = if m.event == EVENT_ERROR {
            match serde_json::from_str::<WatchError>(&m.data) {
                Ok(e) => Err(ApiError {
                    status: e.code.http_status(),
                    code: e.code,
                    message: e.message,
                    violations: Vec::new(),
                    report: None,
                }
                .into()),
                Err(e) => Err(self.decode_error(index, &m.event, e)),
            }
        } else {
            match WatchEvent::decode(&m.event, &m.data) {
                Ok(Some(event)) => Ok(event),
                // An event this version does not know: skipped.
                Ok(None) => return,
                Err(e) => Err(self.decode_error(index, &m.event, e)),
            }
        };
        self.pending.push_back(item);
    }

    fn decode_error(&self, index: usize, event: &str, e: serde_json::Error) -> Error {
        Error::Decode {
            endpoint: self.client.endpoint_url(index).clone(),
            status: 200,
            message: format!("{event} event: {e}"),
        }
    }

    /// Connects to the next endpoint that takes the watch, resuming after the last
    /// revision delivered. Fails with an error that retrying cannot cure, or after
    /// `max_reconnect_attempts`.
    async fn connect(&mut self) -> Result<(), Error> {
        let n = self.client.endpoint_count();
        let mut index = self
            .endpoint
            .unwrap_or_else(|| self.client.preferred_endpoint());
        loop {
            if let Some(max) = self.opts.max_reconnect_attempts
                && self.failures >= max
            {
                return Err(self.last_error.take().unwrap_or_else(|| {
                    Error::InvalidArgument("max_reconnect_attempts is 0".into())
                }));
            }
            if self.failures > 0 && (self.failures as usize).is_multiple_of(n) {
                let round = self.failures as usize / n;
                let pause = self.client.backoff(round).min(MAX_BACKOFF);
                tokio::time::sleep(pause).await;
            }
            match self.attempt(index).await {
                Ok(conn) => {
                    self.conn = Some(conn);
                    return Ok(());
                }
                Err(e) => {
                    if !may_retry(Failure::of(&e), Idempotency::Read) {
                        return Err(e);
                    }
                    self.failures += 1;
                    self.last_error = Some(e);
                    index = (index + 1) % n;
                }
            }
        }
    }

    async fn attempt(&mut self, index: usize) -> Result<Connection, Error> {
        let mut call = self.call.clone();
        match self.last.load(Ordering::Relaxed) {
            NONE => {
                let from = match self.from {
                    Some(from) => from,
                    None => {
                        // "From now on", fixed to a revision before the first connection,
                        // so that a reconnection before the first event misses nothing.
                        let status = self.client.call(Method::GET, &["status"]);
                        let response = self.client.send_once(index, &status, false).await?;
                        let endpoint = self.client.endpoint_url(index).clone();
                        let body = response
                            .bytes()
                            .await
                            .map_err(|e| transport(&endpoint, true, e))?;
                        let status: Status =
                            serde_json::from_slice(&body).map_err(|e| Error::Decode {
                                endpoint,
                                status: 200,
                                message: format!("status: {e}"),
                            })?;
                        let from = status.revision + 1;
                        self.from = Some(from);
                        from
                    }
                };
                call = call.query("from_revision", from);
            }
            seen => {
                call = call.header(
                    HeaderName::from_static("last-event-id"),
                    HeaderValue::from(seen),
                );
            }
        }
        let response = self.client.send_once(index, &call, true).await?;
        let endpoint = self.client.endpoint_url(index);
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("text/event-stream") {
            return Err(Error::Decode {
                endpoint: endpoint.clone(),
                status: response.status().as_u16(),
                message: format!("expected text/event-stream, got {content_type:?}"),
            });
        }
        self.client.set_preferred_endpoint(index);
        Ok(Connection {
            body: Box::pin(response.bytes_stream()),
            parser: SseParser::new(),
            endpoint: index,
            heard: false,
        })
    }
}
