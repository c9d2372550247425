//! From a validated configuration to a serving gateway: build the state (keys, store, IdP
//! discovery, routes), then serve on a bound listener until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use ward_store::{Clock, SessionStore, SystemClock};

use crate::config::{AdminConfig, Config, SameSite, StoreKind};
use crate::oidc::{ClientTokens, OidcClient, OidcError};
use crate::proxy::{Proxy, ProxyError};
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
        StoreKind::Redis => Arc::new(
            ward_store_redis::RedisStore::connect(
                store_url(config)?,
                &config.store.key_prefix,
                clock,
            )
            .await?,
        ),
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
    let proxy = Proxy::new(&config.routes, &config.server.public_url)?
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
pub async fn run(
    listener: TcpListener,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = ward_store::spawn_sweeper(state.sessions.store().clone(), SWEEP_EVERY);
    let result = serve(listener, crate::app::router(state), shutdown).await;
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

/// Accepts connections on `listener` and serves `app` on each, HTTP/1.1 or cleartext HTTP/2
/// (prior knowledge) as the client speaks, with the connection limits of
/// [`crate::security::limits`] and upgrades (WebSocket) allowed. When `shutdown` resolves it
/// stops accepting, asks every connection to finish its in-flight requests and waits for them.
///
/// hyper's builder is used directly (not `axum::serve`) because the head limits, the header
/// read timeout and the HTTP/2 settings are connection settings `axum::serve` does not expose.
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let builder = connection_builder();
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once all have ended.
    let (alive, mut all_ended) = tokio::sync::mpsc::channel::<std::convert::Infallible>(1);
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
        let mut closing = closing.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            let _alive = alive;
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
    drop(listener);
    let _ = closing_tx.send(true);
    drop(alive);
    let _ = all_ended.recv().await;
    Ok(())
}

/// HTTP/1 and HTTP/2 server settings: the outer ring of `security::limits` (head buffer,
/// header count, HTTP/2 header list), the header read timeout, the HTTP/2 stream cap. hyper's
/// own HTTP/2 defaults bound reset floods (CVE-2023-44487) and pending accepts.
fn connection_builder() -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
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
