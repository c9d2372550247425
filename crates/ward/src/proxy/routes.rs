//! The route table: `[[routes]]` compiled once at start-up, matched on whole path segments.

use std::time::Duration;

use axum::http::uri::{Authority, PathAndQuery, Scheme, Uri};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use url::{Position, Url};

use super::ProxyError;
use super::fields::FieldSet;
use super::path;
use crate::config::{RouteConfig, TokenMode};
use crate::telemetry::metrics::RouteSeries;

/// The request header that picks a route's client profile (`profiles`).
pub const CLIENT_PROFILE: HeaderName = HeaderName::from_static("x-client-profile");

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    /// Which token the upstream receives.
    pub token: TokenMode,
    /// Scopes of Ward's client-credentials token (`token = "client"`); `None`: no `scope`.
    pub scopes: Option<Vec<String>>,
    /// RFC 8707 resource indicator: the upstream gets a token for this audience only.
    pub resource: Option<String>,
    /// The resource token comes from RFC 8693 token exchange rather than a refresh grant.
    pub token_exchange: bool,
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
    /// Per-client field lists, by the name `X-Client-Profile` gives; applied after `fields`.
    profiles: Vec<(String, FieldSet)>,
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
        let profiles = config
            .profiles
            .iter()
            .map(|(name, fields)| Ok((name.clone(), FieldSet::parse(fields)?)))
            .collect::<Result<_, super::fields::FieldPathError>>()
            .map_err(|err| invalid(&format!("profiles: {err}")))?;
        Ok(Self {
            metrics: crate::telemetry::metrics::route(&prefix),
            token: config.token,
            scopes: config.scopes.clone(),
            resource: config.resource.clone(),
            token_exchange: config.token_exchange,
            prefix,
            upstream,
            strip_prefix: config.strip_prefix,
            timeout: config.timeout,
            max_request_body: config.max_request_body,
            fields,
            profiles,
            max_buffered_response: config.max_buffered_response,
        })
    }

    /// The allow-list of its JSON responses, when it trims them.
    pub fn fields(&self) -> Option<&FieldSet> {
        self.fields.as_ref()
    }

    /// Whether it has client profiles (its responses then vary by `X-Client-Profile`).
    pub fn has_profiles(&self) -> bool {
        !self.profiles.is_empty()
    }

    /// The allow-lists a response to a request with `headers` is trimmed to, in order: the
    /// route's `fields`, then the profile `X-Client-Profile` names (an unknown or absent name
    /// adds none). Empty: the response streams untouched.
    pub(crate) fn trims_for(&self, headers: &HeaderMap) -> Vec<&FieldSet> {
        let profile = headers
            .get(CLIENT_PROFILE)
            .and_then(|value| value.to_str().ok())
            .and_then(|name| self.profiles.iter().find(|(n, _)| n == name.trim()))
            .map(|(_, fields)| fields);
        self.fields.iter().chain(profile).collect()
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

    /// [`upstream_uri`](Self::upstream_uri) for the request URI `uri`. When the upstream
    /// receives the path unchanged (no `strip_prefix`, no base path), its path and query are
    /// reused as they came (shared bytes, not copied or parsed again).
    pub(crate) fn upstream_uri_of(&self, uri: &Uri) -> Option<Uri> {
        match uri.path_and_query() {
            // An absolute-form target with an empty path ("http://host?x") has no leading `/`:
            // the slow path gives it one.
            Some(same)
                if !self.strip_prefix
                    && self.upstream.base_path.is_empty()
                    && same.as_str().starts_with('/') =>
            {
                if !self.matches(same.path()) {
                    return None;
                }
                let mut parts = axum::http::uri::Parts::default();
                parts.scheme = Some(self.upstream.scheme.clone());
                parts.authority = Some(self.upstream.authority.clone());
                parts.path_and_query = Some(same.clone());
                Uri::from_parts(parts).ok()
            }
            _ => self.upstream_uri(uri.path(), uri.query()),
        }
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
mod tests;
