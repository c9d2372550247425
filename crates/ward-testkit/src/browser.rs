//! A scripted browser: an HTTP client with its own cookie jar and no automatic redirects, so a
//! test sees (and can assert on) every hop of a login.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use reqwest::header::{COOKIE, HeaderMap, HeaderName, HeaderValue, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::cookie_jar::CookieJar;

/// How long one request may take before the browser gives up (tests must not hang).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest redirect chain `follow_until` / `follow_all` / the IdP drivers walk.
const MAX_HOPS: usize = 20;

/// A cookie-jar HTTP client that never follows redirects on its own.
///
/// Cloning gives a handle to the *same* browser (same jar), so concurrent requests from one
/// session can be made with clones; [`Browser::fresh`] gives a new, empty browser. `Secure`
/// cookies are sent over plain http (loopback is a secure context for real browsers), cookies
/// are scoped by host without port, `Domain` and `SameSite` are ignored.
#[derive(Clone)]
pub struct Browser {
    client: reqwest::Client,
    jar: Arc<Mutex<CookieJar>>,
}

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

impl Browser {
    /// A browser with an empty jar.
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            jar: Arc::new(Mutex::new(CookieJar::default())),
        })
    }

    /// A second, independent browser (empty jar): another user, or an attacker.
    pub fn fresh(&self) -> anyhow::Result<Self> {
        Self::new()
    }

    fn jar(&self) -> MutexGuard<'_, CookieJar> {
        // A panic while holding the lock cannot leave the jar half-updated in a way that
        // matters to a test, so a poisoned lock is used as is.
        self.jar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a request with any method.
    pub fn request(&self, method: Method, url: impl AsRef<str>) -> BrowserRequest<'_> {
        BrowserRequest {
            browser: self,
            method,
            url: url.as_ref().to_owned(),
            headers: Vec::new(),
            body: None,
            timeout: DEFAULT_TIMEOUT,
            with_cookies: true,
            error: None,
        }
    }

    /// `GET url`, sent at once.
    pub async fn get(&self, url: impl AsRef<str>) -> anyhow::Result<Reply> {
        self.request(Method::GET, url).send().await
    }

    /// Starts a `POST url` (add a body or headers, then `send`).
    pub fn post(&self, url: impl AsRef<str>) -> BrowserRequest<'_> {
        self.request(Method::POST, url)
    }

    /// Follows one redirect: `GET` for 301/302/303, the same method for a 307/308 of a `GET` or
    /// `HEAD` (a body-carrying 307/308 cannot be replayed: the body is gone).
    pub async fn follow(&self, reply: &Reply) -> anyhow::Result<Reply> {
        if !reply.is_redirect() {
            bail!(
                "{} {} answered {}, not a redirect: {}",
                reply.method,
                reply.url,
                reply.status,
                reply.text().chars().take(300).collect::<String>()
            );
        }
        let next = reply.location_url()?;
        let method = match reply.status {
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {
                if reply.method != Method::GET && reply.method != Method::HEAD {
                    bail!(
                        "cannot replay a {} body for a {}",
                        reply.method,
                        reply.status
                    );
                }
                reply.method.clone()
            }
            _ => Method::GET,
        };
        self.request(method, next.as_str()).send().await
    }

    /// Follows redirects until `done(reply)` holds, and returns that reply. Fails if the chain
    /// ends (a non-redirect) before, or after 20 hops.
    pub async fn follow_until(
        &self,
        reply: Reply,
        mut done: impl FnMut(&Reply) -> bool,
    ) -> anyhow::Result<Reply> {
        let mut reply = reply;
        for _ in 0..MAX_HOPS {
            if done(&reply) {
                return Ok(reply);
            }
            if !reply.is_redirect() {
                bail!(
                    "redirect chain ended at {} {} -> {} before the condition held: {}",
                    reply.method,
                    reply.url,
                    reply.status,
                    reply.text().chars().take(300).collect::<String>()
                );
            }
            reply = self.follow(&reply).await?;
        }
        bail!("more than {MAX_HOPS} redirects")
    }

    /// Follows redirects until an answer that is not a redirect.
    pub async fn follow_all(&self, reply: Reply) -> anyhow::Result<Reply> {
        self.follow_until(reply, |r| !r.is_redirect()).await
    }

    /// The value of cookie `name` stored for `host` (no port), on any path.
    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar().get(host, name)
    }

    /// Plants a session cookie `name=value` with `Path=/` for `host`, as if the site set it.
    pub fn set_cookie(&self, host: &str, name: &str, value: &str) {
        self.jar().set(host, name, value);
    }

    /// Forgets every cookie `name` of `host`.
    pub fn remove_cookie(&self, host: &str, name: &str) {
        self.jar().remove(host, name);
    }

    /// The `Cookie` header this browser would send to `url`.
    pub fn cookie_header_for(&self, url: &str) -> Option<String> {
        let url = Url::parse(url).ok()?;
        self.jar().header_for(&url)
    }

    /// Logs in as `user` through oidc-provider's dev interaction pages.
    ///
    /// Starts with `GET authorize_url`, then walks the IdP's redirects, filling the login form
    /// (`prompt=login`, any password) and the consent form (`prompt=consent`) as they come, and
    /// returns the first redirect whose `Location` leaves the IdP's origin (normally the client's
    /// callback with `code`, `state`, `iss`) WITHOUT following it. An IdP session already in the
    /// jar skips the login page, as in a real browser: use [`Browser::fresh`] for another user.
    pub async fn login_at_idp(&self, authorize_url: &str, user: &str) -> anyhow::Result<Reply> {
        self.drive_idp(authorize_url, IdpAction::Login(user)).await
    }

    /// Starts a login at `authorize_url` and presses the dev page's Cancel link
    /// (`/interaction/<uid>/abort`), returning the redirect that leaves the IdP, normally the
    /// callback with `error=access_denied`, without following it.
    pub async fn abort_at_idp(&self, authorize_url: &str) -> anyhow::Result<Reply> {
        self.drive_idp(authorize_url, IdpAction::Abort).await
    }

    async fn drive_idp(&self, authorize_url: &str, action: IdpAction<'_>) -> anyhow::Result<Reply> {
        let idp_origin = Url::parse(authorize_url)
            .with_context(|| format!("bad authorize URL {authorize_url:?}"))?
            .origin();
        let mut reply = self.get(authorize_url).await?;
        for _ in 0..MAX_HOPS {
            if !reply.is_redirect() {
                bail!(
                    "the IdP answered {} {} -> {} instead of a redirect: {}",
                    reply.method,
                    reply.url,
                    reply.status,
                    reply.text().chars().take(500).collect::<String>()
                );
            }
            let next = reply.location_url()?;
            if next.origin() != idp_origin {
                return Ok(reply);
            }
            if !next.path().starts_with("/interaction/") {
                reply = self.get(next.as_str()).await?;
                continue;
            }
            let user = match action {
                IdpAction::Login(user) => user,
                IdpAction::Abort => {
                    let abort = format!("{}/abort", next.as_str().trim_end_matches('/'));
                    reply = self.get(abort).await?;
                    continue;
                }
            };
            let page = self.get(next.as_str()).await?;
            if page.status != StatusCode::OK {
                bail!(
                    "interaction page {} answered {}: {}",
                    page.url,
                    page.status,
                    page.text().chars().take(500).collect::<String>()
                );
            }
            let html = page.text();
            let form: &[(&str, &str)] = if html.contains(r#"name="prompt" value="login""#) {
                &[("prompt", "login"), ("login", user), ("password", "x")]
            } else if html.contains(r#"name="prompt" value="consent""#) {
                &[("prompt", "consent")]
            } else {
                bail!(
                    "interaction page {} has neither a login nor a consent form: {}",
                    page.url,
                    html.chars().take(500).collect::<String>()
                );
            };
            reply = self.post(next.as_str()).form(form).send().await?;
        }
        bail!("the IdP redirected more than {MAX_HOPS} times")
    }
}

#[derive(Clone, Copy)]
enum IdpAction<'a> {
    Login(&'a str),
    Abort,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EchoUpstream;
    use axum::Router;
    use axum::http::header;
    use axum::response::{AppendHeaders, IntoResponse};
    use axum::routing::{get, post};

    /// A small site that sets, deletes and redirects, to drive the browser over real HTTP.
    async fn site() -> String {
        let app = Router::new()
            .route(
                "/set",
                get(|| async {
                    (
                        AppendHeaders([
                            (header::SET_COOKIE, "a=1; Path=/"),
                            (header::SET_COOKIE, "deep=2; Path=/deep; HttpOnly"),
                        ]),
                        "set",
                    )
                }),
            )
            .route(
                "/clear",
                get(|| async { ([(header::SET_COOKIE, "a=; Path=/; Max-Age=0")], "cleared") }),
            )
            .route(
                "/deep/start",
                get(|| async { (StatusCode::SEE_OTHER, [(header::LOCATION, "next?x=1")]) }),
            )
            .route(
                "/deep/next",
                get(|req: axum::extract::Request| async move {
                    let cookie = req
                        .headers()
                        .get(header::COOKIE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    format!("{}|{cookie}", req.uri())
                }),
            )
            .route(
                "/form",
                post(|| async {
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/set")]).into_response()
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn cookies_follow_path_and_deletion_over_http() -> anyhow::Result<()> {
        let base = site().await;
        let browser = Browser::new()?;
        let set = browser.get(format!("{base}/set")).await?;
        assert_eq!(set.set_cookie("deep"), Some("deep=2; Path=/deep; HttpOnly"));
        assert_eq!(browser.cookie("127.0.0.1", "a").as_deref(), Some("1"));
        assert_eq!(
            browser
                .cookie_header_for(&format!("{base}/deep/next"))
                .as_deref(),
            Some("deep=2; a=1")
        );
        assert_eq!(
            browser
                .cookie_header_for(&format!("{base}/other"))
                .as_deref(),
            Some("a=1")
        );

        // A relative Location resolves against the request URL; each hop is explicit.
        let start = browser.get(format!("{base}/deep/start")).await?;
        assert_eq!(start.status, StatusCode::SEE_OTHER);
        assert_eq!(start.location(), Some("next?x=1"));
        let next = browser.follow(&start).await?;
        assert_eq!(next.text(), "/deep/next?x=1|deep=2; a=1");

        browser.get(format!("{base}/clear")).await?;
        assert_eq!(browser.cookie("127.0.0.1", "a"), None);
        let next = browser.get(format!("{base}/deep/next")).await?;
        assert_eq!(next.text(), "/deep/next|deep=2");

        // Planted, removed, explicit and suppressed cookies.
        browser.set_cookie("127.0.0.1", "planted", "p");
        browser.remove_cookie("127.0.0.1", "deep");
        let next = browser.get(format!("{base}/deep/next")).await?;
        assert_eq!(next.text(), "/deep/next|planted=p");
        let explicit = browser
            .request(Method::GET, format!("{base}/deep/next"))
            .header("cookie", "mine=1")
            .send()
            .await?;
        assert_eq!(explicit.text(), "/deep/next|mine=1");
        let none = browser
            .request(Method::GET, format!("{base}/deep/next"))
            .without_cookies()
            .send()
            .await?;
        assert_eq!(none.text(), "/deep/next|");

        let other = browser.fresh()?;
        assert_eq!(other.cookie("127.0.0.1", "planted"), None);
        Ok(())
    }

    #[tokio::test]
    async fn follow_until_walks_the_chain_and_refuses_to_replay_a_body() -> anyhow::Result<()> {
        let base = site().await;
        let browser = Browser::new()?;
        let start = browser.get(format!("{base}/deep/start")).await?;
        let end = browser
            .follow_until(start.clone(), |r| r.url.path() == "/deep/next")
            .await?;
        assert_eq!(end.status, StatusCode::OK);
        assert!(
            browser.follow_until(end, |_| false).await.is_err(),
            "chain ended"
        );
        assert!(
            browser
                .follow_all(start)
                .await?
                .text()
                .starts_with("/deep/next")
        );

        let posted = browser
            .post(format!("{base}/form"))
            .body("x")
            .send()
            .await?;
        assert_eq!(posted.status, StatusCode::TEMPORARY_REDIRECT);
        assert!(browser.follow(&posted).await.is_err());
        Ok(())
    }

    #[tokio::test]
    async fn jar_cookies_reach_an_upstream_and_json_bodies_are_sent() -> anyhow::Result<()> {
        let echo = EchoUpstream::start().await?;
        let browser = Browser::new()?;
        browser.get(format!("{}/set-cookie", echo.url())).await?;
        let reply = browser
            .post(format!("{}/api/x", echo.url()))
            .header("x-csrf-token", "t")
            .json(&serde_json::json!({"k": "v"}))
            .send()
            .await?;
        let body = reply.json()?;
        assert_eq!(
            body["headers"]["cookie"],
            serde_json::json!(["__Host-ward=evil; app=1"])
        );
        assert_eq!(
            body["headers"]["content-type"],
            serde_json::json!(["application/json"])
        );
        let last = echo.last().context("recorded")?;
        assert_eq!(&last.body[..], br#"{"k":"v"}"#);
        assert_eq!(last.header("x-csrf-token"), Some("t"));
        Ok(())
    }
}
