//! What types cannot check: origins, body limits, cookie-name rules, lifetimes, the refresh
//! skew, key shapes, paths, the admin listener, routes (in `routes.rs`) and the store (in
//! `store.rs`).
//!
//! Every check runs and reports into one list. A section that failed to deserialize is `None`
//! in the [`Draft`] and its checks are skipped: its problems are already on the list.

use std::net::SocketAddr;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use url::Url;

use super::RateLimitConfig;
use super::duration;
use super::effective::{cookie_prefix, is_loopback_host, is_secure_origin};
use super::errors::{ConfigErrors, Problems};
use super::model::*;
use super::outbound::OutboundConfig;
use super::outbound::check_outbound;
use super::rate_limit::check_rate_limit;
use super::routes::{check_body_limit, check_routes};
use super::secrets::KeyEntry;
use super::static_policy;
use super::store::check_store;
use super::telemetry::check_telemetry;
use super::tls::check_tls;
use crate::secret::SecretString;

/// The session cookie name every fresh install gets; in a plain-http `insecure_dev` setup its
/// prefix is dropped instead of refusing to start (see `effective.rs`).
const DEFAULT_COOKIE_NAME: &str = "__Host-ward";

/// Authorization request parameters Ward sets itself; `extra_auth_params` must not replace them
/// (state, nonce and PKCE are what make the login safe).
const RESERVED_AUTH_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
];

/// The admin token's minimum length: it is a bearer secret that lists and revokes sessions, so
/// it must resist guessing as well as a 128-bit key does in hex.
const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// The configuration as far as it deserialized.
#[derive(Default)]
pub(crate) struct Draft<'a> {
    pub(crate) server: Option<&'a ServerConfig>,
    pub(crate) oidc: Option<&'a OidcConfig>,
    pub(crate) client_secret: Option<&'a SecretString>,
    pub(crate) session: Option<&'a SessionConfig>,
    pub(crate) login: Option<&'a LoginConfig>,
    pub(crate) logout: Option<&'a LogoutConfig>,
    pub(crate) store: Option<&'a StoreConfig>,
    pub(crate) keys: Option<&'a [KeyEntry]>,
    pub(crate) rate_limit: Option<&'a RateLimitConfig>,
    /// `Some(None)` when `[static]` is absent, `None` when it failed to deserialize.
    pub(crate) static_files: Option<Option<&'a StaticConfig>>,
    pub(crate) telemetry: Option<&'a TelemetryConfig>,
    pub(crate) outbound: Option<&'a OutboundConfig>,
    /// `Some(None)` when `[admin]` is absent, `None` when it failed to deserialize.
    pub(crate) admin: Option<Option<&'a AdminConfig>>,
    /// The routes that deserialized, with their index in `[[routes]]`.
    pub(crate) routes: Vec<(usize, &'a RouteConfig)>,
    /// The composites that deserialized, with their index in `[[composites]]`.
    pub(crate) composites: Vec<(usize, &'a super::CompositeConfig)>,
}

/// Checks a complete configuration (one built in code rather than loaded).
pub fn validate(config: &Config) -> Result<(), ConfigErrors> {
    let keys: Vec<KeyEntry> = config
        .crypto
        .keys
        .iter()
        .enumerate()
        .map(|(index, value)| KeyEntry {
            label: format!("crypto.keys[{index}]"),
            value: value.clone(),
        })
        .collect();
    let draft = Draft {
        server: Some(&config.server),
        oidc: Some(&config.oidc),
        client_secret: Some(&config.oidc.client_secret),
        session: Some(&config.session),
        login: Some(&config.login),
        logout: Some(&config.logout),
        store: Some(&config.store),
        keys: Some(&keys),
        rate_limit: Some(&config.rate_limit),
        static_files: Some(config.static_files.as_ref()),
        telemetry: Some(&config.telemetry),
        outbound: Some(&config.outbound),
        admin: Some(config.admin.as_ref()),
        routes: config.routes.iter().enumerate().collect(),
        composites: config.composites.iter().enumerate().collect(),
    };
    let mut problems = Problems::default();
    check(&draft, &mut problems);
    problems.into_result(Some(()))
}

/// Runs every check that the deserialized sections allow.
pub(crate) fn check(draft: &Draft<'_>, out: &mut Problems) {
    if let Some(server) = draft.server {
        check_server(server, out);
    }
    let insecure_dev = draft.server.map(|s| s.insecure_dev);
    if let Some(oidc) = draft.oidc {
        check_oidc(oidc, insecure_dev, out);
        super::client_auth::check(oidc, out);
    }
    let uses_secret = draft.oidc.is_none_or(|oidc| oidc.client_auth.uses_secret());
    if uses_secret && draft.client_secret.is_some_and(SecretString::is_empty) {
        out.push(
            "oidc.client_secret",
            "required (or oidc.client_secret_file, or WARD_OIDC__CLIENT_SECRET)",
        );
    }
    if let Some(session) = draft.session {
        check_session(session, draft.server, out);
    }
    if let (Some(oidc), Some(session)) = (draft.oidc, draft.session) {
        check_refresh_skew(oidc, session, out);
    }
    if let Some(login) = draft.login {
        check_local_path("login.error_path", &login.error_path, out);
    }
    if let Some(logout) = draft.logout {
        check_local_path("logout.redirect_path", &logout.redirect_path, out);
    }
    if let Some(store) = draft.store {
        check_store(store, out);
    }
    if let Some(keys) = draft.keys {
        check_keys(keys, out);
    }
    if let Some(rate_limit) = draft.rate_limit {
        check_rate_limit(rate_limit, draft.store, out);
    }
    if let Some(Some(static_files)) = draft.static_files {
        check_static_dir(&static_files.dir, out);
        static_policy::check(static_files, out);
    }
    if let Some(telemetry) = draft.telemetry {
        check_telemetry(telemetry, out);
    }
    if let Some(outbound) = draft.outbound {
        check_outbound(outbound, out);
    }
    if let Some(Some(admin)) = draft.admin {
        check_admin(admin, draft.server, out);
    }
    check_routes(&draft.routes, draft.static_files.flatten().is_some(), out);
    if draft
        .store
        .is_some_and(|store| store.kind == StoreKind::Cookie)
    {
        // The cookie store has no lock: two requests (or two parts of one composite) could
        // spend one rotating refresh token at once, and the last Set-Cookie could restore a
        // rotated-out one. Resource tokens need the shared refresh lock of a server-side store.
        for (index, route) in &draft.routes {
            if route.resource.is_some() {
                out.push(
                    format!("routes[{index}].resource"),
                    "needs a server-side [store] (memory, embedded, redis, postgres): with \
                     kind = \"cookie\" concurrent grants could spend one refresh token twice",
                );
            }
        }
    }
    if draft.oidc.is_some_and(|oidc| oidc.dpop) {
        // A resource token comes from a refresh grant (or an exchange) that carries no DPoP
        // proof yet: an IdP binding the client's tokens would refuse it, and an unbound token
        // would weaken the route. Refused until resource tokens are DPoP-bound too.
        for (index, route) in &draft.routes {
            if route.resource.is_some() {
                out.push(
                    format!("routes[{index}].resource"),
                    "is not supported together with [oidc] dpop = true yet (resource tokens \
                     would not be DPoP-bound)",
                );
            }
        }
    }
    super::composite_checks::check_composites(&draft.composites, &draft.routes, out);
}

fn check_admin(admin: &AdminConfig, server: Option<&ServerConfig>, out: &mut Problems) {
    if admin.token.is_empty() {
        out.push(
            "admin.token",
            "required when [admin] is present (or admin.token_file, or WARD_ADMIN__TOKEN)",
        );
    } else if admin.token.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS {
        out.push(
            "admin.token",
            format!(
                "must be at least {MIN_ADMIN_TOKEN_CHARS} characters: it is the bearer secret \
                 that lists and revokes sessions (e.g. the output of `openssl rand -hex 32`)"
            ),
        );
    }
    if let Some(server) = server
        && listeners_overlap(admin.listen, server.listen)
    {
        out.push(
            "admin.listen",
            "must differ from server.listen (same port on the same or an overlapping address)",
        );
    }
}

/// Whether binding both addresses would collide: the same port (not 0, which picks a free one)
/// on the same address, or with either on the unspecified address (every interface).
fn listeners_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Most serving threads: far more than cores only adds switching (and each keeps its own
/// upstream connections).
const MAX_WORKERS: u16 = 256;

fn check_server(server: &ServerConfig, out: &mut Problems) {
    check_body_limit("server.max_request_body", server.max_request_body, out);
    if let Some(workers) = server.workers
        && !(1..=MAX_WORKERS).contains(&workers)
    {
        out.push(
            "server.workers",
            format!("{workers} is out of range: 1 to {MAX_WORKERS} (absent: one per CPU core)"),
        );
    }
    if server.max_connections == 0 {
        out.push(
            "server.max_connections",
            "must be at least 1 (it caps open client connections)",
        );
    }
    for (key, value) in [
        ("server.header_read_timeout", server.header_read_timeout),
        ("server.idle_timeout", server.idle_timeout),
        ("server.shutdown_timeout", server.shutdown_timeout),
    ] {
        if value.is_zero() {
            out.push(key, "must be greater than zero");
        }
    }
    check_tls(server, out);
    let url = &server.public_url;
    if let Err(reason) = origin_shape(url) {
        out.push("server.public_url", reason);
    } else if !is_secure_origin(url) && !server.insecure_dev {
        out.push(
            "server.public_url",
            "plain http is only allowed for localhost or a loopback address; use https \
             (or server.insecure_dev = true, for development only)",
        );
    }
    for (index, origin) in server.cors_origins.iter().enumerate() {
        let path = format!("server.cors_origins[{index}]");
        match Url::parse(origin) {
            Ok(url) if origin_shape(&url).is_ok() => {
                let canonical = url.origin().ascii_serialization();
                if *origin != canonical {
                    out.push(
                        path,
                        format!("{origin:?} is not an origin; write {canonical:?}"),
                    );
                }
            }
            Ok(_) | Err(_) => out.push(
                path,
                format!("{origin:?} is not an origin (scheme://host[:port])"),
            ),
        }
    }
}

/// An http(s) origin: scheme, host, port, and no path but `/`.
fn origin_shape(url: &Url) -> Result<(), String> {
    http_url_shape(url)?;
    if url.path() != "/" {
        return Err("must be an origin (scheme://host[:port]) without a path".into());
    }
    Ok(())
}

/// http or https, a host, no credentials, query or fragment.
pub(super) fn http_url_shape(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be http or https, not {:?}",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err("must have a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(())
}

fn check_oidc(oidc: &OidcConfig, insecure_dev: Option<bool>, out: &mut Problems) {
    match http_url_shape(&oidc.issuer) {
        Err(reason) => out.push("oidc.issuer", reason),
        Ok(()) => {
            let plain_remote = oidc.issuer.scheme() == "http" && !is_loopback_host(&oidc.issuer);
            if plain_remote && insecure_dev == Some(false) {
                out.push(
                    "oidc.issuer",
                    "must be https unless it is on localhost or a loopback address \
                     (or server.insecure_dev = true)",
                );
            }
        }
    }
    if oidc.client_id.is_empty() {
        out.push("oidc.client_id", "must not be empty");
    }
    if !oidc.scopes.iter().any(|scope| scope == "openid") {
        out.push("oidc.scopes", "must contain \"openid\"");
    }
    for (index, scope) in oidc.scopes.iter().enumerate() {
        if scope.is_empty() || scope.contains(|c: char| c.is_whitespace() || c.is_control()) {
            out.push(
                format!("oidc.scopes[{index}]"),
                "must be one scope without spaces",
            );
        }
    }
    for name in oidc.extra_auth_params.keys() {
        if RESERVED_AUTH_PARAMS.contains(&name.as_str()) {
            out.push(
                format!("oidc.extra_auth_params.{name}"),
                "is set by Ward itself and cannot be overridden",
            );
        }
    }
}

fn check_session(session: &SessionConfig, server: Option<&ServerConfig>, out: &mut Problems) {
    check_cookie_name(&session.cookie_name, server, out);
    if session.idle_timeout.is_zero() {
        out.push("session.idle_timeout", "must be greater than zero");
    }
    if session.absolute_timeout.is_zero() {
        out.push("session.absolute_timeout", "must be greater than zero");
    } else if session.idle_timeout > session.absolute_timeout {
        out.push(
            "session.idle_timeout",
            "must not exceed session.absolute_timeout",
        );
    }
    for (index, claim) in session.claims.iter().flatten().enumerate() {
        if claim.is_empty() {
            out.push(format!("session.claims[{index}]"), "must not be empty");
        }
    }
}

/// A skew as long as the session would refresh on every request for all of its life; a zero
/// `absolute_timeout` is reported on its own.
fn check_refresh_skew(oidc: &OidcConfig, session: &SessionConfig, out: &mut Problems) {
    let lifetime = session.absolute_timeout;
    if !lifetime.is_zero() && oidc.refresh_skew >= lifetime {
        out.push(
            "oidc.refresh_skew",
            format!(
                "must be shorter than session.absolute_timeout ({})",
                duration::format(lifetime)
            ),
        );
    }
}

fn check_cookie_name(name: &str, server: Option<&ServerConfig>, out: &mut Problems) {
    const KEY: &str = "session.cookie_name";
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        out.push(
            KEY,
            format!("{name:?} is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)"),
        );
        return;
    }
    let prefix = cookie_prefix(name);
    if prefix.is_some_and(|p| p.len() == name.len()) {
        out.push(KEY, format!("{name:?} has a prefix but no name after it"));
        return;
    }
    let Some(server) = server else { return };
    let secure = is_secure_origin(&server.public_url);
    if !server.insecure_dev {
        if !name.starts_with("__Host-") {
            out.push(
                KEY,
                format!("{name:?} must start with \"__Host-\" or \"__Host-Http-\""),
            );
        }
    } else if !secure && prefix.is_some() && name != DEFAULT_COOKIE_NAME {
        out.push(
            KEY,
            format!(
                "{name:?}: browsers reject a {:?} cookie without Secure, which a plain-http \
                 public_url cannot have; use a name without the prefix",
                prefix.unwrap_or_default()
            ),
        );
    }
}

/// RFC 6265 `token`: visible ASCII except separators.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !br#"()<>@,;:\"/[]?={}"#.contains(&b)
}

/// A path on Ward's own origin: one leading `/`, no `//` or `/\` (which browsers read as
/// another host), no query, fragment, spaces or control characters.
fn check_local_path(key: &str, path: &str, out: &mut Problems) {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.contains(['?', '#'])
        && !path.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        out.push(
            key,
            format!("{path:?} must be a local path starting with a single \"/\" (no query)"),
        );
    }
}

fn check_keys(keys: &[KeyEntry], out: &mut Problems) {
    if keys.is_empty() {
        out.push(
            "crypto.keys",
            "at least one key is required (or crypto.keys_file, or WARD_CRYPTO__KEYS); \
             `ward keygen` prints one",
        );
    }
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for entry in keys {
        match key_id(entry.value.expose()) {
            Err(reason) => out.push(entry.label.as_str(), reason),
            Ok(kid) => match seen.iter().find(|(other, _)| *other == kid) {
                Some((_, first)) => out.push(
                    entry.label.as_str(),
                    format!("key id is already used by {first}"),
                ),
                None => seen.push((kid, entry.label.as_str())),
            },
        }
    }
}

/// The kid of a `<kid>:<base64 of 32 bytes>` entry. Messages never quote the entry.
fn key_id(entry: &str) -> Result<&str, String> {
    let Some((kid, material)) = entry.split_once(':') else {
        return Err("expected \"<kid>:<base64 of 32 bytes>\"".into());
    };
    let kid_ok = (1..=32).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !kid_ok {
        return Err("key id must be 1-32 characters of A-Z, a-z, 0-9, _ and -".into());
    }
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(material).ok());
    match decoded.map(|bytes| bytes.len()) {
        None => Err("key material is not base64".into()),
        Some(32) => Ok(kid),
        Some(n) => Err(format!("key material is {n} bytes, expected 32")),
    }
}

fn check_static_dir(dir: &Path, out: &mut Problems) {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => out.push(
            "static.dir",
            format!("{} is not a directory", dir.display()),
        ),
        Err(error) => out.push("static.dir", format!("{}: {error}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_entries_need_a_kid_and_32_bytes_of_base64_in_any_alphabet() {
        let std_padded = STANDARD.encode([7u8; 32]);
        let url_nopad = URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        assert_eq!(key_id(&format!("k1:{std_padded}")), Ok("k1"));
        assert_eq!(key_id(&format!("key_2-b:{url_nopad}")), Ok("key_2-b"));
        assert!(key_id(&std_padded).is_err());
        assert!(key_id(&format!(":{std_padded}")).is_err());
        assert!(key_id(&format!("k.1:{std_padded}")).is_err());
        assert!(key_id(&format!("{}:{std_padded}", "k".repeat(33))).is_err());
        assert!(key_id("k1:not base64!").is_err());
        assert_eq!(
            key_id(&format!("k1:{}", STANDARD.encode([1u8; 16]))),
            Err("key material is 16 bytes, expected 32".to_owned())
        );
    }

    #[test]
    fn listeners_overlap_on_the_same_port_of_a_shared_address() {
        let addr = |text: &str| text.parse::<SocketAddr>().expect("test address parses");
        for (a, b) in [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("127.0.0.1:8080", "[::]:8080"),
        ] {
            assert!(listeners_overlap(addr(a), addr(b)), "{a} {b}");
        }
        for (a, b) in [
            ("127.0.0.1:9090", "127.0.0.1:8080"),
            ("127.0.0.1:8080", "10.0.0.1:8080"),
            ("127.0.0.1:0", "127.0.0.1:0"),
            ("0.0.0.0:0", "0.0.0.0:0"),
        ] {
            assert!(!listeners_overlap(addr(a), addr(b)), "{a} {b}");
        }
    }

    #[test]
    fn cookie_tokens_exclude_separators_and_spaces() {
        assert!(
            b"__Host-ward!#$%&'*+.^_`|~"
                .iter()
                .all(|b| is_token_byte(*b))
        );
        for b in b"()<>@,;:\\\"/[]?={} \t\x7f" {
            assert!(!is_token_byte(*b), "{}", *b as char);
        }
    }

    #[test]
    fn local_paths_are_single_slash_paths_without_query() {
        let mut problems = Problems::default();
        for ok in ["/", "/logged-out", "/a/b"] {
            check_local_path("p", ok, &mut problems);
        }
        assert!(problems.is_empty());
        for bad in [
            "",
            "x",
            "//evil.com",
            "/\\evil.com",
            "/a?b=1",
            "/a b",
            "https://x/",
        ] {
            let mut problems = Problems::default();
            check_local_path("p", bad, &mut problems);
            assert!(!problems.is_empty(), "{bad}");
        }
    }
}
