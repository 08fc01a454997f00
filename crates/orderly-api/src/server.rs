//! The HTTP listener of `orderly serve`: every connection under time limits, and a bound on how
//! many are open, so that slow or idle clients never make the server unreachable.
//!
//! # Layout
//! - [`ServerLimits`]: the limits, as data (the binary reads them from its configuration).
//! - [`serve`]: accepts connections and serves the router on each with hyper's HTTP/1.1, until
//!   the shutdown future resolves; then lets requests in flight finish.
//! - Each connection is in one phase at a time, watched by its own task:
//!   - *head*: waiting for (the rest of) a request's headers — closed after
//!     [`ServerLimits::header_timeout`] counted from the first byte (or from accept);
//!   - *busy*: a handler runs — no limit here (the body is read within
//!     [`ServerLimits::body_timeout`] by the router's body layer, and every storage call has its
//!     own timeout);
//!   - *writing*: the answer is going out — closed if the client takes nothing for
//!     [`ServerLimits::idle_timeout`];
//!   - *idle*: kept alive between requests — closed after [`ServerLimits::idle_timeout`].
//! - At [`ServerLimits::max_connections`] a new connection makes room by closing the connection
//!   that has waited longest without a request in flight (idle, or dribbling its headers); when
//!   every connection is busy, the newcomer gets a `503` with `Retry-After` at once. When the
//!   process runs out of file descriptors anyway, the accept loop closes the longest-idle
//!   connection and pauses a few milliseconds, instead of the second a plain accept loop sleeps.
//! - [`raise_open_files_limit`]: lifts the soft limit on open files to the hard limit at start.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// Limits on every connection of the HTTP listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Longest a client may take to send a request's headers, from its first byte (or from
    /// connecting, for the first request). A slower client is disconnected.
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's body once its headers are in. A slower
    /// client gets `408 request-timeout` and the connection is closed.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request, and how long an answer
    /// may sit unread by its client, before the connection is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once (lowered at start to what the open-files limit allows).
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// File descriptors kept for everything that is not a client connection: the database's pool
/// and files, the payment ledger, log files, and the sockets of outgoing calls.
pub const RESERVED_FILES: u64 = 128;

/// The deadline by which a request's body must be in, set on each request by [`serve`] and
/// honoured by the router's body layer.
#[derive(Clone, Copy, Debug)]
pub struct BodyDeadline(pub tokio::time::Instant);

/// Router layer: reads a request's whole body before the handler runs, by the request's
/// [`BodyDeadline`] when it has one. A body still arriving at the deadline is answered
/// `408 request-timeout`, one over [`crate::extract::MAX_BODY`] `413`, and either way the
/// connection is closed (its unread rest is not worth waiting for). Requests without a deadline
/// (the Lambda runtime, whose bodies arrive whole) pass untouched.
pub async fn read_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use http_body::Body as _;
    let Some(BodyDeadline(deadline)) = request.extensions().get::<BodyDeadline>().copied() else {
        return next.run(request).await;
    };
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let max = crate::extract::MAX_BODY;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return closing(crate::extract::too_large().into_response());
    }
    let (parts, body) = request.into_parts();
    match tokio::time::timeout_at(deadline, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                closing(crate::extract::too_large().into_response())
            } else {
                // The client hung up or sent a broken chunked body; nobody reads the answer.
                closing(
                    crate::problem::Problem::bad_request(format!(
                        "the request body could not be read: {e}"
                    ))
                    .into_response(),
                )
            }
        }
        Err(_) => {
            tracing::info!("request body not in within the body timeout");
            closing(crate::problem::request_timeout().into_response())
        }
    }
}

fn closing(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// Raises the soft limit on open files to the hard limit; returns `(soft, hard)` as they are
/// afterwards (`u64::MAX` for unlimited). A failure to raise it leaves the old soft limit,
/// returned as is.
#[must_use]
pub fn raise_open_files_limit() -> (u64, u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let (Some(soft), hard) = (limit.current, limit.maximum) else {
        // Unlimited already.
        return (u64::MAX, u64::MAX);
    };
    let Some(hard) = hard else {
        return (soft, u64::MAX);
    };
    if soft < hard {
        let raised = rustix::process::Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return (hard, hard);
        }
    }
    (soft, hard)
}

/// The connection bound that `open_files` allows: `wanted`, or fewer when the limit is lower,
/// keeping [`RESERVED_FILES`] for the rest of the process (at least 16).
#[must_use]
pub fn connections_allowed(wanted: usize, open_files: u64) -> usize {
    let room = usize::try_from(open_files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
    wanted.min(room).max(16)
}

const HEAD: u8 = 0;
const BUSY: u8 = 1;
const WRITING: u8 = 2;
const IDLE: u8 = 3;

/// What one connection is doing and since when (milliseconds since the server started).
struct ConnState {
    phase: AtomicU8,
    since: AtomicU64,
    /// Last time bytes moved in either direction.
    last_io: AtomicU64,
    evict: Notify,
    /// Wakes the watcher to take up the new phase's deadline.
    changed: Notify,
    /// The answer's last byte is in hyper's buffer: the connection turns idle once a flush
    /// has handed it to the kernel, not before (until then, closing it would cut the answer).
    answered: std::sync::atomic::AtomicBool,
}

impl ConnState {
    fn new(now: u64) -> Self {
        ConnState {
            phase: AtomicU8::new(HEAD),
            since: AtomicU64::new(now),
            last_io: AtomicU64::new(now),
            evict: Notify::new(),
            changed: Notify::new(),
            answered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn set(&self, phase: u8, now: u64) {
        self.since.store(now, Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
        self.changed.notify_one();
    }

    /// When this connection's current phase runs out, if it does.
    fn deadline(&self, limits: &ServerLimits) -> Option<u64> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let since = self.since.load(Ordering::Relaxed);
        match self.phase.load(Ordering::Acquire) {
            HEAD => Some(since.saturating_add(ms(limits.header_timeout))),
            IDLE => Some(since.saturating_add(ms(limits.idle_timeout))),
            WRITING => Some(
                since
                    .max(self.last_io.load(Ordering::Relaxed))
                    .saturating_add(ms(limits.idle_timeout)),
            ),
            _ => None,
        }
    }

    /// Idle or still sending headers: closing it loses no request.
    fn evictable(&self) -> bool {
        matches!(self.phase.load(Ordering::Acquire), HEAD | IDLE)
    }
}

/// The open connections.
struct Registry {
    started: Instant,
    limits: ServerLimits,
    open: AtomicUsize,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    /// Signalled when the last connection closes.
    drained: Notify,
}

impl Registry {
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn add(&self) -> (u64, Arc<ConnState>) {
        let now = self.now();
        let state = Arc::new(ConnState::new(now));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(id, Arc::clone(&state));
        }
        self.open.fetch_add(1, Ordering::AcqRel);
        (id, state)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&id);
        }
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.notify_waiters();
        }
    }

    /// Asks the connection that has waited longest without a request in flight to close;
    /// false when every connection is busy.
    fn evict_one(&self) -> bool {
        let Ok(conns) = self.conns.lock() else {
            return false;
        };
        let oldest = conns
            .values()
            .filter(|c| c.evictable())
            .min_by_key(|c| c.since.load(Ordering::Relaxed));
        match oldest {
            Some(c) => {
                // Not evictable twice: a second newcomer picks another.
                c.since.store(u64::MAX, Ordering::Relaxed);
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then stops
/// accepting, lets each request in flight finish and returns when the last connection has
/// closed or `grace` has passed.
///
/// # Errors
/// None today; the accept loop outlives every per-connection error. The `Result` leaves room
/// for a listener that can fail for good.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> io::Result<()> {
    let registry = Arc::new(Registry {
        started: Instant::now(),
        limits,
        open: AtomicUsize::new(0),
        next_id: AtomicU64::new(0),
        conns: Mutex::new(HashMap::new()),
        drained: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut last_warning: Option<Instant> = None;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if registry.open.load(Ordering::Acquire) >= limits.max_connections
                    && !registry.evict_one()
                {
                    tasks.spawn(refuse(stream));
                    continue;
                }
                let _ = stream.set_nodelay(true);
                // Counted here, before the next accept: the bound holds through a burst, and
                // shutdown sees every connection accepted.
                let guard = ConnGuard::new(Arc::clone(&registry));
                tasks.spawn(connection(
                    stream,
                    peer,
                    router.clone(),
                    guard,
                    stop_rx.clone(),
                ));
            }
            Err(e) if out_of_descriptors(&e) => {
                // Make room rather than wait: idle connections are the cheapest to lose.
                let freed = registry.evict_one();
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, open = registry.open.load(Ordering::Relaxed), "out of file descriptors; closing idle connections (raise the open-files limit or lower --max-connections)");
                    last_warning = Some(Instant::now());
                }
                let pause = if freed { 5 } else { 50 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Err(e) => tracing::debug!(error = %e, "accept failed"),
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = registry.drained.notified();
    if registry.open.load(Ordering::Acquire) > 0
        && tokio::time::timeout(grace, drained).await.is_err()
    {
        tracing::warn!(
            open = registry.open.load(Ordering::Relaxed),
            "connections still open at the shutdown timeout; closing them"
        );
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// A connection's place in the [`Registry`], given up when the connection's task ends however
/// it ends (a panic included).
struct ConnGuard {
    registry: Arc<Registry>,
    id: u64,
    state: Arc<ConnState>,
}

impl ConnGuard {
    fn new(registry: Arc<Registry>) -> Self {
        let (id, state) = registry.add();
        ConnGuard {
            registry,
            id,
            state,
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error().is_some_and(|code| {
        let errno = Errno::from_raw_os_error(code);
        errno == Errno::MFILE
            || errno == Errno::NFILE
            || errno == Errno::NOBUFS
            || errno == Errno::NOMEM
    })
}

/// The bytes of the answer to a connection beyond the bound: the API's `unavailable` problem.
fn refusal() -> &'static [u8] {
    static ANSWER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ANSWER.get_or_init(|| {
        let mut problem = crate::problem::Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
            "the server has as many connections open as it allows, all busy; retry shortly",
        );
        problem.request_id = None;
        let body = serde_json::to_string(&problem).unwrap_or_default();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            crate::problem::PROBLEM_JSON,
            crate::openapi::UNAVAILABLE_RETRY_AFTER_SECS,
            body.len()
        )
        .into_bytes()
    })
}

/// Answers a connection beyond the bound when none can make room, then lingers briefly,
/// reading what the client sent, so that closing does not reset the connection before the
/// client has read the answer.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(refusal()).await;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let mut read = 0usize;
        while read < 64 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}

/// Serves one connection and watches its phases until it ends, is evicted, times out, or the
/// server shuts down (then its request in flight finishes first).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    guard: ConnGuard,
    mut stop: watch::Receiver<bool>,
) {
    let registry = Arc::clone(&guard.registry);
    let state = Arc::clone(&guard.state);
    let io = TokioIo::new(Tracked {
        inner: stream,
        state: Arc::clone(&state),
        registry: Arc::clone(&registry),
    });
    let service = {
        let state = Arc::clone(&state);
        let registry = Arc::clone(&registry);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let router = router.clone();
            let guard = InFlight {
                state: Arc::clone(&state),
                registry: Arc::clone(&registry),
            };
            let now = registry.now();
            state.answered.store(false, Ordering::Release);
            state.set(BUSY, now);
            let deadline = tokio::time::Instant::now() + registry.limits.body_timeout;
            async move {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(BodyDeadline(deadline));
                let response = router.oneshot(request).await;
                guard.state.set(WRITING, guard.registry.now());
                response.map(|r| {
                    r.map(|body| Guarded {
                        body,
                        _guard: guard,
                    })
                })
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let wait = match state.deadline(&registry.limits) {
            Some(at) => Duration::from_millis(at.saturating_sub(registry.now())),
            None => registry.limits.idle_timeout,
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                break;
            }
            () = tokio::time::sleep(wait) => {
                if state.deadline(&registry.limits).is_some_and(|at| at <= registry.now()) {
                    tracing::debug!(%peer, phase = state.phase.load(Ordering::Relaxed), "connection timed out");
                    break;
                }
            }
            () = state.changed.notified() => {}
            () = state.evict.notified() => {
                if state.evictable() {
                    tracing::debug!(%peer, "connection closed to make room");
                    break;
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    drop(guard);
}

/// Marks the end of a request when the answer has been written (or abandoned).
struct InFlight {
    state: Arc<ConnState>,
    registry: Arc<Registry>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // hyper drops the body once its last chunk is buffered; the flush that follows turns
        // the connection idle (see `Tracked::poll_flush`). A request abandoned without an
        // answer (the client went away) has nothing to flush.
        if self.state.phase.load(Ordering::Acquire) == WRITING {
            self.state.answered.store(true, Ordering::Release);
        } else {
            self.state.set(IDLE, self.registry.now());
        }
    }
}

/// An answer's body, carrying the request's [`InFlight`] until hyper has sent it all.
struct Guarded {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket, noting when bytes move: the first byte of a request after an idle spell starts
/// its header clock, and progress while writing keeps a slow but live reader connected.
struct Tracked {
    inner: TcpStream,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
}

impl Tracked {
    fn moved(&self) {
        let now = self.registry.now();
        self.state.last_io.store(now, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
            if self.state.phase.load(Ordering::Acquire) == IDLE {
                self.state.set(HEAD, self.registry.now());
            }
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(result, Poll::Ready(Ok(())))
            && self.state.answered.swap(false, Ordering::AcqRel)
        {
            self.state.set(IDLE, self.registry.now());
        }
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_bound_leaves_room_for_the_rest_of_the_process() {
        assert_eq!(connections_allowed(10_000, 1_024), 896);
        assert_eq!(connections_allowed(10_000, 1_048_576), 10_000);
        assert_eq!(connections_allowed(10_000, 100), 16);
    }

    #[test]
    fn phases_run_out_by_their_own_limits() {
        let limits = ServerLimits {
            header_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(5),
            max_connections: 10,
        };
        let state = ConnState::new(1_000);
        assert_eq!(state.deadline(&limits), Some(3_000));
        assert!(state.evictable());
        state.set(BUSY, 4_000);
        assert_eq!(state.deadline(&limits), None);
        assert!(!state.evictable());
        state.set(WRITING, 4_500);
        state.last_io.store(6_000, Ordering::Relaxed);
        assert_eq!(state.deadline(&limits), Some(11_000), "progress extends it");
        state.set(IDLE, 7_000);
        assert_eq!(state.deadline(&limits), Some(12_000));
        assert!(state.evictable());
    }
}
