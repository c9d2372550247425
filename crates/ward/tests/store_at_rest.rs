//! The embedded store at rest (SPEC §6; SECURITY-CASES ST-01, ST-06): the database file holds
//! no token, identifier or cookie in clear, sessions survive a restart, and server keys rotate
//! without logging anyone out until the old key is retired.

mod common;
#[path = "support/secrets.rs"]
mod secrets;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Options, TEST_KEY, Ward};
use secrets::{id_token_hint, last_bearer};
use ward::secret::SecretString;
use ward::session::keyring::KeyRing;
use ward::session::seal::Sealer;
use ward_store::Record;
use ward_testkit::Browser;

/// A second test key (never used outside tests), with another key id than [`TEST_KEY`].
fn new_key() -> String {
    format!("test2:{}", STANDARD.encode([0x5a_u8; 32]))
}

/// Ward on the embedded store in `data_dir` with `keys`.
async fn embedded(data_dir: &std::path::Path, keys: &[&str], extra_toml: &str) -> Ward {
    Ward::start_with(Options {
        store: "embedded",
        data_dir: Some(data_dir.to_owned()),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        extra_toml: extra_toml.to_owned(),
        ..Default::default()
    })
    .await
}

/// The id and per-session secret inside a session cookie value (`v1.` + base64url(id ‖ secret)).
fn cookie_parts(cookie: &str) -> ([u8; 32], [u8; 32]) {
    let raw = URL_SAFE_NO_PAD
        .decode(cookie.strip_prefix("v1.").expect("v1 cookie"))
        .expect("cookie is base64url");
    let (id, secret) = raw.split_at(32);
    (id.try_into().unwrap(), secret.try_into().unwrap())
}

fn cookie_value(id: &[u8; 32], secret: &[u8; 32]) -> String {
    format!(
        "v1.{}",
        URL_SAFE_NO_PAD.encode([&id[..], &secret[..]].concat())
    )
}

/// The store key of the session with `id`, as Ward derives it.
fn session_key(id: &[u8; 32]) -> String {
    let ring = KeyRing::from_config(&[SecretString::new(TEST_KEY)]).expect("test key");
    Sealer::new(ring).store_key("s", id)
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn database_file_holds_no_token_identifier_or_cookie_in_clear() {
    let data = tempfile::tempdir().unwrap();
    let ward = embedded(data.path(), &[TEST_KEY], "[logout]\nid_token_hint = true\n").await;
    let (alice_browser, alice) = alice_calls_the_api(&ward).await;
    let bob = bob_logs_in_and_out(&ward).await;

    let file = data.path().join("ward.db");
    // redb commits durably: the bytes on disk are what a copy of the file would hold now.
    let raw = std::fs::read(&file).expect("read the database file");
    assert!(raw.len() > 1024, "the file holds the records");

    let (session_id, session_secret) = cookie_parts(&alice.cookie);
    // The search works on the live data: alice's record is in the file, under a hash of her
    // session id.
    let key = session_key(&session_id);
    assert!(
        ward.state
            .sessions
            .store()
            .get(&key)
            .await
            .unwrap()
            .is_some(),
        "alice's record is stored under the derived key"
    );
    assert!(
        contains(&raw, key.as_bytes()),
        "the file holds alice's record key"
    );
    let needles = searched_for(&alice, &bob, &session_id, &session_secret);
    let found: Vec<&str> = needles
        .iter()
        .filter(|(_, needle)| contains(&raw, needle))
        .map(|(name, _)| *name)
        .collect();
    assert!(found.is_empty(), "readable in the store file: {found:?}");

    // The session is still usable: the file holds it, only sealed.
    let me = alice_browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    ward.stop().await;
    let raw = std::fs::read(&file).unwrap();
    assert!(
        !contains(&raw, alice.access_token.as_bytes()) && !contains(&raw, b"alice"),
        "nothing readable after a clean shutdown either"
    );
}

/// What alice's session handed the test.
struct Alice {
    cookie: String,
    csrf: String,
    sub: String,
    access_token: String,
}

/// Alice logs in and calls the API twice safely and once with her CSRF token.
async fn alice_calls_the_api(ward: &Ward) -> (Browser, Alice) {
    let (alice, me) = ward.logged_in("alice").await;
    let csrf = me["csrfToken"].as_str().unwrap().to_owned();
    let sub = me["sub"].as_str().unwrap().to_owned();
    assert_eq!(sub, "alice");
    let cookie = alice.cookie("localhost", "__Host-ward").unwrap();
    for path in ["/api/one", "/api/two"] {
        let reply = alice.get(ward.url(path)).await.unwrap();
        assert_eq!(reply.status, 200);
    }
    let posted = alice
        .post(ward.url("/api/three"))
        .header("x-csrf-token", &csrf)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status, 200, "a CSRF-protected call goes through");
    let access_token = last_bearer(&ward.upstream);
    let secrets = Alice {
        cookie,
        csrf,
        sub,
        access_token,
    };
    (alice, secrets)
}

/// What bob's session, logged out, handed the test.
struct Bob {
    cookie: String,
    csrf: String,
    id_token: String,
}

/// A second session, logged out: its ID token is learnable from the logout URL, and a record
/// once written stays in the file's free pages until overwritten.
async fn bob_logs_in_and_out(ward: &Ward) -> Bob {
    let (bob, bob_me) = ward.logged_in("bob").await;
    let cookie = bob.cookie("localhost", "__Host-ward").unwrap();
    let csrf = bob_me["csrfToken"].as_str().unwrap().to_owned();
    let logout = bob
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status, 200);
    Bob {
        cookie,
        csrf,
        id_token: id_token_hint(&logout),
    }
}

/// Everything that must not be readable in the file, by name.
fn searched_for(
    alice: &Alice,
    bob: &Bob,
    session_id: &[u8; 32],
    session_secret: &[u8; 32],
) -> Vec<(&'static str, Vec<u8>)> {
    let jwt_parts: Vec<&str> = bob.id_token.split('.').collect();
    vec![
        ("access token", alice.access_token.clone().into_bytes()),
        ("bob's ID token claims", jwt_parts[1].as_bytes().to_vec()),
        ("bob's ID token signature", jwt_parts[2].as_bytes().to_vec()),
        ("a JWT header", b"eyJhbGciOi".to_vec()),
        ("user name", b"alice".to_vec()),
        ("bob's e-mail", b"bob@example.test".to_vec()),
        ("bob's display name", b"Test bob".to_vec()),
        ("e-mail", b"alice@example.test".to_vec()),
        ("display name", b"Test alice".to_vec()),
        ("sub", alice.sub.clone().into_bytes()),
        ("session cookie", alice.cookie.clone().into_bytes()),
        ("bob's session cookie", bob.cookie.clone().into_bytes()),
        (
            "session id (base64url)",
            URL_SAFE_NO_PAD.encode(session_id).into_bytes(),
        ),
        ("session id (raw)", session_id.to_vec()),
        ("per-session secret (raw)", session_secret.to_vec()),
        ("CSRF token", alice.csrf.clone().into_bytes()),
        ("bob's CSRF token", bob.csrf.clone().into_bytes()),
        ("client secret", b"bff-secret".to_vec()),
        (
            "server key",
            URL_SAFE_NO_PAD
                .decode(TEST_KEY.split_once(':').unwrap().1)
                .unwrap(),
        ),
    ]
}

#[tokio::test]
async fn sessions_survive_a_restart_on_the_same_file_and_keys() {
    let data = tempfile::tempdir().unwrap();
    let first = embedded(data.path(), &[TEST_KEY], "").await;
    let (browser, me) = first.logged_in("alice").await;
    let cookie = browser.cookie("localhost", "__Host-ward").unwrap();
    first.stop().await;

    let second = embedded(data.path(), &[TEST_KEY], "").await;
    // Another browser holding only the cookie: nothing else carries the session.
    let returning = Browser::new().unwrap();
    returning.set_cookie("localhost", "__Host-ward", &cookie);
    let again = returning.get(second.url("/bff/user")).await.unwrap();
    assert_eq!(again.status, 200, "{}", again.text());
    let again = again.json().unwrap();
    assert_eq!(again["sub"], me["sub"]);
    assert_eq!(again["claims"]["email"], "alice@example.test");
    assert_eq!(again["csrfToken"], me["csrfToken"], "the same session");
    assert_eq!(again["absoluteExpiresAt"], me["absoluteExpiresAt"]);
    let api = returning
        .get(second.url("/api/after-restart"))
        .await
        .unwrap();
    assert_eq!(api.status, 200);
    assert!(
        second
            .upstream
            .last()
            .and_then(|r| r.header("authorization").map(str::to_owned))
            .is_some_and(|h| h.starts_with("Bearer ")),
        "the restored session still carries its access token"
    );
    second.stop().await;
}

#[tokio::test]
async fn key_rotation_keeps_sessions_until_the_old_key_is_retired() {
    let data = tempfile::tempdir().unwrap();
    let new = new_key();

    let before = embedded(data.path(), &[TEST_KEY], "").await;
    let (used, used_me) = before.logged_in("alice").await;
    let (idle, _) = before.logged_in("bob").await;
    before.stop().await;

    // New key first, old key still configured: the old sessions open, and the one used is
    // re-sealed under the new key.
    let rotating = embedded(data.path(), &[&new, TEST_KEY], "").await;
    let reply = used.get(rotating.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["sub"], used_me["sub"]);
    rotating.stop().await;

    // Old key retired: the re-sealed session lives on, the idle one is logged out (401, not
    // an error).
    let retired = embedded(data.path(), &[&new], "").await;
    let reply = used.get(retired.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 200, "re-sealed under the new key on use");
    assert_eq!(reply.json().unwrap()["sub"], "alice");
    let reply = idle.get(retired.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["error"], "unauthenticated");
    let api = idle.get(retired.url("/api/x")).await.unwrap();
    assert_eq!(api.status, 401);
    assert!(retired.upstream.requests().is_empty());
    retired.stop().await;
}

#[tokio::test]
async fn retiring_the_only_key_logs_everyone_out_without_an_error() {
    let data = tempfile::tempdir().unwrap();
    let before = embedded(data.path(), &[TEST_KEY], "").await;
    let (browser, _) = before.logged_in("alice").await;
    before.stop().await;

    let after = embedded(data.path(), &[&new_key()], "").await;
    let reply = browser.get(after.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["error"], "unauthenticated");
    // Logging in again works on the same file.
    after.login(&browser, "alice", "/").await;
    let reply = browser.get(after.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 200);
    after.stop().await;
}

#[tokio::test]
async fn memory_store_starts_empty_on_every_start() {
    let first = Ward::start().await;
    let (browser, _) = first.logged_in("alice").await;
    first.stop().await;
    let second = Ward::start().await;
    let reply = browser.get(second.url("/bff/user")).await.unwrap();
    assert_eq!(
        reply.status, 401,
        "a memory store keeps nothing across starts"
    );
    second.stop().await;
}

#[tokio::test]
async fn a_record_moved_to_another_session_key_opens_for_no_cookie() {
    let data = tempfile::tempdir().unwrap();
    let ward = embedded(data.path(), &[TEST_KEY], "").await;
    let (alice, _) = ward.logged_in("alice").await;
    let (bob, _) = ward.logged_in("bob").await;
    let (alice_id, alice_secret) = cookie_parts(&alice.cookie("localhost", "__Host-ward").unwrap());
    let (bob_id, _) = cookie_parts(&bob.cookie("localhost", "__Host-ward").unwrap());
    let store = ward.state.sessions.store().clone();
    let alice_record = store
        .get(&session_key(&alice_id))
        .await
        .unwrap()
        .expect("alice's record");

    // Alice's sealed record under bob's key. Bob's cookie must not open it (wrong secret), and
    // neither may a cookie of bob's id with alice's secret: the record key then matches, and
    // only the store key in the associated data tells the records apart.
    store
        .put(
            &session_key(&bob_id),
            Record {
                value: alice_record,
                expires_at: ward.clock_now() + 3600,
                indexes: Vec::new(),
                created_at: ward.clock_now(),
                updated_at: ward.clock_now(),
            },
        )
        .await
        .unwrap();
    let reply = bob.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 401, "bob's cookie opened alice's record");
    let rebuilt = Browser::new().unwrap();
    rebuilt.set_cookie(
        "localhost",
        "__Host-ward",
        &cookie_value(&alice_id, &alice_secret),
    );
    let reply = rebuilt.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(
        reply.status, 200,
        "a cookie rebuilt from its parts still works"
    );
    let spliced = Browser::new().unwrap();
    spliced.set_cookie(
        "localhost",
        "__Host-ward",
        &cookie_value(&bob_id, &alice_secret),
    );
    let reply = spliced.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 401, "a record moved to another key opened");
    assert_eq!(reply.json().unwrap()["error"], "unauthenticated");
    let api = spliced.get(ward.url("/api/x")).await.unwrap();
    assert_eq!(api.status, 401);
    assert!(ward.upstream.requests().is_empty(), "nothing forwarded");

    // The record itself is intact where it belongs.
    let reply = alice.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json().unwrap()["sub"], "alice");
    ward.stop().await;
}
