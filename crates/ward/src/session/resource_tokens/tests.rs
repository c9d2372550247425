//! Unit tests of resource tokens: single flight in and across instances, turns with the main
//! refresh over one rotating refresh token, renewal, and the outcomes of failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ward_store::memory::MemoryStore;
use ward_store::{ManualClock, SessionStore};

use super::*;
use crate::oidc::{EndpointError, HttpError, RefreshedTokens, TokenSet};
use crate::session::SessionSettings;
use crate::session::cookie::CookieAttributes;
use crate::session::keyring::KeyRing;
use crate::session::refresh::{BACKOFF, Refresher};
use crate::session::seal::Sealer;

const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const NOW: u64 = 1_000_000;
const SKEW: u64 = 60;
const ORDERS: &str = "https://orders.example";

#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Issue,
    ServerError,
    InvalidTarget,
}

/// A fake IdP with rotating refresh tokens, each usable once, for both grants.
struct FakeIdp {
    calls: AtomicUsize,
    valid_refresh_token: Mutex<String>,
    answer: Mutex<Answer>,
    expires_in: Mutex<Option<u64>>,
    /// Held (written) by a test, it stops each grant at the IdP until released.
    gate: tokio::sync::RwLock<()>,
}

impl FakeIdp {
    fn new() -> Self {
        Self {
            calls: AtomicUsize::new(0),
            valid_refresh_token: Mutex::new("rt-0".to_owned()),
            answer: Mutex::new(Answer::Issue),
            expires_in: Mutex::new(Some(300)),
            gate: tokio::sync::RwLock::new(()),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn refused(code: &str) -> OidcError {
        OidcError::TokenRequest(Box::new(EndpointError::Refused(code.to_owned())))
    }

    /// Redeems `presented` (once), answering with the rotated refresh token and call number.
    async fn redeem(&self, presented: &SecretString) -> Result<(usize, SecretString), OidcError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let _open = self.gate.read().await;
        match *self.answer.lock().unwrap() {
            Answer::ServerError => {
                return Err(OidcError::TokenRequest(Box::new(EndpointError::Http(
                    HttpError::ServerError(http::StatusCode::BAD_GATEWAY),
                ))));
            }
            Answer::InvalidTarget => return Err(Self::refused("invalid_target")),
            Answer::Issue => {}
        }
        let mut valid = self.valid_refresh_token.lock().unwrap();
        if presented.expose() != valid.as_str() {
            return Err(Self::refused("invalid_grant"));
        }
        *valid = format!("rt-{n}");
        Ok((n, SecretString::new(format!("rt-{n}"))))
    }
}

impl ResourceGrant for FakeIdp {
    async fn resource_token(
        &self,
        refresh_token: &SecretString,
        resource: &str,
    ) -> Result<ResourceTokens, OidcError> {
        let (n, rotated) = self.redeem(refresh_token).await?;
        Ok(ResourceTokens {
            access_token: SecretString::new(format!("{resource} at-{n}")),
            refresh_token: Some(rotated),
            expires_in: *self.expires_in.lock().unwrap(),
        })
    }

    async fn exchange_token(
        &self,
        subject: &SecretString,
        resource: &str,
    ) -> Result<ResourceTokens, OidcError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(ResourceTokens {
            access_token: SecretString::new(format!("{resource} from {} x-{n}", subject.expose())),
            refresh_token: None,
            expires_in: Some(300),
        })
    }
}

impl Refresher for FakeIdp {
    async fn refresh(
        &self,
        refresh_token: &SecretString,
        _sub: &str,
        _original: &SecretString,
        _dpop_key: Option<&crate::oidc::dpop::DpopKey>,
    ) -> Result<RefreshedTokens, OidcError> {
        let (n, rotated) = self.redeem(refresh_token).await?;
        Ok(RefreshedTokens {
            access_token: SecretString::new(format!("at-{n}")),
            refresh_token: Some(rotated),
            id_token: None,
            access_expires_at: Some(NOW + 10_000),
        })
    }
}

fn manager(store: Arc<dyn SessionStore>, clock: Arc<ManualClock>) -> Arc<SessionManager> {
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
    Arc::new(SessionManager::new(
        store,
        Sealer::new(ring),
        clock,
        settings,
    ))
}

struct Setup {
    clock: Arc<ManualClock>,
    store: Arc<dyn SessionStore>,
    manager: Arc<SessionManager>,
    idp: Arc<FakeIdp>,
    cookie: String,
}

/// A session of alice (access token `at-0` expiring at `NOW + 300`, refresh token `rt-0`).
impl Setup {
    /// The session's token for [`ORDERS`], through [`token_for`].
    async fn orders(&self) -> Result<String, ResourceTokenError> {
        token_for(&self.manager, &self.idp, &self.cookie, ORDERS).await
    }
}

async fn setup() -> Setup {
    let clock = Arc::new(ManualClock::new(NOW));
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(clock.clone()));
    let manager = manager(store.clone(), clock.clone());
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
    Setup {
        clock,
        store,
        manager,
        idp: Arc::new(FakeIdp::new()),
        cookie,
    }
}

async fn token_for(
    manager: &SessionManager,
    idp: &FakeIdp,
    cookie: &str,
    resource: &str,
) -> Result<String, ResourceTokenError> {
    let session = manager.load(Some(cookie)).await.unwrap().unwrap();
    let token = manager
        .resource_token_with(&session, idp, resource, SKEW)
        .await?;
    Ok(token.expose().to_owned())
}

async fn stored(s: &Setup) -> Arc<SessionData> {
    s.manager.load(Some(&s.cookie)).await.unwrap().unwrap().data
}

#[tokio::test]
async fn the_token_is_fetched_once_kept_sealed_and_the_rotated_refresh_token_kept() {
    let s = setup().await;
    let token = s.orders().await.unwrap();
    assert_eq!(token, format!("{ORDERS} at-1"));
    let data = stored(&s).await;
    assert_eq!(data.refresh_token.as_ref().unwrap().expose(), "rt-1");
    assert_eq!(
        data.access_token.expose(),
        "at-0",
        "the session's own token stays"
    );
    let entry = &data.resource_tokens[ORDERS];
    assert_eq!((entry.renew_at, entry.expires_at), (NOW + 240, NOW + 300));
    assert!(
        !format!("{data:?} {entry:?}").contains("at-1"),
        "Debug shows no token"
    );

    assert_eq!(s.orders().await.unwrap(), token);
    assert_eq!(s.idp.calls(), 1);
}

#[tokio::test]
async fn a_token_is_renewed_the_skew_before_expiry_but_at_most_half_its_lifetime_early() {
    let s = setup().await;
    let first = s.orders().await.unwrap();
    s.clock.advance(239);
    assert_eq!(s.orders().await.unwrap(), first);
    s.clock.advance(1);
    *s.idp.expires_in.lock().unwrap() = Some(60);
    let second = s.orders().await.unwrap();
    assert_ne!(second, first);
    // A 60-second token with a 60-second skew is used for its first 30 seconds.
    s.clock.advance(29);
    assert_eq!(s.orders().await.unwrap(), second);
    s.clock.advance(1);
    assert_ne!(s.orders().await.unwrap(), second);
    assert_eq!(s.idp.calls(), 3);
}

#[tokio::test]
async fn concurrent_requests_of_two_instances_sharing_a_store_fetch_once() {
    let s = setup().await;
    let other = manager(s.store.clone(), s.clock.clone());
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
            token_for(&manager, &idp, &cookie, ORDERS).await
        }));
    }
    while s.idp.calls() == 0 {
        tokio::task::yield_now().await;
    }
    drop(held);
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), format!("{ORDERS} at-1"));
    }
    assert_eq!(s.idp.calls(), 1);
}

#[tokio::test]
async fn a_main_refresh_and_resource_fetches_take_turns_with_the_rotating_refresh_token() {
    let s = setup().await;
    let other = manager(s.store.clone(), s.clock.clone());
    s.clock.advance(300); // the session's own token is due too
    let held = s.idp.gate.write().await;
    let mut tasks = Vec::new();
    for (i, resource) in [ORDERS, "https://billing.example", ORDERS, "urn:x"]
        .into_iter()
        .enumerate()
    {
        let manager = if i % 2 == 0 {
            s.manager.clone()
        } else {
            other.clone()
        };
        let (idp, cookie) = (s.idp.clone(), s.cookie.clone());
        tasks.push(tokio::spawn(async move {
            token_for(&manager, &idp, &cookie, resource)
                .await
                .map(|_| ())
        }));
        let (manager, idp, cookie) = (s.manager.clone(), s.idp.clone(), s.cookie.clone());
        tasks.push(tokio::spawn(async move {
            let mut session = manager.load(Some(&cookie)).await.unwrap().unwrap();
            manager
                .ensure_fresh_with(&mut session, idp.as_ref(), SKEW)
                .await
                .map_err(|_| ResourceTokenError::Unavailable)
        }));
    }
    while s.idp.calls() == 0 {
        tokio::task::yield_now().await;
    }
    drop(held);
    for task in tasks {
        task.await
            .unwrap()
            .expect("no grant refused: the refresh token never got lost");
    }
    // One main refresh and one fetch per resource, each with the then-current refresh token.
    assert_eq!(s.idp.calls(), 4);
    let data = stored(&s).await;
    assert_eq!(data.resource_tokens.len(), 3);
    let valid = s.idp.valid_refresh_token.lock().unwrap().clone();
    assert_eq!(data.refresh_token.as_ref().unwrap().expose(), valid);
}

#[tokio::test]
async fn invalid_grant_ends_the_session() {
    let s = setup().await;
    *s.idp.valid_refresh_token.lock().unwrap() = "revoked".to_owned();
    let err = s.orders().await.unwrap_err();
    assert!(matches!(err, ResourceTokenError::Ended), "{err:?}");
    assert!(s.manager.load(Some(&s.cookie)).await.unwrap().is_none());
}

#[tokio::test]
async fn invalid_target_keeps_the_session_and_is_not_asked_again_for_a_while() {
    let s = setup().await;
    *s.idp.answer.lock().unwrap() = Answer::InvalidTarget;
    for _ in 0..3 {
        let err = s.orders().await.unwrap_err();
        assert!(matches!(err, ResourceTokenError::NotGranted), "{err:?}");
    }
    assert_eq!(s.idp.calls(), 1);
    assert!(stored(&s).await.resource_tokens.is_empty());
    *s.idp.answer.lock().unwrap() = Answer::Issue;
    s.clock.advance(BACKOFF);
    assert!(s.orders().await.is_ok());
}

#[tokio::test]
async fn an_idp_failure_forwards_the_unexpired_token_but_never_an_expired_one() {
    let s = setup().await;
    let first = s.orders().await.unwrap();
    *s.idp.answer.lock().unwrap() = Answer::ServerError;
    s.clock.advance(298);
    assert_eq!(s.orders().await.unwrap(), first);
    s.clock.advance(2);
    let err = s.orders().await.unwrap_err();
    assert!(matches!(err, ResourceTokenError::Unavailable), "{err:?}");
    assert_eq!(s.idp.calls(), 2, "one attempt, then the back-off");
    assert!(s.manager.load(Some(&s.cookie)).await.unwrap().is_some());
}

#[tokio::test]
async fn a_session_without_a_refresh_token_is_not_granted_a_resource_token() {
    let s = setup().await;
    let loaded = s.manager.load(Some(&s.cookie)).await.unwrap().unwrap();
    s.manager
        .update(loaded, |s| {
            s.data_mut().refresh_token = None;
            true
        })
        .await
        .unwrap();
    let err = s.orders().await.unwrap_err();
    assert!(matches!(err, ResourceTokenError::NotGranted), "{err:?}");
    assert_eq!(s.idp.calls(), 0);
}

#[test]
fn records_without_resource_tokens_still_open_and_tokens_are_written_only_when_present() {
    let data: SessionData = serde_json::from_value(serde_json::json!({
        "v": 1, "sub": "alice", "sid": null, "claims": {}, "access_token": "at",
        "refresh_token": "rt", "id_token": "idt", "access_expires_at": 1_000,
        "csrf_token": "c", "created_at": 0, "last_seen": 0, "absolute_expires_at": 9_999,
    }))
    .unwrap();
    assert!(data.resource_tokens.is_empty());
    let json = serde_json::to_value(&data).unwrap();
    assert!(json.get("resource_tokens").is_none());
}

#[tokio::test]
async fn token_exchange_presents_the_sessions_access_token_and_leaves_the_refresh_token() {
    let s = setup().await;
    let session = s.manager.load(Some(&s.cookie)).await.unwrap().unwrap();
    let token = s
        .manager
        .obtain(&session, s.idp.as_ref(), ORDERS, SKEW, true)
        .await
        .unwrap();
    assert_eq!(token.expose(), format!("{ORDERS} from at-0 x-1"));
    let data = stored(&s).await;
    assert_eq!(data.refresh_token.as_ref().unwrap().expose(), "rt-0");
    assert_eq!(data.resource_tokens[ORDERS].access_token, token);

    // An expired session token (its refresh failed) is never exchanged.
    s.clock.advance(301);
    let session = s.manager.load(Some(&s.cookie)).await.unwrap().unwrap();
    let err = s
        .manager
        .obtain(&session, s.idp.as_ref(), ORDERS, SKEW, true)
        .await
        .unwrap_err();
    assert!(matches!(err, ResourceTokenError::Unavailable), "{err:?}");
    assert_eq!(s.idp.calls(), 1);
}
