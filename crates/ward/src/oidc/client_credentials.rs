//! Ward's own access tokens for `token = "client"` routes: the OAuth 2.0 client-credentials
//! grant (RFC 6749 §4.4) with Ward's client authentication, cached per scope set.
//!
//! A cached token is used until `expires_in − refresh_skew` (at most half its lifetime is
//! given up, so short-lived tokens are still reused), then replaced by a new one. However many
//! requests need a token at once, one request goes to the IdP: the others wait for it and take
//! its token, or its failure (they do not queue up their own attempts behind a failing IdP).
//! The token is a [`SecretString`]: it reaches only the upstream's `Authorization` header.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tracing::Instrument as _;

use openidconnect::{OAuth2TokenResponse, Scope};
use ward_store::Clock;

use super::endpoint::EndpointError;
use super::{OidcClient, OidcError};
use crate::secret::SecretString;

/// How long a token without `expires_in` is reused (before the skew is taken off): RFC 6749
/// makes the field optional, and such a token may still expire at any time.
const LIFETIME_WITHOUT_EXPIRES_IN: u64 = 300;

/// Why no client-credentials token is available. Neither variant carries an IdP answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientTokenError {
    /// This request's own call to the token endpoint failed.
    #[error("client-credentials token request failed")]
    Fetch(#[source] OidcError),
    /// The call this request waited for (another request's) failed.
    #[error("the client-credentials token request this request waited for failed")]
    Shared,
}

/// A token as the IdP issued it.
pub(crate) struct IssuedToken {
    pub access_token: SecretString,
    /// `expires_in` (seconds), when the IdP sent it.
    pub expires_in: Option<u64>,
}

/// The cache of Ward's client-credentials tokens, one slot per distinct scope set.
pub struct ClientTokens {
    clock: Arc<dyn Clock>,
    /// `[oidc] refresh_skew`, seconds.
    skew: u64,
    /// Keyed by the normalised scope parameter. Keys come from the configured routes only,
    /// never from requests, so the map stays as small as the route table.
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    /// Token-endpoint calls completed for this slot (successful or not). A request reads it
    /// before waiting for the slot; finding it moved on (and the call failed) means a call
    /// failed while it waited.
    completed: AtomicU64,
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    token: Option<CachedToken>,
    /// The last completed call failed. Cleared when a call begins, so a call abandoned
    /// half-way (its request went away) leaves the next waiter to try again rather than fail.
    last_failed: bool,
}

struct CachedToken {
    token: SecretString,
    /// Unix seconds from which the token is replaced.
    replace_at: u64,
}

impl ClientTokens {
    /// An empty cache; tokens are replaced `refresh_skew` before they expire.
    pub fn new(clock: Arc<dyn Clock>, refresh_skew: Duration) -> Self {
        Self {
            clock,
            skew: refresh_skew.as_secs(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A token for `scopes` (a route's `scopes`; `None` or empty: no `scope` parameter), from
    /// the cache or, once for all concurrent callers, from the IdP.
    pub async fn token(
        &self,
        oidc: &OidcClient,
        scopes: Option<&[String]>,
    ) -> Result<SecretString, ClientTokenError> {
        self.token_for(oidc, scopes, None).await
    }

    /// [`token`](Self::token) for the RFC 8707 `resource` of the route, when it names one:
    /// a token per scope set and resource.
    pub async fn token_for(
        &self,
        oidc: &OidcClient,
        scopes: Option<&[String]>,
        resource: Option<&str>,
    ) -> Result<SecretString, ClientTokenError> {
        let scopes = normalise(scopes.unwrap_or_default());
        let mut key = scopes.join(" ");
        if let Some(resource) = resource {
            // A line break occurs in no scope token and no validated resource: no collisions
            // (a scope may look like `resource=…`).
            key.push_str("\nresource=");
            key.push_str(resource);
        }
        let result = self
            .get_or_fetch(&key, || {
                oidc.client_credentials_token_for(&scopes, resource)
            })
            .await;
        if let Err(err) = &result {
            tracing::warn!(
                event = "client_token_failed",
                scope = %key,
                error = %chain(err),
                "no client-credentials token"
            );
        }
        result
    }

    /// The slot for `key`, created on first use.
    fn slot(&self, key: &str) -> Arc<Slot> {
        // The map is only read and inserted into; a panic elsewhere cannot leave it torn.
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(key.to_owned()).or_default())
    }

    async fn get_or_fetch<F, Fut>(
        &self,
        key: &str,
        fetch: F,
    ) -> Result<SecretString, ClientTokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<IssuedToken, OidcError>>,
    {
        let slot = self.slot(key);
        let seen = slot.completed.load(Ordering::Acquire);
        let mut state = slot.state.lock().await;
        let now = self.clock.now();
        if let Some(cached) = &state.token
            && now < cached.replace_at
        {
            return Ok(cached.token.clone());
        }
        if state.last_failed && slot.completed.load(Ordering::Acquire) != seen {
            return Err(ClientTokenError::Shared);
        }
        state.last_failed = false;
        state.token = None;
        let fetched = fetch().await;
        slot.completed.fetch_add(1, Ordering::AcqRel);
        match fetched {
            Ok(issued) => {
                let lifetime = issued.expires_in.unwrap_or(LIFETIME_WITHOUT_EXPIRES_IN);
                let replace_at = self
                    .clock
                    .now()
                    .saturating_add(lifetime - self.skew.min(lifetime / 2));
                tracing::info!(
                    event = "client_token_fetched",
                    scope = %key,
                    expires_in = issued.expires_in,
                    "client-credentials token obtained"
                );
                state.token = Some(CachedToken {
                    token: issued.access_token.clone(),
                    replace_at,
                });
                Ok(issued.access_token)
            }
            Err(err) => {
                state.last_failed = true;
                Err(ClientTokenError::Fetch(err))
            }
        }
    }
}

/// `err` and its causes, `: `-joined. Every text in the chain is a summary made not to carry
/// an IdP body or a token (`EndpointError`, `HttpError`).
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}

/// Scopes without empty entries, sorted and de-duplicated: a scope set names one token
/// whatever order a route lists it in.
fn normalise(scopes: &[String]) -> Vec<String> {
    let mut scopes: Vec<String> = scopes
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

impl OidcClient {
    /// [`client_credentials_token_for`](Self::client_credentials_token_for) without a
    /// resource.
    #[cfg(test)]
    pub(crate) async fn client_credentials_token(
        &self,
        scopes: &[String],
    ) -> Result<IssuedToken, OidcError> {
        self.client_credentials_token_for(scopes, None).await
    }

    /// `grant_type=client_credentials` at the token endpoint with Ward's client authentication,
    /// `scope` (space-joined `scopes`, left out when empty) and the RFC 8707 `resource` when
    /// given. Only a non-empty Bearer token is accepted.
    pub(crate) async fn client_credentials_token_for(
        &self,
        scopes: &[String],
        resource: Option<&str>,
    ) -> Result<IssuedToken, OidcError> {
        let mut request = self
            .client
            .exchange_client_credentials()
            .add_scopes(scopes.iter().cloned().map(Scope::new));
        if let Some(resource) = resource {
            request = request.add_extra_param("resource", resource.to_owned());
        }
        let request =
            self.with_assertion(request, |r, name, value| r.add_extra_param(name, value))?;
        let _timer = crate::telemetry::metrics::idp_timer("client_credentials");
        let response = request
            .request_async(&self.http)
            .instrument(crate::telemetry::spans::idp("idp client_credentials"))
            .await
            .map_err(|err| OidcError::TokenRequest(Box::new(EndpointError::from_request(err))))?;
        // RFC 6749 §5.1: the token type is case-insensitive; Ward only speaks Bearer.
        if !response
            .token_type()
            .as_ref()
            .eq_ignore_ascii_case("bearer")
        {
            return Err(OidcError::IncompleteResponse("a bearer token_type"));
        }
        if response.access_token().secret().is_empty() {
            return Err(OidcError::IncompleteResponse("access_token"));
        }
        Ok(IssuedToken {
            access_token: SecretString::new(response.access_token().secret().clone()),
            expires_in: response.expires_in().map(|ttl| ttl.as_secs()),
        })
    }
}

#[cfg(test)]
mod tests;
