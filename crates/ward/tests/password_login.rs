//! `POST /bff/login/password` (SPEC §2, §7 `[login] password_grant`) against the real test IdP
//! with its password grant registered: the right password makes a session like the callback's,
//! a wrong one is `401 invalid_credentials` with no session, the endpoint is absent by default,
//! an IdP without the grant refuses the start (and `ward check`), the login budget is shared,
//! and the CSRF header rules hold.

#[path = "support/cli_run.rs"]
mod cli_run;
mod common;

use common::{Options, TEST_KEY, Ward};
use reqwest::Method;
use serde_json::json;
use ward_testkit::{Browser, IdpOptions, PASSWORD_SECRET, PASSWORD_USER, Reply};

const ON: &str = "[login]\npassword_grant = true\n";

fn with_grant(extra_toml: &str) -> Options {
    Options {
        extra_toml: format!("{ON}{extra_toml}"),
        idp: |idp: &mut IdpOptions| *idp = idp.clone().with_password_grant(),
        ..Default::default()
    }
}

/// `POST /bff/login/password` with `X-CSRF-Token: csrf` and the JSON body.
async fn post(ward: &Ward, browser: &Browser, csrf: &str, body: serde_json::Value) -> Reply {
    browser
        .post(ward.url("/bff/login/password"))
        .header("x-csrf-token", csrf)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn log_in(ward: &Ward, browser: &Browser, password: &str) -> Reply {
    let body = json!({ "username": PASSWORD_USER, "password": password });
    post(ward, browser, "1", body).await
}

#[tokio::test]
async fn the_right_password_makes_a_session_like_the_callbacks() {
    let ward = Ward::start_with(with_grant("")).await;
    let browser = Browser::new().unwrap();
    let reply = log_in(&ward, &browser, PASSWORD_SECRET).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let cookie = reply
        .set_cookie(&ward.cookie_name())
        .expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json().unwrap();
    assert_eq!(body["sub"], PASSWORD_USER);
    assert_eq!(body["claims"]["email"], "pat@example.test");
    assert!(body.get("access_token").is_none() && body.get("id_token").is_none());
    let csrf = body["csrfToken"].as_str().expect("csrfToken").to_owned();

    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    let me = me.json().unwrap();
    assert_eq!(me["sub"], PASSWORD_USER);
    assert_eq!(me["csrfToken"], csrf.as_str(), "the same session");

    let api = browser.get(ward.url("/api/orders")).await.unwrap();
    assert_eq!(api.status, 200, "{}", api.text());
    let sent = ward.upstream.last().expect("proxied");
    let bearer = sent.header("authorization").expect("a bearer upstream");
    assert!(
        bearer.starts_with("Bearer ") && bearer.len() > 20,
        "{bearer}"
    );

    let logout = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status, 200, "{}", logout.text());
    let after = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(after.status, 401);
}

#[tokio::test]
async fn a_wrong_password_is_401_invalid_credentials_and_makes_no_session() {
    let ward = Ward::start_with(with_grant("")).await;
    let browser = Browser::new().unwrap();
    let reply = log_in(&ward, &browser, "not the password").await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["error"], "invalid_credentials");
    assert!(reply.set_cookie(&ward.cookie_name()).is_none());
    assert!(!reply.text().contains("not the password"));
    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 401);
    let unknown_user = json!({ "username": "alice", "password": PASSWORD_SECRET });
    let reply = post(&ward, &browser, "1", unknown_user).await;
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn the_endpoint_is_not_found_unless_switched_on() {
    let ward = Ward::start_with(Options {
        idp: |idp: &mut IdpOptions| *idp = idp.clone().with_password_grant(),
        ..Default::default()
    })
    .await;
    let browser = Browser::new().unwrap();
    let reply = log_in(&ward, &browser, PASSWORD_SECRET).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json().unwrap()["error"], "not_found");
    assert!(reply.set_cookie(&ward.cookie_name()).is_none());
}

#[tokio::test]
async fn malformed_credentials_are_400_and_never_reach_the_idp() {
    let ward = Ward::start_with(with_grant("")).await;
    let browser = Browser::new().unwrap();
    let before = ward.idp.stats().await.unwrap().token_requests;
    let long = "p".repeat(1025);
    for body in [
        json!({ "username": PASSWORD_USER }),
        json!({ "username": "", "password": PASSWORD_SECRET }),
        json!({ "username": "pat\r\nX-Injected: 1", "password": PASSWORD_SECRET }),
        json!({ "username": PASSWORD_USER, "password": long }),
        json!([PASSWORD_USER, PASSWORD_SECRET]),
    ] {
        let reply = post(&ward, &browser, "1", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert_eq!(reply.json().unwrap()["error"], "bad_request");
    }
    let form = browser
        .post(ward.url("/bff/login/password"))
        .header("x-csrf-token", "1")
        .form(&[("username", PASSWORD_USER), ("password", PASSWORD_SECRET)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status, 400, "a form is not JSON");
    let oversized = browser
        .post(ward.url("/bff/login/password"))
        .header("x-csrf-token", "1")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"username":"pat","password":"{}"}}"#,
            "p".repeat(20_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status, 413);
    assert_eq!(ward.idp.stats().await.unwrap().token_requests, before);
}

#[tokio::test]
async fn the_csrf_header_is_required_and_with_a_session_must_be_its_token() {
    let ward = Ward::start_with(with_grant("")).await;
    let browser = Browser::new().unwrap();
    let body = json!({ "username": PASSWORD_USER, "password": PASSWORD_SECRET });
    let without = browser
        .post(ward.url("/bff/login/password"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status, 403);
    assert_eq!(without.json().unwrap()["error"], "csrf_failed");

    let first = log_in(&ward, &browser, PASSWORD_SECRET).await;
    assert_eq!(first.status, 200);
    let old_csrf = first.json().unwrap()["csrfToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = post(&ward, &browser, "any-value", body.clone()).await;
    assert_eq!(
        wrong.status, 403,
        "with a session, any value no longer does"
    );

    let again = post(&ward, &browser, &old_csrf, body).await;
    assert_eq!(again.status, 200, "{}", again.text());
    let new_csrf = again.json().unwrap()["csrfToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_csrf, old_csrf, "a new session, never the presented one");
    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.json().unwrap()["csrfToken"], new_csrf.as_str());
}

#[tokio::test]
async fn a_cross_site_request_is_refused_before_the_idp_is_asked() {
    let ward = Ward::start_with(with_grant("")).await;
    let browser = Browser::new().unwrap();
    let before = ward.idp.stats().await.unwrap().token_requests;
    let body = json!({ "username": PASSWORD_USER, "password": PASSWORD_SECRET });
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let reply = browser
            .request(Method::POST, ward.url("/bff/login/password"))
            .header("x-csrf-token", "1")
            .header(name, value)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, 403, "{name}: {value}");
        assert_eq!(reply.json().unwrap()["error"], "csrf_failed");
        assert!(reply.set_cookie(&ward.cookie_name()).is_none());
    }
    assert_eq!(ward.idp.stats().await.unwrap().token_requests, before);
}

#[tokio::test]
async fn password_logins_share_the_login_budget_with_the_browser_flow() {
    let ward = Ward::start_with(with_grant(
        "[rate_limit]\nlogin = { limit = 3, window = \"1m\" }\n",
    ))
    .await;
    let browser = Browser::new().unwrap();
    let start = browser
        .get(ward.url("/bff/login?returnUrl=/"))
        .await
        .unwrap();
    assert_eq!(start.status, 302);
    assert_eq!(log_in(&ward, &browser, "wrong").await.status, 401);
    assert_eq!(log_in(&ward, &browser, "wrong").await.status, 401);
    let refused = log_in(&ward, &Browser::new().unwrap(), PASSWORD_SECRET).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
    let browser_flow = browser
        .get(ward.url("/bff/login?returnUrl=/"))
        .await
        .unwrap();
    assert_eq!(browser_flow.status, 429, "one budget for both");
}

#[tokio::test]
async fn an_idp_without_the_grant_refuses_the_start_and_ward_check() {
    // The default test IdP does not register the password grant.
    let port = cli_run::free_port();
    let idp = ward_testkit::Idp::start(IdpOptions::new(format!("http://localhost:{port}")))
        .await
        .unwrap();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "bff-secret"

[store]
kind = "memory"

[crypto]
keys = ["{TEST_KEY}"]

{ON}"#,
        issuer = idp.issuer()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = ward::config::load_from_str(&toml, &Default::default(), dir.path()).unwrap();
    let outbound = ward::outbound::Outbound::load(&config.outbound).expect("outbound trust");
    let err = match ward::server::build(config, outbound).await {
        Ok(_) => panic!("Ward started without the IdP's password grant"),
        Err(err) => ward::check::describe(&err),
    };
    assert!(err.contains("grant_types_supported"), "{err}");
    assert!(err.contains("login.password_grant"), "{err}");

    std::fs::write(dir.path().join("ward.toml"), &toml).unwrap();
    let run = cli_run::ward_async(&["check", "--config", "ward.toml"], dir.path()).await;
    assert!(!run.status.success(), "{run}");
    assert!(run.stderr.contains("grant_types_supported"), "{run}");
    let start = cli_run::ward_async(&["serve", "--config", "ward.toml"], dir.path()).await;
    assert!(!start.status.success(), "{start}");
    assert!(start.all().contains("grant_types_supported"), "{start}");
}

#[tokio::test]
async fn an_idp_failure_or_a_bad_id_token_is_502_and_makes_no_session() {
    let ward = Ward::start_with(with_grant("")).await;
    let browser = Browser::new().unwrap();
    ward.idp.fail_token_requests(500).await.unwrap();
    let down = log_in(&ward, &browser, PASSWORD_SECRET).await;
    assert_eq!(down.status, 502, "{}", down.text());
    assert_eq!(down.json().unwrap()["error"], "upstream_unavailable");
    ward.idp.fail_token_requests(0).await.unwrap();
    for mode in ["wrong-aud", "bad-signature", "expired"] {
        ward.idp.set_id_token_mode(mode).await.unwrap();
        let reply = log_in(&ward, &browser, PASSWORD_SECRET).await;
        assert_eq!(reply.status, 502, "{mode}: {}", reply.text());
        assert!(reply.set_cookie(&ward.cookie_name()).is_none(), "{mode}");
    }
    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 401);
    ward.idp.set_id_token_mode("none").await.unwrap();
    assert_eq!(log_in(&ward, &browser, PASSWORD_SECRET).await.status, 200);
}

#[tokio::test]
async fn without_an_id_token_userinfo_names_the_user() {
    // With id_token_hint on, the logout URL must still carry no empty hint.
    let ward = Ward::start_with(with_grant("[logout]\nid_token_hint = true\n")).await;
    let browser = Browser::new().unwrap();
    ward.idp.set_id_token_mode("omit").await.unwrap();
    let reply = log_in(&ward, &browser, PASSWORD_SECRET).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json().unwrap();
    assert_eq!(body["sub"], PASSWORD_USER);
    assert_eq!(body["claims"]["email"], "pat@example.test", "from userinfo");
    let csrf = body["csrfToken"].as_str().unwrap().to_owned();
    let logout = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status, 200, "{}", logout.text());
    let url = logout.json().unwrap()["logoutUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.contains("client_id=bff"), "{url}");
    assert!(!url.contains("id_token_hint"), "{url}");
}
