//! The IdP's signing keys, refetched when a token names a key Ward does not know (key
//! rotation), but at most once per [`MIN_REFETCH_INTERVAL`]: tokens with made-up `kid`s must
//! not turn Ward into a load amplifier against the IdP.

use std::sync::{Arc, PoisonError, RwLock};

use openidconnect::JsonWebKeySetUrl;
use openidconnect::core::CoreJsonWebKeySet;
use tokio::sync::Mutex;

use super::http::{HttpError, IdpHttpClient};

/// Seconds that must pass between two JWKS fetches.
pub(crate) const MIN_REFETCH_INTERVAL: u64 = 10;

/// The current JWKS and when it was last fetched.
pub(crate) struct KeyCache {
    jwks_uri: JsonWebKeySetUrl,
    keys: RwLock<Arc<CoreJsonWebKeySet>>,
    /// Unix seconds of the last fetch attempt, successful or not. Held across a refetch, so
    /// concurrent callers wait for one fetch instead of each starting their own.
    last_fetch: Mutex<u64>,
}

impl KeyCache {
    /// A cache holding `keys`, fetched from `jwks_uri` at `fetched_at`.
    pub(crate) fn new(
        jwks_uri: JsonWebKeySetUrl,
        keys: CoreJsonWebKeySet,
        fetched_at: u64,
    ) -> Self {
        Self {
            jwks_uri,
            keys: RwLock::new(Arc::new(keys)),
            // The first unknown `kid` after start may refetch at once: a rotation right after
            // start is as legitimate as any other.
            last_fetch: Mutex::new(fetched_at.saturating_sub(MIN_REFETCH_INTERVAL)),
        }
    }

    /// The keys as they are now.
    pub(crate) fn current(&self) -> Arc<CoreJsonWebKeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Newer keys than `seen`, if there are any: either another caller refreshed them
    /// meanwhile, or they are fetched now. `None` when the refetch interval has not passed or
    /// the fetch failed (logged).
    pub(crate) async fn refresh(
        &self,
        seen: &Arc<CoreJsonWebKeySet>,
        http: &IdpHttpClient,
        now: u64,
    ) -> Option<Arc<CoreJsonWebKeySet>> {
        let mut last_fetch = self.last_fetch.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, seen) {
            return Some(current);
        }
        if now < last_fetch.saturating_add(MIN_REFETCH_INTERVAL) {
            tracing::info!(
                event = "jwks_refetch_skipped",
                "unknown signing key; JWKS fetched recently"
            );
            return None;
        }
        *last_fetch = now;
        match fetch(&self.jwks_uri, http).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&keys);
                tracing::info!(event = "jwks_refreshed", keys = keys.keys().len());
                Some(keys)
            }
            Err(err) => {
                tracing::warn!(event = "jwks_refresh_failed", error = %err, "keeping the previous keys");
                None
            }
        }
    }
}

async fn fetch(
    url: &JsonWebKeySetUrl,
    http: &IdpHttpClient,
) -> Result<CoreJsonWebKeySet, openidconnect::DiscoveryError<HttpError>> {
    CoreJsonWebKeySet::fetch_async(url, http).await
}
