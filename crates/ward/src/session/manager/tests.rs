//! Unit tests of the session manager.

use super::*;
use crate::session::cookie::LoginBinding;
use crate::session::keyring::KeyRing;
use crate::session::record::LoginTransaction;
use ward_store::ManualClock;
use ward_store::memory::MemoryStore;

const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

fn manager() -> (SessionManager, Arc<ManualClock>, Arc<MemoryStore>) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = Arc::new(MemoryStore::new(clock.clone()));
    manager_over(store, clock)
}

fn manager_over(
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
) -> (SessionManager, Arc<ManualClock>, Arc<MemoryStore>) {
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
    let manager = SessionManager::new(store.clone(), Sealer::new(ring), clock.clone(), settings);
    (manager, clock, store)
}

fn tokens() -> TokenSet {
    TokenSet {
        access_token: SecretString::new("at"),
        refresh_token: None,
        id_token: SecretString::new("idt"),
        access_expires_at: None,
        sub: "alice".to_owned(),
        sid: Some("sid-1".to_owned()),
        claims: serde_json::Map::new(),
        dpop_key: None,
    }
}

fn header(session: &LoadedSession) -> String {
    format!("__Host-ward={}", session.cookie.encode())
}

#[tokio::test]
async fn a_slide_keeps_tokens_another_request_refreshed_meanwhile() {
    let (manager, clock, _) = manager();
    let created = manager.create(tokens()).await.unwrap();
    let cookie = header(&created);
    let mut stale = manager.load(Some(&cookie)).await.unwrap().unwrap();
    let mut refreshed = manager.load(Some(&cookie)).await.unwrap().unwrap();
    refreshed.data_mut().access_token = SecretString::new("at-2");
    refreshed.data_mut().refresh_token = Some(SecretString::new("rt-2"));
    assert!(manager.update(refreshed, |_| true).await.unwrap().is_some());
    clock.advance(SLIDE_GRANULARITY);
    assert!(manager.slide(&mut stale).await.unwrap());
    let stored = manager.load(Some(&cookie)).await.unwrap().unwrap();
    assert_eq!(stored.data.access_token.expose(), "at-2");
    assert_eq!(
        stored.data.refresh_token.as_ref().map(SecretString::expose),
        Some("rt-2")
    );
    assert_eq!(stored.data.last_seen, clock.now());
    assert_eq!(
        stale.data.access_token.expose(),
        "at-2",
        "the caller sees the current copy"
    );
}

#[tokio::test]
async fn a_session_ended_elsewhere_is_not_written_back_by_a_slide() {
    let (manager, clock, store) = manager();
    let created = manager.create(tokens()).await.unwrap();
    let cookie = header(&created);
    let mut in_flight = manager.load(Some(&cookie)).await.unwrap().unwrap();
    let other = manager.load(Some(&cookie)).await.unwrap().unwrap();
    manager.delete(&other).await.unwrap();
    clock.advance(SLIDE_GRANULARITY);
    assert!(!manager.slide(&mut in_flight).await.unwrap());
    assert_eq!(store.get(&in_flight.key).await.unwrap(), None);
    assert!(manager.load(Some(&cookie)).await.unwrap().is_none());
}

#[tokio::test]
async fn a_cached_session_deleted_by_another_instance_is_not_served() {
    let (manager, _, store) = manager();
    let created = manager.create(tokens()).await.unwrap();
    let cookie = header(&created);
    assert!(manager.load(Some(&cookie)).await.unwrap().is_some());
    assert!(manager.load(Some(&cookie)).await.unwrap().is_some());
    // Another instance's logout: straight to the shared store, past this manager.
    assert!(store.delete(&created.key).await.unwrap());
    assert!(manager.load(Some(&cookie)).await.unwrap().is_none());
}

#[tokio::test]
async fn a_cached_session_replaced_by_another_instance_is_read_afresh() {
    let (manager, clock, store) = manager();
    let created = manager.create(tokens()).await.unwrap();
    let cookie = header(&created);
    manager.load(Some(&cookie)).await.unwrap().unwrap();
    // Another instance (same keys, same store) refreshes the tokens.
    let (other, _, _) = manager_over(store.clone(), clock.clone());
    let mut session = other.load(Some(&cookie)).await.unwrap().unwrap();
    session.data_mut().access_token = SecretString::new("at-2");
    assert!(other.update(session, |_| true).await.unwrap().is_some());
    let reloaded = manager.load(Some(&cookie)).await.unwrap().unwrap();
    assert_eq!(reloaded.data.access_token.expose(), "at-2");
}

#[tokio::test]
async fn a_cached_session_does_not_open_for_the_id_with_another_secret() {
    let (manager, _, _) = manager();
    let created = manager.create(tokens()).await.unwrap();
    manager
        .load(Some(&header(&created)))
        .await
        .unwrap()
        .unwrap();
    let mut raw = created.cookie.encode();
    // Same id, different secret: change a character near the end (inside the secret).
    let at = raw.len() - 5;
    let other = if &raw[at..=at] == "A" { "B" } else { "A" };
    raw.replace_range(at..=at, other);
    assert!(SessionCookie::parse(&raw).is_some_and(|c| c.id() == created.cookie.id()));
    let forged = format!("__Host-ward={raw}");
    assert!(manager.load(Some(&forged)).await.unwrap().is_none());
}

#[tokio::test]
async fn slide_writes_at_most_once_a_minute_and_extends_the_idle_expiry() {
    let (manager, clock, _) = manager();
    let created = manager.create(tokens()).await.unwrap();
    let cookie = header(&created);
    clock.advance(SLIDE_GRANULARITY - 1);
    let mut session = manager.load(Some(&cookie)).await.unwrap().unwrap();
    assert!(manager.slide(&mut session).await.unwrap());
    assert_eq!(session.data.last_seen, created.data.last_seen);
    clock.advance(1);
    assert!(manager.slide(&mut session).await.unwrap());
    let reloaded = manager.load(Some(&cookie)).await.unwrap().unwrap();
    assert_eq!(reloaded.data.last_seen, clock.now());
    assert_eq!(manager.expires_at(&reloaded.data), clock.now() + 1800);
}

fn pending(state: &str, created_at: u64) -> LoginTransaction {
    LoginTransaction {
        v: 1,
        state: SecretString::new(state),
        nonce: SecretString::new("n"),
        pkce_verifier: SecretString::new("v"),
        return_url: "/".to_owned(),
        replaces: None,
        created_at,
        dpop_key: None,
    }
}

const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

#[tokio::test]
async fn a_browser_past_its_pending_logins_loses_the_oldest_not_the_newest() {
    let (manager, clock, _) = manager();
    let binding = LoginBinding::generate();
    for n in 0..=MAX_PENDING_PER_BROWSER {
        let tx = pending(&format!("state-{n}"), clock.now());
        manager.begin_login(&binding, CLIENT, &tx).await.unwrap();
        clock.advance(1);
    }
    let oldest = manager.finish_login(&binding, "state-0").await.unwrap();
    assert!(oldest.is_none(), "the oldest gave way");
    for n in 1..=MAX_PENDING_PER_BROWSER {
        let tx = manager.finish_login(&binding, &format!("state-{n}")).await;
        assert!(tx.unwrap().is_some(), "state-{n} is still pending");
    }
}

#[tokio::test]
async fn a_client_address_past_its_pending_logins_is_refused_until_they_expire() {
    let (manager, clock, store) = manager();
    for n in 0..MAX_PENDING_PER_CLIENT {
        let tx = pending(&format!("state-{n}"), clock.now());
        let binding = LoginBinding::generate();
        manager.begin_login(&binding, CLIENT, &tx).await.unwrap();
    }
    let binding = LoginBinding::generate();
    let refused = manager
        .begin_login(&binding, CLIENT, &pending("one-more", clock.now()))
        .await;
    assert!(matches!(refused, Err(TooManyPendingLogins::Refused)));
    let other: std::net::IpAddr = "192.0.2.8".parse().unwrap();
    let tx = pending("from-elsewhere", clock.now());
    manager.begin_login(&binding, other, &tx).await.unwrap();

    // Expired, they are swept, and the address may log in again.
    clock.advance(LOGIN_TTL);
    let swept = store.sweeper().unwrap().sweep_expired().await.unwrap();
    assert_eq!(swept, MAX_PENDING_PER_CLIENT as u64 + 1);
    let tx = pending("after-expiry", clock.now());
    manager.begin_login(&binding, CLIENT, &tx).await.unwrap();
    assert!(
        manager
            .finish_login(&binding, "after-expiry")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_dpop_key_is_kept_sealed_in_the_record_and_never_shown() {
    let (manager, _, store) = manager();
    let key = crate::oidc::dpop::DpopKey::generate().unwrap();
    let stored_form = serde_json::to_string(&key).unwrap();
    let created = manager
        .create(TokenSet {
            dpop_key: Some(key.clone()),
            ..tokens()
        })
        .await
        .unwrap();
    let sealed = store.get(&created.key).await.unwrap().unwrap();
    let encoded = stored_form.trim_matches('"');
    assert!(
        !String::from_utf8_lossy(&sealed).contains(&encoded[..16]),
        "the key is sealed"
    );
    // Read back through the cookie that opens the record.
    let loaded = manager
        .load(Some(&header(&created)))
        .await
        .unwrap()
        .unwrap();
    let kept = loaded.data.dpop_key.as_ref().expect("the session's key");
    assert_eq!(kept.thumbprint(), key.thumbprint());
    let debug = format!("{:?} {:?}", loaded.data, loaded);
    assert!(!debug.contains(&encoded[..16]), "{debug}");
    // A session without DPoP stores no key field at all.
    let plain = manager.create(tokens()).await.unwrap();
    let plain = manager.load(Some(&header(&plain))).await.unwrap().unwrap();
    assert!(plain.data.dpop_key.is_none());
}
