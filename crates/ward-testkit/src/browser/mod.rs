//! A scripted browser: an HTTP client with its own cookie jar and no automatic redirects, so a
//! test sees (and can assert on) every hop of a login.
//!
//! [`Reply`] is one answer, [`BrowserRequest`] one request being built, and `idp_pages` walks
//! the IdP's dev login and consent pages.

mod idp_pages;
mod reply;
mod request;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::cookie_jar::CookieJar;

pub use reply::Reply;
pub use request::BrowserRequest;

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

    /// A browser with an empty jar that trusts, for https, only the CA certificate `ca_pem` (a
    /// test's private CA).
    pub fn trusting(ca_pem: &[u8]) -> anyhow::Result<Self> {
        let ca = reqwest::Certificate::from_pem(ca_pem).context("the CA certificate")?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_only([ca])
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

    pub(super) fn jar(&self) -> MutexGuard<'_, CookieJar> {
        // A panic while holding the lock cannot leave the jar half-updated in a way that
        // matters to a test, so a poisoned lock is used as is.
        self.jar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a request with any method.
    /// Starts a request with any method.
    pub fn request(&self, method: Method, url: impl AsRef<str>) -> BrowserRequest<'_> {
        BrowserRequest::new(self, method, url.as_ref().to_owned())
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
}
