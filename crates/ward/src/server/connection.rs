//! One client connection from accept to close.
//!
//! hyper parses HTTP/1 and HTTP/2 (told apart by the preface) and bounds heads and streams. The
//! task driving a connection adds the deadlines hyper lacks, the same for both protocols:
//!
//! - the first request head must be complete `header_read_timeout` after accept: hyper's HTTP/1
//!   timer starts only once a byte has come, and while it sniffs the protocol, or for HTTP/2
//!   after the preface, hyper has none; a connection that has not asked by then is dropped;
//! - with nothing in flight and no request started for `idle_timeout`, the connection is shut
//!   down gracefully (HTTP/1 closes; HTTP/2 sends GOAWAY) and dropped once nothing is in flight;
//! - when Ward stops, the same graceful shutdown at once, and after `shutdown_timeout` the socket
//!   is dropped whatever is still in flight.
//!
//! The cost per request is two counter increments (no allocation, no timer); the deadlines are
//! one timer per connection, waking every `idle_timeout / IDLE_TICKS`. The socket carries its
//! `max_connections` permit, so a connection upgraded to a WebSocket still counts until it
//! closes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::time::Instant;

use crate::config::ServerConfig;

mod deadlines;

use deadlines::{Step, Watch};

/// Streams one HTTP/2 connection may have open at once (D-02).
const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Quiet checks in a row that make a connection idle. A request may end just after a check,
/// so one more than this many checks span at least `idle_timeout`: an idle connection is shut
/// down between `idle_timeout` and `idle_timeout * (IDLE_TICKS + 2) / IDLE_TICKS` after its
/// last request ended.
const IDLE_TICKS: u32 = 8;
/// After a graceful shutdown, how long a connection with nothing in flight may take to close
/// on its own: HTTP/2 waits for the client to acknowledge a PING, which a client holding
/// connections open may never do.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The `[server]` values every connection is held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnectionLimits {
    /// Connections open at once (permits of the acceptor's semaphore).
    pub(super) max_connections: usize,
    /// From accept to the first complete request head.
    pub(super) header_read_timeout: Duration,
    /// Nothing in flight and nothing new for this long: shut down.
    pub(super) idle_timeout: Duration,
    /// From the shutdown signal to dropping what is still open.
    pub(super) shutdown_timeout: Duration,
}

impl ConnectionLimits {
    pub(super) fn from_config(server: &ServerConfig) -> Self {
        Self {
            max_connections: usize::try_from(server.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            shutdown_timeout: server.shutdown_timeout,
        }
    }

    /// How often a connection's task checks for idleness (validation keeps `idle_timeout`
    /// positive; the floor keeps a tiny one from spinning).
    fn tick(&self) -> Duration {
        (self.idle_timeout / IDLE_TICKS).max(Duration::from_millis(5))
    }
}

/// An accepted connection with its permit, on its way to the worker that serves it.
pub(super) struct Accepted<S> {
    pub(super) stream: S,
    pub(super) peer: SocketAddr,
    pub(super) permit: OwnedSemaphorePermit,
    pub(super) at: Instant,
}

impl<S> Accepted<S> {
    /// The same connection with its socket converted (between std and tokio, to cross to
    /// another worker's runtime); a failed conversion drops the connection and its permit.
    pub(super) fn try_map<T>(
        self,
        convert: impl FnOnce(S) -> std::io::Result<T>,
    ) -> std::io::Result<Accepted<T>> {
        Ok(Accepted {
            stream: convert(self.stream)?,
            peer: self.peer,
            permit: self.permit,
            at: self.at,
        })
    }
}

/// What every connection task holds: the signal to close gracefully, and a token whose last
/// drop tells its owner (a worker, the acceptor) that every connection has ended.
#[derive(Clone)]
pub(super) struct Lifecycle {
    pub(super) closing: watch::Receiver<bool>,
    pub(super) alive: mpsc::Sender<Infallible>,
}

pub(super) type ConnectionBuilder = hyper_util::server::conn::auto::Builder<TokioExecutor>;

type Connection = hyper_util::server::conn::auto::UpgradeableConnection<
    'static,
    TokioIo<Permitted>,
    ConnectionService,
    TokioExecutor,
>;

/// HTTP/1 and HTTP/2 server settings: the outer ring of `security::limits` (head buffer,
/// header count, HTTP/2 header list) and the HTTP/2 stream cap. hyper's own HTTP/2 defaults
/// bound reset floods (CVE-2023-44487), CONTINUATION floods and pending accepts.
///
/// hyper's HTTP/1 head timer runs from the end of one exchange (or the first byte) to the next
/// complete head; at `idle_timeout` (or `header_read_timeout` when longer) it agrees with the
/// connection task's own deadlines and is only the backstop.
pub(super) fn builder(limits: &ConnectionLimits) -> ConnectionBuilder {
    use crate::security::limits;
    use hyper_util::rt::TokioTimer;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout.max(limits.header_read_timeout))
        .max_buf_size(limits::HEAD_BUFFER_BYTES)
        .max_headers(limits::MAX_HEADER_FIELDS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits::MAX_HEADER_LIST_SIZE)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    builder
}

/// Serves one connection on the current runtime until it ends or a deadline drops it (module
/// doc). `global` is the acceptor's liveness token.
pub(super) fn spawn(
    accepted: Accepted<TcpStream>,
    app: &axum::Router,
    builder: &ConnectionBuilder,
    limits: ConnectionLimits,
    lifecycle: Lifecycle,
    global: mpsc::Sender<Infallible>,
) {
    let Accepted {
        stream,
        peer,
        permit,
        at,
    } = accepted;
    let activity = Arc::new(Activity::default());
    let service = ConnectionService {
        app: app.clone(),
        peer,
        activity: activity.clone(),
    };
    let io = Permitted {
        stream,
        _permit: permit,
    };
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    tokio::spawn(async move {
        let Lifecycle { mut closing, alive } = lifecycle;
        let _alive = (alive, global);
        drive(conn, &activity, limits, at, &mut closing).await;
    });
}

/// Polls `conn` while holding it to its deadlines; returning drops (closes) the socket.
async fn drive(
    conn: Connection,
    activity: &Activity,
    limits: ConnectionLimits,
    accepted_at: Instant,
    closing: &mut watch::Receiver<bool>,
) {
    let mut conn = pin!(conn);
    let mut watch = Watch::new(limits, accepted_at);
    let timer = tokio::time::sleep_until(watch.first_check());
    let mut timer = pin!(timer);
    let mut stopping = false;
    loop {
        let step = tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    // Malformed requests, resets and timeouts of clients: theirs, not Ward's.
                    tracing::debug!(
                        event = "connection_error",
                        error = %err,
                        "connection ended with an error"
                    );
                }
                return;
            }
            () = signalled(closing), if !stopping => {
                stopping = true;
                watch.stop(activity.snapshot(), Instant::now())
            }
            () = timer.as_mut() => watch.check(activity.snapshot(), Instant::now()),
        };
        match step {
            Step::Wait(until) => timer.as_mut().reset(until),
            Step::ShutDown(until) => {
                conn.as_mut().graceful_shutdown();
                timer.as_mut().reset(until);
            }
            Step::Drop(reason) => {
                tracing::debug!(
                    event = "connection_closed",
                    reason = reason.as_str(),
                    "connection closed by Ward"
                );
                return;
            }
        }
    }
}

/// Resolves once Ward is stopping (or its acceptor is gone).
async fn signalled(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// Requests of one connection as counted by its service: `started` when hyper hands one over
/// (its head is complete), `finished` when its response body has been sent or dropped.
#[derive(Debug, Default)]
struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
}

/// [`Activity`] read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    started: u64,
    in_flight: u64,
}

impl Activity {
    fn snapshot(&self) -> Snapshot {
        // `finished` first: a request finishing between the two loads is then still in flight.
        let finished = self.finished.load(Ordering::Relaxed);
        let started = self.started.load(Ordering::Relaxed);
        Snapshot {
            started,
            in_flight: started.saturating_sub(finished),
        }
    }
}

/// The socket together with its `max_connections` permit: the permit returns when the socket
/// closes, also after an upgrade has moved it out of hyper.
pub(super) struct Permitted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Permitted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Permitted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The router as one connection's hyper service: each request gets the peer address and is
/// counted in [`Activity`] until its response body is done.
#[derive(Clone)]
pub(super) struct ConnectionService {
    app: axum::Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<CountedBody>;
    type Error = Infallible;
    type Future = Counted<axum::routing::future::RouteFuture<Infallible>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        self.activity.started.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight(self.activity.clone());
        // The router is always ready (axum), so it is called without `poll_ready`.
        let mut app = self.app.clone();
        Counted {
            inner: tower::Service::call(&mut app, req),
            in_flight: Some(in_flight),
        }
    }
}

/// One request in flight; counts it finished when dropped (with its response body, or with
/// the request when the client goes away first).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// The router's response future, handing the request's [`InFlight`] on to the body.
pub(super) struct Counted<F> {
    inner: F,
    in_flight: Option<InFlight>,
}

impl<F> Future for Counted<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>> + Unpin,
{
    type Output = Result<Response<CountedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let response = ready!(Pin::new(&mut this.inner).poll(cx))?;
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(response.map(|body| CountedBody {
            body,
            _in_flight: in_flight,
        })))
    }
}

/// A response body that keeps its request counted in flight until it is sent or dropped.
pub(super) struct CountedBody {
    body: Body,
    _in_flight: Option<InFlight>,
}

impl hyper::body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
