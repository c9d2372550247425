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
//! - **Across instances** the refreshing request takes a lock record in the store
//!   ([`SessionStore::put_new`](ward_store::SessionStore::put_new), insert-if-absent with a
//!   [`LOCK_TTL`], so a holder that dies releases it by expiry). Whoever holds it re-reads the
//!   session (another instance may have refreshed meanwhile), refreshes, writes the new tokens
//!   over the live record only (`replace`: a session ended meanwhile stays ended) and deletes
//!   the lock. The others poll the session record every [`LOCK_POLL`] for at most
//!   [`LOCK_WAIT`] and use the new token as soon as it is there; should the lock vanish
//!   without a new token (its holder failed or died), the next poll takes it.
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
//! in-process single flight applies. A request that read the session just before another one
//! refreshed it, and found its own copy not yet due, may still write that older copy back when
//! it resets the idle timer (a window of about a second at the refresh boundary); the next
//! refresh with the older refresh token then fails with `invalid_grant` and ends the session.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Response, header};
use axum::response::IntoResponse;
use tokio::time::Instant;
use ward_store::{Record, StoreError};

use super::manager::{LoadedSession, SessionManager};
use super::record::SessionData;
use crate::error::ApiError;
use crate::oidc::{OidcClient, OidcError, RefreshedTokens};
use crate::secret::SecretString;

/// Store namespace of refresh locks.
const LOCK_NS: &str = "l";
/// Lifetime of a refresh lock (store time, seconds): longer than one refresh may take
/// ([`REFRESH_DEADLINE`] plus the store writes), short enough that a dead holder is not felt.
pub const LOCK_TTL: u64 = 15;
/// How long a request waits for another instance's refresh before giving up on it.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting request re-reads the session record.
pub const LOCK_POLL: Duration = Duration::from_millis(100);
/// Upper bound of one refresh at the IdP, JWKS refetch included.
const REFRESH_DEADLINE: Duration = Duration::from_secs(12);
/// Seconds without a new refresh attempt after a transient failure (also `Retry-After`).
pub const BACKOFF: u64 = 5;

/// The one thing refresh needs from the IdP; [`OidcClient`] in production.
pub(crate) trait Refresher: Sync {
    /// Redeems `refresh_token` of the session of `sub`.
    fn refresh(
        &self,
        refresh_token: &SecretString,
        sub: &str,
    ) -> impl Future<Output = Result<RefreshedTokens, OidcError>> + Send;
}

impl Refresher for OidcClient {
    fn refresh(
        &self,
        refresh_token: &SecretString,
        sub: &str,
    ) -> impl Future<Output = Result<RefreshedTokens, OidcError>> + Send {
        OidcClient::refresh(self, refresh_token, sub)
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

impl RefreshError {
    /// The response for the browser: `401` with the session cookie expired, `502` with
    /// `Retry-After`, or `503`.
    pub fn into_response(self, sessions: &SessionManager) -> Response<Body> {
        match self {
            Self::Ended => {
                let mut response = ApiError::Unauthenticated.into_response();
                if let Ok(clear) = HeaderValue::try_from(sessions.clear_session_cookie()) {
                    response.headers_mut().append(header::SET_COOKIE, clear);
                }
                response
            }
            Self::Unavailable => {
                let mut response = ApiError::UpstreamUnavailable.into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(BACKOFF));
                response
            }
            Self::Store(err) => ApiError::from(err).into_response(),
        }
    }
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

impl RefreshFlights {
    /// The flight of the session under `key`, joined or started.
    fn join(&self, key: &str) -> Arc<Flight> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = flights.get(key).and_then(Weak::upgrade) {
            return flight;
        }
        // Entries of finished flights go here, so the map holds about the live ones only.
        flights.retain(|_, flight| flight.strong_count() > 0);
        let flight = Arc::new(Flight::default());
        flights.insert(key.to_owned(), Arc::downgrade(&flight));
        flight
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
        let (clock, flights) = self.refresh_parts();
        if !due(&session.data, clock.now(), skew) {
            return Ok(());
        }
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
        let lock_key = self.sealer().store_key(LOCK_NS, session.key.as_bytes());
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let now = clock.now();
            let lock = Record {
                value: Vec::new(),
                expires_at: now.saturating_add(LOCK_TTL),
                indexes: Vec::new(),
                created_at: now,
                updated_at: now,
            };
            if self.store().put_new(&lock_key, lock).await? {
                let outcome = self.refresh_locked(session, refresher).await;
                if let Err(err) = self.store().delete(&lock_key).await {
                    tracing::warn!(
                        event = "refresh_lock_kept",
                        session = session.log_id(),
                        error = %err,
                        "refresh lock not released; it expires by itself"
                    );
                }
                return outcome;
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

    /// The refresh itself, by the holder of the lock.
    async fn refresh_locked(
        &self,
        session: &LoadedSession,
        refresher: &impl Refresher,
    ) -> Result<Outcome, StoreError> {
        // Re-read: another instance may have refreshed (or the session ended) since this
        // request loaded it; the record's refresh token is the current one.
        let Some(mut current) = self.load_current(session.cookie.clone()).await? else {
            return Ok(Outcome::Ended);
        };
        if current.data.access_token != session.data.access_token {
            return Ok(Outcome::Refreshed(Tokens::of(&current.data)));
        }
        let Some(refresh_token) = current.data.refresh_token.clone() else {
            return Ok(Outcome::Failed);
        };
        let (clock, flights) = self.refresh_parts();
        let attempt = tokio::time::timeout(
            REFRESH_DEADLINE,
            refresher.refresh(&refresh_token, &current.data.sub),
        )
        .await;
        let err = match attempt {
            Ok(Ok(tokens)) => {
                let rotated = tokens.refresh_token.is_some();
                let expires_in = tokens
                    .access_expires_at
                    .map(|at| at.saturating_sub(clock.now()));
                let data = current.data_mut();
                data.access_token = tokens.access_token;
                if let Some(refresh_token) = tokens.refresh_token {
                    data.refresh_token = Some(refresh_token);
                }
                if let Some(id_token) = tokens.id_token {
                    data.id_token = id_token;
                }
                data.access_expires_at = tokens.access_expires_at;
                if !self.save_existing(&current).await? {
                    // Ended while the IdP answered: the new tokens end with it.
                    return Ok(Outcome::Ended);
                }
                flights.clear_backoff(&session.key);
                tracing::info!(
                    event = "refresh_succeeded",
                    session = current.log_id(),
                    rotated,
                    expires_in,
                );
                return Ok(Outcome::Refreshed(Tokens::of(&current.data)));
            }
            Ok(Err(err)) => err,
            Err(_) => {
                flights.back_off(&session.key, clock.now());
                tracing::warn!(
                    event = "refresh_failed",
                    reason = "timeout",
                    session = current.log_id(),
                    "IdP did not refresh in time; session kept"
                );
                return Ok(Outcome::Failed);
            }
        };
        if err.ends_session() {
            self.delete(&current).await?;
            let reason = if err.is_invalid_grant() {
                "invalid_grant"
            } else {
                "invalid_id_token"
            };
            tracing::warn!(
                event = "refresh_failed",
                reason,
                session = current.log_id(),
                error = %err,
                cause = ?std::error::Error::source(&err).map(ToString::to_string),
                "refresh refused; session ended"
            );
            return Ok(Outcome::Ended);
        }
        flights.back_off(&session.key, clock.now());
        let reason = if err.idp_unavailable().is_some() {
            "idp_unavailable"
        } else {
            "idp_error"
        };
        tracing::warn!(
            event = "refresh_failed",
            reason,
            session = current.log_id(),
            error = %err,
            cause = ?std::error::Error::source(&err).map(ToString::to_string),
            "refresh failed; session kept"
        );
        Ok(Outcome::Failed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ward_store::memory::MemoryStore;
    use ward_store::{Clock, ManualClock, SessionStore};

    use super::*;
    use crate::oidc::TokenSet;
    use crate::session::SessionSettings;
    use crate::session::cookie::CookieAttributes;
    use crate::session::keyring::KeyRing;
    use crate::session::seal::Sealer;

    const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const NOW: u64 = 1_000_000;
    const SKEW: u64 = 60;

    /// A fake IdP with rotating refresh tokens: each refresh token works once.
    struct FakeIdp {
        calls: AtomicUsize,
        answer: Mutex<Answer>,
        valid_refresh_token: Mutex<String>,
        clock: Arc<ManualClock>,
        /// Held (written) by a test, it stops each refresh at the IdP until released, so
        /// concurrent requests pile up behind the first.
        gate: tokio::sync::RwLock<()>,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Answer {
        Rotate,
        ServerError,
    }

    impl FakeIdp {
        fn new(clock: Arc<ManualClock>) -> Self {
            Self {
                calls: AtomicUsize::new(0),
                answer: Mutex::new(Answer::Rotate),
                valid_refresh_token: Mutex::new("rt-0".to_owned()),
                clock,
                gate: tokio::sync::RwLock::new(()),
            }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        fn answer(&self, answer: Answer) {
            *self.answer.lock().unwrap() = answer;
        }
    }

    impl Refresher for FakeIdp {
        async fn refresh(
            &self,
            refresh_token: &SecretString,
            sub: &str,
        ) -> Result<RefreshedTokens, OidcError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let _open = self.gate.read().await;
            assert_eq!(sub, "alice");
            if *self.answer.lock().unwrap() == Answer::ServerError {
                return Err(OidcError::TokenRequest(Box::new(
                    crate::oidc::EndpointError::Http(crate::oidc::HttpError::ServerError(
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                    )),
                )));
            }
            let mut valid = self.valid_refresh_token.lock().unwrap();
            if refresh_token.expose() != valid.as_str() {
                return Err(OidcError::TokenRequest(Box::new(
                    crate::oidc::EndpointError::Refused("invalid_grant".to_owned()),
                )));
            }
            *valid = format!("rt-{n}");
            Ok(RefreshedTokens {
                access_token: SecretString::new(format!("at-{n}")),
                refresh_token: Some(SecretString::new(format!("rt-{n}"))),
                id_token: None,
                access_expires_at: Some(self.clock.now() + 300),
            })
        }
    }

    fn manager(store: Arc<dyn SessionStore>, clock: Arc<ManualClock>) -> SessionManager {
        let ring = KeyRing::from_config(&[SecretString::new(KEY)]).unwrap();
        let settings = SessionSettings {
            idle_timeout: 1800,
            absolute_timeout: 28_800,
            cookie_name: "__Host-ward".to_owned(),
            cookie: CookieAttributes {
                secure: true,
                same_site: "Strict",
            },
        };
        SessionManager::new(store, Sealer::new(ring), clock, settings)
    }

    struct Setup {
        clock: Arc<ManualClock>,
        store: Arc<MemoryStore>,
        manager: Arc<SessionManager>,
        idp: Arc<FakeIdp>,
        cookie: String,
    }

    async fn setup() -> Setup {
        let clock = Arc::new(ManualClock::new(NOW));
        let store = Arc::new(MemoryStore::new(clock.clone()));
        let manager = Arc::new(manager(store.clone(), clock.clone()));
        let created = manager
            .create(TokenSet {
                access_token: SecretString::new("at-0"),
                refresh_token: Some(SecretString::new("rt-0")),
                id_token: SecretString::new("idt"),
                access_expires_at: Some(NOW + 300),
                sub: "alice".to_owned(),
                sid: None,
                claims: serde_json::Map::new(),
            })
            .await
            .unwrap();
        let cookie = format!("__Host-ward={}", created.cookie.encode());
        let idp = Arc::new(FakeIdp::new(clock.clone()));
        Setup {
            clock,
            store,
            manager,
            idp,
            cookie,
        }
    }

    async fn fresh_token(
        manager: &SessionManager,
        idp: &FakeIdp,
        cookie: &str,
    ) -> Result<String, RefreshError> {
        let mut session = manager.load(Some(cookie)).await.unwrap().unwrap();
        manager.ensure_fresh_with(&mut session, idp, SKEW).await?;
        Ok(session.data.access_token.expose().to_owned())
    }

    #[test]
    fn refresh_is_due_within_the_skew_and_only_with_a_refresh_token() {
        let mut data: SessionData = serde_json::from_value(serde_json::json!({
            "v": 1, "sub": "alice", "sid": null, "claims": {}, "access_token": "at",
            "refresh_token": "rt", "id_token": "idt", "access_expires_at": 1_000,
            "csrf_token": "c", "created_at": 0, "last_seen": 0, "absolute_expires_at": 9_999,
        }))
        .unwrap();
        assert!(!due(&data, 939, 60));
        assert!(due(&data, 940, 60));
        assert!(due(&data, 2_000, 60));
        data.refresh_token = None;
        assert!(!due(&data, 2_000, 60));
        data.refresh_token = Some(SecretString::new("rt"));
        data.access_expires_at = None;
        assert!(!due(&data, 2_000, 60));
    }

    #[tokio::test]
    async fn a_token_outside_the_skew_is_not_refreshed() {
        let s = setup().await;
        s.clock.advance(300 - SKEW - 1);
        let token = fresh_token(&s.manager, &s.idp, &s.cookie).await.unwrap();
        assert_eq!(token, "at-0");
        assert_eq!(s.idp.calls(), 0);
    }

    #[tokio::test]
    async fn refresh_within_the_skew_stores_the_rotated_tokens() {
        let s = setup().await;
        s.clock.advance(300 - SKEW);
        let token = fresh_token(&s.manager, &s.idp, &s.cookie).await.unwrap();
        assert_eq!(token, "at-1");
        let stored = s.manager.load(Some(&s.cookie)).await.unwrap().unwrap();
        assert_eq!(stored.data.access_token.expose(), "at-1");
        assert_eq!(stored.data.refresh_token.as_ref().unwrap().expose(), "rt-1");
        assert_eq!(stored.data.access_expires_at, Some(s.clock.now() + 300));
        // The rotated refresh token is the one used next time.
        s.clock.advance(300);
        assert_eq!(
            fresh_token(&s.manager, &s.idp, &s.cookie).await.unwrap(),
            "at-2"
        );
        assert_eq!(s.idp.calls(), 2);
    }

    #[tokio::test]
    async fn concurrent_requests_of_one_instance_refresh_once() {
        let s = setup().await;
        s.clock.advance(300);
        let held = s.idp.gate.write().await;
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (manager, idp, cookie) = (s.manager.clone(), s.idp.clone(), s.cookie.clone());
            tasks.push(tokio::spawn(async move {
                fresh_token(&manager, &idp, &cookie).await
            }));
        }
        while s.idp.calls() == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), "at-1");
        }
        assert_eq!(s.idp.calls(), 1);
    }

    #[tokio::test]
    async fn concurrent_requests_of_two_instances_sharing_a_store_refresh_once() {
        let s = setup().await;
        let other = Arc::new(manager(s.store.clone(), s.clock.clone()));
        s.clock.advance(300);
        let held = s.idp.gate.write().await;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let manager = if i % 2 == 0 {
                s.manager.clone()
            } else {
                other.clone()
            };
            let (idp, cookie) = (s.idp.clone(), s.cookie.clone());
            tasks.push(tokio::spawn(async move {
                fresh_token(&manager, &idp, &cookie).await
            }));
        }
        while s.idp.calls() == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), "at-1");
        }
        assert_eq!(s.idp.calls(), 1);
        let key = s.manager.session_key(Some(&s.cookie)).unwrap();
        let lock = s.manager.sealer().store_key(LOCK_NS, key.as_bytes());
        assert_eq!(s.store.get(&lock).await.unwrap(), None, "lock released");
    }

    #[tokio::test]
    async fn a_refused_refresh_ends_the_session() {
        let s = setup().await;
        *s.idp.valid_refresh_token.lock().unwrap() = "revoked".to_owned();
        s.clock.advance(300);
        let err = fresh_token(&s.manager, &s.idp, &s.cookie)
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::Ended), "{err:?}");
        assert!(s.manager.load(Some(&s.cookie)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_transient_refresh_failure_keeps_the_session_and_backs_off() {
        let s = setup().await;
        s.idp.answer(Answer::ServerError);
        s.clock.advance(300 - SKEW);
        // Still valid: forwarded with the old token; within the back-off, no new attempt.
        for _ in 0..2 {
            let token = fresh_token(&s.manager, &s.idp, &s.cookie).await.unwrap();
            assert_eq!(token, "at-0");
            assert_eq!(s.idp.calls(), 1);
        }
        // Expired: 502, never the old token; again one attempt per back-off period.
        s.clock.advance(SKEW);
        for _ in 0..2 {
            let err = fresh_token(&s.manager, &s.idp, &s.cookie).await;
            assert!(matches!(err, Err(RefreshError::Unavailable)), "{err:?}");
            assert_eq!(s.idp.calls(), 2);
        }
        assert!(s.manager.load(Some(&s.cookie)).await.unwrap().is_some());
        // The IdP recovers; after the back-off the session refreshes.
        s.idp.answer(Answer::Rotate);
        s.clock.advance(BACKOFF);
        let token = fresh_token(&s.manager, &s.idp, &s.cookie).await.unwrap();
        assert_eq!(token, "at-3");
    }

    #[tokio::test]
    async fn a_session_ended_during_the_refresh_is_not_written_back() {
        let s = setup().await;
        s.clock.advance(300);
        let held = s.idp.gate.write().await;
        let mut session = s.manager.load(Some(&s.cookie)).await.unwrap().unwrap();
        let (manager, idp) = (s.manager.clone(), s.idp.clone());
        let task =
            tokio::spawn(async move { manager.ensure_fresh_with(&mut session, &*idp, SKEW).await });
        while s.idp.calls() == 0 {
            tokio::task::yield_now().await;
        }
        let ended = s.manager.load(Some(&s.cookie)).await.unwrap().unwrap();
        s.manager.delete(&ended).await.unwrap();
        drop(held);
        assert!(matches!(task.await.unwrap(), Err(RefreshError::Ended)));
        assert!(s.manager.load(Some(&s.cookie)).await.unwrap().is_none());
    }
}
