//! `POST /bff/login/password` with Ward's real JSON log subscriber at `debug`: a wrong and a
//! right password leave neither password (nor the username's password-shaped neighbours) in
//! the log or in any body Ward sent, while the log records the start-up warning, the refusal
//! and the login with `method = "password"`.
//!
//! The only test in this binary: it installs the process-wide subscriber.

mod common;
#[path = "support/log_capture.rs"]
mod log_capture;

use common::{Options, Ward};
use log_capture::Capture;
use serde_json::{Value, json};
use ward_testkit::{Browser, IdpOptions, PASSWORD_SECRET, PASSWORD_USER};

/// A wrong password as distinctive as the right one, so a leak of either is found.
const WRONG_PASSWORD: &str = "wrong-password-never-logged";

#[tokio::test]
async fn no_password_reaches_the_log_or_a_body() {
    let capture = Capture::install();
    let ward = Ward::start_with(Options {
        extra_toml: "[login]\npassword_grant = true\n".into(),
        idp: |idp: &mut IdpOptions| *idp = idp.clone().with_password_grant(),
        ..Default::default()
    })
    .await;
    let browser = Browser::new().unwrap();
    let mut bodies = Vec::new();
    for (password, status) in [(WRONG_PASSWORD, 401), (PASSWORD_SECRET, 200)] {
        let reply = browser
            .post(ward.url("/bff/login/password"))
            .header("x-csrf-token", "1")
            .json(&json!({ "username": PASSWORD_USER, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, status, "{}", reply.text());
        bodies.push(reply.text());
    }
    drop(ward);

    assert_no_password_and_each_event(&capture.text(), &bodies);
}

/// Neither password in `log` or `bodies`; the warning, the refusal and the login logged.
fn assert_no_password_and_each_event(log: &str, bodies: &[String]) {
    for secret in [WRONG_PASSWORD, PASSWORD_SECRET] {
        assert!(!log.contains(secret), "the log holds a password");
        // JSON escaping or form encoding must not hide one either.
        let encoded = secret.replace(' ', "+");
        assert!(
            !log.contains(&encoded),
            "the log holds a form-encoded password"
        );
        for body in bodies {
            assert!(!body.contains(secret), "a body holds a password: {body}");
        }
    }
    let events: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let has = |event: &str, reason: Option<&str>| {
        events.iter().any(|line| {
            let fields = line;
            fields["event"] == event
                && reason.is_none_or(|reason| fields["reason"] == reason)
                && (event == "password_grant_enabled" || fields["method"] == "password")
        })
    };
    assert!(
        has("password_grant_enabled", None),
        "no start-up warning:\n{log}"
    );
    assert!(has("login_rejected", Some("invalid_credentials")), "{log}");
    assert!(has("login_succeeded", None), "{log}");
}
