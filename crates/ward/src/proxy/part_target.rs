//! Where a composite part sends its request: a fixed path and a query whose values may name
//! parameters of the browser's query (`/api/orders?limit={limit}&sort=date`).
//!
//! Only whole query values are templates, never a path segment or a key, and the browser's
//! value is percent-encoded into it (`&`, `=`, `#`, `/` and `?` included): a browser can choose
//! the value of a parameter the configuration names, never add a parameter, a path segment or a
//! fragment. A parameter the browser did not send leaves its pair out.

use axum::http::uri::PathAndQuery;
use url::form_urlencoded;

use super::path;

/// A part's compiled path and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartTarget {
    path: String,
    query: Vec<QueryPair>,
}

/// One `key=value` pair of the part's query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum QueryPair {
    /// Sent as written.
    Fixed(String),
    /// `key={name}`: `key=` and the browser's `name`, encoded.
    Param { key: String, name: String },
}

impl PartTarget {
    /// Compiles a part's `path`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if text.contains('#') || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not hold a fragment (#), whitespace or control characters");
        }
        let (path, query) = text.split_once('?').unwrap_or((text, ""));
        if path.contains(['{', '}']) {
            return Err("templates ({name}) are allowed only as whole query values");
        }
        if path::check(path).is_err() {
            return Err(
                "must be an absolute path without \".\"/\"..\" segments, \\ or broken escapes",
            );
        }
        let query = if query.is_empty() {
            Vec::new()
        } else {
            query.split('&').map(pair).collect::<Result<_, _>>()?
        };
        let target = Self {
            path: path.to_owned(),
            query,
        };
        PathAndQuery::try_from(target.render(None)).map_err(|_| "is not a valid request target")?;
        Ok(target)
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path and query to request, templates filled from `browser_query`.
    pub fn render(&self, browser_query: Option<&str>) -> String {
        let mut out = self.path.clone();
        let mut first = true;
        for pair in &self.query {
            let text = match pair {
                QueryPair::Fixed(text) => text.clone(),
                QueryPair::Param { key, name } => {
                    let Some(value) = browser_value(browser_query, name) else {
                        continue;
                    };
                    let encoded: String =
                        form_urlencoded::byte_serialize(value.as_bytes()).collect();
                    format!("{key}={encoded}")
                }
            };
            out.push(if first { '?' } else { '&' });
            out.push_str(&text);
            first = false;
        }
        out
    }
}

fn pair(text: &str) -> Result<QueryPair, &'static str> {
    if text.is_empty() {
        return Err("has an empty query pair (&&)");
    }
    let (key, value) = text.split_once('=').unwrap_or((text, ""));
    if key.contains(['{', '}']) {
        return Err("templates ({name}) are allowed only as whole query values");
    }
    let Some(name) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) else {
        if value.contains(['{', '}']) {
            return Err("a template must be a whole query value: key={name}");
        }
        return Ok(QueryPair::Fixed(text.to_owned()));
    };
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid_name || key.is_empty() {
        return Err("a template is key={name}, name of letters, digits, _ - .");
    }
    Ok(QueryPair::Param {
        key: key.to_owned(),
        name: name.to_owned(),
    })
}

/// The first value of `name` in the browser's query, decoded.
fn browser_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, browser: Option<&str>) -> String {
        PartTarget::parse(template).expect(template).render(browser)
    }

    #[test]
    fn fixed_paths_and_queries_are_sent_as_written() {
        assert_eq!(render("/api/me", Some("x=1")), "/api/me");
        assert_eq!(render("/api/o?limit=5&a=%2F", None), "/api/o?limit=5&a=%2F");
    }

    #[test]
    fn templates_take_the_browsers_value_encoded() {
        let t = "/api/o?limit={limit}&sort=date";
        assert_eq!(render(t, Some("limit=3")), "/api/o?limit=3&sort=date");
        assert_eq!(render(t, Some("limit=a+b")), "/api/o?limit=a+b&sort=date");
        assert_eq!(
            render(t, Some("limit=1%26admin%3Dtrue%23x%2F..")),
            "/api/o?limit=1%26admin%3Dtrue%23x%2F..&sort=date"
        );
        assert_eq!(
            render(t, Some("limit=1&limit=2")),
            "/api/o?limit=1&sort=date"
        );
    }

    #[test]
    fn a_parameter_the_browser_did_not_send_leaves_its_pair_out() {
        assert_eq!(render("/api/o?limit={limit}&s=1", None), "/api/o?s=1");
        assert_eq!(render("/api/o?limit={limit}", Some("other=1")), "/api/o");
    }

    #[test]
    fn the_browser_cannot_add_parameters_or_segments() {
        let out = render("/api/o?q={q}", Some("q=x&admin=true&q=y"));
        assert_eq!(out, "/api/o?q=x");
        let out = render("/api/o?q={q}", Some("q=../../etc%3Fz%3D1"));
        assert_eq!(out, "/api/o?q=..%2F..%2Fetc%3Fz%3D1");
    }

    #[test]
    fn templates_outside_whole_query_values_are_refused() {
        for bad in [
            "/api/{id}",
            "/api/o?{k}=1",
            "/api/o?k=x{v}",
            "/api/o?k={}",
            "/api/o?k={a b}",
            "/api/o?={v}",
            "/api/o?a&&b",
            "/api/o#f",
            "api/o",
            "/api/../admin",
            "/api/%2e%2e/admin",
            "/api/o ?",
        ] {
            assert!(PartTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
