//! Checks of `[[routes]]` that types cannot make: prefixes (whole segments, unique, outside
//! `/bff`), upstream URLs, timeouts, body limits, the scopes of `token = "client"` routes, and
//! RFC 8707 resource indicators.

use super::errors::Problems;
use super::model::{RouteConfig, TokenMode};
use super::size;
use super::validate::http_url_shape;

/// The largest accepted `max_request_body`. Bodies stream, so this is no memory bound; a limit
/// above it is far more likely a slip of unit (`GB` for `MB`) than a real need.
pub(crate) const MAX_BODY_LIMIT: u64 = 64 << 30;

/// Checks every route, and each prefix against the earlier ones and `[static]`.
pub(crate) fn check_routes(
    routes: &[(usize, &RouteConfig)],
    static_files: bool,
    out: &mut Problems,
) {
    for (position, (index, route)) in routes.iter().enumerate() {
        let key = |field: &str| format!("routes[{index}].{field}");
        if let Err(reason) = route_prefix(&route.prefix) {
            out.push(key("prefix"), format!("{:?} {reason}", route.prefix));
        } else if route.prefix == "/" && static_files {
            out.push(
                key("prefix"),
                "\"/\" takes every path, and [static] serves the same paths",
            );
        }
        let earlier = routes[..position]
            .iter()
            .find(|(_, other)| other.prefix == route.prefix);
        if let Some((first, _)) = earlier {
            out.push(
                key("prefix"),
                format!(
                    "{:?} is already the prefix of routes[{first}]",
                    route.prefix
                ),
            );
        }
        if let Err(reason) = http_url_shape(&route.upstream) {
            out.push(key("upstream"), reason);
        }
        if route.timeout.is_zero() {
            out.push(key("timeout"), "must be greater than zero");
        }
        if let Some(limit) = route.max_request_body {
            check_body_limit(&key("max_request_body"), limit, out);
        }
        check_route_scopes(route, &key("scopes"), out);
        if let Some(resource) = &route.resource {
            check_resource(route.token, resource, &key("resource"), out);
        }
        if route.token_exchange
            && (route.resource.is_none()
                || route.token != TokenMode::User && route.token != TokenMode::UserOptional)
        {
            out.push(
                key("token_exchange"),
                "needs a resource on a route with token = \"user\" or \"user-optional\" (it \
                 exchanges the session's access token for one for that resource)",
            );
        }
        if let Some(fields) = &route.fields {
            check_fields(&key("fields"), fields, out);
        }
        for (name, fields) in &route.profiles {
            if !is_profile_name(name) {
                out.push(
                    key(&format!("profiles.{name}")),
                    "a profile name is 1 to 32 of a-z, 0-9, _ and -",
                );
            }
            check_fields(&key(&format!("profiles.{name}")), fields, out);
        }
        check_buffer_limit(
            &key("max_buffered_response"),
            route.max_buffered_response,
            out,
        );
    }
}

/// The largest accepted `max_buffered_response`: what is buffered sits in memory, once per
/// request in flight.
pub(crate) const MAX_BUFFER_LIMIT: u64 = 1 << 30;

/// A `fields` allow-list: non-empty, every path well-formed (`proxy::fields`).
pub(crate) fn check_fields(key: &str, fields: &[String], out: &mut Problems) {
    if let Err(err) = crate::proxy::FieldSet::parse(fields) {
        out.push(key, err.to_string());
    }
}

/// A client profile's name, as `X-Client-Profile` carries it.
pub(crate) fn is_profile_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn check_buffer_limit(key: &str, limit: u64, out: &mut Problems) {
    if limit == 0 {
        out.push(key, "must be greater than zero");
    } else if limit > MAX_BUFFER_LIMIT {
        out.push(
            key,
            format!(
                "{} is more than the largest accepted limit, {} (buffered bodies sit in memory)",
                size::format(limit),
                size::format(MAX_BUFFER_LIMIT)
            ),
        );
    }
}

/// A body limit: at least one byte (a zero limit would refuse every body, which a route that
/// takes none does not need) and at most [`MAX_BODY_LIMIT`].
pub(crate) fn check_body_limit(key: &str, limit: u64, out: &mut Problems) {
    if limit == 0 {
        out.push(key, "must be greater than zero");
    } else if limit > MAX_BODY_LIMIT {
        out.push(
            key,
            format!(
                "{} is more than the largest accepted limit, {}",
                size::format(limit),
                size::format(MAX_BODY_LIMIT)
            ),
        );
    }
}

/// `scopes` belongs to Ward's own client-credentials token: on a `user` route the token carries
/// what the user granted at login, and silently ignoring the key would hide that.
fn check_route_scopes(route: &RouteConfig, key: &str, out: &mut Problems) {
    let Some(scopes) = &route.scopes else {
        return;
    };
    if route.token != TokenMode::Client {
        out.push(
            key,
            "only applies to token = \"client\" (a user's token carries the scopes of the \
             login, oidc.scopes)",
        );
        return;
    }
    if scopes.is_empty() {
        out.push(
            key,
            "must list at least one scope; leave scopes out to request the client's default \
             scopes",
        );
    }
    for (index, scope) in scopes.iter().enumerate() {
        if !is_scope_token(scope) {
            out.push(
                format!("{key}[{index}]"),
                format!("{scope:?} must be one scope: visible ASCII without spaces, '\"' or '\\'"),
            );
        }
    }
}

/// A route's `resource` (RFC 8707 §2): an absolute URI (MUST), without a fragment (MUST NOT),
/// and, stricter than the RFC's SHOULD NOT, without a query: the value becomes the token's
/// audience, compared as a string by the IdP and the API, and a query in it is far more likely
/// an API URL pasted by mistake than a resource an IdP expects. Only token modes that carry an
/// access token take one.
fn check_resource(token: TokenMode, resource: &str, key: &str, out: &mut Problems) {
    if token == TokenMode::None {
        out.push(
            key,
            "only applies to a route that sends a token (token = \"user\", \"user-optional\" \
             or \"client\")",
        );
        return;
    }
    if let Err(reason) = resource_indicator(resource) {
        out.push(key, format!("{resource:?} {reason}"));
    }
}

/// Why `resource` is no usable RFC 8707 resource indicator, if it is not.
pub(crate) fn resource_indicator(resource: &str) -> Result<(), &'static str> {
    if resource.is_empty()
        || resource
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("must be an absolute URI without spaces (RFC 8707 §2)");
    }
    let Ok(url) = url::Url::parse(resource) else {
        return Err("must be an absolute URI, such as \"https://api.example.com\" (RFC 8707 §2)");
    };
    if url.fragment().is_some() || resource.contains('#') {
        return Err("must not include a fragment (RFC 8707 §2)");
    }
    if url.query().is_some() || resource.contains('?') {
        return Err("must not include a query (RFC 8707 §2 advises against it; Ward refuses it)");
    }
    Ok(())
}

/// RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`: the `scope` parameter joins
/// tokens with spaces, so a token with a space would turn into two.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A route prefix: `/` or `/seg[/seg…]`, matched on whole segments, never under `/bff`.
pub(crate) fn route_prefix(prefix: &str) -> Result<(), &'static str> {
    if !prefix.starts_with('/') {
        return Err("must start with \"/\"");
    }
    if prefix == "/" {
        return Ok(());
    }
    if prefix.ends_with('/') {
        return Err("must not end with \"/\" (prefixes match whole path segments)");
    }
    let segments_ok = prefix[1..].split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && !segment.contains(['?', '#', '%', '\\'])
            && !segment.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if !segments_ok {
        return Err(
            "must be plain path segments (no empty, \".\" or \"..\" segments, ?, #, %, \\)",
        );
    }
    if prefix == "/bff" || prefix.starts_with("/bff/") {
        return Err("is reserved for Ward's own endpoints (/bff)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_prefixes_are_whole_segments_outside_bff() {
        assert!(route_prefix("/").is_ok());
        assert!(route_prefix("/api").is_ok());
        assert!(route_prefix("/api/v1").is_ok());
        assert!(route_prefix("/bffx").is_ok());
        for bad in [
            "api", "/api/", "//api", "/api//v1", "/a/../b", "/./a", "/a?b", "/bff", "/bff/x",
        ] {
            assert!(route_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_tokens_are_visible_ascii_without_quotes_or_backslashes() {
        for ok in ["reports:read", "api://x/.default", "a!#[]~"] {
            assert!(is_scope_token(ok), "{ok}");
        }
        for bad in ["", "a b", "a\tb", "\"a\"", "a\\b", "é", "a\u{7f}"] {
            assert!(!is_scope_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn resource_indicators_are_absolute_uris_without_fragment_or_query() {
        for ok in [
            "https://orders.example",
            "https://api.example.com/v1/",
            "urn:bff:api",
            "http://127.0.0.1:7001",
        ] {
            assert_eq!(resource_indicator(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/orders",
            "orders.example",
            "https://orders.example/#x",
            "https://orders.example#",
            "https://orders.example/?tenant=1",
            "https://orders.example/?",
            "https://orders.example/a b",
            " https://orders.example",
        ] {
            assert!(resource_indicator(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn body_limits_run_from_one_byte_to_64_gib() {
        let mut problems = Problems::default();
        for ok in [1, 10 << 20, 1 << 30, MAX_BODY_LIMIT] {
            check_body_limit("k", ok, &mut problems);
        }
        assert!(problems.is_empty());
        check_body_limit("k", 0, &mut problems);
        check_body_limit("k", MAX_BODY_LIMIT + 1, &mut problems);
        assert_eq!(
            problems.into_errors().to_string(),
            "k: must be greater than zero\n\
             k: 68719476737B is more than the largest accepted limit, 64GiB"
        );
    }
}
