//! The acceptor and the serving workers.
//!
//! The calling runtime accepts every connection and hands them out in turn to the serving
//! workers, threads numbered from 1, each a single-threaded runtime, where they stay for life.
//! The calling runtime serves none itself: it keeps what is not a request (the admin listener,
//! the sweeper, the OTLP exporter's gRPC channel, the store's background connections), so none
//! of that runs between a worker's requests. Before each accept the acceptor takes one of
//! `max_connections` permits: at the cap it stops accepting (the kernel's backlog holds the next
//! clients) until a connection closes, so Ward does not run out of file descriptors under a
//! flood. Should the listener fail all the same (out of descriptors, buffers), it pauses briefly
//! and logs once per run of failures, rather than spinning on a listener that stays readable.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, TryAcquireError, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::connection::{self, Accepted, ConnectionLimits, Lifecycle, Serving};

/// Pause after the listener fails to accept for a reason of its own (out of file descriptors
/// or memory): long enough not to spin, short enough to resume quickly once one is free.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Beyond `shutdown_timeout`, how long the acceptor waits for connection tasks to notice it
/// and drop their sockets (they do so themselves; this only bounds a stuck worker).
const SHUTDOWN_SLACK: Duration = Duration::from_secs(2);

thread_local! {
    /// The serving worker this thread runs, from 1; 0 on the accepting runtime and outside
    /// `run`.
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Index of the serving worker running on this thread: `1..=workers` on the serving threads,
/// 0 elsewhere (the accepting runtime, background tasks, tests).
pub(crate) fn worker_index() -> usize {
    WORKER.with(std::cell::Cell::get)
}

/// An accepted connection on its way to another worker.
type Handoff = Accepted<std::net::TcpStream>;

/// Accepts on `listener` until `shutdown`, serving with `workers` workers; then stops
/// accepting, lets connections finish for `shutdown_timeout` and returns.
pub(super) async fn serve(
    listener: TcpListener,
    serving: Serving,
    shutdown: impl Future<Output = ()> + Send + 'static,
    workers: usize,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let workers = workers.max(1);
    let (closing_tx, closing) = watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once all have ended.
    let (alive, all_ended) = mpsc::channel::<Infallible>(1);
    let lifecycle = Lifecycle { closing, alive };
    let others = (1..=workers)
        .map(|index| Worker::start(index, serving.clone(), limits, lifecycle.clone()))
        .collect::<std::io::Result<Vec<_>>>()?;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut failures = AcceptFailures::default();
    let mut next = 0usize;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permit(&permits, limits.max_connections) => permit,
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    failures.failed(&err);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        failures.recovered();
        // Responses are written as whole frames; Nagle would only add latency.
        let _ = stream.set_nodelay(true);
        let accepted = Accepted {
            stream,
            peer,
            permit,
            at: Instant::now(),
        };
        let turn = next % workers;
        next = next.wrapping_add(1);
        let Some(accepted) = hand_over(&others, turn, accepted) else {
            continue;
        };
        let global = lifecycle.alive.clone();
        connection::spawn(accepted, &serving, limits, lifecycle.clone(), global);
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(lifecycle);
    drain(others, all_ended, limits).await;
    Ok(())
}

/// Gives `accepted` to the worker whose `turn` it is (0 for the first); what comes back (its
/// worker could not start or has ended) is for the acceptor to serve.
fn hand_over(
    others: &[Worker],
    turn: usize,
    accepted: Accepted<TcpStream>,
) -> Option<Accepted<TcpStream>> {
    match others.get(turn) {
        // A worker that is gone (its runtime could not start) gives it back: served here.
        Some(worker) => worker.hand_over(accepted).err(),
        None => Some(accepted),
    }
}

/// Waits for every connection and worker to end. Workers stop taking connections, close
/// theirs gracefully, and end; connection tasks drop their sockets at `shutdown_timeout`
/// themselves; the bound here is for a stuck worker.
async fn drain(
    others: Vec<Worker>,
    mut all_ended: mpsc::Receiver<Infallible>,
    limits: ConnectionLimits,
) {
    let ended: Vec<_> = others.into_iter().map(Worker::finish).collect();
    let drained = async {
        let _ = all_ended.recv().await;
        for done in ended {
            let _ = done.await;
        }
    };
    if tokio::time::timeout(limits.shutdown_timeout + SHUTDOWN_SLACK, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            event = "shutdown_incomplete",
            "connections still open past server.shutdown_timeout; stopping without them"
        );
    }
}

/// One connection's permit; at the cap, waits for a connection to close (logging that once).
async fn permit(permits: &Arc<Semaphore>, max: usize) -> tokio::sync::OwnedSemaphorePermit {
    match permits.clone().try_acquire_owned() {
        Ok(permit) => return permit,
        Err(TryAcquireError::NoPermits) => tracing::warn!(
            event = "connection_limit_reached",
            max_connections = max,
            "server.max_connections connections are open; new ones wait until one closes"
        ),
        // Never closed; waiting below reports nothing either way.
        Err(TryAcquireError::Closed) => {}
    }
    match permits.clone().acquire_owned().await {
        Ok(permit) => permit,
        // The semaphore is never closed: a closed one could only wait forever.
        Err(_) => std::future::pending().await,
    }
}

/// Listener failures in a row: the first is logged, the rest counted until an accept works.
#[derive(Default)]
struct AcceptFailures {
    count: u64,
}

impl AcceptFailures {
    fn failed(&mut self, err: &std::io::Error) {
        if self.count == 0 {
            tracing::error!(
                event = "accept_failed",
                error = %err,
                "cannot accept connections; pausing between attempts"
            );
        }
        self.count += 1;
    }

    fn recovered(&mut self) {
        if self.count > 0 {
            tracing::info!(
                event = "accept_recovered",
                failures = self.count,
                "accepting connections again"
            );
            self.count = 0;
        }
    }
}

/// Errors of one incoming connection, not of the listener: accept the next one at once.
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// A serving thread with its own single-threaded runtime, fed accepted connections.
struct Worker {
    index: usize,
    feed: mpsc::UnboundedSender<Handoff>,
    done: oneshot::Receiver<()>,
}

impl Worker {
    fn start(
        index: usize,
        serving: Serving,
        limits: ConnectionLimits,
        lifecycle: Lifecycle,
    ) -> std::io::Result<Self> {
        let (feed, connections) = mpsc::unbounded_channel::<Handoff>();
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("ward-worker-{index}"))
            .spawn(move || {
                WORKER.with(|worker| worker.set(index));
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        runtime.block_on(Self::run(index, serving, limits, lifecycle, connections));
                        // Dropping the runtime ends what its connections left (upgraded
                        // sockets) before the acceptor is told this worker is done.
                        drop(runtime);
                    }
                    // Its connections come back to the acceptor (`hand_over`).
                    Err(err) => tracing::error!(
                        event = "worker_failed",
                        worker = index,
                        error = %err,
                        "cannot start a serving worker's runtime"
                    ),
                }
                let _ = done_tx.send(());
            })?;
        Ok(Self { index, feed, done })
    }

    /// Serves what the acceptor hands over until it stops, then until every connection ended.
    async fn run(
        index: usize,
        serving: Serving,
        limits: ConnectionLimits,
        lifecycle: Lifecycle,
        mut connections: mpsc::UnboundedReceiver<Handoff>,
    ) {
        // This worker's own count of live connections: the runtime must keep running until
        // they have all ended.
        let (alive, mut all_ended) = mpsc::channel::<Infallible>(1);
        while let Some(handoff) = connections.recv().await {
            match handoff.try_map(tokio::net::TcpStream::from_std) {
                Ok(accepted) => {
                    let local = Lifecycle {
                        closing: lifecycle.closing.clone(),
                        alive: alive.clone(),
                    };
                    let global = lifecycle.alive.clone();
                    connection::spawn(accepted, &serving, limits, local, global);
                }
                Err(err) => tracing::warn!(
                    event = "connection_handoff_failed",
                    worker = index,
                    error = %err,
                    "cannot register a connection with its worker"
                ),
            }
        }
        drop(lifecycle);
        drop(alive);
        let _ = all_ended.recv().await;
    }

    /// Gives `accepted` to this worker, or back when the worker has ended.
    fn hand_over(&self, accepted: Accepted<TcpStream>) -> Result<(), Accepted<TcpStream>> {
        let handoff = match accepted.try_map(tokio::net::TcpStream::into_std) {
            Ok(handoff) => handoff,
            Err(err) => {
                tracing::warn!(
                    event = "connection_handoff_failed",
                    worker = self.index,
                    error = %err,
                    "cannot move a connection to its worker"
                );
                return Ok(());
            }
        };
        let Err(returned) = self.feed.send(handoff) else {
            return Ok(());
        };
        match returned.0.try_map(tokio::net::TcpStream::from_std) {
            Ok(accepted) => Err(accepted),
            Err(err) => {
                // Only when this runtime's reactor is gone: nothing can serve it then.
                tracing::warn!(
                    event = "connection_handoff_failed",
                    worker = self.index,
                    error = %err,
                    "cannot take a connection back from a stopped worker"
                );
                Ok(())
            }
        }
    }

    /// Stops feeding the worker; resolves when its thread has ended.
    fn finish(self) -> oneshot::Receiver<()> {
        drop(self.feed);
        self.done
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// The serving thread's name and worker index, as the handler saw them.
    async fn who_serves() -> String {
        let thread = std::thread::current();
        format!("{}#{}", thread.name().unwrap_or("?"), worker_index())
    }

    /// One request on a connection of its own; the body of the answer.
    async fn ask(addr: std::net::SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        let (_, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
        body.to_owned()
    }

    #[tokio::test]
    async fn connections_go_to_the_serving_workers_in_turn_never_to_the_acceptor() {
        let limits = ConnectionLimits {
            max_connections: 16,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(1),
        };
        let serving = Serving {
            app: axum::Router::new().route("/", get(who_serves)),
            tls: None,
            builder: connection::builder(&limits),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            serving,
            async {
                let _ = stopped.await;
            },
            2,
            limits,
        ));
        let mut served = Vec::new();
        for _ in 0..4 {
            served.push(ask(addr).await);
        }
        let _ = stop.send(());
        server.await.expect("server task").expect("serve");
        assert_eq!(
            served,
            [
                "ward-worker-1#1",
                "ward-worker-2#2",
                "ward-worker-1#1",
                "ward-worker-2#2"
            ]
        );
    }
}
