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
//! With TLS on, the handshake runs first, on the connection's worker, within the same
//! `header_read_timeout` (`transport.rs`), and every response gets HSTS (`service.rs`).
//!
//! The cost per request is two counter increments (no allocation, no timer); the deadlines are
//! one timer per connection, waking every `idle_timeout / IDLE_TICKS`. The socket carries its
//! `max_connections` permit, so a connection upgraded to a WebSocket still counts until it
//! closes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::time::Instant;

use crate::config::ServerConfig;

mod deadlines;
mod service;
mod transport;

use deadlines::{Step, Watch};
use service::{Activity, ConnectionService, Snapshot};
pub(super) use transport::TlsLayer;
use transport::{Permitted, Transport};

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

type Connection<'a> = hyper_util::server::conn::auto::UpgradeableConnection<
    'a,
    TokioIo<Permitted>,
    ConnectionService,
    TokioExecutor,
>;

/// What every connection of a listener is served with: the router, and TLS when it is on.
#[derive(Clone)]
pub(super) struct Serving {
    pub(super) app: axum::Router,
    pub(super) tls: Option<TlsLayer>,
    /// HTTP/1 and HTTP/2 settings, shared by every worker.
    pub(super) builder: Arc<ConnectionBuilder>,
}

/// HTTP/1 and HTTP/2 server settings: the outer ring of `security::limits` (head buffer,
/// header count, HTTP/2 header list) and the HTTP/2 stream cap. hyper's own HTTP/2 defaults
/// bound reset floods (CVE-2023-44487), CONTINUATION floods and pending accepts.
///
/// hyper's HTTP/1 head timer runs from the end of one exchange (or the first byte) to the next
/// complete head; at `idle_timeout` (or `header_read_timeout` when longer) it agrees with the
/// connection task's own deadlines and is only the backstop.
pub(super) fn builder(limits: &ConnectionLimits) -> Arc<ConnectionBuilder> {
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
    Arc::new(builder)
}

/// Serves one connection on the current runtime until it ends or a deadline drops it (module
/// doc). `global` is the acceptor's liveness token.
pub(super) fn spawn(
    accepted: Accepted<TcpStream>,
    serving: &Serving,
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
        app: serving.app.clone(),
        peer,
        activity: activity.clone(),
        hsts: serving.tls.as_ref().map(|tls| tls.hsts.clone()),
    };
    let tls = serving.tls.clone();
    let builder = serving.builder.clone();
    tokio::spawn(async move {
        let Lifecycle { mut closing, alive } = lifecycle;
        let _alive = (alive, global);
        let stream = match &tls {
            None => Transport::Plain(stream),
            Some(tls) => {
                let deadline = at + limits.header_read_timeout;
                match transport::handshake(tls, stream, deadline, &mut closing).await {
                    Some(stream) => stream,
                    None => return,
                }
            }
        };
        let io = Permitted {
            stream,
            _permit: permit,
        };
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        drive(conn, &activity, limits, at, &mut closing).await;
    });
}

/// Polls `conn` while holding it to its deadlines; returning drops (closes) the socket.
async fn drive(
    conn: Connection<'_>,
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
