//! One HTTP answer as the browser saw it.

use anyhow::{Context, anyhow};
use bytes::Bytes;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use url::Url;

/// One HTTP answer, body read in full. `Debug` shows header names and the body length only:
/// cookies and tokens stay out of test output.
#[derive(Clone)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// All response headers (several `Set-Cookie` are kept apart).
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The URL that was requested (relative `Location`s resolve against it).
    pub url: Url,
    /// The method that was used, needed to follow a 307/308.
    pub method: Method,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("status", &self.status)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Reply {
    /// The body parsed as JSON; the error shows the status and the start of the body.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "{} {} answered {} with a body that is not JSON: {}",
                self.method,
                self.url,
                self.status,
                self.text().chars().take(300).collect::<String>()
            )
        })
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The raw `Location` header, if any.
    pub fn location(&self) -> Option<&str> {
        self.header(LOCATION.as_str())
    }

    /// The `Location` header resolved against the request URL.
    pub fn location_url(&self) -> anyhow::Result<Url> {
        let location = self.location().ok_or_else(|| {
            anyhow!(
                "{} {} answered {} without a Location",
                self.method,
                self.url,
                self.status
            )
        })?;
        self.url.join(location).with_context(|| {
            format!(
                "Location {location:?} does not resolve against {}",
                self.url
            )
        })
    }

    /// The first value of header `name`, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` header, raw, for asserting cookie attributes.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The raw `Set-Cookie` header that sets cookie `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies()
            .into_iter()
            .find(|sc| sc.split_once('=').is_some_and(|(n, _)| n.trim() == name))
    }

    /// Whether this is a 3xx with a `Location`.
    pub fn is_redirect(&self) -> bool {
        self.status.is_redirection() && self.location().is_some()
    }

    /// The value of query parameter `name` in the resolved `Location`, if any.
    pub fn location_param(&self, name: &str) -> Option<String> {
        let url = self.location_url().ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}
