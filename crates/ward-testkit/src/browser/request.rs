//! A request being built by a [`Browser`], sent with the jar's cookies.

use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use reqwest::header::{COOKIE, HeaderMap, HeaderName, HeaderValue, SET_COOKIE};
use url::Url;

use super::{Browser, Reply};

/// How long one request may take before the browser gives up (tests must not hang).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A request being built; send it with [`BrowserRequest::send`]. Errors in headers or the URL
/// surface at `send`.
pub struct BrowserRequest<'a> {
    browser: &'a Browser,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<reqwest::Body>,
    timeout: Duration,
    with_cookies: bool,
    /// A builder step that failed, reported by `send`.
    error: Option<anyhow::Error>,
}

impl<'a> BrowserRequest<'a> {
    /// A request of `browser` for `method url`, with the jar's cookies and the default timeout.
    pub(super) fn new(browser: &'a Browser, method: Method, url: String) -> Self {
        Self {
            browser,
            method,
            url,
            headers: Vec::new(),
            body: None,
            timeout: DEFAULT_TIMEOUT,
            with_cookies: true,
            error: None,
        }
    }
}

impl BrowserRequest<'_> {
    /// Adds a header. An explicit `Cookie` header replaces the jar's cookies for this request.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body (no content type is added).
    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => self.body = Some(bytes.into()),
            Err(err) => {
                self.error = Some(anyhow::Error::new(err).context("serialising the JSON body"))
            }
        }
        self.headers
            .push(("content-type".to_owned(), "application/json".to_owned()));
        self
    }

    /// Sets an `application/x-www-form-urlencoded` body.
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.headers.push((
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ));
        self.body = Some(encoded.into());
        self
    }

    /// Overrides the per-request timeout (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends no cookies from the jar with this request (answers still update the jar).
    pub fn without_cookies(mut self) -> Self {
        self.with_cookies = false;
        self
    }

    /// Sends the request, stores any `Set-Cookie` of the answer and returns it unfollowed.
    pub async fn send(self) -> anyhow::Result<Reply> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let url = Url::parse(&self.url).with_context(|| format!("bad URL {:?}", self.url))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .with_context(|| format!("bad header name {name:?}"))?;
            let value = HeaderValue::from_str(value)
                .with_context(|| format!("bad value for header {name}"))?;
            headers.append(name, value);
        }
        let jar_cookie = if self.with_cookies && !headers.contains_key(COOKIE) {
            self.browser.jar().header_for(&url)
        } else {
            None
        };
        if let Some(cookie) = jar_cookie {
            headers.insert(
                COOKIE,
                HeaderValue::from_str(&cookie).context("jar cookie is not a valid header")?,
            );
        }
        let mut request = self
            .browser
            .client
            .request(self.method.clone(), url.clone())
            .headers(headers)
            .timeout(self.timeout);
        if let Some(body) = self.body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{} {url} failed", self.method))?;
        let status = response.status();
        let headers = response.headers().clone();
        {
            let mut jar = self.browser.jar();
            for set_cookie in headers.get_all(SET_COOKIE) {
                if let Ok(set_cookie) = set_cookie.to_str() {
                    jar.store(&url, set_cookie);
                }
            }
        }
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading the body of {} {url}", self.method))?;
        Ok(Reply {
            status,
            headers,
            body,
            url,
            method: self.method,
        })
    }
}
