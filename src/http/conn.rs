//! Accepting and serving connections. `axum::serve` has no knobs for what a fuzzer found, so
//! hyper's HTTP/1 server is driven here directly:
//!
//! - every request head must arrive within `header_read_timeout` (a slowloris client sending half
//!   a header is closed), and a keep-alive connection idle for as long is closed too (hyper runs
//!   the same timer while it waits for the next head);
//! - at most `max_connections` are open. When a new one arrives at the limit, the oldest
//!   connection that has no request in flight (waiting for a head, or idle between requests) is
//!   closed to make room, so half-open connections cannot lock out `/healthz` or anyone else;
//!   only when every open connection is busy is the new one answered 503 `busy` and closed;
//! - the answers hyper writes by itself, before any route runs (a head that is not HTTP/1.1: 400,
//!   a request line over hyper's 65,534 bytes: 414, a head over its buffer: 431), carry the
//!   `{error: {code, message, field}}` body like every other error ([`JsonHeadErrors`]);
//! - shutdown stops accepting, lets each connection finish its request in flight and closes it,
//!   and after the grace period closes whatever is left.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::ApiError;

/// hyper's largest request head (request line and headers): its default read buffer.
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// hyper's largest request target (path and query), fixed in hyper.
const HYPER_MAX_URI_BYTES: usize = 65_534;
/// hyper's most header fields per request (its default).
const MAX_HEADERS: usize = 100;
/// Connections being told 503 `busy` at once; past that a new connection is just closed.
const MAX_REFUSING: usize = 64;
/// How long a refused connection gets to read its 503 before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);

/// How connections are served.
pub(crate) struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub grace: Duration,
}

/// Accept connections on `listener` and serve `router` on each until `shutdown` completes; then
/// cancel `stop` (ending the long-lived streams), let in-flight requests finish within `grace`,
/// and close what is left.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES);
    let builder = Arc::new(builder);
    let open = Arc::new(Registry::default());
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let graceful = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    accept_failed(&e, &open).await;
                    continue;
                }
            },
        };
        match open.admit(limits.max_connections) {
            Some(slot) => {
                tasks.spawn(connection(
                    stream,
                    router.clone(),
                    builder.clone(),
                    slot,
                    graceful.clone(),
                ));
            }
            None => match refusing.clone().try_acquire_owned() {
                Ok(permit) => {
                    tasks.spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
                Err(_) => drop(stream),
            },
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    stop.cancel();
    graceful.cancel();
    let finished = tokio::time::timeout(limits.grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(grace = ?limits.grace, "shutdown grace period over; closing the remaining connections");
        tasks.shutdown().await;
    }
    Ok(())
}

/// Serve one connection until it ends, is evicted, or shutdown closes it.
async fn connection(
    stream: TcpStream,
    router: Router,
    builder: Arc<http1::Builder>,
    slot: Slot,
    graceful: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let busy = slot.busy.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let in_flight = InFlight::start(&busy);
        let call = router.clone().oneshot(req.map(Body::new));
        async move {
            let response = call.await?;
            // The request is in flight until its body is sent (or dropped): an open stream
            // keeps its connection from being evicted.
            Ok::<_, Infallible>(response.map(move |body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &in_flight;
                    frame
                }))
            }))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(JsonHeadErrors::new(stream)), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => Some(ended),
        _ = slot.close.cancelled() => None,
        _ = graceful.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                ended = conn.as_mut() => Some(ended),
                _ = slot.close.cancelled() => None,
            }
        }
    };
    match ended {
        Some(Err(e)) => tracing::debug!(error = %e, "connection ended"),
        Some(Ok(())) => {}
        None => tracing::debug!("connection closed to make room for a new one"),
    }
}

/// Every open connection is busy: say so and close.
async fn refuse(mut stream: TcpStream) {
    tracing::warn!("connection limit reached and every connection busy; refusing one");
    let body = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "the server has as many connections open as it allows and every one is busy; try again shortly",
    )
    .body();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // Write, then read what the client sent until it closes (closing with unread bytes would
    // reset the connection and could discard the answer before the client reads it).
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// `accept` failed. Out of file descriptors: close the oldest idle connection and pause, so the
/// loop does not spin; a connection-level error (the client gave up): go on.
async fn accept_failed(e: &io::Error, open: &Registry) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    ) {
        return;
    }
    let evicted = fd_exhausted(e) && open.evict_idle();
    if evicted {
        tracing::debug!(error = %e, "accept failed; closed the oldest idle connection");
    } else {
        tracing::warn!(error = %e, "accept failed");
    }
    tokio::time::sleep(Duration::from_millis(if evicted { 10 } else { 100 })).await;
}

#[cfg(unix)]
fn fd_exhausted(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let code = e.raw_os_error();
    code == Some(Errno::MFILE.raw_os_error()) || code == Some(Errno::NFILE.raw_os_error())
}

#[cfg(not(unix))]
fn fd_exhausted(_: &io::Error) -> bool {
    false
}

/// The default connection limit: 1024, or less when the process may open fewer files (each
/// connection is one; the database, its WAL and the read pool need some too).
pub fn default_max_connections() -> usize {
    const MOST: usize = 1024;
    /// File descriptors kept for everything but connections.
    const RESERVE: usize = 64;
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if let Some(soft) = limit.current {
            let soft = usize::try_from(soft).unwrap_or(usize::MAX);
            return soft.saturating_sub(RESERVE).max(soft / 2).clamp(1, MOST);
        }
    }
    MOST
}

/// The open connections, oldest first, and whether each has a request in flight.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Entry>>,
}

struct Entry {
    busy: Arc<AtomicUsize>,
    close: CancellationToken,
}

/// A connection's place in the [`Registry`]; dropping it gives the place back.
struct Slot {
    id: u64,
    busy: Arc<AtomicUsize>,
    close: CancellationToken,
    registry: Arc<Registry>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection, evicting the oldest idle one at the limit; `None` when all
    /// `max` are busy.
    fn admit(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let mut open = self.lock();
        while open.len() >= max {
            if !evict_oldest_idle(&mut open) {
                return None;
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            id,
            busy: Arc::default(),
            close: CancellationToken::new(),
            registry: self.clone(),
        };
        open.insert(
            id,
            Entry {
                busy: slot.busy.clone(),
                close: slot.close.clone(),
            },
        );
        Some(slot)
    }

    /// Close the oldest idle connection; false if none is idle.
    fn evict_idle(&self) -> bool {
        evict_oldest_idle(&mut self.lock())
    }
}

fn evict_oldest_idle(open: &mut BTreeMap<u64, Entry>) -> bool {
    let idle = open
        .iter()
        .find(|(_, e)| e.busy.load(Ordering::Acquire) == 0)
        .map(|(id, _)| *id);
    match idle.and_then(|id| open.remove(&id)) {
        Some(entry) => {
            entry.close.cancel();
            true
        }
        None => false,
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// One request in flight on a connection, from its head to the end of its answer.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(busy: &Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        InFlight(busy.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's byte stream, with one change: the bare answers hyper writes by itself when
/// it cannot parse a request head (400, 414, 431 with no body and no `content-type`; every answer
/// of ours has a JSON body) are replaced by the same status with a JSON error body. hyper offers
/// no hook for these answers (they are written before any service runs), hence the rewrite here.
pub(crate) struct JsonHeadErrors<S> {
    inner: S,
    /// A replacement answer still to be written, and how much of it is.
    pending: Vec<u8>,
    written: usize,
}

impl<S> JsonHeadErrors<S> {
    pub fn new(inner: S) -> Self {
        JsonHeadErrors {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> JsonHeadErrors<S> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonHeadErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonHeadErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        match json_answer(buf) {
            Some(answer) => {
                self.pending = answer;
                // Whatever is not written now is written by the next write, flush or shutdown.
                if let Poll::Ready(Err(e)) = self.drain(cx) {
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(buf.len()))
            }
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// If `written` is exactly one of hyper's own bodiless 400 / 414 / 431 answers, the same answer
/// with a JSON error body.
fn json_answer(written: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(written).ok()?;
    let rest = head.strip_prefix("HTTP/1.1 ")?;
    let headers = head.strip_suffix("\r\n\r\n")?;
    let (status_line, fields) = headers.split_once("\r\n").unwrap_or((headers, ""));
    let fields: Vec<&str> = fields.split("\r\n").filter(|f| !f.is_empty()).collect();
    let name = |f: &&str| f.split(':').next().unwrap_or_default().to_ascii_lowercase();
    let bodiless = fields
        .iter()
        .any(|f| name(f) == "content-length" && f.ends_with(": 0"));
    if !bodiless || fields.iter().any(|f| name(f) == "content-type") {
        return None;
    }
    let error = match rest.get(..3)? {
        "400" => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request is not valid HTTP/1.1: its request line or a header field could not be parsed",
        ),
        "414" => {
            let mut e = ApiError::new(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!(
                    "query: the request target (path and query string) is longer than {HYPER_MAX_URI_BYTES} bytes; this server accepts at most {} bytes",
                    super::security::MAX_URI_BYTES
                ),
            );
            e.field = Some("query".into());
            e
        }
        "431" => {
            let mut e = ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!(
                    "headers: the request head (request line and header fields) is larger than {MAX_HEAD_BYTES} bytes or has more than {MAX_HEADERS} header fields; the request target may be at most {} bytes",
                    super::security::MAX_URI_BYTES
                ),
            );
            e.field = Some("headers".into());
            e
        }
        _ => return None,
    };
    let body = error.body();
    let mut out = String::with_capacity(head.len() + body.len() + 64);
    out.push_str(status_line);
    out.push_str("\r\n");
    for f in fields.iter().filter(|f| name(f) != "content-length") {
        out.push_str(f);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodiless_parse_error_answers_are_rewritten() {
        let hyper_414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Sun, 01 Mar 2026 12:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(json_answer(hyper_414).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert_eq!(
            head,
            format!("HTTP/1.1 414 URI Too Long\r\ndate: Sun, 01 Mar 2026 12:00:00 GMT\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close", body.len())
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "uri_too_long");
        assert_eq!(body["error"]["field"], "query");
        for status in ["400 Bad Request", "431 Request Header Fields Too Large"] {
            let head = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            assert!(json_answer(head.as_bytes()).is_some(), "{status}");
        }
        // Our own answers (a JSON body), other statuses and partial writes pass untouched.
        let ours = b"HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(json_answer(ours).is_none());
        assert!(json_answer(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(json_answer(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}").is_none());
        assert!(json_answer(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
    }

    #[test]
    fn eviction_takes_the_oldest_idle_connection_and_never_a_busy_one() {
        let registry = Arc::new(Registry::default());
        let a = registry.admit(2).unwrap();
        let b = registry.admit(2).unwrap();
        let a_busy = InFlight::start(&a.busy);
        let c = registry.admit(2).expect("b is idle: it makes room");
        assert!(!a.close.is_cancelled());
        assert!(b.close.is_cancelled());
        drop(b); // its task ends; its place was already given back
        let _c_busy = InFlight::start(&c.busy);
        assert!(
            registry.admit(2).is_none(),
            "both open connections are busy"
        );
        drop(a_busy);
        let d = registry.admit(2).expect("a is idle again");
        assert!(a.close.is_cancelled());
        assert_eq!(registry.lock().len(), 2);
        drop((a, c, d));
        assert!(registry.lock().is_empty());
    }
}
