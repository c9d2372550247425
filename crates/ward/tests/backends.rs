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

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::logout_tokens::{
    assert_invalid, assert_ok, claims, end_idp_session, post_token, sign, user_status,
    wait_for_idp_log,
};
use common::{Options, TEST_KEY, Ward, postgres_url, redis_url};
use serde_json::{Value, json};
use ward_testkit::Browser;

/// Key id of [`TEST_KEY`].
const OLD_KID: &str = "test1";
/// Key id of [`new_key`].
const NEW_KID: &str = "test2";
/// Access-token lifetime at the IdP in the at-rest audit: short, so a refresh can be forced.
const AT_TTL: u64 = 120;

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
    let (alice_name, bob_name) = ("alice-at-rest", "bob-at-rest");
    let (alice, alice_me) = ward.logged_in(alice_name).await;
    let (bob, bob_me) = ward.logged_in(bob_name).await;
    assert_eq!(alice_me["sub"], alice_name);
    let alice_csrf = alice_me["csrfToken"].as_str().unwrap().to_owned();
    let bob_csrf = bob_me["csrfToken"].as_str().unwrap().to_owned();

    for path in ["/api/one", "/api/two"] {
        let reply = alice.get(ward.url(path)).await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let posted = alice
        .post(ward.url("/api/three"))
        .header("x-csrf-token", &alice_csrf)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status, 200, "{}", posted.text());
    let first_access = bearer_of(&ward, "/api/three").expect("bearer on the POST");
    let first = tokens_of(&ward, &alice, "alice").await;
    assert_eq!(
        first.access, first_access,
        "the stored token is the one the upstream saw"
    );
    let first_refresh = first
        .refresh
        .clone()
        .expect("the IdP issued a refresh token");

    // Into the refresh skew: the next call refreshes, and the IdP rotates the refresh token.
    ward.clock.advance(AT_TTL - 59);
    let reply = alice.get(ward.url("/api/four")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let refreshed = tokens_of(&ward, &alice, "alice").await;
    assert_eq!(
        bearer_of(&ward, "/api/four"),
        Some(refreshed.access.clone())
    );
    assert_ne!(refreshed.access, first.access, "the call refreshed");
    let refreshed_refresh = refreshed.refresh.clone().expect("a rotated refresh token");
    assert_ne!(refreshed_refresh, first_refresh, "the IdP rotated it");
    let bobs = tokens_of(&ward, &bob, "bob").await;

    // A login under way: its transaction (state, nonce, return URL) is stored too.
    let pending_path = "/pending-return-path-at-rest";
    let pending = Browser::new()
        .unwrap()
        .get(ward.url(&format!("/bff/login?returnUrl={pending_path}")))
        .await
        .unwrap();
    assert_eq!(pending.status, 302);
    let state = pending.location_param("state").expect("state");
    let nonce = pending.location_param("nonce").expect("nonce");

    let dump = backend.dump().await;
    // The dump is of the live data: both session records are in it, under their store keys.
    for (who, browser) in [("alice", &alice), ("bob", &bob)] {
        let key = session_key(&ward, browser);
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

    let alice_cookie = alice.cookie("localhost", "__Host-ward").unwrap();
    let bob_cookie = bob.cookie("localhost", "__Host-ward").unwrap();
    let (alice_id, alice_secret) = cookie_parts(&alice_cookie);
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, value: &[u8]| needles.push((name.to_owned(), value.to_vec()));
    for (who, tokens) in [
        ("alice", &first),
        ("alice refreshed", &refreshed),
        ("bob", &bobs),
    ] {
        add(&format!("{who}: access token"), tokens.access.as_bytes());
        let refresh = tokens.refresh.as_deref().expect("refresh token");
        add(&format!("{who}: refresh token"), refresh.as_bytes());
        add(&format!("{who}: ID token"), tokens.id.as_bytes());
        let parts: Vec<&str> = tokens.id.split('.').collect();
        assert_eq!(parts.len(), 3, "a JWS");
        add(&format!("{who}: ID token claims"), parts[1].as_bytes());
        add(&format!("{who}: ID token signature"), parts[2].as_bytes());
        add(&format!("{who}: sid"), tokens.sid.as_bytes());
    }
    add("a JWT header", b"eyJhbGciOi");
    for name in [alice_name, bob_name] {
        add(&format!("user name / sub {name}"), name.as_bytes());
        add(
            &format!("e-mail of {name}"),
            format!("{name}@example.test").as_bytes(),
        );
        add(
            &format!("display name of {name}"),
            format!("Test {name}").as_bytes(),
        );
    }
    add("alice: session cookie", alice_cookie.as_bytes());
    add("bob: session cookie", bob_cookie.as_bytes());
    add(
        "alice: session id (base64url)",
        URL_SAFE_NO_PAD.encode(alice_id).as_bytes(),
    );
    add("alice: session id (raw)", &alice_id);
    add("alice: per-session secret (raw)", &alice_secret);
    add(
        "alice: per-session secret (base64url)",
        URL_SAFE_NO_PAD.encode(alice_secret).as_bytes(),
    );
    add("alice: CSRF token", alice_csrf.as_bytes());
    add("bob: CSRF token", bob_csrf.as_bytes());
    add("pending login: state", state.as_bytes());
    add("pending login: nonce", nonce.as_bytes());
    add("pending login: return URL", pending_path.as_bytes());
    add("client secret", b"bff-secret");
    add("server key", &server_key_bytes(TEST_KEY));
    let found: Vec<String> = needles
        .iter()
        .flat_map(|(name, needle)| dump.find(name, needle))
        .collect();
    assert!(
        found.is_empty(),
        "readable in the {} store: {found:#?}",
        kind.name()
    );

    // Still the live sessions: both work after the dump.
    for browser in [&alice, &bob] {
        let reply = browser.get(ward.url("/bff/user")).await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    ward.stop().await;
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
    let valid = || claims(ward, Some("alice"), Some(sid));
    let with = |name: &str, value: Value| {
        let mut claims = valid();
        claims[name] = value;
        claims
    };
    let without = |names: &[&str]| {
        let mut claims = valid();
        for name in names {
            claims.as_object_mut().unwrap().remove(*name);
        }
        claims
    };
    let now = ward.clock_now();
    let cases: Vec<(&str, Value, Value)> = vec![
        ("wrong aud", with("aud", json!("other-client")), json!({})),
        (
            "wrong iss",
            with("iss", json!("http://evil.invalid")),
            json!({}),
        ),
        ("nonce", with("nonce", json!("n")), json!({})),
        ("no events", without(&["events"]), json!({})),
        (
            "wrong event",
            with("events", json!({ "urn:other": {} })),
            json!({}),
        ),
        ("iat too old", with("iat", json!(now - 3600)), json!({})),
        (
            "iat in the future",
            with("iat", json!(now + 3600)),
            json!({}),
        ),
        ("expired", with("exp", json!(now - 3600)), json!({})),
        ("neither sub nor sid", without(&["sub", "sid"]), json!({})),
        ("no jti", without(&["jti"]), json!({})),
        ("typ JWT", valid(), json!({ "typ": "JWT" })),
        ("unknown kid", valid(), json!({ "kid": "made-up" })),
    ];
    for (case, claims, header) in cases {
        let token = sign(ward, &claims, header).await;
        assert_invalid(&post_token(ward, &token).await, case);
    }

    let token = sign(ward, &valid(), json!({})).await;
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 0xff;
    let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes));
    assert_invalid(&post_token(ward, &flipped).await, "bad signature");
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!(
        "{}.{}.",
        encode(&json!({ "alg": "none" })),
        encode(&valid())
    );
    assert_invalid(&post_token(ward, &unsigned).await, "alg none");
    let hs = format!(
        "{}.{}.AAAA",
        encode(&json!({ "alg": "HS256" })),
        encode(&valid())
    );
    assert_invalid(&post_token(ward, &hs).await, "HS256");
    assert_invalid(&post_token(ward, "not-a-jwt").await, "garbage");
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
// Backends
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Embedded,
    Redis,
    Postgres,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Embedded => "embedded",
            Kind::Redis => "redis",
            Kind::Postgres => "postgres",
        }
    }
}

/// One store location for a whole test, kept across Ward restarts, removed when dropped.
struct Backend {
    kind: Kind,
    /// The embedded store's directory (`ward.db` in it).
    dir: tempfile::TempDir,
    /// Key prefix of the shared-server stores (also their PostgreSQL table-name prefix).
    prefix: String,
}

impl Backend {
    /// A fresh location; fails loudly, naming the address, when the server is unreachable.
    async fn new(kind: Kind) -> Backend {
        let unique = unique_suffix();
        let prefix = match kind {
            Kind::Embedded => String::new(),
            Kind::Redis => format!("wardbk:{}:{unique}:", std::process::id()),
            Kind::Postgres => format!("wardbk_{}_{unique}_", std::process::id()),
        };
        match kind {
            Kind::Embedded => {}
            Kind::Redis => {
                let mut conn = redis_connection().await;
                let pong: String = redis::cmd("PING")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("Redis at {} fails PING: {e}", address(&redis_url()))
                    });
                assert_eq!(pong, "PONG");
            }
            Kind::Postgres => {
                postgres_client().await;
            }
        }
        Backend {
            kind,
            dir: tempfile::tempdir().expect("temp dir"),
            prefix,
        }
    }

    /// Harness options for a Ward on this location with `keys`.
    fn options(&self, keys: &[&str]) -> Options {
        let mut env = BTreeMap::new();
        if !self.prefix.is_empty() {
            env.insert("WARD_STORE__KEY_PREFIX".to_owned(), self.prefix.clone());
        }
        Options {
            store: self.kind.name(),
            data_dir: Some(self.dir.path().to_owned()),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            env,
            ..Default::default()
        }
    }

    async fn start(&self, keys: &[&str]) -> Ward {
        Ward::start_with(self.options(keys)).await
    }

    /// Everything the store holds right now, as a copy of it would.
    async fn dump(&self) -> Dump {
        let entries = match self.kind {
            Kind::Embedded => {
                let file = self.dir.path().join("ward.db");
                let bytes =
                    std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
                vec![("ward.db".to_owned(), bytes)]
            }
            Kind::Redis => redis_dump(&self.prefix).await,
            Kind::Postgres => postgres_dump(&self.prefix).await,
        };
        assert!(
            !entries.is_empty(),
            "the {} store under {:?} is empty",
            self.kind.name(),
            self.prefix
        );
        Dump { entries }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // Best effort, on a thread of its own: the test's runtime may be gone or panicking.
        let (kind, prefix) = (self.kind, self.prefix.clone());
        let cleanup = std::thread::spawn(move || match kind {
            Kind::Embedded => {}
            Kind::Redis => redis_cleanup(&prefix),
            Kind::Postgres => {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(postgres_cleanup(&prefix));
            }
        });
        let _ = cleanup.join();
    }
}

/// A store's contents: named byte strings (keys, values, fields, rows).
#[derive(Debug, PartialEq, Eq)]
struct Dump {
    entries: Vec<(String, Vec<u8>)>,
}

impl Dump {
    fn holds(&self, needle: &[u8]) -> bool {
        self.entries
            .iter()
            .any(|(_, bytes)| contains(bytes, needle))
    }

    /// Where `needle` occurs, as raw bytes or as lowercase or uppercase hex (PostgreSQL's text
    /// form of `bytea`): one line per entry, naming the needle and the entry, not the value.
    fn find(&self, name: &str, needle: &[u8]) -> Vec<String> {
        let hex_lower = hex(needle);
        let hex_upper = hex_lower.to_ascii_uppercase();
        self.entries
            .iter()
            .filter(|(_, bytes)| {
                contains(bytes, needle)
                    || contains(bytes, hex_lower.as_bytes())
                    || contains(bytes, hex_upper.as_bytes())
            })
            .map(|(entry, _)| format!("{name} in {entry}"))
            .collect()
    }
}

fn assert_unchanged(before: &Dump, after: &Dump, what: &str) {
    if before == after {
        return;
    }
    // Entry names only (values may be secrets), deduplicated, the first few.
    let mut changed: Vec<&str> = before
        .entries
        .iter()
        .chain(&after.entries)
        .filter(|entry| !before.entries.contains(entry) || !after.entries.contains(entry))
        .map(|(name, _)| name.as_str())
        .collect();
    changed.dedup();
    changed.truncate(10);
    panic!("{what} changed the store, e.g. {changed:?}");
}

/// An error and its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cause = e.source();
    }
    out
}

/// `url` without user information, for messages.
fn address(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => "<not a URL>".to_owned(),
    }
}

async fn redis_connection() -> redis::aio::MultiplexedConnection {
    let url = redis_url();
    let client = redis::Client::open(url.as_str())
        .unwrap_or_else(|e| panic!("Redis URL for {} is invalid: {e}", address(&url)));
    match tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "Redis is unreachable at {} ({e}); start it or set WARD_TEST_REDIS_URL",
            address(&url)
        ),
        Err(_) => panic!("Redis at {} did not answer within 5 s", address(&url)),
    }
}

/// Every key under `prefix` (SCAN, never KEYS), sorted, without the duplicates SCAN may give.
async fn redis_keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Every key under `prefix` with its value, each part of a value an entry of its own.
async fn redis_dump(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut conn = redis_connection().await;
    let mut entries = Vec::new();
    for key in redis_keys(&mut conn, prefix).await {
        let name = String::from_utf8_lossy(&key).into_owned();
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("TYPE");
        let mut parts: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![
                redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("GET"),
            ],
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("HGETALL"),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .expect("ZRANGE"),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("SMEMBERS"),
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .expect("LRANGE"),
            // Expired between SCAN and TYPE.
            "none" => continue,
            other => panic!("key {name} has type {other}, which this dump does not read"),
        };
        // Hash and set order is Redis's business; a dump compares as a set of parts.
        if kind == "hash" {
            let mut pairs: Vec<Vec<u8>> = parts.chunks(2).map(|p| p.concat()).collect();
            pairs.sort();
            parts = pairs;
        } else if kind == "set" {
            parts.sort();
        }
        entries.push((format!("key {name}"), key.clone()));
        for (i, part) in parts.into_iter().enumerate() {
            entries.push((format!("{kind} {name} [{i}]"), part));
        }
    }
    entries
}

fn redis_cleanup(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url().as_str()) else {
        return;
    };
    let Ok(mut conn) = client.get_connection() else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, batch)): redis::RedisResult<(u64, Vec<Vec<u8>>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)
        else {
            return;
        };
        for key in batch {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(key).query(&mut conn);
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

async fn postgres_client() -> tokio_postgres::Client {
    let url = postgres_url();
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_postgres::connect(&url, tokio_postgres::NoTls),
    )
    .await;
    match connected {
        Ok(Ok((client, connection))) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
        Ok(Err(e)) => panic!(
            "PostgreSQL is unreachable at {} ({}); start it or set WARD_TEST_POSTGRES_URL",
            address(&url),
            chain(&e)
        ),
        Err(_) => panic!("PostgreSQL at {} did not answer within 5 s", address(&url)),
    }
}

/// The tables whose names start with `prefix` (the store names its tables from the key
/// prefix; ours is already in PostgreSQL's identifier charset).
async fn postgres_tables(client: &tokio_postgres::Client, prefix: &str) -> Vec<String> {
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() \
             AND left(table_name::text, length($1::text)) = $1::text ORDER BY 1",
            &[&prefix],
        )
        .await
        .expect("list tables")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Every row of every table of the store: as PostgreSQL's text form of the row, and every
/// `bytea` column as raw bytes.
async fn postgres_dump(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let client = postgres_client().await;
    let tables = postgres_tables(&client, prefix).await;
    assert!(
        tables.contains(&format!("{prefix}records")),
        "no records table under {prefix:?}: {tables:?}"
    );
    let mut entries = Vec::new();
    for table in tables {
        assert!(
            table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "table name {table:?}"
        );
        let mut rows: Vec<String> = client
            .query(&format!("SELECT t::text FROM \"{table}\" t"), &[])
            .await
            .unwrap_or_else(|e| panic!("read {table}: {e}"))
            .iter()
            .map(|row| row.get(0))
            .collect();
        rows.sort();
        for (i, row) in rows.into_iter().enumerate() {
            entries.push((format!("{table} row {i} (text)"), row.into_bytes()));
        }
        let columns = client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 AND data_type = 'bytea' ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .expect("list columns");
        for column in columns.iter().map(|row| row.get::<_, String>(0)) {
            let mut values: Vec<Vec<u8>> = client
                .query(&format!("SELECT \"{column}\" FROM \"{table}\""), &[])
                .await
                .unwrap_or_else(|e| panic!("read {table}.{column}: {e}"))
                .iter()
                .filter_map(|row| row.get::<_, Option<Vec<u8>>>(0))
                .collect();
            values.sort();
            for (i, value) in values.into_iter().enumerate() {
                entries.push((format!("{table}.{column} value {i}"), value));
            }
        }
    }
    entries
}

async fn postgres_cleanup(prefix: &str) {
    let Ok((client, connection)) =
        tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls).await
    else {
        return;
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    for table in postgres_tables(&client, prefix).await {
        let _ = client
            .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\" CASCADE"))
            .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions, keys, tokens
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

/// 16 hex digits no other test of this process (or, in practice, another) uses.
fn unique_suffix() -> String {
    use std::hash::{BuildHasher, RandomState};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!(
        "{:016x}",
        RandomState::new().hash_one((n, std::time::SystemTime::now()))
    )
}

/// The store key of `browser`'s session at `ward`.
fn session_key(ward: &Ward, browser: &Browser) -> String {
    let cookies = browser.cookie_header_for(&ward.url("/"));
    ward.state
        .sessions
        .session_key(cookies.as_deref())
        .expect("a session cookie")
}

/// The key id a stored session record is sealed under (format v1: `[1][kid_len][kid]…`).
async fn sealed_kid(ward: &Ward, key: &str) -> String {
    let sealed = ward
        .state
        .sessions
        .store()
        .get(key)
        .await
        .expect("store read")
        .expect("the record is stored");
    assert_eq!(sealed.first(), Some(&1), "sealed format v1");
    let len = usize::from(sealed[1]);
    String::from_utf8(sealed[2..2 + len].to_vec()).expect("kid is UTF-8")
}

/// The id and per-session secret inside a session cookie value (`v1.` + base64url(id ‖ secret)).
fn cookie_parts(cookie: &str) -> ([u8; 32], [u8; 32]) {
    let raw = URL_SAFE_NO_PAD
        .decode(cookie.strip_prefix("v1.").expect("v1 cookie"))
        .expect("cookie is base64url");
    let (id, secret) = raw.split_at(32);
    (id.try_into().unwrap(), secret.try_into().unwrap())
}

/// The bearer token the upstream received for `path`, if it received that path.
fn bearer_of(ward: &Ward, path: &str) -> Option<String> {
    ward.upstream
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path() == path)
        .and_then(|r| r.header("authorization").map(str::to_owned))
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
}

/// The tokens a session holds, read white-box with its cookie (the refresh token and `sid`
/// never leave Ward otherwise).
struct Tokens {
    access: String,
    refresh: Option<String>,
    id: String,
    sid: String,
}

/// `who` names the session in a failure, which also says whether its record is still stored.
async fn tokens_of(ward: &Ward, browser: &Browser, who: &str) -> Tokens {
    let cookies = browser.cookie_header_for(&ward.url("/"));
    let loaded = ward
        .state
        .sessions
        .load(cookies.as_deref())
        .await
        .unwrap_or_else(|e| panic!("{who}: store error {}", chain(&e)));
    let Some(session) = loaded else {
        let key = session_key(ward, browser);
        let stored = ward.state.sessions.store().get(&key).await;
        panic!(
            "{who}: no session; its record under its store key: {}",
            match stored {
                Ok(Some(_)) => "present (did not open or expired)",
                Ok(None) => "absent",
                Err(_) => "unreadable",
            }
        );
    };
    Tokens {
        access: session.data.access_token.expose().to_owned(),
        refresh: session
            .data
            .refresh_token
            .as_ref()
            .map(|t| t.expose().to_owned()),
        id: session.data.id_token.expose().to_owned(),
        sid: session.data.sid.clone().expect("the ID token had a sid"),
    }
}

async fn sid_of(ward: &Ward, browser: &Browser, who: &str) -> String {
    tokens_of(ward, browser, who).await.sid
}

// ---------------------------------------------------------------------------------------------
// Back-channel logout
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Bytes
// ---------------------------------------------------------------------------------------------

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return false;
    };
    haystack
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == first)
        .any(|(i, _)| haystack[i + 1..].starts_with(rest))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
