//! What every handler shares: configuration, the OIDC client, sessions, the proxy, the site.

use std::sync::Arc;

use ward_store::Clock;

use crate::config::Config;
use crate::oidc::{ClientTokens, OidcClient};
use crate::proxy::Proxy;
use crate::security::rate_limit::RateLimiting;
use crate::session::SessionManager;
use crate::site::StaticSite;

/// Shared application state.
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// Ward's client at the IdP.
    pub oidc: OidcClient,
    /// Ward's own client-credentials tokens for `token = "client"` routes.
    pub client_tokens: ClientTokens,
    /// Sessions and pending logins.
    pub sessions: SessionManager,
    /// The API proxy.
    pub proxy: Proxy,
    /// The rate limits of `[rate_limit]`.
    pub rate_limits: RateLimiting,
    /// The SPA's files, when `[static]` is configured.
    pub site: Option<StaticSite>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Names of Ward's cookies (never forwarded upstream).
    pub cookie_names: Vec<String>,
    /// `public_url`'s origin as browsers write it in `Origin` (`scheme://host[:port]`).
    pub public_origin: String,
}

/// The state as handlers receive it.
pub type SharedState = Arc<AppState>;
