//! Access-token refresh before forwarding (SPEC §5): once per session, however many requests
//! find the token near expiry at the same time, on one instance or several sharing a store.
//!
//! Why once: the IdP rotates refresh tokens, and presenting a rotated-out one is `invalid_grant`
//! (and, by RFC 9700 §4.14.2, may revoke the whole grant). Two refreshes racing with the same
//! refresh token would log the user out. So:
//!
//! - **In one process** requests of a session queue on one async mutex ([`RefreshFlights`]);
//!   the first refreshes and leaves the outcome in the flight, the others adopt it when the
//!   token they hold is the one it replaced.
//! - **Across instances** the refreshing request takes an owned lock in the store
//!   ([`Lease`]: a record holding a random owner token, insert-if-absent with a [`LOCK_TTL`],
//!   so a holder that dies releases it by expiry). The holder renews it every [`LOCK_RENEW`]
//!   while it works, so a slow IdP or store never lets it lapse under a live holder; it
//!   re-reads the session (another instance may have refreshed meanwhile), refreshes, writes
//!   the new tokens over exactly the record it re-read (`replace_if`; re-applied when a slide
//!   wrote in between; a session ended meanwhile stays ended) and releases the lock by
//!   compare-and-delete, so a holder whose lock did lapse never deletes the next holder's.
//!   The others poll the session record every [`LOCK_POLL`] for at most [`LOCK_WAIT`] and use
//!   the new token as soon as it is there; should the lock vanish without a new token (its
//!   holder failed or died), the next poll takes it.
//! - **Writes of the idle timer** (and re-sealing) compare against the record the request
//!   read (`replace_if` on its sealed bytes, which every write changes): a request that read
//!   the session before a refresh re-reads and slides the refreshed record instead of writing
//!   its older tokens back.
//!
//! Outcomes: a refused grant (`invalid_grant`) or a refreshed ID token that does not belong to
//! the session ends the session (record deleted, `401`). A transient failure (IdP unreachable,
//! 5xx, timeout, malformed answer) never ends it: the still-valid old token is forwarded, an
//! expired one never is (`502`, `Retry-After`); the session then waits [`BACKOFF`] seconds
//! before it asks the IdP again, so a burst of requests does not hammer a failing IdP.
//!
//! Sessions without a refresh token or without a known expiry are not refreshed: their token
//! is forwarded as it is and the API decides (Ward cannot renew it; a `401` from the API sends
//! the SPA to log in again).
//!
//! Limits: with the stateless cookie store there is no shared record to lock, so only the
//! in-process single flight applies.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;
use ward_store::StoreError;
use ward_store::lock::Lease;

use super::manager::{LoadedSession, SessionManager};
use super::record::SessionData;
use crate::oidc::dpop::DpopKey;
use crate::oidc::{OidcClient, OidcError, RefreshedTokens};
use crate::secret::SecretString;
use crate::telemetry::Chain;

/// Store namespace of refresh locks.
const LOCK_NS: &str = "l";
/// Lifetime of a refresh lock (store time, seconds) unless its holder renews it: what a dead
/// holder costs the session's other requests. A live holder renews it every [`LOCK_RENEW`],
/// so a refresh may take longer (a slow IdP, a slow store) without losing it.
pub const LOCK_TTL: u64 = 15;
/// How often the holder renews its lock: a third of its lifetime, so one renewal may be slow
/// (a store call is bounded well below that: 5 s Redis, 10 s PostgreSQL) without a lapse.
pub const LOCK_RENEW: Duration = Duration::from_secs(LOCK_TTL / 3);
/// How long a request waits for another instance's refresh before giving up on it.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting request re-reads the session record.
pub const LOCK_POLL: Duration = Duration::from_millis(100);
/// Upper bound of one refresh at the IdP, JWKS refetch included.
pub(super) const REFRESH_DEADLINE: Duration = Duration::from_secs(12);
/// Seconds without a new refresh attempt after a transient failure (also `Retry-After`).
pub const BACKOFF: u64 = 5;

/// The one thing refresh needs from the IdP; [`OidcClient`] in production.
pub(crate) trait Refresher: Sync {
    /// Redeems `refresh_token` of the session of `sub`, whose login's ID token is `original`;
    /// with the session's DPoP key, proving it (the new token is bound to it again).
    fn refresh(
        &self,
        refresh_token: &SecretString,
        sub: &str,
        original: &SecretString,
        dpop_key: Option<&DpopKey>,
    ) -> impl Future<Output = Result<RefreshedTokens, OidcError>> + Send;
}

impl Refresher for OidcClient {
    fn refresh(
        &self,
        refresh_token: &SecretString,
        sub: &str,
        original: &SecretString,
        dpop_key: Option<&DpopKey>,
    ) -> impl Future<Output = Result<RefreshedTokens, OidcError>> + Send {
        OidcClient::refresh(self, refresh_token, sub, original, dpop_key)
    }
}

/// Why a request cannot be forwarded after a refresh attempt.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The IdP refused the refresh (or answered for another user): the session was ended.
    #[error("refresh refused; the session was ended")]
    Ended,
    /// The access token has expired and the IdP could not refresh it now.
    #[error("access token expired and the IdP could not refresh it")]
    Unavailable,
    /// The store failed (fail closed: 503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The token fields a refresh changes.
#[derive(Clone)]
struct Tokens {
    access_token: SecretString,
    refresh_token: Option<SecretString>,
    id_token: SecretString,
    access_expires_at: Option<u64>,
}

impl Tokens {
    fn of(data: &SessionData) -> Self {
        Self {
            access_token: data.access_token.clone(),
            refresh_token: data.refresh_token.clone(),
            id_token: data.id_token.clone(),
            access_expires_at: data.access_expires_at,
        }
    }

    fn apply(self, data: &mut SessionData) {
        data.access_token = self.access_token;
        data.refresh_token = self.refresh_token;
        data.id_token = self.id_token;
        data.access_expires_at = self.access_expires_at;
    }
}

/// How one refresh attempt ended.
#[derive(Clone)]
enum Outcome {
    /// The session now holds these tokens.
    Refreshed(Tokens),
    /// The session was ended (refused refresh, or ended elsewhere meanwhile).
    Ended,
    /// The IdP could not refresh now; the session is kept as it was.
    Failed,
}

/// An attempt's outcome, for the requests that queued behind it.
struct Settled {
    /// The access token the attempt started from: only requests holding it adopt the outcome.
    from: SecretString,
    outcome: Outcome,
}

type Flight = tokio::sync::Mutex<Option<Settled>>;

/// Per-process refresh state: one flight per session being refreshed (dropped with its last
/// request) and the back-off after transient failures.
#[derive(Default)]
pub struct RefreshFlights {
    flights: Mutex<HashMap<String, Weak<Flight>>>,
    /// Session store key → the time before which the IdP is not asked again.
    backoff: Mutex<HashMap<String, u64>>,
}

/// The flight under `key` in `flights`, joined while one of its requests still holds it, else
/// a new one. Entries of finished flights are dropped here, so the map holds about the live
/// ones only. (Refresh flights and resource-token flights alike.)
pub(crate) fn join_flight<T: Default>(
    flights: &Mutex<HashMap<String, Weak<T>>>,
    key: &str,
) -> Arc<T> {
    let mut flights = flights.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(flight) = flights.get(key).and_then(Weak::upgrade) {
        return flight;
    }
    flights.retain(|_, flight| flight.strong_count() > 0);
    let flight = Arc::new(T::default());
    flights.insert(key.to_owned(), Arc::downgrade(&flight));
    flight
}

impl RefreshFlights {
    /// The flight of the session under `key`, joined or started.
    fn join(&self, key: &str) -> Arc<Flight> {
        join_flight(&self.flights, key)
    }

    fn backing_off(&self, key: &str, now: u64) -> bool {
        let backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff.get(key).is_some_and(|until| now < *until)
    }

    fn back_off(&self, key: &str, now: u64) {
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff.retain(|_, until| now < *until);
        backoff.insert(key.to_owned(), now.saturating_add(BACKOFF));
    }

    fn clear_backoff(&self, key: &str) {
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff.remove(key);
    }
}

/// Whether the session's access token should be refreshed now: it expires within `skew`
/// seconds and there is a refresh token to do it with.
fn due(data: &SessionData, now: u64, skew: u64) -> bool {
    data.refresh_token.is_some()
        && data
            .access_expires_at
            .is_some_and(|expires| now.saturating_add(skew) >= expires)
}

impl SessionManager {
    /// Makes `session` carry an access token that is not within `skew` of expiry, refreshing
    /// it once for all concurrent requests of the session (see the module documentation).
    /// `Ok` means: forward with `session.data.access_token`.
    pub async fn ensure_fresh(
        &self,
        session: &mut LoadedSession,
        oidc: &OidcClient,
        skew: Duration,
    ) -> Result<(), RefreshError> {
        self.ensure_fresh_with(session, oidc, skew.as_secs()).await
    }

    pub(crate) async fn ensure_fresh_with(
        &self,
        session: &mut LoadedSession,
        refresher: &impl Refresher,
        skew: u64,
    ) -> Result<(), RefreshError> {
        if !due(&session.data, self.refresh_parts().0.now(), skew) {
            return Ok(());
        }
        // The refresh (store reads, the single flight, the IdP call) is a large future: boxed,
        // so that the requests that need none do not carry its state (every request's future
        // is moved into a box by the router: its size is copied per request).
        Box::pin(self.refresh_due(session, refresher, skew)).await
    }

    /// [`ensure_fresh_with`](Self::ensure_fresh_with) for a session whose token is due.
    async fn refresh_due(
        &self,
        session: &mut LoadedSession,
        refresher: &impl Refresher,
        skew: u64,
    ) -> Result<(), RefreshError> {
        let (clock, flights) = self.refresh_parts();
        // Decide on the record as it is now: the copy this request loaded may come from a read
        // cache (`[store] cache_ttl`), and another instance may have refreshed it since.
        match self.load_current(session.cookie.clone()).await? {
            None => return Err(RefreshError::Ended),
            Some(current) if current.data.access_token != session.data.access_token => {
                *session = current;
                if !due(&session.data, clock.now(), skew) {
                    return Ok(());
                }
            }
            Some(_) => {}
        }
        let flight = flights.join(&session.key);
        let mut settled = flight.lock().await;
        let outcome = match settled.as_ref() {
            Some(done) if done.from == session.data.access_token => done.outcome.clone(),
            _ => {
                let from = session.data.access_token.clone();
                let outcome = self.refresh_shared(session, refresher).await?;
                *settled = Some(Settled {
                    from,
                    outcome: outcome.clone(),
                });
                outcome
            }
        };
        drop(settled);
        match outcome {
            Outcome::Refreshed(tokens) => {
                tokens.apply(session.data_mut());
                Ok(())
            }
            Outcome::Ended => Err(RefreshError::Ended),
            Outcome::Failed => {
                let now = self.refresh_parts().0.now();
                if session.data.access_expires_at.is_some_and(|exp| now < exp) {
                    Ok(())
                } else {
                    Err(RefreshError::Unavailable)
                }
            }
        }
    }

    /// Refreshes under the store lock, or waits for the instance that holds it.
    async fn refresh_shared(
        &self,
        session: &LoadedSession,
        refresher: &impl Refresher,
    ) -> Result<Outcome, StoreError> {
        let (clock, flights) = self.refresh_parts();
        if flights.backing_off(&session.key, clock.now()) {
            tracing::debug!(
                event = "refresh_skipped",
                reason = "backoff",
                session = session.log_id()
            );
            return Ok(Outcome::Failed);
        }
        if self.store().kind() == "cookie" {
            // Nothing shared to lock: the record travels with this browser's requests.
            return self.refresh_locked(session, refresher).await;
        }
        let lock_key = self.refresh_lock_key(session);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let store = self.store().as_ref();
            if let Some(lease) = Lease::acquire(store, &lock_key, LOCK_TTL, clock.now()).await? {
                return self.refresh_holding(lease, session, refresher).await;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    event = "refresh_failed",
                    reason = "lock_timeout",
                    session = session.log_id(),
                    "another instance's refresh did not finish in time"
                );
                return Ok(Outcome::Failed);
            }
            tokio::time::sleep(LOCK_POLL).await;
            match self.load_current(session.cookie.clone()).await? {
                None => return Ok(Outcome::Ended),
                Some(current) if current.data.access_token != session.data.access_token => {
                    return Ok(Outcome::Refreshed(Tokens::of(&current.data)));
                }
                Some(_) => {}
            }
        }
    }

    /// Refreshes while holding `lease` (see [`holding`](Self::holding)).
    async fn refresh_holding(
        &self,
        lease: Lease,
        session: &LoadedSession,
        refresher: &impl Refresher,
    ) -> Result<Outcome, StoreError> {
        let work = self.refresh_locked(session, refresher);
        self.holding(lease, session, work).await
    }

    /// The store key of the session's refresh lock: one lock for every use of its refresh
    /// token (the main refresh and the resource tokens of `session::resource_tokens`).
    pub(super) fn refresh_lock_key(&self, session: &LoadedSession) -> String {
        self.sealer().store_key(LOCK_NS, session.key.as_bytes())
    }

    /// Runs `work` while holding `lease`, renewing it every [`LOCK_RENEW`] so that a slow IdP
    /// or store never lets it expire under this holder, then releases it (only if still its
    /// own: a lost lock belongs to its next holder).
    pub(super) async fn holding<T>(
        &self,
        mut lease: Lease,
        session: &LoadedSession,
        work: impl Future<Output = T>,
    ) -> T {
        let (store, clock) = (self.store().as_ref(), self.refresh_parts().0);
        tokio::pin!(work);
        let renewing = async {
            loop {
                tokio::time::sleep(LOCK_RENEW).await;
                match lease.renew(store, LOCK_TTL, clock.now()).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(err) => tracing::warn!(
                        event = "refresh_lock_renewal_failed",
                        session = session.log_id(),
                        error = &err as &dyn std::error::Error,
                        "refresh lock not renewed; retrying"
                    ),
                }
            }
        };
        let outcome = tokio::select! {
            outcome = &mut work => outcome,
            () = renewing => {
                // Expired anyway (the store was unreachable past the lock's lifetime): the
                // refresh goes on; its write still only lands over the record it read.
                tracing::warn!(event = "refresh_lock_lost", session = session.log_id());
                work.await
            }
        };
        match lease.release(store).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                event = "refresh_lock_lost",
                session = session.log_id(),
                "refresh lock expired before its release; the next holder keeps it"
            ),
            Err(err) => tracing::warn!(
                event = "refresh_lock_kept",
                session = session.log_id(),
                error = &err as &dyn std::error::Error,
                "refresh lock not released; it expires by itself"
            ),
        }
        outcome
    }

    /// The refresh itself, by the holder of the lock.
    async fn refresh_locked(
        &self,
        session: &LoadedSession,
        refresher: &impl Refresher,
    ) -> Result<Outcome, StoreError> {
        // Re-read: another instance may have refreshed (or the session ended) since this
        // request loaded it; the record's refresh token is the current one.
        let Some(current) = self.load_current(session.cookie.clone()).await? else {
            return Ok(Outcome::Ended);
        };
        if current.data.access_token != session.data.access_token {
            return Ok(Outcome::Refreshed(Tokens::of(&current.data)));
        }
        let Some(refresh_token) = current.data.refresh_token.clone() else {
            return Ok(Outcome::Failed);
        };
        let attempt = tokio::time::timeout(
            REFRESH_DEADLINE,
            refresher.refresh(
                &refresh_token,
                &current.data.sub,
                &current.data.id_token,
                current.data.dpop_key.as_ref(),
            ),
        )
        .await;
        match attempt {
            Ok(Ok(tokens)) => self.store_refreshed(current, tokens).await,
            Ok(Err(err)) => self.refresh_refused(&current, &err).await,
            Err(_) => {
                let (clock, flights) = self.refresh_parts();
                flights.back_off(&session.key, clock.now());
                tracing::warn!(
                    event = "refresh_failed",
                    reason = "timeout",
                    session = current.log_id(),
                    "IdP did not refresh in time; session kept"
                );
                Ok(Outcome::Failed)
            }
        }
    }

    /// Writes the IdP's new tokens into the record read under the lock: over exactly that
    /// record, re-applied to a newer one when a slide wrote in between, never over an ended
    /// session.
    async fn store_refreshed(
        &self,
        current: LoadedSession,
        tokens: RefreshedTokens,
    ) -> Result<Outcome, StoreError> {
        let (clock, flights) = self.refresh_parts();
        let rotated = tokens.refresh_token.is_some();
        let expires_in = tokens
            .access_expires_at
            .map(|at| at.saturating_sub(clock.now()));
        let from = current.data.access_token.clone();
        let mut new = Tokens::of(&current.data);
        new.access_token = tokens.access_token;
        new.refresh_token = tokens.refresh_token.or(new.refresh_token);
        new.id_token = tokens.id_token.unwrap_or(new.id_token);
        new.access_expires_at = tokens.access_expires_at;
        let written = self
            .update(current, |s| {
                // A record whose tokens changed otherwise (only after a lost lock) is kept.
                let ours = s.data.access_token == from;
                if ours {
                    new.clone().apply(s.data_mut());
                }
                ours
            })
            .await?;
        let Some(written) = written else {
            // Ended while the IdP answered: the new tokens end with it.
            return Ok(Outcome::Ended);
        };
        flights.clear_backoff(&written.key);
        tracing::info!(
            event = "refresh_succeeded",
            session = written.log_id(),
            rotated,
            expires_in,
        );
        Ok(Outcome::Refreshed(Tokens::of(&written.data)))
    }

    /// A refresh the IdP did not grant: a refusal ends the session, anything else backs off.
    async fn refresh_refused(
        &self,
        current: &LoadedSession,
        err: &OidcError,
    ) -> Result<Outcome, StoreError> {
        if err.ends_session() {
            self.delete(current).await?;
            let reason = if err.is_invalid_grant() {
                "invalid_grant"
            } else {
                "invalid_id_token"
            };
            tracing::warn!(
                event = "refresh_failed",
                reason,
                session = current.log_id(),
                error = %Chain(err),
                "refresh refused; session ended"
            );
            return Ok(Outcome::Ended);
        }
        let (clock, flights) = self.refresh_parts();
        flights.back_off(&current.key, clock.now());
        let reason = if err.idp_unavailable().is_some() {
            "idp_unavailable"
        } else {
            "idp_error"
        };
        tracing::warn!(
            event = "refresh_failed",
            reason,
            session = current.log_id(),
            error = %Chain(err),
            "refresh failed; session kept"
        );
        Ok(Outcome::Failed)
    }
}

#[cfg(test)]
mod tests;
