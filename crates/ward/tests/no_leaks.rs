//! INV-3 / LG-01 (SECURITY-CASES §1.12, SPEC §8): with Ward's real JSON log subscriber at
//! `debug`, a whole session — login, `/bff/user`, an API call, a CSRF refusal, logout — leaves
//! no secret in the log or in any body Ward wrote, while the log still records each step.
//!
//! The only test in this binary: it installs the process-wide subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use common::{Options, TEST_KEY, Ward};
use reqwest::Method;
use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;
use ward::config::{LogFormat, TelemetryConfig};
use ward_testkit::{Browser, Reply};

/// Everything the subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn bytes(&self) -> MutexGuard<'_, Vec<u8>> {
        // Writes append whole lines; a poisoned lock still holds a usable log.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A secret the test learned, by name (the name, never the value, goes into failure messages).
struct Secret {
    name: &'static str,
    value: String,
}

/// The strings whose presence means `secret` leaked: the whole value and, for long values,
/// its first and last 16 characters (a truncated or partly formatted copy is a leak too). For
/// a JWT, its claims and signature segments (the header is the same for every token).
fn needles(secret: &Secret) -> Vec<String> {
    let value = &secret.value;
    let mut out = vec![value.clone()];
    let segments: Vec<&str> = value.split('.').collect();
    if value.starts_with("eyJ") && segments.len() == 3 {
        out.extend(segments[1..].iter().map(|s| (*s).to_owned()));
    } else if value.len() >= 32 {
        let chars: Vec<char> = value.chars().collect();
        out.push(chars[..16].iter().collect());
        out.push(chars[chars.len() - 16..].iter().collect());
    }
    out
}

/// The names of the secrets found in `haystack`.
fn leaked<'s>(haystack: &str, secrets: &'s [Secret]) -> Vec<&'s str> {
    secrets
        .iter()
        .filter(|s| needles(s).iter().any(|n| haystack.contains(n.as_str())))
        .map(|s| s.name)
        .collect()
}

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

fn param(reply: &Reply, name: &str) -> String {
    reply
        .location_param(name)
        .unwrap_or_else(|| panic!("no {name} in the redirect"))
}

#[tokio::test]
async fn a_whole_session_logs_every_step_and_no_secret() {
    let capture = Capture::default();
    ward::telemetry::init(
        &TelemetryConfig {
            log_format: LogFormat::Json,
            log_level: "debug".into(),
        },
        capture.clone(),
    )
    .expect("install the log subscriber");

    let ward = Ward::start_with(Options {
        extra_toml: "[logout]\nid_token_hint = true\n".into(),
        ..Default::default()
    })
    .await;
    let mut seen = Seen::default();
    let browser = Browser::new().unwrap();

    let start = browser
        .get(ward.url("/bff/login?returnUrl=/app"))
        .await
        .unwrap();
    assert_eq!(start.status, 302);
    seen.note("login", &start, &[]);
    let login_state = param(&start, "state");
    let nonce = param(&start, "nonce");
    let binding = browser
        .cookie("localhost", "__Host-ward-tx")
        .expect("login binding cookie");

    let back = browser
        .login_at_idp(start.location().unwrap(), "alice")
        .await
        .unwrap();
    let code = param(&back, "code");
    assert_eq!(param(&back, "state"), login_state);
    let callback = browser.follow(&back).await.unwrap();
    assert_eq!(callback.status, 302, "{}", callback.text());
    seen.note("callback", &callback, &[]);
    let session_cookie = browser
        .cookie("localhost", "__Host-ward")
        .expect("session cookie");

    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    seen.note("user", &me, &["CSRF token"]);
    let csrf = me.json().unwrap()["csrfToken"]
        .as_str()
        .expect("csrfToken")
        .to_owned();

    let api = browser.get(ward.url("/api/orders?page=1")).await.unwrap();
    assert_eq!(api.status, 200);
    // The echo upstream describes the request it received, bearer included: its body is the
    // API's content passed through, not something Ward wrote.
    assert_eq!(seen.bodies.len(), ECHO);
    seen.note("api (upstream's echo)", &api, &["access token"]);
    let access_token = ward
        .upstream
        .last()
        .and_then(|r| r.header("authorization").map(str::to_owned))
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .expect("the upstream received a bearer token");

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

    let logout = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status, 200);
    // `[logout] id_token_hint = true`: the logout URL carries the ID token, by configuration.
    seen.note("logout", &logout, &["ID token"]);
    let logout_url =
        url::Url::parse(logout.json().unwrap()["logoutUrl"].as_str().unwrap()).unwrap();
    let id_token = logout_url
        .query_pairs()
        .find(|(k, _)| k == "id_token_hint")
        .map(|(_, v)| v.into_owned())
        .expect("id_token_hint");

    let after = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(after.status, 401);
    seen.note("user after logout", &after, &[]);

    let key_material = TEST_KEY.split_once(':').unwrap().1.to_owned();
    let secrets = [
        Secret {
            name: "session cookie",
            value: session_cookie,
        },
        Secret {
            name: "login binding cookie",
            value: binding,
        },
        Secret {
            name: "CSRF token",
            value: csrf,
        },
        Secret {
            name: "authorization code",
            value: code,
        },
        Secret {
            name: "state",
            value: login_state,
        },
        Secret {
            name: "nonce",
            value: nonce,
        },
        Secret {
            name: "access token",
            value: access_token,
        },
        Secret {
            name: "ID token",
            value: id_token,
        },
        Secret {
            name: "client secret",
            value: "bff-secret".to_owned(),
        },
        Secret {
            name: "encryption key",
            value: key_material,
        },
    ];
    for secret in &secrets {
        assert!(
            secret.value.len() >= 10,
            "{} too short to search",
            secret.name
        );
    }

    // The search itself works: the upstream's echo holds the bearer token.
    assert_eq!(
        leaked(&seen.bodies[ECHO].text, &secrets),
        ["access token"],
        "the echo body should show the bearer (and only it)"
    );

    for body in &seen.bodies {
        let found: Vec<_> = leaked(&body.text, &secrets)
            .into_iter()
            .filter(|name| !body.may_hold.contains(name))
            .collect();
        assert!(found.is_empty(), "{} body holds: {found:?}", body.what);
    }

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
        if path.starts_with("/api") || (path == "/bff/logout" && status != 401) {
            assert!(
                !line["session"].as_str().unwrap_or("").is_empty(),
                "{path} {status}: the access line names the session it acted on"
            );
        }
    }
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
