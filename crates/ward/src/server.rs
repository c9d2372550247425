//! From a validated configuration to a serving gateway: build the state (keys, store, IdP
//! discovery, routes), then serve on a bound listener until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use ward_store::{Clock, SessionStore, SystemClock};

use crate::config::{AdminConfig, Config, SameSite, StoreKind};
use crate::oidc::{ClientTokens, OidcClient, OidcError};
use crate::proxy::{Proxy, ProxyError};
use crate::security::rate_limit::RateLimiting;
use crate::session::cookie::CookieAttributes;
use crate::session::keyring::{KeyRing, KeyRingError};
use crate::session::seal::Sealer;
use crate::session::{SessionManager, SessionSettings};
use crate::site::StaticSite;
use crate::state::{AppState, SharedState};

/// How often expired records are swept from stores without native expiry.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Discovery attempts at start before giving up (the IdP may be starting alongside Ward).
const DISCOVERY_ATTEMPTS: u32 = 5;

/// Why Ward cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `[crypto] keys` unusable.
    #[error("crypto.keys")]
    Keys(#[from] KeyRingError),
    /// The store cannot be opened.
    #[error("store")]
    Store(#[from] ward_store::StoreError),
    /// The IdP's metadata could not be loaded.
    #[error("oidc")]
    Oidc(#[from] OidcError),
    /// A route is invalid.
    #[error("routes")]
    Routes(#[from] ProxyError),
    /// `[rate_limit]` cannot count where it is told to.
    #[error("rate_limit")]
    RateLimit(#[from] crate::security::rate_limit::RateLimitSetupError),
    /// The callback URL cannot be formed from `public_url`.
    #[error("server.public_url: cannot form the callback URL")]
    PublicUrl,
}

/// Opens the configured store (connecting to it for `redis` and `postgres`).
pub async fn open_store(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn SessionStore>, ward_store::StoreError> {
    Ok(match config.store.kind {
        StoreKind::Memory => Arc::new(ward_store::memory::MemoryStore::new(clock)),
        StoreKind::Embedded => Arc::new(ward_store_embedded::EmbeddedStore::open(
            &config.store.path,
            clock,
        )?),
        StoreKind::Cookie => Arc::new(crate::session::cookie_store::CookieStore::new(
            &config.effective_cookie_name(),
            session_cookie_attributes(config),
            clock,
        )),
        StoreKind::Redis => {
            let redis = Arc::new(
                ward_store_redis::RedisStore::connect(
                    store_url(config)?,
                    &config.store.key_prefix,
                    clock.clone(),
                )
                .await?,
            );
            match config.store.cache_ttl {
                ttl if ttl.is_zero() => redis,
                ttl => Arc::new(ward_store::CachedReads::new(redis, ttl, clock)),
            }
        }
        StoreKind::Postgres => Arc::new(
            ward_store_postgres::PostgresStore::connect(
                store_url(config)?,
                &config.store.key_prefix,
                clock,
            )
            .await?,
        ),
    })
}

/// `[store] url`, which validation guarantees for the kinds that need it.
fn store_url(config: &Config) -> Result<&str, ward_store::StoreError> {
    config
        .store
        .url
        .as_ref()
        .map(|url| url.expose())
        .ok_or_else(|| ward_store::StoreError::Unavailable("store.url is not set".into()))
}

/// `Secure` and `SameSite` of the session cookie, from `[server]` and `[session]`.
fn session_cookie_attributes(config: &Config) -> CookieAttributes {
    CookieAttributes {
        secure: config.cookie_secure(),
        same_site: match config.session.same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
        },
    }
}

/// Discovers the IdP, retrying briefly with backoff.
pub async fn discover(config: &Config, clock: Arc<dyn Clock>) -> Result<OidcClient, StartError> {
    let redirect_uri = config
        .server
        .public_url
        .join("/bff/callback")
        .map_err(|_| StartError::PublicUrl)?;
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match OidcClient::discover(&config.oidc, redirect_uri.clone(), clock.clone()).await {
            Ok(client) => return Ok(client),
            Err(err) if attempt < DISCOVERY_ATTEMPTS => {
                tracing::warn!(event = "discovery_failed", attempt, error = %err, "retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Builds everything the handlers share, on the configured store.
pub async fn build_state(config: Config, clock: Arc<dyn Clock>) -> Result<SharedState, StartError> {
    let store = open_store(&config, clock.clone()).await?;
    build_state_with_store(config, clock, store).await
}

/// Builds everything the handlers share, on a store the caller opened (tests inject faults).
pub async fn build_state_with_store(
    config: Config,
    clock: Arc<dyn Clock>,
    store: Arc<dyn SessionStore>,
) -> Result<SharedState, StartError> {
    let ring = KeyRing::from_config(&config.crypto.keys)?;
    let oidc = discover(&config, clock.clone()).await?;
    let proxy = Proxy::for_workers(
        &config.routes,
        &config.server.public_url,
        config.effective_workers(),
    )?
    .with_max_request_body(config.server.max_request_body);
    let site = config
        .static_files
        .as_ref()
        .map(|s| StaticSite::new(&s.dir));
    let settings = SessionSettings {
        idle_timeout: config.session.idle_timeout.as_secs(),
        absolute_timeout: config.session.absolute_timeout.as_secs(),
        cookie_name: config.effective_cookie_name(),
        cookie: session_cookie_attributes(&config),
    };
    // Addresses become store keys under the primary key's index key, as `sub`/`sid` do.
    let rate_limits = RateLimiting::new(
        &config.rate_limit,
        config.server.trusted_proxy_hops,
        &store,
        ring.primary().index_key().clone(),
        clock.clone(),
    )?;
    let sessions = SessionManager::new(store, Sealer::new(ring), clock.clone(), settings);
    let cookie_names = sessions.cookie_names();
    let public_origin = config.server.public_url.origin().ascii_serialization();
    let client_tokens = ClientTokens::new(clock.clone(), config.oidc.refresh_skew);
    Ok(Arc::new(AppState {
        config,
        oidc,
        client_tokens,
        sessions,
        proxy,
        rate_limits,
        site,
        clock,
        cookie_names,
        public_origin,
    }))
}

/// Builds the state with the system clock.
pub async fn build(config: Config) -> Result<SharedState, StartError> {
    build_state(config, Arc::new(SystemClock)).await
}

/// Serves `state` on `listener` until `shutdown` resolves, then finishes in-flight requests.
///
/// Requests are served by `server.workers` threads (see [`Config::effective_workers`]): the
/// calling task's runtime is worker 0 and accepts every connection; each further worker is a
/// thread with its own single-threaded runtime. Connections are handed out in turn and stay on
/// their worker for life, together with the upstream connections their requests use (one pool
/// per worker), so a request never waits for another thread to be woken.
pub async fn run(
    listener: TcpListener,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = ward_store::spawn_sweeper(state.sessions.store().clone(), SWEEP_EVERY);
    let workers = state.config.effective_workers();
    let result = serve(listener, crate::app::router(state), shutdown, workers).await;
    sweeper.abort();
    // Wait for the sweeper to drop its store handle: after `run` returns, the store is
    // released (an embedded file can be opened again, e.g. by `ward sessions`).
    let _ = sweeper.await;
    result
}

/// How long a client has to send a complete HTTP/1 request head (slow clients, D-01).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Streams one HTTP/2 connection may have open at once (D-02).
const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Pause after the listener fails to accept for a reason of its own (e.g. out of file
/// descriptors), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

thread_local! {
    /// The serving worker this thread runs: 0 on the accepting runtime and outside `run`.
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Index of the serving worker running on this thread (0 outside the worker threads).
pub(crate) fn worker_index() -> usize {
    WORKER.with(std::cell::Cell::get)
}

/// What every connection task holds: the signal to close gracefully, and a token whose last
/// drop tells the acceptor that every connection has ended.
#[derive(Clone)]
struct Lifecycle {
    closing: tokio::sync::watch::Receiver<bool>,
    alive: tokio::sync::mpsc::Sender<std::convert::Infallible>,
}

/// An accepted connection on its way to another worker.
type Handoff = (std::net::TcpStream, SocketAddr);

async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    workers: usize,
) -> std::io::Result<()> {
    let workers = workers.max(1);
    let builder = connection_builder();
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once all have ended.
    let (alive, mut all_ended) = tokio::sync::mpsc::channel::<std::convert::Infallible>(1);
    let lifecycle = Lifecycle { closing, alive };
    let mut others = Vec::with_capacity(workers.saturating_sub(1));
    for index in 1..workers {
        others.push(Worker::start(index, app.clone(), lifecycle.clone())?);
    }
    let mut next = 0usize;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    tracing::error!(
                        event = "accept_failed",
                        error = %err,
                        "cannot accept connections"
                    );
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Responses are written as whole frames; Nagle would only add latency.
        let _ = stream.set_nodelay(true);
        let turn = next % workers;
        next = next.wrapping_add(1);
        let stream = match turn.checked_sub(1).and_then(|i| others.get(i)) {
            Some(worker) => match worker.hand_over(stream, peer) {
                Ok(()) => continue,
                // That worker is gone (its runtime could not start): serve it here.
                Err(stream) => stream,
            },
            None => stream,
        };
        spawn_connection(stream, peer, &app, &builder, &lifecycle);
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(lifecycle);
    // Workers stop taking connections, close theirs gracefully, and end.
    let ended: Vec<_> = others.into_iter().map(Worker::finish).collect();
    let _ = all_ended.recv().await;
    for done in ended {
        let _ = done.await;
    }
    Ok(())
}

/// A serving thread with its own single-threaded runtime, fed accepted connections.
struct Worker {
    index: usize,
    feed: tokio::sync::mpsc::UnboundedSender<Handoff>,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Worker {
    fn start(index: usize, app: axum::Router, lifecycle: Lifecycle) -> std::io::Result<Self> {
        let (feed, mut connections) = tokio::sync::mpsc::unbounded_channel::<Handoff>();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("ward-worker-{index}"))
            .spawn(move || {
                WORKER.with(|worker| worker.set(index));
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        // Its connections come back to the acceptor (`hand_over`).
                        tracing::error!(
                            event = "worker_failed",
                            worker = index,
                            error = %err,
                            "cannot start a serving worker's runtime"
                        );
                        let _ = done_tx.send(());
                        return;
                    }
                };
                runtime.block_on(async move {
                    let builder = connection_builder();
                    // This worker's own count of live connections: the runtime must keep
                    // running until they have all ended.
                    let (alive, mut all_ended) =
                        tokio::sync::mpsc::channel::<std::convert::Infallible>(1);
                    while let Some((stream, peer)) = connections.recv().await {
                        match tokio::net::TcpStream::from_std(stream) {
                            Ok(stream) => {
                                let local = Lifecycle {
                                    closing: lifecycle.closing.clone(),
                                    alive: alive.clone(),
                                };
                                let global = lifecycle.alive.clone();
                                spawn_connection_with(stream, peer, &app, &builder, local, global);
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
                });
                drop(runtime);
                let _ = done_tx.send(());
            })?;
        Ok(Self { index, feed, done })
    }

    /// Gives `stream` to this worker, or back when the worker has ended.
    fn hand_over(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> Result<(), tokio::net::TcpStream> {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
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
        let Err(returned) = self.feed.send((stream, peer)) else {
            return Ok(());
        };
        let (stream, _) = returned.0;
        match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => Err(stream),
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
    fn finish(self) -> tokio::sync::oneshot::Receiver<()> {
        drop(self.feed);
        self.done
    }
}

fn spawn_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: &axum::Router,
    builder: &ConnectionBuilder,
    lifecycle: &Lifecycle,
) {
    spawn_connection_with(
        stream,
        peer,
        app,
        builder,
        lifecycle.clone(),
        lifecycle.alive.clone(),
    );
}

/// Serves one connection on the current runtime until it ends or, once closing is signalled,
/// until its in-flight requests are answered. `global` is the acceptor's liveness token.
fn spawn_connection_with(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: &axum::Router,
    builder: &ConnectionBuilder,
    lifecycle: Lifecycle,
    global: tokio::sync::mpsc::Sender<std::convert::Infallible>,
) {
    let service = tower::ServiceExt::map_request(
        app.clone(),
        move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            req
        },
    );
    let conn = builder
        .serve_connection_with_upgrades(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        )
        .into_owned();
    tokio::spawn(async move {
        let Lifecycle { mut closing, alive } = lifecycle;
        let _alive = (alive, global);
        let mut conn = std::pin::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = async {
                let _ = closing.wait_for(|closing| *closing).await;
            } => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(err) = result {
            // Malformed requests, resets and timeouts of clients: theirs, not Ward's.
            tracing::debug!(
                event = "connection_error",
                error = %err,
                "connection ended with an error"
            );
        }
    });
}

type ConnectionBuilder = hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>;

/// HTTP/1 and HTTP/2 server settings: the outer ring of `security::limits` (head buffer,
/// header count, HTTP/2 header list), the header read timeout, the HTTP/2 stream cap. hyper's
/// own HTTP/2 defaults bound reset floods (CVE-2023-44487) and pending accepts.
fn connection_builder() -> ConnectionBuilder {
    use crate::security::limits;
    use hyper_util::rt::{TokioExecutor, TokioTimer};

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(limits::HEAD_BUFFER_BYTES)
        .max_headers(limits::MAX_HEADER_FIELDS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits::MAX_HEADER_LIST_SIZE)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    builder
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

/// Serves the admin listener (health, readiness, session administration) for `state` on
/// `listener` until `shutdown` resolves. Run it beside [`run`], on another socket.
pub async fn run_admin(
    listener: TcpListener,
    state: SharedState,
    admin: AdminConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = crate::admin::router(state, &admin);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
