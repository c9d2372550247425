//! Unit tests of the token refresh: single flight, the owned store lock, outcomes.

use std::sync::atomic::{AtomicUsize, Ordering};

use ward_store::memory::MemoryStore;
use ward_store::{Clock, ManualClock, SessionStore};

mod interleaving;

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
        _original: &SecretString,
        _dpop_key: Option<&crate::oidc::dpop::DpopKey>,
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
    store: Arc<dyn SessionStore>,
    manager: Arc<SessionManager>,
    idp: Arc<FakeIdp>,
    cookie: String,
}

async fn setup() -> Setup {
    let clock = Arc::new(ManualClock::new(NOW));
    let store = Arc::new(MemoryStore::new(clock.clone()));
    setup_over(store, clock).await
}

/// A session of alice (access token `at-0` expiring at `NOW + 300`, refresh token `rt-0`)
/// in `store`, with its manager and a fake IdP.
async fn setup_over(store: Arc<dyn SessionStore>, clock: Arc<ManualClock>) -> Setup {
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
            dpop_key: None,
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

/// The store key of the session's refresh lock.
fn lock_key(s: &Setup) -> String {
    let key = s.manager.session_key(Some(&s.cookie)).unwrap();
    s.manager.sealer().store_key(LOCK_NS, key.as_bytes())
}

/// With time paused: lets tokio time pass by `by` (timers due meanwhile fire) and the woken
/// tasks run until they wait again.
async fn pass(by: Duration) {
    // Sleeping (rather than `advance`) parks the runtime, which is when due timers fire.
    tokio::time::sleep(by).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_refresh_keeps_its_lock_past_the_lock_lifetime() {
    let clock = Arc::new(ManualClock::new(NOW));
    let store = Arc::new(interleaving::Interleaving::new(MemoryStore::new(
        clock.clone(),
    )));
    let s = setup_over(store.clone(), clock).await;
    s.clock.advance(300);
    let session_key = s.manager.session_key(Some(&s.cookie)).unwrap();
    let slow_write = store.pause_next_write(&session_key).await;
    let slow_idp = s.idp.gate.write().await;
    let (manager, idp, cookie) = (s.manager.clone(), s.idp.clone(), s.cookie.clone());
    let slow = tokio::spawn(async move { fresh_token(&manager, &idp, &cookie).await });
    while s.idp.calls() == 0 {
        tokio::task::yield_now().await;
    }
    // Store time and tokio time move together: 10 s at the IdP (within its deadline), then
    // 10 s writing the new tokens to a slow store: longer than the lock lives.
    let tick = async || {
        s.clock.advance(LOCK_RENEW.as_secs());
        pass(LOCK_RENEW).await;
    };
    tick().await;
    tick().await;
    drop(slow_idp);
    while !store.write_waiting() {
        tokio::task::yield_now().await;
    }
    tick().await;
    tick().await;
    assert!(s.clock.now() > NOW + 300 + LOCK_TTL);
    let lock = lock_key(&s);
    assert!(
        s.store.get(&lock).await.unwrap().is_some(),
        "the live holder's lock expired under it"
    );
    let other = Lease::acquire(&*s.store, &lock, LOCK_TTL, s.clock.now()).await;
    assert!(other.unwrap().is_none(), "a second holder got the lock");
    drop(slow_write);
    assert_eq!(slow.await.unwrap().unwrap(), "at-1");
    assert_eq!(s.idp.calls(), 1);
    assert_eq!(s.store.get(&lock).await.unwrap(), None, "lock released");
}

#[tokio::test]
async fn a_holder_whose_lock_lapsed_does_not_release_the_next_holders_lock() {
    let s = setup().await;
    s.clock.advance(300);
    let held = s.idp.gate.write().await;
    let (manager, idp, cookie) = (s.manager.clone(), s.idp.clone(), s.cookie.clone());
    let stalled = tokio::spawn(async move { fresh_token(&manager, &idp, &cookie).await });
    while s.idp.calls() == 0 {
        tokio::task::yield_now().await;
    }
    // Its lock lapses (no renewal ran: the holder's process stalled) and another takes it.
    s.clock.advance(LOCK_TTL);
    let lock = lock_key(&s);
    let next = Lease::acquire(&*s.store, &lock, LOCK_TTL, s.clock.now())
        .await
        .unwrap()
        .expect("the lapsed lock is free");
    drop(held);
    assert_eq!(stalled.await.unwrap().unwrap(), "at-1");
    let again = Lease::acquire(&*s.store, &lock, LOCK_TTL, s.clock.now()).await;
    assert!(
        again.unwrap().is_none(),
        "the stalled holder deleted the next holder's lock"
    );
    assert!(next.release(&*s.store).await.unwrap());
}

#[tokio::test]
async fn a_slide_that_read_the_session_before_a_refresh_keeps_the_refreshed_tokens() {
    let clock = Arc::new(ManualClock::new(NOW));
    let store = Arc::new(interleaving::Interleaving::new(MemoryStore::new(
        clock.clone(),
    )));
    let s = setup_over(store.clone(), clock.clone()).await;
    let other = Arc::new(manager(s.store.clone(), clock.clone()));
    s.clock.advance(300);
    let session_key = s.manager.session_key(Some(&s.cookie)).unwrap();
    // A request of instance A slides the idle timer: it reads the record, then its write
    // is held back...
    let paused = store.pause_next_write(&session_key).await;
    let mut slid = s.manager.load(Some(&s.cookie)).await.unwrap().unwrap();
    let manager = s.manager.clone();
    let slide = tokio::spawn(async move {
        let kept = manager.slide(&mut slid).await.unwrap();
        (kept, slid)
    });
    while !store.write_waiting() {
        tokio::task::yield_now().await;
    }
    // ...while a request of instance B refreshes the tokens (rotating the refresh token).
    assert_eq!(
        fresh_token(&other, &s.idp, &s.cookie).await.unwrap(),
        "at-1"
    );
    drop(paused);
    let (kept, slid) = slide.await.unwrap();
    assert!(kept);
    assert_eq!(slid.data.access_token.expose(), "at-1");
    let stored = s.manager.load(Some(&s.cookie)).await.unwrap().unwrap();
    assert_eq!(
        stored.data.access_token.expose(),
        "at-1",
        "slide wrote old tokens"
    );
    assert_eq!(
        stored.data.refresh_token.as_ref().map(SecretString::expose),
        Some("rt-1")
    );
    assert_eq!(
        stored.data.last_seen,
        s.clock.now(),
        "the slide still happened"
    );
    // The rotated refresh token is the one kept: the next refresh works.
    s.clock.advance(300);
    assert_eq!(
        fresh_token(&other, &s.idp, &s.cookie).await.unwrap(),
        "at-2"
    );
}
