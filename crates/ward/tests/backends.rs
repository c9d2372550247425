//! The store-dependent guarantees of SPEC §2 and §6 on every backend that keeps sessions
//! outside the process (SECURITY-CASES ST-01, ST-06, O-02…O-09): key rotation without logout,
//! nothing readable in a dump of the store, and back-channel logout sent by the real IdP.
//!
//! Each scenario is one generic function, instantiated per backend by [`per_backend!`]:
//!
//! | scenario | embedded | redis | postgres |
//! |---|---|---|---|
//! | [`rotation`] | yes | yes | yes |
//! | [`at_rest`] | yes (adds refresh tokens, login state to `store_at_rest.rs`) | yes | yes |
//! | [`backchannel`] | yes | yes | yes |
//! | [`backchannel_across_instances`] | no (one process owns the file) | yes | yes |
//!
//! The memory store has no dump to audit (it lives in Ward's heap) and loses everything on a
//! restart, so only `backchannel.rs` covers it. Redis and PostgreSQL are the machine's
//! (`WARD_TEST_REDIS_URL`, `WARD_TEST_POSTGRES_URL`); an unreachable server fails the test,
//! naming the address, and never skips it. Each test works under a key prefix of its own (set
//! through `WARD_STORE__KEY_PREFIX`, so a restarted Ward finds the same records) and deletes
//! its keys or tables when it ends.

#[path = "support/backend/mod.rs"]
mod backend;
mod common;
#[path = "support/session_probe.rs"]
mod session_probe;

use backend::{Backend, Dump, Kind, assert_unchanged};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::logout_tokens::{
    ValidClaims, assert_claims_refused, assert_forgeries_refused, assert_headers_refused,
    assert_invalid, assert_ok, claim_flaws, claims, end_idp_session, post_token, sign, user_status,
    wait_for_idp_log,
};
use common::{TEST_KEY, Ward};
use serde_json::json;
use session_probe::{Tokens, bearer_of, cookie_parts, sealed_kid, session_key, sid_of, tokens_of};
use ward_testkit::Browser;

/// Key id of [`TEST_KEY`].
const OLD_KID: &str = "test1";
/// Key id of [`new_key`].
const NEW_KID: &str = "test2";
/// Access-token lifetime at the IdP in the at-rest audit: short, so a refresh can be forced.
const AT_TTL: u64 = 120;
/// The users of the at-rest audit (their names, e-mails and display names are needles too).
const AT_REST_USERS: [&str; 2] = ["alice-at-rest", "bob-at-rest"];

/// Instantiates `scenario(kind)` as one `#[tokio::test]` per `name => kind`.
macro_rules! per_backend {
    ($scenario:ident: $($name:ident => $kind:expr),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                $scenario($kind).await;
            }
        )+
    };
}

per_backend!(rotation:
    rotation_embedded => Kind::Embedded,
    rotation_redis => Kind::Redis,
    rotation_postgres => Kind::Postgres,
);
per_backend!(at_rest:
    at_rest_embedded => Kind::Embedded,
    at_rest_redis => Kind::Redis,
    at_rest_postgres => Kind::Postgres,
);
per_backend!(backchannel:
    backchannel_embedded => Kind::Embedded,
    backchannel_redis => Kind::Redis,
    backchannel_postgres => Kind::Postgres,
);
per_backend!(backchannel_across_instances:
    backchannel_across_instances_redis => Kind::Redis,
    backchannel_across_instances_postgres => Kind::Postgres,
);

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// Keys `[A]` → `[B, A]` → `[B]` across restarts on the same store: a session sealed under A
/// opens under `[B, A]` and is re-sealed under B by its next request; one left idle stays under
/// A and, once A is retired, reads as logged out (401), never as an error. The re-sealed one
/// is re-indexed under B as well, so back-channel logout still finds it after A is gone.
async fn rotation(kind: Kind) {
    let backend = Backend::new(kind).await;
    let new = new_key();

    let before = backend.start(&[TEST_KEY]).await;
    let (used, used_me) = before.logged_in("alice").await;
    let (idle, _) = before.logged_in("bob").await;
    let used_key = session_key(&before, &used);
    let idle_key = session_key(&before, &idle);
    assert_eq!(sealed_kid(&before, &used_key).await, OLD_KID);
    assert_eq!(sealed_kid(&before, &idle_key).await, OLD_KID);
    before.stop().await;

    let rotating = backend.start(&[&new, TEST_KEY]).await;
    assert_eq!(
        sealed_kid(&rotating, &used_key).await,
        OLD_KID,
        "nothing re-seals a session before its next request"
    );
    let reply = used.get(rotating.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let me = reply.json().unwrap();
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["csrfToken"], used_me["csrfToken"], "the same session");
    assert_eq!(
        sealed_kid(&rotating, &used_key).await,
        NEW_KID,
        "re-sealed under the new primary key on its first request"
    );
    assert_eq!(
        sealed_kid(&rotating, &idle_key).await,
        OLD_KID,
        "an unused session is left as it was"
    );
    let api = used.get(rotating.url("/api/rotated")).await.unwrap();
    assert_eq!(api.status, 200, "{}", api.text());
    assert!(bearer_of(&rotating, "/api/rotated").is_some());
    rotating.stop().await;

    let retired = backend.start(&[&new]).await;
    let reply = used.get(retired.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 200, "re-sealed under B: {}", reply.text());
    assert_eq!(reply.json().unwrap()["sub"], "alice");
    let reply = idle.get(retired.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["error"], "unauthenticated");
    let api = idle.get(retired.url("/api/x")).await.unwrap();
    assert_eq!(api.status, 401, "{}", api.text());
    assert!(retired.upstream.requests().is_empty(), "nothing forwarded");
    // The logged-out user simply logs in again, on the same store.
    retired.login(&idle, "bob", "/").await;
    let reply = idle.get(retired.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["sub"], "bob");
    // Re-sealing re-indexed the session under B too: with A gone, a logout by `sub` finds it.
    let by_sub = sign(&retired, &claims(&retired, Some("alice"), None), json!({})).await;
    assert_ok(&post_token(&retired, &by_sub).await);
    assert_eq!(user_status(&retired, &used).await, 401);
    assert_eq!(user_status(&retired, &idle).await, 200);
    retired.stop().await;
}

/// After logins, API calls (one of them POST with CSRF) and a token refresh, a dump of the
/// whole store holds no token, identifier, cookie or CSRF token: not as bytes, not as hex.
async fn at_rest(kind: Kind) {
    let backend = Backend::new(kind).await;
    let mut options = backend.options(&[TEST_KEY]);
    options.idp = |idp| idp.at_ttl = Some(AT_TTL);
    let ward = Ward::start_with(options).await;
    let sessions = SessionsAtRest::walk(&ward).await;
    let pending = PendingLogin::begin(&ward).await;

    let dump = backend.dump().await;
    // The dump is of the live data: both session records are in it, under their store keys.
    for (who, browser) in [("alice", &sessions.alice), ("bob", &sessions.bob)] {
        assert_record_dumped(&ward, &dump, who, browser).await;
    }
    let found: Vec<String> = secrets_of(&sessions, &pending)
        .iter()
        .flat_map(|(name, needle)| dump.find(name, needle))
        .collect();
    assert!(
        found.is_empty(),
        "readable in the {} store: {found:#?}",
        kind.name()
    );

    // Still the live sessions: both work after the dump.
    for browser in [&sessions.alice, &sessions.bob] {
        let reply = browser.get(ward.url("/bff/user")).await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    ward.stop().await;
}

/// Two users' sessions after logins, API calls (one a POST with CSRF) and alice's refresh,
/// with every token each held along the way.
struct SessionsAtRest {
    alice: Browser,
    bob: Browser,
    alice_csrf: String,
    bob_csrf: String,
    /// Alice's tokens before and after the refresh.
    alice_first: Tokens,
    alice_refreshed: Tokens,
    bob_tokens: Tokens,
}

impl SessionsAtRest {
    async fn walk(ward: &Ward) -> Self {
        let [alice_name, bob_name] = AT_REST_USERS;
        let (alice, alice_me) = ward.logged_in(alice_name).await;
        let (bob, bob_me) = ward.logged_in(bob_name).await;
        assert_eq!(alice_me["sub"], alice_name);
        let alice_csrf = alice_me["csrfToken"].as_str().unwrap().to_owned();
        let bob_csrf = bob_me["csrfToken"].as_str().unwrap().to_owned();
        let alice_first = call_the_api(ward, &alice, &alice_csrf).await;
        let alice_refreshed = refresh(ward, &alice, &alice_first).await;
        let bob_tokens = tokens_of(ward, &bob, "bob").await;
        Self {
            alice,
            bob,
            alice_csrf,
            bob_csrf,
            alice_first,
            alice_refreshed,
            bob_tokens,
        }
    }
}

/// Two GETs and a POST with the CSRF token through `/api`; the tokens the session then holds.
async fn call_the_api(ward: &Ward, alice: &Browser, csrf: &str) -> Tokens {
    for path in ["/api/one", "/api/two"] {
        let reply = alice.get(ward.url(path)).await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let posted = alice
        .post(ward.url("/api/three"))
        .header("x-csrf-token", csrf)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status, 200, "{}", posted.text());
    let first_access = bearer_of(ward, "/api/three").expect("bearer on the POST");
    let first = tokens_of(ward, alice, "alice").await;
    assert_eq!(
        first.access, first_access,
        "the stored token is the one the upstream saw"
    );
    first
}

/// Into the refresh skew: the next call refreshes, and the IdP rotates the refresh token.
async fn refresh(ward: &Ward, alice: &Browser, first: &Tokens) -> Tokens {
    let first_refresh = first
        .refresh
        .clone()
        .expect("the IdP issued a refresh token");
    ward.clock.advance(AT_TTL - 59);
    let reply = alice.get(ward.url("/api/four")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let refreshed = tokens_of(ward, alice, "alice").await;
    assert_eq!(bearer_of(ward, "/api/four"), Some(refreshed.access.clone()));
    assert_ne!(refreshed.access, first.access, "the call refreshed");
    let refreshed_refresh = refreshed.refresh.clone().expect("a rotated refresh token");
    assert_ne!(refreshed_refresh, first_refresh, "the IdP rotated it");
    refreshed
}

/// A login under way: its transaction (state, nonce, return URL) is stored too.
struct PendingLogin {
    return_path: &'static str,
    state: String,
    nonce: String,
}

impl PendingLogin {
    async fn begin(ward: &Ward) -> Self {
        let return_path = "/pending-return-path-at-rest";
        let pending = Browser::new()
            .unwrap()
            .get(ward.url(&format!("/bff/login?returnUrl={return_path}")))
            .await
            .unwrap();
        assert_eq!(pending.status, 302);
        Self {
            return_path,
            state: pending.location_param("state").expect("state"),
            nonce: pending.location_param("nonce").expect("nonce"),
        }
    }
}

/// `who`'s session record is in the dump: its store key and its sealed bytes.
async fn assert_record_dumped(ward: &Ward, dump: &Dump, who: &str, browser: &Browser) {
    let key = session_key(ward, browser);
    let sealed = ward
        .state
        .sessions
        .store()
        .get(&key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{who}'s record is stored"));
    assert!(dump.holds(key.as_bytes()), "{who}'s store key in the dump");
    assert!(dump.holds(&sealed), "{who}'s sealed record in the dump");
}

/// Named byte strings a dump must not hold.
#[derive(Default)]
struct Needles(Vec<(String, Vec<u8>)>);

impl Needles {
    fn add(&mut self, name: &str, value: &[u8]) {
        self.0.push((name.to_owned(), value.to_vec()));
    }

    /// Every token of a session, the ID token's parts and its `sid`.
    fn add_tokens(&mut self, who: &str, tokens: &Tokens) {
        self.add(&format!("{who}: access token"), tokens.access.as_bytes());
        let refresh = tokens.refresh.as_deref().expect("refresh token");
        self.add(&format!("{who}: refresh token"), refresh.as_bytes());
        self.add(&format!("{who}: ID token"), tokens.id.as_bytes());
        let parts: Vec<&str> = tokens.id.split('.').collect();
        assert_eq!(parts.len(), 3, "a JWS");
        self.add(&format!("{who}: ID token claims"), parts[1].as_bytes());
        self.add(&format!("{who}: ID token signature"), parts[2].as_bytes());
        self.add(&format!("{who}: sid"), tokens.sid.as_bytes());
    }

    /// A user's name (also the `sub`), e-mail and display name at the IdP.
    fn add_user(&mut self, name: &str) {
        self.add(&format!("user name / sub {name}"), name.as_bytes());
        self.add(
            &format!("e-mail of {name}"),
            format!("{name}@example.test").as_bytes(),
        );
        self.add(
            &format!("display name of {name}"),
            format!("Test {name}").as_bytes(),
        );
    }
}

/// Every secret and identifier of the audit: tokens, users, cookies with their id and
/// per-session secret, CSRF tokens, the pending login, the client secret and the server key.
fn secrets_of(sessions: &SessionsAtRest, pending: &PendingLogin) -> Vec<(String, Vec<u8>)> {
    let alice_cookie = sessions.alice.cookie("localhost", "__Host-ward").unwrap();
    let bob_cookie = sessions.bob.cookie("localhost", "__Host-ward").unwrap();
    let (alice_id, alice_secret) = cookie_parts(&alice_cookie);
    let mut needles = Needles::default();
    needles.add_tokens("alice", &sessions.alice_first);
    needles.add_tokens("alice refreshed", &sessions.alice_refreshed);
    needles.add_tokens("bob", &sessions.bob_tokens);
    needles.add("a JWT header", b"eyJhbGciOi");
    for name in AT_REST_USERS {
        needles.add_user(name);
    }
    needles.add("alice: session cookie", alice_cookie.as_bytes());
    needles.add("bob: session cookie", bob_cookie.as_bytes());
    needles.add(
        "alice: session id (base64url)",
        URL_SAFE_NO_PAD.encode(alice_id).as_bytes(),
    );
    needles.add("alice: session id (raw)", &alice_id);
    needles.add("alice: per-session secret (raw)", &alice_secret);
    needles.add(
        "alice: per-session secret (base64url)",
        URL_SAFE_NO_PAD.encode(alice_secret).as_bytes(),
    );
    needles.add("alice: CSRF token", sessions.alice_csrf.as_bytes());
    needles.add("bob: CSRF token", sessions.bob_csrf.as_bytes());
    needles.add("pending login: state", pending.state.as_bytes());
    needles.add("pending login: nonce", pending.nonce.as_bytes());
    needles.add("pending login: return URL", pending.return_path.as_bytes());
    needles.add("client secret", b"bff-secret");
    needles.add("server key", &server_key_bytes(TEST_KEY));
    needles.0
}

/// The IdP ends one browser's session at Ward server to server; signed tokens by `sub` alone
/// and `sid` alone end exactly what they name; every invalid or replayed token is `400
/// invalid_logout_token` and leaves the store byte-for-byte as it was.
async fn backchannel(kind: Kind) {
    let backend = Backend::new(kind).await;
    let ward = backend.start(&[TEST_KEY]).await;
    let (laptop, _) = ward.logged_in("alice").await;
    let (phone, _) = ward.logged_in("alice").await;
    let (bob, _) = ward.logged_in("bob").await;
    let (carol, _) = ward.logged_in("carol").await;
    let laptop_sid = sid_of(&ward, &laptop, "alice's laptop").await;

    let before = backend.dump().await;
    refuse_invalid_tokens(&ward, &laptop, &laptop_sid).await;
    assert_unchanged(&before, &backend.dump().await, "invalid logout tokens");
    for browser in [&laptop, &phone, &bob, &carol] {
        assert_eq!(user_status(&ward, browser).await, 200, "nothing ended");
    }

    // The real thing: alice logs out at the IdP on her laptop; oidc-provider POSTs a logout
    // token with her `sub` and that IdP session's `sid`.
    let laptop_key = session_key(&ward, &laptop);
    end_idp_session(&ward, &laptop).await;
    let logs = wait_for_idp_log(&ward, "backchannel.", 1).await;
    assert!(
        logs.contains(&format!(
            "backchannel.success client=bff sub=alice sid={laptop_sid}"
        )),
        "{logs}"
    );
    assert!(!logs.contains("backchannel.error"), "{logs}");
    assert_eq!(
        user_status(&ward, &laptop).await,
        401,
        "the laptop session ended"
    );
    assert!(
        ward.state
            .sessions
            .store()
            .get(&laptop_key)
            .await
            .unwrap()
            .is_none(),
        "its record is deleted from the store"
    );
    assert_eq!(user_status(&ward, &phone).await, 200, "another IdP session");
    assert_eq!(user_status(&ward, &bob).await, 200);

    // `sub` alone: every session of alice.
    let by_sub = sign(&ward, &claims(&ward, Some("alice"), None), json!({})).await;
    assert_ok(&post_token(&ward, &by_sub).await);
    assert_eq!(user_status(&ward, &phone).await, 401);
    assert_eq!(user_status(&ward, &bob).await, 200);

    // The same token again: the `jti` is remembered in the store; nothing is written.
    ward.login(&phone, "alice", "/").await;
    let before = backend.dump().await;
    assert_invalid(&post_token(&ward, &by_sub).await, "replay");
    assert_unchanged(&before, &backend.dump().await, "a replayed logout token");
    assert_eq!(user_status(&ward, &phone).await, 200, "the new login lives");

    // `sid` alone: that session only.
    let bob_sid = sid_of(&ward, &bob, "bob").await;
    let by_sid = sign(&ward, &claims(&ward, None, Some(&bob_sid)), json!({})).await;
    assert_ok(&post_token(&ward, &by_sid).await);
    assert_eq!(user_status(&ward, &bob).await, 401);
    assert_eq!(user_status(&ward, &carol).await, 200);
    assert_eq!(user_status(&ward, &phone).await, 200);
    ward.stop().await;
}

/// Two Ward instances on one store and one IdP: a logout token accepted by one is a replay at
/// the other, and a logout at either ends a session created at the other.
async fn backchannel_across_instances(kind: Kind) {
    let backend = Backend::new(kind).await;
    let first = backend.start(&[TEST_KEY]).await;
    let mut options = backend.options(&[TEST_KEY]);
    options.env.insert(
        "WARD_OIDC__ISSUER".to_owned(),
        first.idp.issuer().to_owned(),
    );
    let second = Ward::start_with(options).await;
    let (alice, _) = first.logged_in("alice").await;
    let (bob, _) = first.logged_in("bob").await;
    // Cookies are per host, not per port: the browsers present them to both instances.
    assert_eq!(user_status(&second, &alice).await, 200, "one shared store");
    assert_eq!(user_status(&second, &bob).await, 200);

    let token = sign(&first, &claims(&first, Some("alice"), None), json!({})).await;
    assert_ok(&post_token(&first, &token).await);
    assert_eq!(user_status(&first, &alice).await, 401);
    assert_eq!(user_status(&second, &alice).await, 401);
    assert_invalid(
        &post_token(&second, &token).await,
        "replay at the other instance",
    );

    let token = sign(&first, &claims(&first, Some("bob"), None), json!({})).await;
    assert_ok(&post_token(&second, &token).await);
    assert_eq!(user_status(&first, &bob).await, 401);
    assert_invalid(
        &post_token(&first, &token).await,
        "replay back at the first",
    );
    second.stop().await;
    first.stop().await;
}

/// Posts a range of invalid logout tokens naming `browser`'s session (valid but for one
/// flaw each); every one must be refused.
async fn refuse_invalid_tokens(ward: &Ward, browser: &Browser, sid: &str) {
    let claims = ValidClaims {
        ward,
        sub: "alice",
        sid,
    };
    assert_claims_refused(ward, claim_flaws(&claims, ward.clock_now())).await;
    let headers = vec![
        ("typ at+jwt", json!({ "typ": "at+jwt" })),
        ("unknown kid", json!({ "kid": "made-up" })),
    ];
    assert_headers_refused(ward, &claims, headers).await;

    let token = sign(ward, &claims.valid(), json!({})).await;
    assert_forgeries_refused(ward, &token, &claims).await;
    let id_token = tokens_of(ward, browser, "alice's laptop").await.id;
    assert_invalid(&post_token(ward, &id_token).await, "the user's ID token");
    let missing = Browser::new()
        .unwrap()
        .post(ward.url("/bff/backchannel-logout"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_invalid(&missing, "no logout_token field");
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// A second test key (never used outside tests), with key id [`NEW_KID`].
fn new_key() -> String {
    format!("{NEW_KID}:{}", STANDARD.encode([0x5a_u8; 32]))
}

fn server_key_bytes(entry: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(entry.split_once(':').unwrap().1)
        .unwrap()
}
