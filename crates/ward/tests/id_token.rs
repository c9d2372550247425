//! The callback against the real IdP when the token response is wrong (SPEC §1 step 3, §2
//! `/bff/callback`; SECURITY-CASES C-05, C-06, C-09, C-11, T-01…T-09): forged ID tokens, a
//! failing token endpoint, client authentication, the RFC 9207 `iss` parameter and a forged
//! code. Every rejection is `400 login_failed`, `no-store`, no session, nothing secret echoed.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::Ward;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use url::Url;
use ward_store::{Clock, ManualClock, SystemClock};
use ward_testkit::{Browser, ClientAuth, Idp, IdpOptions, Reply};

/// The IdP's ID-token mutations that Ward must refuse.
const INVALID_ID_TOKEN_MODES: [&str; 10] = [
    "bad-signature",
    "unknown-kid",
    "wrong-aud",
    "wrong-iss",
    "wrong-nonce",
    "expired",
    "future-iat",
    "no-nonce",
    "alg-none",
    "azp-mismatch",
];

/// Ward refetches the JWKS at most once per 10 s (`oidc::jwks::MIN_REFETCH_INTERVAL`), and the
/// discovery fetch at start counts: advancing Ward's clock by this much lets the next unknown
/// `kid` trigger a real refetch.
const PAST_JWKS_REFETCH_INTERVAL: u64 = 11;

/// Starts a login at `origin` with `browser`, logs `user` in at the IdP and returns the IdP's
/// redirect back to Ward's callback (with `code`, `state`, `iss`), not followed.
async fn idp_redirect_back(browser: &Browser, origin: &str, user: &str) -> Url {
    let start = browser
        .get(format!("{origin}/bff/login"))
        .await
        .expect("GET /bff/login");
    assert_eq!(start.status, 302, "login redirects to the IdP");
    let authorize = start.location().expect("Location to the IdP").to_owned();
    let back = browser
        .login_at_idp(&authorize, user)
        .await
        .expect("login at the IdP");
    let url = back.location_url().expect("redirect back to Ward");
    assert_eq!(
        url.path(),
        "/bff/callback",
        "the IdP sends the browser back"
    );
    url
}

/// The value of query parameter `name` of `url`.
fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `url` with its query pairs rewritten by `edit`.
fn with_query(url: &Url, edit: impl FnOnce(&mut Vec<(String, String)>)) -> Url {
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    edit(&mut pairs);
    let mut rewritten = url.clone();
    rewritten.set_query(None);
    if !pairs.is_empty() {
        rewritten.query_pairs_mut().extend_pairs(pairs);
    }
    rewritten
}

/// `url` with parameter `name` set to `value` (every occurrence; appended when absent) or
/// removed (`None`).
fn set_param(url: &Url, name: &str, value: Option<&str>) -> Url {
    with_query(url, |pairs| {
        pairs.retain(|(k, _)| k != name);
        if let Some(value) = value {
            pairs.push((name.to_owned(), value.to_owned()));
        }
    })
}

/// Every way `reply` differs from a clean `400 login_failed` rejection that leaks none of
/// `secrets` (and no JWT) and sets no session cookie; empty when it is one.
fn login_failed_problems(reply: &Reply, secrets: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    if reply.status != 400 {
        problems.push(format!("status {} (want 400)", reply.status));
    }
    match reply.json() {
        Ok(body) if body["error"] == "login_failed" => {}
        Ok(body) => problems.push(format!("error {} (want login_failed)", body["error"])),
        Err(_) => problems.push("body is not JSON".to_owned()),
    }
    if reply.header("cache-control") != Some("no-store") {
        problems.push(format!(
            "Cache-Control {:?} (want no-store)",
            reply.header("cache-control")
        ));
    }
    if reply.headers.get("location").is_some() {
        problems.push("a Location header".to_owned());
    }
    if reply.set_cookie("__Host-ward").is_some() {
        problems.push("a session cookie was set".to_owned());
    }
    let body = reply.text();
    let headers: Vec<String> = reply
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value.as_bytes())))
        .collect();
    for (what, text) in
        std::iter::once(("body", &body)).chain(headers.iter().map(|h| ("header", h)))
    {
        if text.contains("eyJ") {
            problems.push(format!("a JWT in a {what}"));
        }
        for (index, secret) in secrets.iter().enumerate() {
            if !secret.is_empty() && text.contains(secret) {
                problems.push(format!("secret #{index} echoed in a {what}"));
            }
        }
    }
    problems
}

/// Panics with every problem of `reply` as a `login_failed` rejection.
fn assert_login_failed(reply: &Reply, secrets: &[&str], case: &str) {
    let problems = login_failed_problems(reply, secrets);
    assert!(problems.is_empty(), "{case}: {}", problems.join("; "));
}

/// The status of `GET /bff/user` for `browser`.
async fn user_status(browser: &Browser, origin: &str) -> u16 {
    browser
        .get(format!("{origin}/bff/user"))
        .await
        .expect("GET /bff/user")
        .status
        .as_u16()
}

/// IdP `POST /token` requests so far.
async fn token_requests(idp: &Idp) -> u64 {
    idp.stats().await.expect("IdP stats").token_requests
}

/// Logs `user` in with a fresh browser and asserts it worked: the control case.
async fn assert_login_succeeds(browser: &Browser, origin: &str, case: &str) {
    let back = idp_redirect_back(browser, origin, "alice").await;
    let callback = browser.get(back.as_str()).await.expect("GET /bff/callback");
    assert_eq!(
        callback.status,
        302,
        "{case}: callback answered {}",
        callback.text()
    );
    assert!(
        callback.set_cookie("__Host-ward").is_some(),
        "{case}: session cookie"
    );
    assert_eq!(user_status(browser, origin).await, 200, "{case}: /bff/user");
}

#[tokio::test]
async fn every_invalid_id_token_fails_the_login_without_a_session() {
    let ward = Ward::start().await;
    let mut failures = Vec::new();
    for mode in INVALID_ID_TOKEN_MODES {
        ward.idp
            .set_id_token_mode(mode)
            .await
            .expect("set the ID-token mode");
        // Let an unknown `kid` really refetch the JWKS, so refusing it is not just the rate limit.
        ward.clock.advance(PAST_JWKS_REFETCH_INTERVAL);
        let browser = Browser::new().expect("browser");
        let back = idp_redirect_back(&browser, &ward.origin, "alice").await;
        let code = param(&back, "code").expect("code");
        let state = param(&back, "state").expect("state");
        let before = token_requests(&ward.idp).await;

        let reply = browser.get(back.as_str()).await.expect("GET /bff/callback");
        let mut problems = login_failed_problems(&reply, &[&code, &state]);
        if token_requests(&ward.idp).await != before + 1 {
            problems.push("the code was not exchanged exactly once".to_owned());
        }
        let status = user_status(&browser, &ward.origin).await;
        if status != 401 {
            problems.push(format!("/bff/user answered {status} (want 401)"));
        }
        // The rejected login is spent: replaying it exchanges nothing and logs nobody in.
        let replay = browser.get(back.as_str()).await.expect("replay");
        if replay.status != 400 || replay.set_cookie("__Host-ward").is_some() {
            problems.push(format!("replay answered {}", replay.status));
        }
        if token_requests(&ward.idp).await != before + 1 {
            problems.push("the replay reached the token endpoint".to_owned());
        }
        if !problems.is_empty() {
            failures.push(format!("{mode}: {}", problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "invalid ID tokens not refused cleanly:\n{}",
        failures.join("\n")
    );

    // Control: the same Ward logs in once the IdP issues genuine tokens again.
    ward.idp.set_id_token_mode("none").await.expect("reset");
    let browser = Browser::new().expect("browser");
    assert_login_succeeds(&browser, &ward.origin, "genuine ID token").await;
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_from_the_jwks_and_accepted() {
    let ward = Ward::start().await;
    ward.idp
        .set_id_token_mode("rotated-key")
        .await
        .expect("rotate the signing key");
    ward.clock.advance(PAST_JWKS_REFETCH_INTERVAL);
    let browser = Browser::new().expect("browser");
    assert_login_succeeds(&browser, &ward.origin, "first login after rotation").await;
    let me = browser
        .get(ward.url("/bff/user"))
        .await
        .expect("GET /bff/user");
    assert_eq!(me.json().expect("user JSON")["sub"], "alice");

    // The fetched key stays known: an immediate second login (no refetch allowed yet) works.
    let second = Browser::new().expect("browser");
    assert_login_succeeds(&second, &ward.origin, "second login after rotation").await;
}

#[tokio::test]
async fn an_unknown_kid_is_refused_even_after_refetching_the_jwks() {
    let ward = Ward::start().await;
    ward.idp
        .set_id_token_mode("unknown-kid")
        .await
        .expect("set the ID-token mode");
    // First with a real refetch of the JWKS, then again while refetching is rate-limited.
    for (attempt, advance) in [
        ("after the refetch interval", PAST_JWKS_REFETCH_INTERVAL),
        ("within the refetch interval", 0),
    ] {
        ward.clock.advance(advance);
        let browser = Browser::new().expect("browser");
        let back = idp_redirect_back(&browser, &ward.origin, "alice").await;
        let reply = browser.get(back.as_str()).await.expect("GET /bff/callback");
        assert_login_failed(
            &reply,
            &[&param(&back, "code").unwrap_or_default()],
            attempt,
        );
        assert_eq!(user_status(&browser, &ward.origin).await, 401, "{attempt}");
    }
}

#[tokio::test]
async fn a_failing_token_endpoint_fails_the_login_until_it_recovers() {
    let ward = Ward::start().await;
    for status in [500, 503, 400, 401] {
        ward.idp
            .fail_token_requests(status)
            .await
            .expect("make /token fail");
        let browser = Browser::new().expect("browser");
        let back = idp_redirect_back(&browser, &ward.origin, "alice").await;
        let code = param(&back, "code").expect("code");
        let before = token_requests(&ward.idp).await;
        let reply = browser.get(back.as_str()).await.expect("GET /bff/callback");
        let case = format!("token endpoint answering {status}");
        assert_login_failed(&reply, &[&code], &case);
        let text = reply.text();
        assert!(
            !text.contains("forced token failure") && !text.contains("server_error"),
            "{case}: the IdP's error is echoed: {text}"
        );
        assert_eq!(token_requests(&ward.idp).await, before + 1, "{case}");
        assert_eq!(user_status(&browser, &ward.origin).await, 401, "{case}");
    }

    ward.idp.fail_token_requests(0).await.expect("reset /token");
    let browser = Browser::new().expect("browser");
    assert_login_succeeds(&browser, &ward.origin, "after the IdP recovered").await;
}

#[tokio::test]
async fn a_transient_token_failure_fails_only_that_login() {
    let ward = Ward::start().await;
    ward.idp
        .fail_next_token_requests(500, 1)
        .await
        .expect("fail the next /token");
    let browser = Browser::new().expect("browser");
    let back = idp_redirect_back(&browser, &ward.origin, "alice").await;
    let reply = browser.get(back.as_str()).await.expect("GET /bff/callback");
    assert_login_failed(&reply, &[&param(&back, "code").unwrap_or_default()], "500");
    assert_eq!(user_status(&browser, &ward.origin).await, 401);

    // A new login from the same browser (its binding cookie is still there) goes through.
    assert_login_succeeds(&browser, &ward.origin, "next login").await;
}

#[tokio::test]
async fn a_changed_or_missing_iss_fails_the_callback_before_the_code_exchange() {
    let ward = Ward::start().await;
    let discovery = Browser::new()
        .expect("browser")
        .get(ward.idp.url("/.well-known/openid-configuration"))
        .await
        .expect("discovery")
        .json()
        .expect("discovery JSON");
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"], true,
        "the test IdP must advertise RFC 9207 for this test to mean anything"
    );

    let issuer = ward.idp.issuer().to_owned();
    let variants: Vec<(&str, Option<String>)> = vec![
        (
            "another issuer",
            Some("http://wrong-issuer.invalid".to_owned()),
        ),
        ("trailing slash", Some(format!("{issuer}/"))),
        ("different case", Some(issuer.to_uppercase())),
        ("empty", Some(String::new())),
        ("removed", None),
    ];
    for (case, iss) in variants {
        let browser = Browser::new().expect("browser");
        let back = idp_redirect_back(&browser, &ward.origin, "alice").await;
        assert_eq!(param(&back, "iss").as_deref(), Some(issuer.as_str()));
        let code = param(&back, "code").expect("code");
        let before = token_requests(&ward.idp).await;

        let forged = set_param(&back, "iss", iss.as_deref());
        let reply = browser.get(forged.as_str()).await.expect("forged callback");
        assert_login_failed(&reply, &[&code], case);
        assert_eq!(
            token_requests(&ward.idp).await,
            before,
            "{case}: the code must not be exchanged"
        );
        assert_eq!(user_status(&browser, &ward.origin).await, 401, "{case}");

        // The check runs after the transaction is taken: the genuine response cannot finish
        // it any more (fail closed, the user starts over).
        let genuine = browser.get(back.as_str()).await.expect("genuine callback");
        assert_login_failed(&genuine, &[&code], &format!("{case}, then genuine"));
        assert_eq!(token_requests(&ward.idp).await, before, "{case}");
    }

    // Control: the same rewriting with the true issuer leaves a callback that works.
    let browser = Browser::new().expect("browser");
    let back = idp_redirect_back(&browser, &ward.origin, "alice").await;
    let rewritten = set_param(&back, "iss", Some(&issuer));
    let reply = browser.get(rewritten.as_str()).await.expect("callback");
    assert_eq!(reply.status, 302, "{}", reply.text());
    assert_eq!(user_status(&browser, &ward.origin).await, 200);
}

#[tokio::test]
async fn a_repeated_iss_parameter_fails_the_callback() {
    let ward = Ward::start().await;
    let browser = Browser::new().expect("browser");
    let back = idp_redirect_back(&browser, &ward.origin, "alice").await;
    let code = param(&back, "code").expect("code");
    let before = token_requests(&ward.idp).await;
    let polluted = with_query(&back, |pairs| {
        pairs.push(("iss".to_owned(), "http://wrong-issuer.invalid".to_owned()))
    });
    let reply = browser.get(polluted.as_str()).await.expect("callback");
    assert_login_failed(&reply, &[&code], "iss twice");
    assert_eq!(token_requests(&ward.idp).await, before);
    assert_eq!(user_status(&browser, &ward.origin).await, 401);
}

#[tokio::test]
async fn a_forged_code_with_a_valid_state_fails_and_spends_the_transaction() {
    let ward = Ward::start().await;
    let browser = Browser::new().expect("browser");
    let back = idp_redirect_back(&browser, &ward.origin, "alice").await;
    let code = param(&back, "code").expect("code");
    let before = token_requests(&ward.idp).await;

    let forged = set_param(&back, "code", Some("garbage-code-0123456789"));
    let reply = browser.get(forged.as_str()).await.expect("forged callback");
    assert_login_failed(&reply, &[&code, "garbage-code-0123456789"], "forged code");
    assert_eq!(
        token_requests(&ward.idp).await,
        before + 1,
        "the forged code goes to the IdP, which refuses it"
    );
    assert_eq!(user_status(&browser, &ward.origin).await, 401);

    // The transaction was consumed before the exchange: the real code cannot use it now, and
    // Ward does not even send it to the IdP.
    let genuine = browser.get(back.as_str()).await.expect("genuine callback");
    assert_login_failed(&genuine, &[&code], "real code after a forged one");
    assert_eq!(token_requests(&ward.idp).await, before + 1);
    assert_eq!(user_status(&browser, &ward.origin).await, 401);

    // Nothing is stuck: a new login from the same browser works.
    assert_login_succeeds(&browser, &ward.origin, "new login").await;
}

#[tokio::test]
async fn a_client_registered_for_post_refuses_ward_sending_basic() {
    let ward = Ward::start_with(common::Options {
        idp: |idp| idp.client_auth = ClientAuth::Post,
        ..Default::default()
    })
    .await;
    let browser = Browser::new().expect("browser");
    let back = idp_redirect_back(&browser, &ward.origin, "alice").await;
    let code = param(&back, "code").expect("code");
    let before = token_requests(&ward.idp).await;
    let reply = browser.get(back.as_str()).await.expect("GET /bff/callback");
    assert_login_failed(
        &reply,
        &[&code, ward_testkit::CLIENT_SECRET],
        "basic vs post",
    );
    assert_eq!(token_requests(&ward.idp).await, before + 1);
    assert_eq!(user_status(&browser, &ward.origin).await, 401);
}

/// A Ward whose `[oidc] client_auth` the test chooses, set through the `WARD_OIDC__CLIENT_AUTH`
/// environment override of `load_from_str` (the shared harness passes no environment, and its
/// `extra_toml` cannot add keys to the `[oidc]` section it already wrote).
struct ClientAuthWard {
    origin: String,
    idp: Idp,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

impl ClientAuthWard {
    async fn start(idp_auth: ClientAuth, ward_client_auth: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("bound address").port();
        let origin = format!("http://localhost:{port}");
        let mut idp_options = IdpOptions::new(origin.clone());
        idp_options.always_refresh = true;
        idp_options.client_auth = idp_auth;
        let idp = Idp::start(idp_options).await.expect("start the IdP");
        let dir = tempfile::tempdir().expect("temp dir");
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
public_url = "{origin}"

[oidc]
issuer = "{issuer}"
client_id = "{client_id}"
client_secret = "{client_secret}"

[store]
kind = "memory"

[crypto]
keys = ["{key}"]
"#,
            issuer = idp.issuer(),
            client_id = ward_testkit::CLIENT_ID,
            client_secret = ward_testkit::CLIENT_SECRET,
            key = common::TEST_KEY,
        );
        let env = BTreeMap::from([(
            "WARD_OIDC__CLIENT_AUTH".to_owned(),
            ward_client_auth.to_owned(),
        )]);
        let config = ward::config::load_from_str(&toml, &env, dir.path())
            .unwrap_or_else(|e| panic!("test configuration invalid:\n{e}"));
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let state = ward::server::build_state(config, clock)
            .await
            .expect("build Ward's state");
        let (tx, rx) = oneshot::channel();
        tokio::spawn(ward::server::run(listener, state, async {
            let _ = rx.await;
        }));
        Self {
            origin,
            idp,
            _dir: dir,
            shutdown: Some(tx),
        }
    }
}

impl Drop for ClientAuthWard {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn client_secret_post_logs_in_when_the_idp_registered_it() {
    let ward = ClientAuthWard::start(ClientAuth::Post, "client_secret_post").await;
    let browser = Browser::new().expect("browser");
    let before = token_requests(&ward.idp).await;
    assert_login_succeeds(&browser, &ward.origin, "client_secret_post").await;
    assert_eq!(token_requests(&ward.idp).await, before + 1);
}

#[tokio::test]
async fn a_client_registered_for_basic_refuses_ward_sending_post() {
    let ward = ClientAuthWard::start(ClientAuth::Basic, "client_secret_post").await;
    let browser = Browser::new().expect("browser");
    let back = idp_redirect_back(&browser, &ward.origin, "alice").await;
    let code = param(&back, "code").expect("code");
    let reply = browser.get(back.as_str()).await.expect("GET /bff/callback");
    assert_login_failed(
        &reply,
        &[&code, ward_testkit::CLIENT_SECRET],
        "post vs basic",
    );
    assert_eq!(user_status(&browser, &ward.origin).await, 401);
}
