//! From a validated configuration to a serving gateway: build the state (keys, store, IdP
//! discovery, routes), then serve on a bound listener until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use ward_store::{Clock, SessionStore, SystemClock};

use crate::config::{AdminConfig, Config, SameSite, StoreKind};
use crate::oidc::{OidcClient, OidcError};
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
    #[error("crypto.keys: {0}")]
    Keys(#[from] KeyRingError),
    /// The store cannot be opened.
    #[error("store: {0}")]
    Store(#[from] ward_store::StoreError),
    /// The IdP's metadata could not be loaded.
    #[error("oidc: {0}")]
    Oidc(#[from] OidcError),
    /// A route is invalid.
    #[error("{0}")]
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
        // TEMP(lead): the postgres backend is being built.
        StoreKind::Postgres => {
            return Err(ward_store::StoreError::Unavailable(
                "this store kind is not built yet".into(),
            ));
        }
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
    let proxy = Proxy::new(&config.routes, &config.server.public_url)?;
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
    Ok(Arc::new(AppState {
        config,
        oidc,
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
    let app = crate::app::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
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
