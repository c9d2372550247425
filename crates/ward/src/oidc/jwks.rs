//! The IdP's signing keys.
//!
//! They are refetched on a schedule, so a key the IdP withdraws stops validating tokens: the
//! set is fresh for the JWKS response's `Cache-Control: max-age`, bounded to
//! [`MIN_MAX_AGE`]..=[`MAX_MAX_AGE`] ([`DEFAULT_MAX_AGE`] without one), and the first
//! validation after that fetches it again, replacing the whole set. A token naming a key Ward
//! does not know (key rotation) refetches too, but at most once per [`MIN_REFETCH_INTERVAL`]:
//! tokens with made-up `kid`s must not turn Ward into a load amplifier against the IdP. A
//! failed fetch keeps the previous keys (an IdP hiccup must not log everyone out) and is
//! retried no sooner than that interval.
//!
//! The readiness probe ([`KeyCache::probe`]) is a JWKS fetch too, at most once per
//! [`PROBE_INTERVAL`]. Time is the injected clock's.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tracing::Instrument as _;

use openidconnect::JsonWebKeySetUrl;
use openidconnect::core::CoreJsonWebKeySet;
use tokio::sync::Mutex;

use super::http::{HttpError, IdpHttpClient};

/// Seconds that must pass between two JWKS fetches caused by unknown keys or failures.
pub(crate) const MIN_REFETCH_INTERVAL: u64 = 10;
/// Shortest freshness granted, whatever `max-age` says: a `max-age=0` must not mean a fetch
/// per token.
pub(crate) const MIN_MAX_AGE: u64 = 5 * 60;
/// Longest freshness granted: a withdrawn key validates for a day at most.
pub(crate) const MAX_MAX_AGE: u64 = 24 * 60 * 60;
/// Freshness of a key set whose response states no `max-age` (and of the one loaded with the
/// discovery document, whose headers openidconnect does not show).
pub(crate) const DEFAULT_MAX_AGE: u64 = 60 * 60;
/// Seconds a readiness probe's answer is reused: orchestrators poll often, the IdP is spared.
pub(crate) const PROBE_INTERVAL: u64 = 5;
/// How long a readiness probe waits for the IdP: a probe answers before the orchestrator's
/// own timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the JWKS could not be fetched. Texts carry no key material.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwksError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("JWKS answered HTTP {0}")]
    Status(http::StatusCode),
    #[error("JWKS is not a valid key set")]
    Parse(#[source] serde_json::Error),
    #[error("JWKS request could not be built")]
    Request(#[source] http::Error),
    #[error("JWKS did not answer within {}s", PROBE_TIMEOUT.as_secs())]
    ProbeTimeout,
}

/// When the keys were fetched and until when they are fresh (unix seconds).
struct Schedule {
    /// Last fetch attempt, successful or not.
    last_fetch: u64,
    /// The keys are refetched at the first use from this instant on.
    fresh_until: u64,
    /// The last readiness probe: when, and whether the IdP answered.
    probe: Option<(u64, bool)>,
}

/// The current JWKS and its schedule.
pub(crate) struct KeyCache {
    jwks_uri: JsonWebKeySetUrl,
    keys: RwLock<Arc<CoreJsonWebKeySet>>,
    /// Held across a fetch, so concurrent callers wait for one fetch instead of each starting
    /// their own.
    schedule: Mutex<Schedule>,
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
            schedule: Mutex::new(Schedule {
                // The first unknown `kid` after start may refetch at once: a rotation right
                // after start is as legitimate as any other.
                last_fetch: fetched_at.saturating_sub(MIN_REFETCH_INTERVAL),
                fresh_until: fetched_at.saturating_add(DEFAULT_MAX_AGE),
                probe: None,
            }),
        }
    }

    /// The keys as they are now, stale or not (for answers that are not tokens).
    pub(crate) fn current(&self) -> Arc<CoreJsonWebKeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The keys to validate a token with at `now`: refetched first when their freshness has
    /// run out (and no fetch was tried within [`MIN_REFETCH_INTERVAL`]).
    pub(crate) async fn fresh(&self, http: &IdpHttpClient, now: u64) -> Arc<CoreJsonWebKeySet> {
        let mut schedule = self.schedule.lock().await;
        if now >= schedule.fresh_until
            && now >= schedule.last_fetch.saturating_add(MIN_REFETCH_INTERVAL)
        {
            let _ = self.fetch(&mut schedule, http, now, "scheduled").await;
        }
        self.current()
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
        let mut schedule = self.schedule.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, seen) {
            return Some(current);
        }
        if now < schedule.last_fetch.saturating_add(MIN_REFETCH_INTERVAL) {
            tracing::info!(
                event = "jwks_refetch_skipped",
                "unknown signing key; JWKS fetched recently"
            );
            return None;
        }
        self.fetch(&mut schedule, http, now, "unknown_key")
            .await
            .ok()
    }

    /// Whether the IdP serves its JWKS: a fetch (which also renews the keys) at most once per
    /// [`PROBE_INTERVAL`], the last answer otherwise.
    pub(crate) async fn probe(&self, http: &IdpHttpClient, now: u64) -> bool {
        let mut schedule = self.schedule.lock().await;
        if let Some((at, up)) = schedule.probe
            && now < at.saturating_add(PROBE_INTERVAL)
        {
            return up;
        }
        let fetched =
            tokio::time::timeout(PROBE_TIMEOUT, self.fetch(&mut schedule, http, now, "probe"))
                .await;
        let up = matches!(fetched, Ok(Ok(_)));
        if fetched.is_err() {
            schedule.last_fetch = now;
            tracing::warn!(event = "jwks_refresh_failed", reason = "probe", error = %JwksError::ProbeTimeout);
        }
        schedule.probe = Some((now, up));
        up
    }

    /// Fetches the keys, replaces the whole set on success (withdrawn keys go) and schedules
    /// the next fetch; a failure keeps the previous keys.
    async fn fetch(
        &self,
        schedule: &mut Schedule,
        http: &IdpHttpClient,
        now: u64,
        reason: &'static str,
    ) -> Result<Arc<CoreJsonWebKeySet>, JwksError> {
        schedule.last_fetch = now;
        match fetch(&self.jwks_uri, http).await {
            Ok((keys, max_age)) => {
                let keys = Arc::new(keys);
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&keys);
                schedule.fresh_until = now.saturating_add(max_age);
                tracing::info!(
                    event = "jwks_refreshed",
                    reason,
                    keys = keys.keys().len(),
                    max_age
                );
                Ok(keys)
            }
            Err(err) => {
                tracing::warn!(event = "jwks_refresh_failed", reason, error = %err, "keeping the previous keys");
                Err(err)
            }
        }
    }
}

/// GETs the JWKS; the set and how long it is fresh.
async fn fetch(
    url: &JsonWebKeySetUrl,
    http: &IdpHttpClient,
) -> Result<(CoreJsonWebKeySet, u64), JwksError> {
    let _timer = crate::telemetry::metrics::idp_timer("jwks");
    let request = http::Request::builder()
        .uri(url.as_str())
        .header(
            http::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .body(Vec::new())
        .map_err(JwksError::Request)?;
    let response = http
        .execute(request)
        .instrument(crate::telemetry::spans::idp("idp jwks"))
        .await?;
    if response.status() != http::StatusCode::OK {
        return Err(JwksError::Status(response.status()));
    }
    let keys = serde_json::from_slice(response.body()).map_err(JwksError::Parse)?;
    let cache_control = response
        .headers()
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    Ok((keys, max_age(&cache_control)))
}

/// The freshness `Cache-Control` grants, bounded to [`MIN_MAX_AGE`]..=[`MAX_MAX_AGE`];
/// [`DEFAULT_MAX_AGE`] without a usable `max-age`. `no-cache`/`no-store` get the minimum.
pub(crate) fn max_age(cache_control: &str) -> u64 {
    let mut max_age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return MIN_MAX_AGE;
        }
        if let Some(value) = lower.strip_prefix("max-age=") {
            max_age = value.trim_matches('"').parse::<u64>().ok().or(max_age);
        }
    }
    max_age.map_or(DEFAULT_MAX_AGE, |age| age.clamp(MIN_MAX_AGE, MAX_MAX_AGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_honoured_within_its_bounds() {
        assert_eq!(max_age("public, max-age=7200"), 7200);
        assert_eq!(max_age("max-age=\"900\""), 900);
        assert_eq!(max_age("MAX-AGE=600, must-revalidate"), 600);
        assert_eq!(max_age("max-age=0"), MIN_MAX_AGE);
        assert_eq!(max_age("max-age=10"), MIN_MAX_AGE);
        assert_eq!(max_age("max-age=31536000"), MAX_MAX_AGE);
        assert_eq!(max_age("no-store"), MIN_MAX_AGE);
        assert_eq!(max_age("max-age=3000, no-cache"), MIN_MAX_AGE);
    }

    #[test]
    fn no_usable_max_age_means_the_default() {
        assert_eq!(max_age(""), DEFAULT_MAX_AGE);
        assert_eq!(max_age("public"), DEFAULT_MAX_AGE);
        assert_eq!(max_age("max-age=soon"), DEFAULT_MAX_AGE);
        assert_eq!(max_age("max-age=-5"), DEFAULT_MAX_AGE);
    }
}
