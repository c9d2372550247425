//! The keys this build accepts, by section, with the shape of their values.
//!
//! The model's serde derive remains the judge of what is unknown; this table tells the
//! environment overrides how to read a value (a numeric client secret stays a string), names
//! the key meant when an unknown one is a typo (`suggest`), and lets the tests hold
//! `ward.example.toml` to documenting every key.

/// How an environment value for a key is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Taken verbatim as a string.
    Text,
    /// Parsed as a TOML array, integer, boolean or inline table when it is one.
    Structured,
}

/// Sections that are tables; `routes` and `composites` are arrays of tables.
pub(crate) const SECTIONS: &[&str] = &[
    "server",
    "oidc",
    "session",
    "login",
    "logout",
    "store",
    "crypto",
    "rate_limit",
    "static",
    "telemetry",
    "outbound",
    "admin",
    "routes",
    "composites",
];

/// `(section, key, shape)` of every key of the table sections.
pub(crate) const KEYS: &[(&str, &str, Shape)] = &[
    ("server", "listen", Shape::Text),
    ("server", "public_url", Shape::Text),
    ("server", "trusted_proxy_hops", Shape::Structured),
    ("server", "insecure_dev", Shape::Structured),
    ("server", "cors_origins", Shape::Structured),
    ("server", "max_request_body", Shape::Structured),
    ("server", "workers", Shape::Structured),
    ("server", "max_connections", Shape::Structured),
    ("server", "header_read_timeout", Shape::Text),
    ("server", "idle_timeout", Shape::Text),
    ("server", "shutdown_timeout", Shape::Text),
    ("server", "tls_cert", Shape::Text),
    ("server", "tls_key", Shape::Text),
    ("server", "hsts", Shape::Text),
    ("oidc", "issuer", Shape::Text),
    ("oidc", "client_id", Shape::Text),
    ("oidc", "client_secret", Shape::Text),
    ("oidc", "client_secret_file", Shape::Text),
    ("oidc", "client_auth", Shape::Text),
    ("oidc", "private_key_file", Shape::Text),
    ("oidc", "private_key_id", Shape::Text),
    ("oidc", "client_cert", Shape::Text),
    ("oidc", "client_key", Shape::Text),
    ("oidc", "par", Shape::Text),
    ("oidc", "dpop", Shape::Structured),
    ("oidc", "scopes", Shape::Structured),
    ("oidc", "extra_auth_params", Shape::Structured),
    ("oidc", "refresh_skew", Shape::Text),
    ("session", "cookie_name", Shape::Text),
    ("session", "same_site", Shape::Text),
    ("session", "idle_timeout", Shape::Text),
    ("session", "absolute_timeout", Shape::Text),
    ("session", "claims", Shape::Structured),
    ("login", "error_path", Shape::Text),
    ("login", "password_grant", Shape::Structured),
    ("logout", "redirect_path", Shape::Text),
    ("logout", "id_token_hint", Shape::Structured),
    ("store", "kind", Shape::Text),
    ("store", "path", Shape::Text),
    ("store", "url", Shape::Text),
    ("store", "url_file", Shape::Text),
    ("store", "key_prefix", Shape::Text),
    ("store", "cache_ttl", Shape::Text),
    ("store", "client_cache", Shape::Structured),
    ("crypto", "keys", Shape::Structured),
    ("crypto", "keys_file", Shape::Text),
    ("rate_limit", "login", Shape::Structured),
    ("rate_limit", "api", Shape::Structured),
    ("rate_limit", "anonymous", Shape::Structured),
    ("rate_limit", "invalid_session", Shape::Structured),
    ("rate_limit", "backend", Shape::Text),
    ("static", "dir", Shape::Text),
    ("static", "trusted_types", Shape::Structured),
    ("static", "csp", Shape::Text),
    ("telemetry", "log_format", Shape::Text),
    ("telemetry", "log_level", Shape::Text),
    ("telemetry", "otlp_endpoint", Shape::Text),
    ("telemetry", "otlp_protocol", Shape::Text),
    ("telemetry", "service_name", Shape::Text),
    ("telemetry", "sampling_ratio", Shape::Structured),
    ("outbound", "ca_file", Shape::Text),
    ("admin", "listen", Shape::Text),
    ("admin", "token", Shape::Text),
    ("admin", "token_file", Shape::Text),
];

/// Keys of one `[[routes]]` entry.
pub(crate) const ROUTE_KEYS: &[&str] = &[
    "prefix",
    "upstream",
    "token",
    "strip_prefix",
    "timeout",
    "max_request_body",
    "scopes",
    "resource",
    "token_exchange",
    "fields",
    "profiles",
    "max_buffered_response",
];

/// Keys of one `[[composites]]` entry (a part's table keys are documented with `parts`).
#[cfg(test)]
pub(crate) const COMPOSITE_KEYS: &[&str] = &["path", "parts", "timeout"];

/// The shape of `section.key`, `None` when this build has no such key.
pub(crate) fn shape_of(section: &str, key: &str) -> Option<Shape> {
    KEYS.iter()
        .find(|(s, k, _)| *s == section && *k == key)
        .map(|(_, _, shape)| *shape)
}
