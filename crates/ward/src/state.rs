//! What every handler shares: configuration, the OIDC client, sessions, the proxy, the site.

use std::borrow::Cow;
use std::sync::Arc;

use axum::http::HeaderMap;
use ward_store::Clock;

use crate::config::Config;
use crate::oidc::{ClientTokens, OidcClient};
use crate::proxy::Proxy;
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

/// All `Cookie` headers of a request joined as one (HTTP/2 may split them). Borrowed when there
/// is one header (the usual case), so the hot path does not copy it.
pub fn cookie_header(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    let mut values = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(Cow::Borrowed(first));
    };
    let mut joined = format!("{first}; {second}");
    for v in values {
        joined.push_str("; ");
        joined.push_str(v);
    }
    Some(Cow::Owned(joined))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use axum::http::header::COOKIE;

    #[test]
    fn one_cookie_header_is_borrowed_and_split_ones_are_joined() {
        let mut headers = HeaderMap::new();
        assert!(cookie_header(&headers).is_none());
        headers.append(COOKIE, HeaderValue::from_static("a=1"));
        assert!(matches!(
            cookie_header(&headers),
            Some(Cow::Borrowed("a=1"))
        ));
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        headers.append(COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(cookie_header(&headers).as_deref(), Some("a=1; b=2; c=3"));
    }
}
