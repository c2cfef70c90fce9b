//! Serving HTTP/1.1 on a listener within bounds: how many connections a listener holds, how
//! long a client may take to send a request head or body, how long an idle keep-alive
//! connection is kept; and, at start, the open-file limit these connections count against.
//!
//! Owns: the accept loop, each connection's lifetime (its TLS handshake too, when the
//! listener has TLS: within the header timeout, in the connection's own task) and the
//! graceful stop of both listeners (API and peer). Does not own: what a request means (the routers of [`crate::api`],
//! [`crate::raft::network`] and [`crate::cluster`]), nor ending long-lived responses at a stop
//! (`AppState::stopping` ends watches). Why each bound exists: `api/DESIGN.md`.

use scarab_types::ErrorCode;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, Request, Response, header};
use axum::response::IntoResponse;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::api::ApiError;
use crate::config::NodeConfig;
use crate::tls::{ClientIdentity, ServerTls};

/// The bounds of one listener's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections served at once; more are answered 503 `too_many_connections` and closed.
    pub max_connections: usize,
    /// Time to send a complete request head: from connecting for the first request, from its
    /// first byte for later ones. Then the connection is closed.
    pub header_timeout: Duration,
    /// Time a keep-alive connection may stay without a request in flight and without a byte
    /// received. Then it is closed. A response in flight (a watch) is never idle.
    pub idle_timeout: Duration,
    /// Time to receive a request body in full, from the end of its head. Then the request
    /// fails with 408 `body_timeout` and the connection is closed.
    pub body_timeout: Duration,
}

impl ConnLimits {
    pub fn from_config(config: &NodeConfig) -> Self {
        ConnLimits {
            max_connections: config.max_connections,
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            body_timeout: config.body_timeout,
        }
    }
}

/// Files a node keeps open besides its listeners' connections: fjall's journals and tables,
/// snapshots being written or sent, the plugin cache, connections to peers, logs.
const RESERVED_FILES: u64 = 256;

/// Connections of one listener being refused at once (each holds a socket for at most
/// [`REJECT_TIMEOUT`], until the client closes); beyond them, refusals do not wait.
const REJECTING: usize = 32;

/// How long answering and closing a connection over the limit may take.
const REJECT_TIMEOUT: Duration = Duration::from_secs(1);

/// At most one warning about refused connections per listener this often.
const REJECT_WARN_EVERY: Duration = Duration::from_secs(10);

/// Raises the soft open-file limit (RLIMIT_NOFILE) to the hard limit, then lowers
/// `limits.max_connections` if `listeners` listeners at that many connections would not fit
/// under it (with room for the node's other files), with a warning that says how to raise
/// the hard limit. Returns the limits to serve with.
pub fn fit_open_files(limits: ConnLimits, listeners: usize) -> ConnLimits {
    let listeners = listeners.max(1) as u64;
    let (soft, hard) = match raise_open_file_limit() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit (RLIMIT_NOFILE)");
            return limits;
        }
    };
    let per_listener = limits.max_connections as u64 + REJECTING as u64;
    let needed = listeners * per_listener + RESERVED_FILES;
    if needed <= soft {
        tracing::debug!(soft, hard, needed, "open-file limit");
        return limits;
    }
    let fit = (soft.saturating_sub(RESERVED_FILES) / listeners).saturating_sub(REJECTING as u64);
    // With a very low limit, still serve something (the reserve is generous).
    let floor = (soft / (4 * listeners)).max(1);
    let max = fit.max(floor).min(limits.max_connections as u64) as usize;
    tracing::warn!(
        open_file_limit = soft,
        hard_limit = hard,
        needed,
        configured = limits.max_connections,
        effective = max,
        "the open-file limit is too low for --max-connections {} on {listeners} listener(s): \
         serving at most {max} connections per listener. Raise the hard limit to at least \
         {needed} (`ulimit -Hn {needed}` as root before starting, LimitNOFILE={needed} in a \
         systemd unit, or --ulimit nofile={needed} for docker)",
        limits.max_connections,
    );
    ConnLimits {
        max_connections: max,
        ..limits
    }
}

/// Sets the soft RLIMIT_NOFILE to the hard one; returns (soft, hard) afterwards.
#[cfg(unix)]
fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if rl.rlim_cur < rl.rlim_max {
        let before = rl.rlim_cur;
        // An unlimited hard limit is not a valid soft one on every system (macOS); then try
        // a large finite value.
        for want in [
            rl.rlim_max,
            rl.rlim_max.min(1 << 20),
            rl.rlim_max.min(10_240),
        ] {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: rl.rlim_max,
            };
            // SAFETY: setrlimit reads the struct we pass.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                rl.rlim_cur = want;
                break;
            }
        }
        if rl.rlim_cur == before {
            tracing::warn!(
                soft = before,
                hard = rl.rlim_max,
                error = %io::Error::last_os_error(),
                "cannot raise the open-file limit to the hard limit"
            );
        } else {
            tracing::info!(
                from = before,
                to = rl.rlim_cur,
                "raised the open-file limit"
            );
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    let limits = (rl.rlim_cur as u64, rl.rlim_max as u64);
    Ok(limits)
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    Err(io::Error::other("not supported on this platform"))
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; then stops
/// accepting, lets the requests in flight finish (closing each connection after its current
/// response) and returns once every connection is closed. With `tls`, every connection
/// starts with a handshake using the configuration current when it was accepted.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let connections = Arc::new(Semaphore::new(max));
    let rejecting = Arc::new(Semaphore::new(REJECTING));
    let answer: Arc<[u8]> = refusal(max).into();
    let stop = CancellationToken::new();
    let mut http = http1::Builder::new();
    // Head deadlines are this module's (see `ConnState::deadline`): hyper's would also close a
    // keep-alive connection waiting for its next request, i.e. make it the idle timeout.
    http.header_read_timeout(None::<Duration>);
    let http = Arc::new(http);
    let mut shutdown = pin!(shutdown);
    let mut refused: u64 = 0;
    let mut warned: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Likely out of file descriptors (EMFILE): the pending connection stays in the
                // backlog, so accepting again at once would spin.
                tracing::error!(listener = %addr, error = %e, "accept failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let conn = Connection {
                    http: http.clone(),
                    router: router.clone(),
                    limits,
                    stop: stop.clone(),
                };
                let tls = tls.as_ref().map(|t| t.config());
                tokio::spawn(async move {
                    match tls {
                        None => conn.run(stream, peer, None).await,
                        Some(config) => conn.run_tls(stream, peer, config).await,
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                refused += 1;
                if warned.is_none_or(|t| t.elapsed() >= REJECT_WARN_EVERY) {
                    tracing::warn!(
                        listener = %addr,
                        max_connections = max,
                        refused,
                        "connection limit reached: answering 503 too_many_connections \
                         (see --max-connections, --idle-timeout)"
                    );
                    warned = Some(Instant::now());
                    refused = 0;
                }
                match rejecting.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let answer = answer.clone();
                        tokio::spawn(async move {
                            refuse(stream, &answer).await;
                            drop(permit);
                        });
                    }
                    Err(_) => refuse_now(stream, &answer),
                }
            }
        }
    }
    drop(listener);
    stop.cancel();
    // Every connection task holds a permit until it ends.
    let _ = connections
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
    let _ = rejecting.acquire_many(REJECTING as u32).await;
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The whole 503 response to a connection over the limit.
fn refusal(max: usize) -> Vec<u8> {
    let body = serde_json::to_string(&scarab_types::ErrorBody::new(
        ErrorCode::TooManyConnections,
        format!(
            "this node already serves {max} connections on this listener; retry later, or reuse connections"
        ),
    ))
    .expect("an error body serialises");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers a connection over the limit with `answer` and closes it once the client has
/// closed its side (or after [`REJECT_TIMEOUT`]).
async fn refuse(mut stream: TcpStream, answer: &[u8]) {
    let _ = tokio::time::timeout(REJECT_TIMEOUT, async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        // Read what the client sends until it closes: closing with unread data would reset
        // the connection, and the client could lose the answer.
        let mut buf = [0u8; 1024];
        while stream.read(&mut buf).await? != 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// [`refuse`] without waiting, when too many refusals are waiting already (a flood of
/// connections that send nothing): reads what has arrived (so that closing does not reset
/// the connection for it), writes `answer` (a new socket's send buffer takes it whole) and
/// closes. A request arriving later may reset the connection before the client reads the
/// answer.
fn refuse_now(stream: TcpStream, answer: &[u8]) {
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match stream.try_read(&mut buf) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let _ = stream.try_write(answer);
}

/// What every connection of a listener shares.
struct Connection {
    http: Arc<http1::Builder>,
    router: Router,
    limits: ConnLimits,
    stop: CancellationToken,
}

impl Connection {
    /// The TLS handshake, then HTTP over it. A client that does not complete the handshake
    /// within the header timeout (or sends plain HTTP, or no acceptable certificate) is
    /// closed without an HTTP answer: it could not read one.
    async fn run_tls(self, stream: TcpStream, peer: SocketAddr, config: Arc<rustls::ServerConfig>) {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let stream =
            match tokio::time::timeout(self.limits.header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake not done within the header timeout");
                    return;
                }
            };
        let identity = crate::tls::client_identity(stream.get_ref().1);
        self.run(stream, peer, identity).await;
    }

    async fn run<S>(self, stream: S, peer: SocketAddr, identity: Option<ClientIdentity>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::new(ConnState::new(self.limits.idle_timeout));
        let io = TokioIo::new(Tracked {
            inner: stream,
            state: state.clone(),
        });
        let service = {
            let state = state.clone();
            let router = self.router;
            let body_timeout = self.limits.body_timeout;
            hyper::service::service_fn(move |mut req: Request<Incoming>| {
                if let Some(identity) = &identity {
                    req.extensions_mut().insert(identity.clone());
                }
                let guard = InFlight::start(&state);
                let deadline = Instant::now() + body_timeout;
                let req = req.map(|body| TimedBody {
                    inner: body,
                    deadline,
                    sleep: None,
                    state: state.clone(),
                });
                let response = router.clone().call(req);
                let state = state.clone();
                async move {
                    let response = response.await.unwrap_or_else(|e| match e {});
                    let response = if state.body_timed_out.load(Ordering::Relaxed) {
                        body_timeout_response(body_timeout)
                    } else {
                        response
                    };
                    Ok::<_, Infallible>(response.map(|inner| CountedBody {
                        inner,
                        _guard: guard,
                    }))
                }
            })
        };
        let mut conn = pin!(self.http.serve_connection(io, service));
        let mut stopping = false;
        let mut sleep = pin!(tokio::time::sleep_until(Instant::now()));
        loop {
            // In flight: no deadline; look again after an idle timeout (cheap: a request that
            // starts or ends, or a head that begins, wakes this loop to compute it again).
            let wake = state
                .deadline(&self.limits)
                .unwrap_or_else(|| Instant::now() + self.limits.idle_timeout);
            state.armed.store(
                wake.saturating_duration_since(state.base).as_millis() as u64,
                Ordering::Relaxed,
            );
            sleep.as_mut().reset(wake);
            tokio::select! {
                // The connection first, so that bytes that arrived with the timer count.
                biased;
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = self.stop.cancelled(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                // The deadline moved (maybe earlier: a head began, a response ended).
                _ = state.changed.notified() => {}
                _ = sleep.as_mut() => {
                    // Again: requests may have come and gone since. Nothing runs on the
                    // connection between this check and the close.
                    if state.deadline(&self.limits).is_some_and(|d| d <= Instant::now()) {
                        tracing::debug!(%peer, "closing an idle connection or one slow to send its request head");
                        return;
                    }
                }
            }
        }
    }
}

/// The 408 that replaces a handler's answer when the body did not arrive in time (the
/// handler saw a failed read, whatever it made of it).
fn body_timeout_response(timeout: Duration) -> Response<axum::body::Body> {
    let mut response = ApiError::new(
        ErrorCode::BodyTimeout,
        format!(
            "the request body did not arrive in full within {} (--body-timeout)",
            humantime::format_duration(timeout)
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Where a connection stands, for its deadlines. Times are milliseconds since `base`.
struct ConnState {
    base: Instant,
    /// Requests whose response has not ended (HTTP/1.1: 0 or 1).
    in_flight: AtomicUsize,
    /// When the last response ended (or the connection was accepted).
    idle_since: AtomicU64,
    /// When the head of the next request began (first byte received while idle), plus one;
    /// 0: not begun. The first request's begins when the connection is accepted.
    head_since: AtomicU64,
    /// Wakes the connection's loop when its deadline may have moved.
    changed: Notify,
    /// The body of the current request did not arrive within the body timeout.
    body_timed_out: AtomicBool,
    /// When the loop's timer is set to fire (ms since `base`).
    armed: AtomicU64,
    /// The idle timeout, in ms.
    idle_ms: u64,
}

impl ConnState {
    fn new(idle_timeout: Duration) -> Self {
        ConnState {
            armed: AtomicU64::new(u64::MAX),
            idle_ms: idle_timeout.as_millis() as u64,
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(1),
            changed: Notify::new(),
            body_timed_out: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// When the connection is to be closed, unless something happens first; `None` while a
    /// request is in flight.
    fn deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        match self.head_since.load(Ordering::Relaxed) {
            0 => Some(self.at(self.idle_since.load(Ordering::Relaxed)) + limits.idle_timeout),
            began => Some(self.at(began - 1) + limits.header_timeout),
        }
    }

    fn received(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since.store(self.now() + 1, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }
}

/// Counts a request as in flight from its head until its response body ends or is dropped.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(state: &Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        state.head_since.store(0, Ordering::Relaxed);
        state.body_timed_out.store(false, Ordering::Relaxed);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        state.idle_since.store(state.now(), Ordering::Relaxed);
        state.in_flight.fetch_sub(1, Ordering::Relaxed);
        // Wake the loop only if its timer is set past the new idle deadline (a long header
        // deadline of the first request). Otherwise the timer fires first, finds the new
        // deadline and waits again: waking the loop at the end of every request cost it a
        // poll and a timer reset (GET c=64 was about 10 % slower; BENCHMARKS.md).
        let idle_deadline = state.now() + state.idle_ms;
        if state.armed.load(Ordering::Relaxed) > idle_deadline {
            state.changed.notify_one();
        }
    }
}

/// A response body that keeps its request counted as in flight until it ends.
struct CountedBody {
    inner: axum::body::Body,
    _guard: InFlight,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails once its deadline passes before it has arrived in full.
struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    /// Armed on the first read that has to wait.
    sleep: Option<Pin<Box<Sleep>>>,
    state: Arc<ConnState>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimeout;

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.state.body_timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket (or the TLS stream over it), noting when bytes arrive (a request head
/// beginning).
struct Tracked<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.received();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            body_timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn first_head_is_due_a_header_timeout_after_accepting() {
        let s = ConnState::new(limits().idle_timeout);
        assert_eq!(
            s.deadline(&limits()),
            Some(s.base + Duration::from_secs(10))
        );
    }

    #[test]
    fn in_flight_has_no_deadline_and_its_end_starts_the_idle_one() {
        let s = Arc::new(ConnState::new(limits().idle_timeout));
        let guard = InFlight::start(&s);
        s.received(); // body bytes: not a new head
        assert_eq!(s.deadline(&limits()), None);
        drop(guard);
        let d = s.deadline(&limits()).unwrap();
        assert!(d >= s.base + Duration::from_secs(120));
        s.received(); // the next head begins
        assert!(s.deadline(&limits()).unwrap() < d);
    }
}
