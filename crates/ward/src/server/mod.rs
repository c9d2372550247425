//! From a validated configuration to a serving gateway: build the state (keys, store, IdP
//! discovery, routes), then serve on a bound listener until shutdown.
//!
//! - `accept.rs`: the acceptor and the serving workers, the `max_connections` permits, accept
//!   errors backed off.
//! - `connection.rs`: one connection from accept to close: the TLS handshake (when on), HTTP/1
//!   and HTTP/2 settings, the head, idle and shutdown deadlines, HSTS.
//! - `descriptors.rs`: the file-descriptor limit raised at start.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use ward_store::{Clock, SessionStore, SystemClock};

use crate::config::{AdminConfig, Config, SameSite, StoreKind};
use crate::oidc::{ClientTokens, OidcClient, OidcError};
use crate::outbound::{ClientIdentity, Outbound};
use crate::proxy::{Proxy, ProxyError};
use crate::security::rate_limit::RateLimiting;
use crate::session::cookie::CookieAttributes;
use crate::session::keyring::{KeyRing, KeyRingError};
use crate::session::seal::Sealer;
use crate::session::{SessionManager, SessionSettings};
use crate::site::StaticSite;
use crate::state::{AppState, SharedState};

mod accept;
mod connection;
mod descriptors;

pub(crate) use accept::worker_index;
use connection::{ConnectionLimits, Serving, TlsLayer};
pub use descriptors::raise_descriptor_limit;

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
    /// `[login] password_grant` is on, but the IdP does not advertise the grant.
    #[error(transparent)]
    PasswordGrant(#[from] crate::oidc::PasswordGrantNotAdvertised),
    /// `[outbound]`: the trusted roots or the egress proxy are unusable.
    #[error("outbound")]
    Outbound(#[from] crate::outbound::OutboundError),
    /// `[oidc] client_cert` / `client_key` (`tls_client_auth`) cannot be used.
    #[error(transparent)]
    ClientCertificate(#[from] crate::outbound::IdentityError),
    /// The callback URL cannot be formed from `public_url`.
    #[error("server.public_url: cannot form the callback URL")]
    PublicUrl,
}

/// Opens the configured store (connecting to it for `redis` and `postgres`, over TLS with the
/// trust of `outbound`).
pub async fn open_store(
    config: &Config,
    outbound: &Outbound,
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
            // One connection per serving worker (lanes 1..=workers), each driven by its own
            // worker's runtime; lane 0 for the rest (admin, sweeper, `ward sessions`).
            let options = ward_store_redis::Options::default()
                .client_cache(config.store.client_cache)
                .lanes(config.effective_workers() + 1, worker_index);
            let redis = Arc::new(
                ward_store_redis::RedisStore::connect_with(
                    store_url(config)?,
                    &config.store.key_prefix,
                    clock.clone(),
                    Some(outbound.trusted_certificates()),
                    options,
                )
                .await?,
            );
            match config.store.cache_ttl {
                ttl if ttl.is_zero() => redis,
                ttl => Arc::new(ward_store::CachedReads::new(redis, ttl, clock)),
            }
        }
        StoreKind::Postgres => Arc::new(
            ward_store_postgres::PostgresStore::connect_with_tls(
                store_url(config)?,
                &config.store.key_prefix,
                clock,
                &outbound.tls_config(&[]),
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

/// Discovers the IdP, retrying briefly with backoff; with `[login] password_grant`, refuses an
/// IdP that does not advertise the grant (at start and in `ward check` alike).
pub async fn discover(
    config: &Config,
    outbound: &Outbound,
    clock: Arc<dyn Clock>,
) -> Result<OidcClient, StartError> {
    let redirect_uri = config
        .server
        .public_url
        .join("/bff/callback")
        .map_err(|_| StartError::PublicUrl)?;
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        let found =
            OidcClient::discover(&config.oidc, redirect_uri.clone(), clock.clone(), outbound);
        match found.await {
            Ok(client) if config.login.password_grant && !client.advertises_password_grant() => {
                return Err(crate::oidc::PasswordGrantNotAdvertised.into());
            }
            Ok(client) => return Ok(client.with_resources(user_resources(&config.routes))),
            // A key or `par` that does not fit the IdP stays so: no retry.
            Err(err) if attempt < DISCOVERY_ATTEMPTS && !err.is_misconfiguration() => {
                tracing::warn!(event = "discovery_failed", attempt, error = %err, "retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// The RFC 8707 resources of the routes whose tokens come from the user's grant: what every
/// authorization request names.
fn user_resources(routes: &[crate::config::RouteConfig]) -> Vec<String> {
    routes
        .iter()
        .filter(|route| {
            matches!(
                route.token,
                crate::config::TokenMode::User | crate::config::TokenMode::UserOptional
            )
        })
        .filter_map(|route| route.resource.clone())
        .collect()
}

/// Builds everything the handlers share, on the configured store.
pub async fn build_state(config: Config, clock: Arc<dyn Clock>) -> Result<SharedState, StartError> {
    let outbound = Outbound::load(&config.outbound)?;
    build_state_with(config, clock, outbound).await
}

/// [`build_state`] with the outbound trust and egress loaded by the caller (once, at start).
pub async fn build_state_with(
    config: Config,
    clock: Arc<dyn Clock>,
    outbound: Outbound,
) -> Result<SharedState, StartError> {
    let store = open_store(&config, &outbound, clock.clone()).await?;
    assemble(config, clock, store, &outbound).await
}

/// Builds everything the handlers share, on a store the caller opened (tests inject faults).
pub async fn build_state_with_store(
    config: Config,
    clock: Arc<dyn Clock>,
    store: Arc<dyn SessionStore>,
) -> Result<SharedState, StartError> {
    let outbound = Outbound::load(&config.outbound)?;
    assemble(config, clock, store, &outbound).await
}

async fn assemble(
    config: Config,
    clock: Arc<dyn Clock>,
    store: Arc<dyn SessionStore>,
    outbound: &Outbound,
) -> Result<SharedState, StartError> {
    let store = crate::telemetry::InstrumentedStore::wrap(store);
    let ring = KeyRing::from_config(&config.crypto.keys)?;
    // RFC 8705: the IdP client and the upstream pools present it; nothing else does.
    let outbound = &outbound
        .clone()
        .with_client_identity(ClientIdentity::from_config(&config.oidc)?);
    let oidc = discover(&config, outbound, clock.clone()).await?;
    crate::endpoints::warn_password_grant(&config.login);
    let proxy = Proxy::for_workers(
        &config.routes,
        &config.server.public_url,
        config.effective_workers(),
        outbound,
    )?
    .with_max_request_body(config.server.max_request_body)
    .with_composites(&config.composites)?;
    let site = config.static_files.as_ref().map(StaticSite::new);
    let settings = SessionSettings {
        idle_timeout: config.session.idle_timeout.as_secs(),
        absolute_timeout: config.session.absolute_timeout.as_secs(),
        cookie_name: config.effective_cookie_name(),
        cookie: session_cookie_attributes(&config),
    };
    // Spans around store operations, when traces are exported.
    let store = crate::telemetry::TracedStore::wrap(store);
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

/// Builds the state with the system clock and the outbound trust and egress of `outbound`.
pub async fn build(config: Config, outbound: Outbound) -> Result<SharedState, StartError> {
    build_state_with(config, Arc::new(SystemClock), outbound).await
}

/// Serves `state` on `listener` over plain HTTP until `shutdown` resolves, then finishes
/// in-flight requests for at most `server.shutdown_timeout` and closes whatever is still open.
/// A configuration with `tls_cert` is refused (serve it with [`run_tls`]): it never falls back
/// to plain HTTP.
///
/// Requests are served by `server.workers` threads (see [`Config::effective_workers`]), each
/// with its own single-threaded runtime; the calling task's runtime accepts every connection
/// and serves none (it keeps the background work). Connections are handed out in turn and stay on
/// their worker for life, together with the upstream connections their requests use (one pool
/// per worker), so a request never waits for another thread to be woken. Each connection holds
/// one of `server.max_connections` permits and is watched by its own task for the head, idle
/// and shutdown deadlines (`connection.rs`).
pub async fn run(
    listener: TcpListener,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if state.config.server.tls_cert.is_some() {
        return Err(std::io::Error::other(
            "server.tls_cert is set: serve with server::run_tls, not over plain HTTP",
        ));
    }
    serve(listener, state, None, shutdown).await
}

/// [`run`] over TLS: each connection's handshake with `tls` (its certificate as last
/// reloaded), every response with HSTS.
pub async fn run_tls(
    listener: TcpListener,
    state: SharedState,
    tls: &crate::tls::Termination,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve(listener, state, Some(TlsLayer::from(tls)), shutdown).await
}

async fn serve(
    listener: TcpListener,
    state: SharedState,
    tls: Option<TlsLayer>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = ward_store::spawn_sweeper(state.sessions.store().clone(), SWEEP_EVERY);
    let workers = state.config.effective_workers();
    let limits = ConnectionLimits::from_config(&state.config.server);
    let serving = Serving {
        app: crate::app::router(state),
        tls,
        builder: connection::builder(&limits),
    };
    let result = accept::serve(listener, serving, shutdown, workers, limits).await;
    sweeper.abort();
    // Wait for the sweeper to drop its store handle: after `run` returns, the store is
    // released (an embedded file can be opened again, e.g. by `ward sessions`).
    let _ = sweeper.await;
    result
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
