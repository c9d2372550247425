//! Driving oidc-provider's dev interaction pages: log in, consent, or cancel.

use anyhow::{Context, bail};
use reqwest::StatusCode;
use url::Url;

use super::{Browser, MAX_HOPS, Reply};

impl Browser {
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
