//! Ward as a FAPI 2.0 client in a real browser: headless Chromium (Debian's package, driven by
//! playwright-core) against Ward serving the fixture site e2e/site/, with the real IdP in its
//! FAPI 2.0 configuration behind it (oidc-provider's `fapi` profile `2.0`, PAR required, the
//! client registered for `private_key_jwt` with a key the test makes).
//!
//! - e2e/fapi-login.spec.mjs: the SPA's login goes through a pushed authorization request (the
//!   browser's navigation to the IdP carries only `client_id` and `request_uri`), the IdP's
//!   login and consent pages, the callback, `getUser()`, a proxied `POST` with `X-CSRF-Token`
//!   (the upstream gets the session's access token as its bearer, without the cookie or the CSRF
//!   header), and the logout, which revokes at the IdP and leaves `/bff/user` at 401. The
//!   browser never holds a token: none of the session's access, refresh or ID token is in any
//!   URL, header, body, cookie or web storage the browser saw (the script collects them; this
//!   test reads the session's tokens from Ward's store while the script waits, then searches).
//! - e2e/fapi-callbacks.spec.mjs: tampered authorization responses delivered to the callback by
//!   the browser: a changed or removed `iss` (RFC 9207), a changed `state`, the replay of a
//!   completed callback, and another browser's code injected under this browser's `state`
//!   (refused by the IdP's PKCE check); each fails without a session.
//!
//! Needs Node.js with npm (e2e/'s packages are installed here when missing) and Chromium at
//! /usr/bin/chromium (or `CHROMIUM_PATH`); a missing one fails the test, never skips it.

#[path = "support/chromium.rs"]
mod chromium;
mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chromium::{chromium_path, e2e_dir, follow_wall_clock, install_the_e2e_packages, run_script};
use common::{Options, Ward};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use ward_testkit::ClientKey;

/// The whole login script's run, its pause included.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Ward serving e2e/site/ at the IdP in its FAPI 2.0 configuration.
async fn fapi_ward_serving_the_fixture_site() -> Ward {
    chromium_path();
    install_the_e2e_packages().await;
    let site = e2e_dir().join("site");
    Ward::start_with(Options {
        extra_toml: format!(
            "[static]\ndir = {}\ntrusted_types = [\"fixture\"]\n",
            toml::Value::String(site.display().to_string())
        ),
        client_key: Some(Arc::new(ClientKey::generate().expect("client key"))),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_fapi_login_in_chromium_pushes_its_request_and_never_shows_the_browser_a_token() {
    let ward = fapi_ward_serving_the_fixture_site().await;
    let _clock = follow_wall_clock(Arc::clone(&ward.clock));
    let handoff = tempfile::tempdir().unwrap();

    let mut script = LoginScript::start(&ward, handoff.path());
    script.wait_for_the_pause(&ward).await;
    // Logged in: the session's tokens, read from Ward's store through the browser's cookie.
    let cookie = std::fs::read_to_string(handoff.path().join("cookie")).unwrap();
    let session = ward
        .state
        .sessions
        .load(Some(cookie.trim()))
        .await
        .expect("the store")
        .expect("the browser's session");
    let tokens = [
        (
            "access token",
            session.data.access_token.expose().to_owned(),
        ),
        (
            "refresh token",
            session
                .data
                .refresh_token
                .as_ref()
                .expect("a refresh token (ALWAYS_REFRESH)")
                .expose()
                .to_owned(),
        ),
        ("ID token", session.data.id_token.expose().to_owned()),
    ];
    drop(session);
    let stats = ward.idp.stats().await.unwrap();
    assert_eq!(
        (stats.par_requests, stats.token_requests, stats.revocations),
        (1, 1, 0),
        "one pushed request, one code exchange, nothing revoked yet"
    );
    let report = script.resume_and_finish(&ward).await;
    for line in [
        "the IdP's authorization request carried only client_id, request_uri",
        "callback answered 302 to /",
        "POST /api/status/204 with X-CSRF-Token answered 204; without it 403",
        "after logout: no session cookie, /bff/user 401",
    ] {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }

    // The proxied call: the session's access token as the bearer, no browser credentials.
    let requests = ward.upstream.requests();
    let summary: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(summary, ["POST /api/status/204"], "only the call with CSRF");
    let sent = &requests[0];
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {}", tokens[0].1).as_str()),
        "the upstream's bearer is the session's access token"
    );
    assert!(
        sent.header("x-csrf-token").is_none(),
        "the CSRF header went upstream"
    );
    assert!(
        !sent
            .header("cookie")
            .unwrap_or_default()
            .contains("__Host-ward"),
        "the session cookie went upstream"
    );

    // The logout revoked at the IdP; the IdP refused nothing along the way.
    let stats = ward.idp.stats().await.unwrap();
    assert_eq!(
        (stats.par_requests, stats.token_requests, stats.revocations),
        (1, 1, 1)
    );
    let logs = ward.idp.logs();
    for refusal in [
        "grant.error",
        "revocation.error",
        "pushed_authorization_request.error",
        "authorization.error",
    ] {
        assert!(!logs.contains(refusal), "the IdP logged {refusal}:\n{logs}");
    }

    // Everything the browser saw: no token, not even a JWT's signature on its own.
    let seen = std::fs::read_to_string(handoff.path().join("seen.json")).unwrap();
    let seen: serde_json::Value = serde_json::from_str(&seen).unwrap();
    for (place, texts) in seen.as_object().expect("seen.json is an object") {
        let texts = texts.as_array().expect("a list of texts");
        assert!(!texts.is_empty(), "the script saw nothing in {place}");
        for (name, token) in &tokens {
            let signature = token.rsplit('.').next().unwrap_or(token);
            for text in texts {
                let text = text.as_str().unwrap_or_default();
                assert!(
                    !text.contains(token.as_str()) && !text.contains(signature),
                    "the browser saw the {name} in {place}"
                );
            }
        }
    }
    // Controls: the search finds what the browser did see, the session cookie's value and
    // `/bff/user`'s JSON.
    let cookie_value = cookie.trim().split_once('=').expect("name=value").1;
    let holds = |place: &str, needle: &str| {
        seen[place]
            .as_array()
            .unwrap()
            .iter()
            .any(|text| text.as_str().unwrap_or_default().contains(needle))
    };
    assert!(
        holds("cookies", cookie_value),
        "the session cookie in the jar"
    );
    assert!(
        holds("headers", cookie_value),
        "the session cookie in a header"
    );
    assert!(holds("bodies", "\"csrfToken\""), "/bff/user's body");
    ward.stop().await;
}

#[tokio::test]
async fn tampered_fapi_authorization_responses_fail_in_chromium_without_a_session() {
    let ward = fapi_ward_serving_the_fixture_site().await;
    let _clock = follow_wall_clock(Arc::clone(&ward.clock));
    let idp = ward.idp.issuer().to_owned();
    let report = run_script(
        "fapi-callbacks.spec.mjs",
        &ward.origin,
        &[("E2E_IDP_URL", Path::new(&idp))],
        || ward.idp.logs(),
    )
    .await;
    for line in [
        "iss with a trailing slash: 302 to /?bff_error=login_failed, 0 token requests, no session; \
         the genuine response then: 400",
        "iss removed: 302 to /?bff_error=login_failed, 0 token requests, no session; \
         the genuine response then: 400",
        "state changed: 400 login_failed, 0 token requests, no session; \
         the genuine response then: 302 to /",
        "replayed callback: 400 login_failed, 0 token requests, the session kept",
        "replayed callback in another browser: 400 login_failed, 0 token requests, no session",
        "another browser's code under this state: 302 to /?bff_error=login_failed, \
         1 token request, no session",
    ] {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }
    // Five logins started, each pushed; two codes exchanged: the genuine one after the changed
    // state, and the injected one, which the IdP refused for its PKCE verifier.
    let stats = ward.idp.stats().await.unwrap();
    assert_eq!((stats.par_requests, stats.token_requests), (5, 2));
    let logs = ward.idp.logs();
    let refusals: Vec<&str> = logs.lines().filter(|l| l.contains("grant.error")).collect();
    assert_eq!(refusals.len(), 1, "one refused exchange:\n{logs}");
    assert!(
        refusals[0].contains("code_verifier does not match code_challenge"),
        "the injected code failed the PKCE check: {}",
        refusals[0]
    );
    ward.stop().await;
}

/// e2e/fapi-login.spec.mjs, run with a pause: it writes the browser's session cookie to
/// `handoff/cookie`, prints `PAUSE`, and waits for a line on its stdin; at the end it writes
/// what the browser saw to `handoff/seen.json`.
struct LoginScript {
    child: tokio::process::Child,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
    report: String,
}

impl LoginScript {
    fn start(ward: &Ward, handoff: &Path) -> Self {
        let mut child = Command::new("node")
            .arg("fapi-login.spec.mjs")
            .current_dir(e2e_dir())
            .env("WARD_URL", &ward.origin)
            .env("CHROMIUM_PATH", chromium_path())
            .env("E2E_IDP_URL", ward.idp.issuer())
            .env("E2E_HANDOFF_DIR", handoff)
            .env("E2E_COOKIE", ward.cookie_name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run `node` ({err}): the browser tests need Node.js on PATH")
            });
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Self {
            child,
            stdout,
            stderr,
            report: String::new(),
        }
    }

    /// Reads the script's output up to its `PAUSE` line; a script that ends first fails.
    async fn wait_for_the_pause(&mut self, ward: &Ward) {
        let paused = tokio::time::timeout(SCRIPT_TIMEOUT, async {
            while let Some(line) = self.stdout.next_line().await.expect("the script's stdout") {
                self.report.push_str(&line);
                self.report.push('\n');
                if line.starts_with("PAUSE") {
                    return true;
                }
            }
            false
        })
        .await;
        if paused != Ok(true) {
            let _ = self.child.start_kill();
            let stderr = (&mut self.stderr).await.unwrap_or_default();
            panic!(
                "e2e/fapi-login.spec.mjs did not reach its pause ({paused:?}):\n{}\n--- stderr\n\
                 {stderr}\nthe IdP's log:\n{}",
                self.report,
                ward.idp.logs()
            );
        }
    }

    /// Lets the script go on, and returns its whole report once it has exited successfully.
    async fn resume_and_finish(mut self, ward: &Ward) -> String {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin
            .write_all(b"go on\n")
            .await
            .expect("the script's stdin");
        drop(stdin);
        let finished = tokio::time::timeout(SCRIPT_TIMEOUT, async {
            while let Some(line) = self.stdout.next_line().await.expect("the script's stdout") {
                self.report.push_str(&line);
                self.report.push('\n');
            }
            self.child.wait().await.expect("the script's exit")
        })
        .await;
        let stderr = match &finished {
            Ok(_) => (&mut self.stderr).await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let report = format!(
            "--- e2e/fapi-login.spec.mjs stdout\n{}--- stderr\n{stderr}",
            self.report
        );
        println!("{report}");
        let status = finished.unwrap_or_else(|_| {
            panic!(
                "e2e/fapi-login.spec.mjs did not finish within {SCRIPT_TIMEOUT:?}:\n{report}\n\
                 the IdP's log:\n{}",
                ward.idp.logs()
            )
        });
        assert!(
            status.success() && report.contains("E2E OK"),
            "e2e/fapi-login.spec.mjs failed ({status}):\n{report}\nthe IdP's log:\n{}",
            ward.idp.logs()
        );
        report
    }
}
