//! The configuration as plain data: what `ward.toml` (plus `WARD_*` overrides) deserializes into.
//! Defaults here are the documented ones of `ward.example.toml`; `validate` checks what types
//! cannot.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

pub use super::client_auth::{ClientAuth, ParMode};
use crate::secret::SecretString;

/// Everything Ward reads from its configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Config {
    /// `[server]`
    #[serde(default)]
    pub server: ServerConfig,
    /// `[oidc]`
    pub oidc: OidcConfig,
    /// `[session]`
    #[serde(default)]
    pub session: SessionConfig,
    /// `[login]`
    #[serde(default)]
    pub login: LoginConfig,
    /// `[logout]`
    #[serde(default)]
    pub logout: LogoutConfig,
    /// `[store]`
    #[serde(default)]
    pub store: StoreConfig,
    /// `[crypto]`
    pub crypto: CryptoConfig,
    /// `[rate_limit]`
    #[serde(default)]
    pub rate_limit: super::RateLimitConfig,
    /// `[static]`: serve the SPA's files.
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_files: Option<StaticConfig>,
    /// `[telemetry]`
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// `[outbound]`: trust (a private CA) and the egress proxy of Ward's own connections.
    #[serde(default)]
    pub outbound: super::OutboundConfig,
    /// `[admin]`: the admin listener (health, readiness, session administration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminConfig>,
    /// `[[routes]]`: the API proxy's route table.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// `[[composites]]`: one browser request answered by several routes at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub composites: Vec<super::CompositeConfig>,
}

/// `[server]`: where Ward listens and the origin the browser sees.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServerConfig {
    /// Socket address to bind.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// The origin the browser sees (scheme, host, port; no path).
    #[serde(
        default = "defaults::public_url",
        deserialize_with = "super::absolute_url::public_url"
    )]
    pub public_url: Url,
    /// How many `X-Forwarded-For` hops (proxies in front of Ward) to trust.
    #[serde(default)]
    pub trusted_proxy_hops: u8,
    /// Allows a plain-http, non-loopback `public_url` (drops `__Host-` and `Secure`). Dev only.
    #[serde(default)]
    pub insecure_dev: bool,
    /// Origins allowed for CORS and for `Sec-Fetch-Site: same-site` unsafe requests.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Largest request body Ward accepts (bytes; 413 `payload_too_large` beyond). Routes may
    /// lower or raise it with their own `max_request_body`. Written as bytes or with a unit
    /// (`"10MiB"`, see `size.rs`); validated to 1 byte through 64 GiB.
    #[serde(default = "defaults::max_request_body", with = "crate::config::size")]
    pub max_request_body: u64,
    /// Threads serving requests, each with its own event loop and upstream connection pool
    /// (connections are handed to them in turn). Absent: one per CPU core Ward may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u16>,
    /// Most client connections open at once (WebSockets included); at the cap Ward stops
    /// accepting until one closes, so it never runs out of file descriptors. At least 1.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// From accept to the first complete request head, whatever the protocol (for HTTP/2:
    /// preface, SETTINGS and the first HEADERS); a connection that has not asked by then is
    /// closed. Greater than zero.
    #[serde(
        default = "defaults::header_read_timeout",
        with = "crate::config::duration"
    )]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight (HTTP/1 keep-alive, HTTP/2 without an open
    /// stream) for this long is closed (HTTP/2 with a GOAWAY). Greater than zero.
    #[serde(
        default = "defaults::conn_idle_timeout",
        with = "crate::config::duration"
    )]
    pub idle_timeout: Duration,
    /// On SIGTERM: how long in-flight requests may take to finish before what is still open
    /// is closed and Ward exits. Greater than zero.
    #[serde(
        default = "defaults::shutdown_timeout",
        with = "crate::config::duration"
    )]
    pub shutdown_timeout: Duration,
    /// TLS termination: the certificate chain (PEM, leaf first). With `tls_key`, Ward serves
    /// HTTPS (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`) and reloads the pair on SIGHUP and when
    /// the files change. Relative to the configuration file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// `Strict-Transport-Security` on every response (Ward's own and proxied) while TLS is on;
    /// never sent over plain HTTP. Must hold a `max-age` directive.
    #[serde(default = "defaults::hsts")]
    pub hsts: String,
}

/// `[oidc]`: the identity provider and Ward's client registration at it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OidcConfig {
    /// Issuer URL; discovery at `<issuer>/.well-known/openid-configuration`.
    #[serde(deserialize_with = "super::absolute_url::issuer")]
    pub issuer: Url,
    /// Ward's client id at the IdP.
    pub client_id: String,
    /// Ward's client secret (or `client_secret_file`, resolved at load). Serializes as `***`.
    #[serde(default, serialize_with = "crate::config::masked::secret")]
    pub client_secret: SecretString,
    /// How Ward authenticates at the token endpoint (and every other call that authenticates
    /// the client: revocation, PAR, client credentials).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// `private_key_jwt`: the signing key (PEM PKCS#8 / SEC1 / PKCS#1, or a private JWK),
    /// resolved against the configuration file's directory at load.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// `private_key_jwt`: the JWS `kid`; absent, the key's RFC 7638 JWK thumbprint.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// `tls_client_auth` (RFC 8705): Ward's client certificate chain (PEM, leaf first),
    /// presented to the IdP and to https upstreams of token-carrying routes; resolved against
    /// the configuration file's directory at load.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// `tls_client_auth`: the private key of `client_cert` (PEM: PKCS#8, SEC1 or PKCS#1);
    /// read at start, its bytes wiped after parsing.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// RFC 9126 pushed authorization requests.
    #[serde(default)]
    pub par: ParMode,
    /// RFC 9449: sender-constrained (DPoP-bound) tokens, with one key pair per session made at
    /// login and kept sealed in the session record.
    #[serde(default)]
    pub dpop: bool,
    /// Scopes requested at login.
    #[serde(default = "defaults::scopes")]
    pub scopes: Vec<String>,
    /// Extra parameters added to the authorization request (e.g. `audience`).
    #[serde(default)]
    pub extra_auth_params: BTreeMap<String, String>,
    /// Refresh the access token when it expires within this long; shorter than
    /// `session.absolute_timeout` (validated), zero refreshes only once it has expired.
    #[serde(default = "defaults::refresh_skew", with = "crate::config::duration")]
    pub refresh_skew: Duration,
}

/// `[session]`: the session cookie and lifetimes.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SessionConfig {
    /// Cookie name; `__Host-` or `__Host-Http-` prefixed unless `insecure_dev`.
    #[serde(default = "defaults::cookie_name")]
    pub cookie_name: String,
    /// `SameSite` attribute of the session cookie.
    #[serde(default)]
    pub same_site: SameSite,
    /// Sliding idle timeout.
    #[serde(default = "defaults::idle_timeout", with = "crate::config::duration")]
    pub idle_timeout: Duration,
    /// Absolute session lifetime from login.
    #[serde(
        default = "defaults::absolute_timeout",
        with = "crate::config::duration"
    )]
    pub absolute_timeout: Duration,
    /// Allow-list of claims returned by `/bff/user`; `None` returns all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Vec<String>>,
}

/// `SameSite` of the session cookie.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SameSite {
    /// `SameSite=Strict` (default).
    #[default]
    Strict,
    /// `SameSite=Lax`.
    Lax,
}

/// `[login]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LoginConfig {
    /// Local path the browser lands on when the IdP reports an error (`?bff_error=`).
    #[serde(default = "defaults::root_path")]
    pub error_path: String,
    /// Whether `POST /bff/login/password` (the resource-owner password grant) exists: off, as
    /// OAuth 2.1 drops the grant; for legacy IdPs without a browser flow only.
    #[serde(default)]
    pub password_grant: bool,
}

/// `[logout]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LogoutConfig {
    /// Local path the IdP sends the browser back to after logout.
    #[serde(default = "defaults::root_path")]
    pub redirect_path: String,
    /// Whether `logoutUrl` carries `id_token_hint` (puts the ID token in a browser URL).
    #[serde(default)]
    pub id_token_hint: bool,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StoreConfig {
    /// Which backend keeps sessions.
    #[serde(default)]
    pub kind: StoreKind,
    /// Database file of the embedded backend.
    #[serde(default = "defaults::store_path")]
    pub path: PathBuf,
    /// Connection URL of the `redis` (`redis://`, `rediss://`, `redis+cluster://` …) or
    /// `postgres` backend, required by those and refused by the others; the accepted forms are
    /// listed in `store.rs`. May hold a password (or `url_file`). Serializes masked.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::config::masked::optional_url"
    )]
    pub url: Option<SecretString>,
    /// Prefix of every Redis key and of the PostgreSQL tables' names (there with every
    /// character but letters, digits and `_` mapped to `_`), so several Ward deployments (or
    /// test runs) can share one server. 1-64 characters of `A-Z a-z 0-9 _ : . -`.
    #[serde(default = "defaults::key_prefix")]
    pub key_prefix: String,
    /// How long a session record read from Redis may be reused by this instance without
    /// reading it again (`redis` only; 0 s to 10 s). Zero: every request reads Redis, so a
    /// logout or revocation on another instance takes effect here at once. Above zero: one
    /// round trip less per request, and another instance's logout reaches this one up to this
    /// much later (this instance's own writes are seen at once).
    #[serde(default, with = "crate::config::duration")]
    pub cache_ttl: Duration,
    /// Reuse session record reads in process, kept correct across instances by Redis's
    /// server-assisted client caching (RESP3 `CLIENT TRACKING`): another instance's logout or
    /// refresh removes this instance's copy within milliseconds, and a lost connection to
    /// Redis empties the cache. `redis` on one server only (not a cluster); not with
    /// `cache_ttl`. Needs Redis 6 or later.
    #[serde(default)]
    pub client_cache: bool,
}

/// The session store backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// In-process memory: nothing survives a restart.
    Memory,
    /// A crash-safe embedded database file (default).
    #[default]
    Embedded,
    /// Redis, standalone or cluster: shared by several Ward instances.
    Redis,
    /// PostgreSQL: shared by several Ward instances.
    Postgres,
    /// Stateless: the sealed session travels in chunked cookies (no server-side revocation).
    Cookie,
}

/// `[admin]`: a second listener, loopback by default, for operations.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AdminConfig {
    /// Socket address of the admin listener.
    #[serde(default = "defaults::admin_listen")]
    pub listen: SocketAddr,
    /// Bearer token required by `/admin/*` (or `token_file`); at least 32 characters.
    /// Serializes masked.
    #[serde(default, serialize_with = "crate::config::masked::secret")]
    pub token: SecretString,
}

/// `[crypto]`: the key ring sealing everything at rest.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CryptoConfig {
    /// `"<kid>:<base64 of 32 bytes>"` entries; the first seals, all open. Serializes as
    /// `"<kid>:***"`.
    #[serde(serialize_with = "crate::config::masked::keys")]
    pub keys: Vec<SecretString>,
}

/// `[static]`: serve the SPA.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StaticConfig {
    /// Directory with `index.html` and assets.
    pub dir: PathBuf,
    /// Trusted Types policy names the page may create: Ward's CSP gets a `trusted-types`
    /// directive with them (`[]`: `'none'`, no policy). Absent: any name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_types: Option<Vec<String>>,
    /// A CSP for the HTML documents that replaces Ward's template; each `{nonce}` becomes the
    /// response's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csp: Option<String>,
}

/// `[telemetry]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TelemetryConfig {
    /// Log line format.
    #[serde(default)]
    pub log_format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `ward=debug`.
    #[serde(default = "defaults::log_level")]
    pub log_level: String,
    /// OTLP collector base URL (as `OTEL_EXPORTER_OTLP_ENDPOINT`; `/v1/traces` is appended for
    /// HTTP). Absent: no traces are exported.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::absolute_url::otlp_endpoint"
    )]
    pub otlp_endpoint: Option<Url>,
    /// OTLP transport.
    #[serde(default)]
    pub otlp_protocol: OtlpProtocol,
    /// `service.name` of the exported resource.
    #[serde(default = "defaults::service_name")]
    pub service_name: String,
    /// Share of new traces recorded, in `[0, 1]` (parent-based ratio sampler).
    #[serde(default = "defaults::sampling_ratio")]
    pub sampling_ratio: f64,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP over gRPC (default port 4317).
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (default port 4318).
    Http,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line (default).
    #[default]
    Json,
    /// Human-readable lines.
    Pretty,
}

/// One `[[routes]]` entry of the API proxy.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RouteConfig {
    /// Path prefix, matched on whole segments.
    pub prefix: String,
    /// Upstream base URL (`http` or `https`; a path is a base path).
    #[serde(deserialize_with = "super::absolute_url::upstream")]
    pub upstream: Url,
    /// Which token the upstream receives.
    pub token: TokenMode,
    /// Remove `prefix` from the forwarded path.
    #[serde(default)]
    pub strip_prefix: bool,
    /// How long to wait for the upstream's response headers (504 when exceeded); the body
    /// then streams without a deadline.
    #[serde(default = "defaults::route_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    /// Largest request body for this route (bytes, 1 through 64 GiB); `[server]
    /// max_request_body` when unset.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::size::option"
    )]
    pub max_request_body: Option<u64>,
    /// Scopes of Ward's own client-credentials token. Only accepted with `token = "client"`,
    /// never empty when present, each an RFC 6749 scope token (validated); `None` sends no
    /// `scope` parameter, so the IdP grants the client's default scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// RFC 8707 resource indicator: the upstream receives an access token for this audience
    /// only (an absolute URI without fragment or query, sent to the IdP exactly as written).
    /// With `token = "user"`/`"user-optional"` it is obtained per session by a refresh grant
    /// (`session::resource_tokens`) and named in every authorization request; with
    /// `token = "client"` it is sent with the client-credentials grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Obtain the `resource` token by RFC 8693 token exchange of the session's access token
    /// instead of a refresh grant (only with `resource` on a `user`/`user-optional` route).
    #[serde(default)]
    pub token_exchange: bool,
    /// Allow-list of the fields of JSON responses (`a.b`, `items[].sku`; `proxy::fields`);
    /// `None` passes responses untouched, streamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// Per-client shaping: field lists by the name a request gives in `X-Client-Profile`
    /// (`proxy::routes`), applied after `fields`. Names are 1-32 of `a-z 0-9 _ -`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, Vec<String>>,
    /// Largest upstream response body Ward buffers on this route: to trim it to `fields`, or
    /// to embed it in a composite. Over it: `502`. 1 byte through 1 GiB.
    #[serde(
        default = "defaults::max_buffered_response",
        with = "crate::config::size"
    )]
    pub max_buffered_response: u64,
}

/// Token attached to upstream requests of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenMode {
    /// A valid session is required; its access token is attached.
    User,
    /// The session's access token is attached when there is a session; none otherwise.
    UserOptional,
    /// Ward's own client-credentials token (cached until near expiry).
    Client,
    /// No token; the route is public.
    None,
}

macro_rules! default_impl {
    ($($ty:ty),*) => {$(
        impl Default for $ty {
            fn default() -> Self {
                toml::from_str("").expect("every field of this section has a default")
            }
        }
    )*};
}
default_impl!(
    ServerConfig,
    SessionConfig,
    LoginConfig,
    LogoutConfig,
    StoreConfig,
    TelemetryConfig
);

mod defaults {
    use super::*;

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn hsts() -> String {
        "max-age=63072000; includeSubDomains".to_owned()
    }
    pub fn public_url() -> Url {
        Url::parse("http://localhost:8080").expect("constant URL")
    }
    pub fn scopes() -> Vec<String> {
        ["openid", "profile", "email", "offline_access"]
            .map(String::from)
            .to_vec()
    }
    pub fn cookie_name() -> String {
        "__Host-ward".to_owned()
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(30 * 60)
    }
    pub fn absolute_timeout() -> Duration {
        Duration::from_secs(8 * 3600)
    }
    pub fn root_path() -> String {
        "/".to_owned()
    }
    pub fn store_path() -> PathBuf {
        PathBuf::from("ward-data/ward.db")
    }
    pub fn key_prefix() -> String {
        "ward:".to_owned()
    }
    pub fn admin_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9090))
    }
    pub fn refresh_skew() -> Duration {
        Duration::from_secs(60)
    }
    pub fn max_request_body() -> u64 {
        10 * 1024 * 1024
    }
    pub fn log_level() -> String {
        "info".to_owned()
    }
    pub fn service_name() -> String {
        "ward".to_owned()
    }
    pub fn sampling_ratio() -> f64 {
        1.0
    }
    pub fn max_buffered_response() -> u64 {
        4 * 1024 * 1024
    }
    pub fn route_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_connections() -> u32 {
        10_000
    }
    pub fn header_read_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn conn_idle_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn shutdown_timeout() -> Duration {
        Duration::from_secs(30)
    }
}
