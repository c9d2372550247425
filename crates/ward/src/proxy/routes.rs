//! The route table: `[[routes]]` compiled once at start-up, matched on whole path segments.

use std::time::Duration;

use axum::http::HeaderValue;
use axum::http::uri::{Authority, PathAndQuery, Scheme, Uri};
use url::{Position, Url};

use super::ProxyError;
use super::fields::FieldSet;
use super::path;
use crate::config::{RouteConfig, TokenMode};
use crate::telemetry::metrics::RouteSeries;

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    /// Which token the upstream receives.
    pub token: TokenMode,
    /// Scopes of Ward's client-credentials token (`token = "client"`); `None`: no `scope`.
    pub scopes: Option<Vec<String>>,
    /// Starts with `/`, no trailing `/` unless it is `/` itself, no empty or dot segment.
    prefix: String,
    upstream: Upstream,
    strip_prefix: bool,
    timeout: Duration,
    /// The route's own body limit; the proxy's default (`[server] max_request_body`) when
    /// `None`.
    max_request_body: Option<u64>,
    /// Its metric series (`route` = the prefix), resolved once here, never per request.
    metrics: &'static RouteSeries,
    /// The allow-list its JSON responses are trimmed to; `None` streams them untouched.
    fields: Option<FieldSet>,
    /// Most bytes of a response body buffered to trim it or embed it in a composite.
    max_buffered_response: u64,
}

/// Where a route sends its requests.
#[derive(Debug)]
struct Upstream {
    scheme: Scheme,
    authority: Authority,
    /// `Host` for the upstream: its authority, never the browser's.
    host: HeaderValue,
    /// The upstream URL's path without trailing `/`; empty for none.
    base_path: String,
}

impl Route {
    /// Compiles entry `index` of `[[routes]]`.
    pub(crate) fn compile(index: usize, config: &RouteConfig) -> Result<Self, ProxyError> {
        let invalid = |reason: &str| ProxyError::InvalidRoute {
            index,
            reason: reason.to_owned(),
        };
        let prefix = normalise_prefix(&config.prefix).map_err(invalid)?;
        let upstream = Upstream::from_url(&config.upstream).map_err(invalid)?;
        if config.timeout.is_zero() {
            return Err(invalid("timeout must be greater than zero"));
        }
        let fields = config
            .fields
            .as_deref()
            .map(FieldSet::parse)
            .transpose()
            .map_err(|err| invalid(&format!("fields: {err}")))?;
        Ok(Self {
            metrics: crate::telemetry::metrics::route(&prefix),
            token: config.token,
            scopes: config.scopes.clone(),
            prefix,
            upstream,
            strip_prefix: config.strip_prefix,
            timeout: config.timeout,
            max_request_body: config.max_request_body,
            fields,
            max_buffered_response: config.max_buffered_response,
        })
    }

    /// The allow-list of its JSON responses, when it trims them.
    pub fn fields(&self) -> Option<&FieldSet> {
        self.fields.as_ref()
    }

    /// Most bytes of a response body it buffers (trimming, composite parts).
    pub fn max_buffered_response(&self) -> u64 {
        self.max_buffered_response
    }

    /// The route's metric series.
    pub fn metrics(&self) -> &'static RouteSeries {
        self.metrics
    }

    /// The normalised prefix, for logs and diagnostics.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How long the upstream has to send its response headers.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The route's own request body limit, when it sets one.
    pub fn max_request_body(&self) -> Option<u64> {
        self.max_request_body
    }

    /// Whether the upstream is reached over TLS.
    pub(crate) fn is_https(&self) -> bool {
        self.upstream.scheme == Scheme::HTTPS
    }

    /// The `Host` header value for the upstream.
    pub(crate) fn host_header(&self) -> &HeaderValue {
        &self.upstream.host
    }

    /// Whether `path` lies under this route: equal to the prefix or continuing with `/`.
    pub(crate) fn matches(&self, path: &str) -> bool {
        self.remainder(path).is_some()
    }

    /// `path` after the prefix (empty or starting with `/`), `None` when it does not match.
    fn remainder<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.prefix == "/" {
            return path.starts_with('/').then_some(path);
        }
        let rest = path.strip_prefix(self.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// The absolute upstream URI for a request with this raw `path` and `query` (verbatim).
    /// `None` when the path is not under the route or the result is not a valid URI; never
    /// panics, whatever the input.
    pub(crate) fn upstream_uri(&self, path: &str, query: Option<&str>) -> Option<Uri> {
        let rest = if self.strip_prefix {
            self.remainder(path)?
        } else {
            self.matches(path).then_some(path)?
        };
        let mut target = path::join(&self.upstream.base_path, rest);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        let path_and_query = PathAndQuery::try_from(target).ok()?;
        Uri::builder()
            .scheme(self.upstream.scheme.clone())
            .authority(self.upstream.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .ok()
    }
}

impl Upstream {
    fn from_url(url: &Url) -> Result<Self, &'static str> {
        let scheme = match url.scheme() {
            "http" => Scheme::HTTP,
            "https" => Scheme::HTTPS,
            _ => return Err("upstream must be an http or https URL"),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err("upstream has no host");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("upstream must not carry credentials");
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("upstream must not have a query or fragment");
        }
        // Host and optional explicit port, IPv6 in brackets, without userinfo.
        let authority_text = &url[Position::BeforeHost..Position::AfterPort];
        let authority =
            Authority::try_from(authority_text).map_err(|_| "upstream host is not valid")?;
        let host =
            HeaderValue::from_str(authority_text).map_err(|_| "upstream host is not valid")?;
        let base_path = url.path().trim_end_matches('/').to_owned();
        Ok(Self {
            scheme,
            authority,
            host,
            base_path,
        })
    }
}

/// `/api/` → `/api`; refuses what could never match a checked request path.
fn normalise_prefix(prefix: &str) -> Result<String, &'static str> {
    if !prefix.starts_with('/') {
        return Err("prefix must start with `/`");
    }
    if prefix.contains(['?', '#', '%', '\\']) || prefix.chars().any(char::is_control) {
        return Err("prefix must be a plain path (no `?`, `#`, `%`, `\\` or control characters)");
    }
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".to_owned());
    }
    if trimmed
        .split('/')
        .skip(1)
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("prefix must not contain empty, `.` or `..` segments");
    }
    if trimmed == "/bff" || trimmed.starts_with("/bff/") {
        return Err("prefix must not be under `/bff`, Ward's own endpoints");
    }
    Ok(trimmed.to_owned())
}

/// Compiles all routes, longest prefix first so the first match is the longest one.
pub(crate) fn compile_all(configs: &[RouteConfig]) -> Result<Vec<Route>, ProxyError> {
    let mut routes = Vec::with_capacity(configs.len());
    for (index, config) in configs.iter().enumerate() {
        let route = Route::compile(index, config)?;
        if routes.iter().any(|r: &Route| r.prefix == route.prefix) {
            return Err(ProxyError::InvalidRoute {
                index,
                reason: format!("prefix `{}` is configured twice", route.prefix),
            });
        }
        routes.push(route);
    }
    routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(prefix: &str, upstream: &str, strip_prefix: bool) -> RouteConfig {
        RouteConfig {
            prefix: prefix.to_owned(),
            upstream: Url::parse(upstream).expect("test URL"),
            token: TokenMode::User,
            strip_prefix,
            timeout: Duration::from_secs(30),
            max_request_body: None,
            scopes: None,
            fields: None,
            max_buffered_response: 4 << 20,
        }
    }

    fn route(prefix: &str, upstream: &str, strip_prefix: bool) -> Route {
        Route::compile(0, &config(prefix, upstream, strip_prefix)).expect("valid route")
    }

    fn target(route: &Route, path: &str, query: Option<&str>) -> Option<String> {
        route.upstream_uri(path, query).map(|u| u.to_string())
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        let r = route("/api", "http://h:1", false);
        assert!(r.matches("/api"));
        assert!(r.matches("/api/"));
        assert!(r.matches("/api/x/y"));
        assert!(!r.matches("/apix"));
        assert!(!r.matches("/ap"));
        assert!(!r.matches("/API/x"));
        assert!(!r.matches("/other/api"));
    }

    #[test]
    fn root_prefix_matches_every_path() {
        let r = route("/", "http://h:1", false);
        assert!(r.matches("/"));
        assert!(r.matches("/anything/else"));
    }

    #[test]
    fn longest_prefix_is_tried_first() {
        let routes = compile_all(&[
            config("/api", "http://a:1", false),
            config("/api/admin", "http://b:1", false),
            config("/", "http://c:1", false),
        ])
        .expect("valid routes");
        let first = |path: &str| routes.iter().find(|r| r.matches(path)).map(Route::prefix);
        assert_eq!(first("/api/admin/x"), Some("/api/admin"));
        assert_eq!(first("/api/adminx"), Some("/api"));
        assert_eq!(first("/api"), Some("/api"));
        assert_eq!(first("/static/x"), Some("/"));
    }

    #[test]
    fn upstream_base_path_is_prepended() {
        let r = route("/api", "http://h:1/base", false);
        assert_eq!(
            target(&r, "/api/x", None).as_deref(),
            Some("http://h:1/base/api/x")
        );
        let r = route("/api", "http://h:1/base/", false);
        assert_eq!(
            target(&r, "/api/x", None).as_deref(),
            Some("http://h:1/base/api/x")
        );
    }

    #[test]
    fn strip_prefix_removes_the_prefix_only() {
        let r = route("/api", "http://h:1/base", true);
        assert_eq!(
            target(&r, "/api/x", None).as_deref(),
            Some("http://h:1/base/x")
        );
        assert_eq!(target(&r, "/api", None).as_deref(), Some("http://h:1/base"));
        assert_eq!(
            target(&r, "/api/", None).as_deref(),
            Some("http://h:1/base/")
        );
        let r = route("/api", "http://h:1", true);
        assert_eq!(target(&r, "/api", None).as_deref(), Some("http://h:1/"));
    }

    #[test]
    fn query_is_preserved_verbatim() {
        let r = route("/api", "https://h", false);
        assert_eq!(
            target(&r, "/api/x", Some("a=%2F&b=c+d&&e")).as_deref(),
            Some("https://h/api/x?a=%2F&b=c+d&&e")
        );
        assert_eq!(
            target(&r, "/api/x", Some("")).as_deref(),
            Some("https://h/api/x?")
        );
    }

    #[test]
    fn a_network_path_lookalike_never_changes_the_upstream_host() {
        let r = route("/api", "http://h:1", true);
        let uri = r
            .upstream_uri("/api//evil.example/steal", None)
            .expect("uri");
        assert_eq!(uri.authority().map(|a| a.as_str()), Some("h:1"));
        assert_eq!(uri.path(), "//evil.example/steal");
    }

    #[test]
    fn upstream_uri_of_a_foreign_path_is_none() {
        let r = route("/api", "http://h:1", true);
        assert!(r.upstream_uri("/apix", None).is_none());
        assert!(r.upstream_uri("", None).is_none());
        let r = route("/api", "http://h:1", false);
        assert!(r.upstream_uri("/other", None).is_none());
    }

    #[test]
    fn upstream_uri_never_panics_on_odd_input() {
        let r = route("/api", "http://h:1/b", false);
        for path in [
            "/api/\u{0}",
            "/api/ x",
            "/api/é",
            "/api/#",
            "/api/?",
            "/api/%",
        ] {
            let _ = r.upstream_uri(path, Some("\u{7f}"));
        }
    }

    #[test]
    fn host_header_is_the_upstream_authority() {
        assert_eq!(route("/api", "http://h:81/b", false).host_header(), "h:81");
        assert_eq!(route("/api", "https://h:443", false).host_header(), "h");
        assert_eq!(
            route("/api", "http://[::1]:9/", false).host_header(),
            "[::1]:9"
        );
    }

    #[test]
    fn prefixes_are_normalised_or_refused() {
        assert_eq!(normalise_prefix("/api/").as_deref(), Ok("/api"));
        assert_eq!(normalise_prefix("/").as_deref(), Ok("/"));
        for bad in [
            "api", "/a//b", "/a/../b", "/a/./b", "/a%2f", "/a?x", "/bff", "/bff/x", "/a\\b",
        ] {
            assert!(normalise_prefix(bad).is_err(), "{bad}");
        }
        assert!(normalise_prefix("/bffx").is_ok());
    }

    #[test]
    fn invalid_upstreams_and_duplicates_are_refused() {
        for bad in ["ftp://h/", "http://u:p@h/", "http://h/?q=1", "http://h/#f"] {
            let err = Route::compile(3, &config("/api", bad, false)).expect_err(bad);
            assert!(
                matches!(err, ProxyError::InvalidRoute { index: 3, .. }),
                "{bad}"
            );
        }
        let dup = compile_all(&[
            config("/api", "http://a", false),
            config("/api/", "http://b", false),
        ]);
        assert!(matches!(
            dup,
            Err(ProxyError::InvalidRoute { index: 1, .. })
        ));
        let mut zero = config("/api", "http://a", false);
        zero.timeout = Duration::ZERO;
        assert!(Route::compile(0, &zero).is_err());
    }
}
