//! Per-route access tokens for RFC 8707 resources (`[[routes]] resource`): each API receives
//! a token whose audience is that API alone, so a token one API leaks is useless at the others.
//!
//! The token comes from a refresh grant with `resource=<uri>` (RFC 8707 §2.2; the grant
//! covers the resource because every authorization request named it), is kept per session and
//! resource inside the sealed session record, and is used until `[oidc] refresh_skew` before
//! its expiry (at most half its lifetime early).
//!
//! Such a grant presents the session's refresh token, which the IdP may rotate, exactly as the
//! main refresh does (`session::refresh`); so both take turns on the same things:
//!
//! - **One fetch per session and resource in a process**: requests queue on a mutex per
//!   session and resource ([`ResourceFlights`]); the first fetches, the others re-read the
//!   record and find its token.
//! - **One user of the refresh token at a time across instances**: the fetch holds the
//!   session's refresh lock in the store (the main refresh's [`Lease`], renewed while held),
//!   re-reads the record under it, and writes the token, and a rotated refresh token, over
//!   exactly the record it re-read (`update`: re-applied when a slide or another resource
//!   wrote in between). Waiting requests poll the record for the token.
//!
//! Outcomes: `invalid_grant` ends the session as a main refresh would (`401`); the IdP
//! declining the resource (`invalid_target`, `invalid_scope`) or a session without a refresh
//! token is [`ResourceTokenError::NotGranted`] (`403 resource_not_granted`, the session
//! stays); an IdP failure forwards a still-valid cached token, never an expired one (`502`).
//! Either failure is remembered for [`BACKOFF`](super::refresh::BACKOFF) seconds per session and resource, so a burst
//! of requests does not hammer the IdP. Tokens never reach a log line.
//!
//! A route with `token_exchange` gets its token by RFC 8693 token exchange of the session's
//! own access token instead (fresh: the gateway refreshes it first; an expired one is never
//! presented). No refresh token is involved, so nothing rotates and a refusal ends nothing;
//! the cache, the single flight and the back-off are the same.

use std::future::Future;

use tokio::time::Instant;
use ward_store::StoreError;
use ward_store::lock::Lease;

use super::manager::{LoadedSession, SessionManager};
use super::record::{ResourceToken, SessionData};
use super::refresh::{LOCK_POLL, LOCK_TTL, LOCK_WAIT, REFRESH_DEADLINE};
use crate::oidc::{OidcClient, OidcError, ResourceTokens};
use crate::secret::SecretString;
use crate::telemetry::Chain;

/// How long a token without `expires_in` is used (before the skew is taken off): RFC 6749
/// makes the field optional, and such a token may still expire at any time.
const LIFETIME_WITHOUT_EXPIRES_IN: u64 = 300;

/// The one thing resource tokens need from the IdP; [`OidcClient`] in production.
pub(crate) trait ResourceGrant: Sync {
    /// Redeems `refresh_token` for an access token for `resource` only.
    fn resource_token(
        &self,
        refresh_token: &SecretString,
        resource: &str,
    ) -> impl Future<Output = Result<ResourceTokens, OidcError>> + Send;

    /// Exchanges the access token `subject` for one for `resource` only (RFC 8693).
    fn exchange_token(
        &self,
        subject: &SecretString,
        resource: &str,
    ) -> impl Future<Output = Result<ResourceTokens, OidcError>> + Send;
}

impl ResourceGrant for OidcClient {
    fn resource_token(
        &self,
        refresh_token: &SecretString,
        resource: &str,
    ) -> impl Future<Output = Result<ResourceTokens, OidcError>> + Send {
        OidcClient::resource_token(self, refresh_token, resource)
    }

    fn exchange_token(
        &self,
        subject: &SecretString,
        resource: &str,
    ) -> impl Future<Output = Result<ResourceTokens, OidcError>> + Send {
        OidcClient::exchange_token(self, subject, resource)
    }
}

/// Why a request has no token for its route's resource.
#[derive(Debug, thiserror::Error)]
pub enum ResourceTokenError {
    /// The IdP refused the refresh token (`invalid_grant`): the session was ended.
    #[error("refresh token refused; the session was ended")]
    Ended,
    /// The IdP issues no token for this resource to this session (`invalid_target`), or the
    /// session has no refresh token to ask with.
    #[error("no token for this resource is granted to the session")]
    NotGranted,
    /// The IdP could not issue one now, and no cached one is still valid.
    #[error("no token for this resource is available now")]
    Unavailable,
    /// The store failed (fail closed: 503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failure remembered for [`BACKOFF`](super::refresh::BACKOFF) seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    NotGranted,
    Unavailable,
}

/// The session's token for `resource` when it need not be renewed yet.
fn usable(data: &SessionData, resource: &str, now: u64) -> Option<SecretString> {
    data.resource_tokens
        .get(resource)
        .filter(|token| now < token.renew_at)
        .map(|token| token.access_token.clone())
}

/// The session's token for `resource` when it has not expired (used while the IdP fails).
fn unexpired(data: &SessionData, resource: &str, now: u64) -> Option<SecretString> {
    data.resource_tokens
        .get(resource)
        .filter(|token| now < token.expires_at)
        .map(|token| token.access_token.clone())
}

/// What one fetch needs to know.
struct Request<'a, G> {
    grant: &'a G,
    resource: &'a str,
    /// `[oidc] refresh_skew`, seconds.
    skew: u64,
    /// The in-process key of the session, resource and grant.
    key: String,
    /// By RFC 8693 token exchange of the session's access token, not a refresh grant.
    exchange: bool,
}

impl SessionManager {
    /// An access token for `resource` for `session` (see the module documentation): the
    /// cached one, or one fetched once for all concurrent requests and instances.
    pub async fn resource_token(
        &self,
        session: &LoadedSession,
        oidc: &OidcClient,
        resource: &str,
        skew: std::time::Duration,
    ) -> Result<SecretString, ResourceTokenError> {
        self.resource_token_with(session, oidc, resource, skew.as_secs())
            .await
    }

    /// [`resource_token`](Self::resource_token) by RFC 8693 token exchange of the session's
    /// access token (which the caller has made fresh) instead of a refresh grant.
    pub async fn exchanged_token(
        &self,
        session: &LoadedSession,
        oidc: &OidcClient,
        resource: &str,
        skew: std::time::Duration,
    ) -> Result<SecretString, ResourceTokenError> {
        self.obtain(session, oidc, resource, skew.as_secs(), true)
            .await
    }

    pub(crate) async fn resource_token_with(
        &self,
        session: &LoadedSession,
        grant: &impl ResourceGrant,
        resource: &str,
        skew: u64,
    ) -> Result<SecretString, ResourceTokenError> {
        self.obtain(session, grant, resource, skew, false).await
    }

    async fn obtain(
        &self,
        session: &LoadedSession,
        grant: &impl ResourceGrant,
        resource: &str,
        skew: u64,
        exchange: bool,
    ) -> Result<SecretString, ResourceTokenError> {
        let clock = self.refresh_parts().0;
        if let Some(token) = usable(&session.data, resource, clock.now()) {
            return Ok(token);
        }
        let request = Request {
            grant,
            resource,
            skew,
            key: format!("{}\n{resource}\n{exchange}", session.key),
            exchange,
        };
        let flights = self.resource_flights();
        let flight = flights.join(&request.key);
        let _turn = flight.lock().await;
        // Decide on the record as it is now: a request queued before this one may have
        // fetched the token, another instance too, and the loaded copy may come from a cache.
        let Some(current) = self.load_current(session.cookie.clone()).await? else {
            return Err(ResourceTokenError::Ended);
        };
        let now = clock.now();
        if let Some(token) = usable(&current.data, resource, now) {
            return Ok(token);
        }
        if let Some(failure) = flights.backing_off(&request.key, now) {
            return fallback(&current.data, resource, now, failure);
        }
        self.fetch_shared(&current, &request).await
    }

    /// Fetches under the session's refresh lock, or waits for whoever holds it.
    async fn fetch_shared<G: ResourceGrant>(
        &self,
        session: &LoadedSession,
        request: &Request<'_, G>,
    ) -> Result<SecretString, ResourceTokenError> {
        if self.store().kind() == "cookie" {
            // Nothing shared to lock: the record travels with this browser's requests.
            return self.fetch_locked(session, request).await;
        }
        let clock = self.refresh_parts().0;
        let lock_key = self.refresh_lock_key(session);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let store = self.store().as_ref();
            if let Some(lease) = Lease::acquire(store, &lock_key, LOCK_TTL, clock.now()).await? {
                let work = self.fetch_locked(session, request);
                return self.holding(lease, session, work).await;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    event = "resource_token_failed",
                    reason = "lock_timeout",
                    resource = request.resource,
                    session = session.log_id(),
                    "the session's refresh lock was not free in time"
                );
                return Err(ResourceTokenError::Unavailable);
            }
            tokio::time::sleep(LOCK_POLL).await;
            match self.load_current(session.cookie.clone()).await? {
                None => return Err(ResourceTokenError::Ended),
                Some(current) => {
                    if let Some(token) = usable(&current.data, request.resource, clock.now()) {
                        return Ok(token);
                    }
                }
            }
        }
    }

    /// The fetch itself, by the holder of the lock.
    async fn fetch_locked<G: ResourceGrant>(
        &self,
        session: &LoadedSession,
        request: &Request<'_, G>,
    ) -> Result<SecretString, ResourceTokenError> {
        // Re-read under the lock: the record's refresh token is the current one.
        let Some(current) = self.load_current(session.cookie.clone()).await? else {
            return Err(ResourceTokenError::Ended);
        };
        let clock = self.refresh_parts().0;
        if let Some(token) = usable(&current.data, request.resource, clock.now()) {
            return Ok(token);
        }
        if request.exchange {
            return self.exchange_locked(current, request).await;
        }
        let Some(refresh_token) = current.data.refresh_token.clone() else {
            return self.failed(
                &current,
                request,
                Failure::NotGranted,
                "no_refresh_token",
                None,
            );
        };
        let attempt = tokio::time::timeout(
            REFRESH_DEADLINE,
            request
                .grant
                .resource_token(&refresh_token, request.resource),
        )
        .await;
        match attempt {
            Ok(Ok(tokens)) => {
                self.store_resource_token(current, refresh_token, request, tokens)
                    .await
            }
            Ok(Err(err)) if err.is_invalid_grant() => {
                self.delete(&current).await?;
                tracing::warn!(
                    event = "resource_token_failed",
                    reason = "invalid_grant",
                    resource = request.resource,
                    session = current.log_id(),
                    error = %Chain(&err),
                    "refresh token refused; session ended"
                );
                Err(ResourceTokenError::Ended)
            }
            Ok(Err(err)) if err.is_invalid_target() => self.failed(
                &current,
                request,
                Failure::NotGranted,
                "invalid_target",
                Some(&err),
            ),
            Ok(Err(err)) => {
                let reason = if err.idp_unavailable().is_some() {
                    "idp_unavailable"
                } else {
                    "idp_error"
                };
                self.failed(&current, request, Failure::Unavailable, reason, Some(&err))
            }
            Err(_) => self.failed(&current, request, Failure::Unavailable, "timeout", None),
        }
    }

    /// Logs a failed fetch, remembers it for [`BACKOFF`](super::refresh::BACKOFF) seconds, and answers as
    /// [`fallback`] does.
    fn failed<G>(
        &self,
        current: &LoadedSession,
        request: &Request<'_, G>,
        failure: Failure,
        reason: &'static str,
        err: Option<&OidcError>,
    ) -> Result<SecretString, ResourceTokenError> {
        let now = self.refresh_parts().0.now();
        self.resource_flights().back_off(&request.key, now, failure);
        tracing::warn!(
            event = "resource_token_failed",
            reason,
            resource = request.resource,
            session = current.log_id(),
            error = err.map(|err| Chain(err).to_string()),
            "no access token for the route's resource"
        );
        fallback(&current.data, request.resource, now, failure)
    }

    /// Writes the new token (and a rotated refresh token) into the record read under the
    /// lock: over exactly that record, re-applied to a newer one when another write landed
    /// in between, never over an ended session.
    async fn store_resource_token<G>(
        &self,
        current: LoadedSession,
        used: SecretString,
        request: &Request<'_, G>,
        tokens: ResourceTokens,
    ) -> Result<SecretString, ResourceTokenError> {
        let now = self.refresh_parts().0.now();
        let lifetime = tokens.expires_in.unwrap_or(LIFETIME_WITHOUT_EXPIRES_IN);
        let entry = ResourceToken {
            access_token: tokens.access_token.clone(),
            renew_at: now.saturating_add(lifetime - request.skew.min(lifetime / 2)),
            expires_at: now.saturating_add(lifetime),
        };
        let rotated = tokens.refresh_token;
        let written = self
            .update(current, |s| {
                let data = s.data_mut();
                if let Some(rotated) = &rotated {
                    // Only over the refresh token this grant used: a record holding another
                    // one (only after a lost lock) already has a newer one.
                    if data.refresh_token.as_ref() == Some(&used) {
                        data.refresh_token = Some(rotated.clone());
                    }
                }
                data.resource_tokens
                    .retain(|_, token| now < token.expires_at);
                data.resource_tokens
                    .insert(request.resource.to_owned(), entry.clone());
                true
            })
            .await?;
        let Some(written) = written else {
            // Ended while the IdP answered: the new token ends with it.
            return Err(ResourceTokenError::Ended);
        };
        self.resource_flights().clear_backoff(&request.key);
        tracing::info!(
            event = "resource_token_fetched",
            resource = request.resource,
            session = written.log_id(),
            rotated = rotated.is_some(),
            expires_in = tokens.expires_in,
        );
        Ok(tokens.access_token)
    }
}

/// After a failure: a cached token that has not expired yet while the IdP cannot answer,
/// else the failure.
fn fallback(
    data: &SessionData,
    resource: &str,
    now: u64,
    failure: Failure,
) -> Result<SecretString, ResourceTokenError> {
    match failure {
        Failure::NotGranted => Err(ResourceTokenError::NotGranted),
        Failure::Unavailable => {
            unexpired(data, resource, now).ok_or(ResourceTokenError::Unavailable)
        }
    }
}

mod exchange;
mod flights;
#[cfg(test)]
mod tests;

pub use flights::ResourceFlights;
