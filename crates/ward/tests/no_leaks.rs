//! INV-3 / LG-01 (SECURITY-CASES §1.12, SPEC §8): with Ward's real JSON log subscriber at
//! `debug`, a whole session — login, `/bff/user`, an API call, a CSRF refusal, logout — leaves
//! no secret in the log or in any body Ward wrote, while the log still records each step.
//!
//! The only test in this binary: it installs the process-wide subscriber.

mod common;
#[path = "support/log_capture.rs"]
mod log_capture;
#[path = "support/secrets.rs"]
mod secrets;

use common::{Options, TEST_KEY, Ward};
use log_capture::Capture;
use reqwest::Method;
use secrets::{Secret, WalkedLogin, id_token_hint, last_bearer, leaked, param};
use serde_json::Value;
use ward_testkit::{Browser, Reply};

/// A body Ward sent, with the secrets it may legitimately carry.
struct Body {
    what: &'static str,
    text: String,
    may_hold: &'static [&'static str],
}

/// Every reply Ward gave, and the (path, status) the access log must show for each.
#[derive(Default)]
struct Seen {
    bodies: Vec<Body>,
    requests: Vec<(String, u16)>,
}

impl Seen {
    fn note(&mut self, what: &'static str, reply: &Reply, may_hold: &'static [&'static str]) {
        self.bodies.push(Body {
            what,
            text: reply.text(),
            may_hold,
        });
        self.requests
            .push((reply.url.path().to_owned(), reply.status.as_u16()));
    }
}

/// Index of the upstream's echo among the bodies.
const ECHO: usize = 3;

#[tokio::test]
async fn a_whole_session_logs_every_step_and_no_secret() {
    let capture = Capture::install();
    let ward = Ward::start_with(Options {
        extra_toml: "[logout]\nid_token_hint = true\n".into(),
        ..Default::default()
    })
    .await;
    let mut seen = Seen::default();
    let browser = Browser::new().unwrap();

    let login = WalkedLogin::walk(&browser, &ward.origin, "alice", String::new).await;
    seen.note("login", &login.start, &[]);
    assert_eq!(param(&login.back, "state"), login.state);
    seen.note("callback", &login.callback, &[]);
    let csrf = read_the_user(&ward, &browser, &mut seen).await;
    let access_token = call_the_api(&ward, &browser, &mut seen).await;
    be_refused_without_the_token(&ward, &browser, &mut seen).await;
    let id_token = log_out(&ward, &browser, &csrf, &mut seen).await;

    let secrets = login
        .with(csrf, access_token, id_token)
        .named_with_configured(TEST_KEY);
    for secret in &secrets {
        assert!(
            secret.value.len() >= 10,
            "{} too short to search",
            secret.name
        );
    }
    assert_each_body_holds_only_what_it_may(&seen, &secrets);

    drop(ward);
    let log = capture.text();
    let found = leaked(&log, &secrets);
    assert!(found.is_empty(), "the log holds: {found:?}");
    assert!(!log.contains("eyJ"), "the log holds something JWT-shaped");
    assert!(
        !log.to_ascii_lowercase().contains("bearer "),
        "the log holds an Authorization value"
    );
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert_each_step_has_its_event(&lines);
    assert_one_access_line_per_request(&lines, &seen);
}

/// `GET /bff/user`; the session's CSRF token.
async fn read_the_user(ward: &Ward, browser: &Browser, seen: &mut Seen) -> String {
    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    seen.note("user", &me, &["CSRF token"]);
    me.json().unwrap()["csrfToken"]
        .as_str()
        .expect("csrfToken")
        .to_owned()
}

/// `GET /api/orders?page=1`; the access token the upstream received.
async fn call_the_api(ward: &Ward, browser: &Browser, seen: &mut Seen) -> String {
    let api = browser.get(ward.url("/api/orders?page=1")).await.unwrap();
    assert_eq!(api.status, 200);
    // The echo upstream describes the request it received, bearer included: its body is the
    // API's content passed through, not something Ward wrote.
    assert_eq!(seen.bodies.len(), ECHO);
    seen.note("api (upstream's echo)", &api, &["access token"]);
    last_bearer(&ward.upstream)
}

/// An API POST and a logout, each without the right CSRF token: both refused, nothing
/// forwarded.
async fn be_refused_without_the_token(ward: &Ward, browser: &Browser, seen: &mut Seen) {
    let refused = browser
        .request(Method::POST, ward.url("/api/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status, 403);
    seen.note("api without CSRF token", &refused, &[]);
    let refused_logout = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refused_logout.status, 403);
    seen.note("logout with a wrong CSRF token", &refused_logout, &[]);
    assert_eq!(
        ward.upstream.requests().len(),
        1,
        "the POST was not forwarded"
    );
}

/// Logs out with `csrf`, then finds the session gone; the ID token of the logout URL.
async fn log_out(ward: &Ward, browser: &Browser, csrf: &str, seen: &mut Seen) -> String {
    let logout = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status, 200);
    // `[logout] id_token_hint = true`: the logout URL carries the ID token, by configuration.
    seen.note("logout", &logout, &["ID token"]);
    let id_token = id_token_hint(&logout);

    let after = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(after.status, 401);
    seen.note("user after logout", &after, &[]);
    id_token
}

/// No body Ward wrote holds a secret it may not; the search itself works: the upstream's
/// echo holds the bearer token.
fn assert_each_body_holds_only_what_it_may(seen: &Seen, secrets: &[Secret]) {
    assert_eq!(
        leaked(&seen.bodies[ECHO].text, secrets),
        ["access token"],
        "the echo body should show the bearer (and only it)"
    );
    for body in &seen.bodies {
        let found: Vec<_> = leaked(&body.text, secrets)
            .into_iter()
            .filter(|name| !body.may_hold.contains(name))
            .collect();
        assert!(found.is_empty(), "{} body holds: {found:?}", body.what);
    }
}

/// Each security step left its event; login names the session by a short hash prefix.
fn assert_each_step_has_its_event(lines: &[Value]) {
    for event in [
        "login_started",
        "login_succeeded",
        "csrf_rejected",
        "session_ended",
    ] {
        assert!(
            lines.iter().any(|l| l["event"] == event),
            "no {event} event in the log"
        );
    }
    let csrf_events = lines
        .iter()
        .filter(|l| l["event"] == "csrf_rejected")
        .count();
    assert_eq!(csrf_events, 2, "one csrf_rejected per refusal");
    let sessions: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "login_succeeded")
        .filter_map(|l| l["session"].as_str())
        .collect();
    assert!(
        matches!(sessions.as_slice(), [id] if id.len() == 8),
        "login_succeeded names the session by a short hash prefix"
    );
}

/// One access line per request, in order, each with its trace id and, where a session was
/// acted on, the session.
fn assert_one_access_line_per_request(lines: &[Value], seen: &Seen) {
    let access: Vec<(String, u16)> = lines
        .iter()
        .filter(|l| l["target"] == "ward::access")
        .map(|l| {
            let status = l["status"].as_u64().expect("access line has a status");
            (
                l["path"]
                    .as_str()
                    .expect("access line has a path")
                    .to_owned(),
                u16::try_from(status).expect("status fits u16"),
            )
        })
        .collect();
    assert_eq!(
        access, seen.requests,
        "one access line per request, in order"
    );
    for line in lines.iter().filter(|l| l["target"] == "ward::access") {
        let trace_id = line["trace_id"].as_str().unwrap_or("");
        assert!(
            trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "every access line names its W3C trace id"
        );
        let path = line["path"].as_str().unwrap_or("");
        let status = line["status"].as_u64().unwrap_or(0);
        // The route is the bounded label of the metrics: the route prefix, never the raw path.
        let expected_route = if path == "/api" || path.starts_with("/api/") {
            "/api"
        } else {
            path
        };
        assert_eq!(
            line["route"].as_str(),
            Some(expected_route),
            "{path} {status}: the access line names its route"
        );
        // Latency as a rounded number: milliseconds with at most three decimals.
        let latency = line["latency_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("{path} {status}: latency_ms is a number"));
        assert!(
            latency >= 0.0 && ((latency * 1000.0).round() - latency * 1000.0).abs() < 1e-6,
            "{path} {status}: latency_ms {latency} is whole microseconds"
        );
        if path.starts_with("/api") || (path == "/bff/logout" && status != 401) {
            assert!(
                !line["session"].as_str().unwrap_or("").is_empty(),
                "{path} {status}: the access line names the session it acted on"
            );
        }
    }
}
