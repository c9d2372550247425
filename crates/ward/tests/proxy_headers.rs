//! Header hygiene of the API proxy with a real IdP session (SPEC §5; SECURITY-CASES P-01…P-07,
//! P-10, P-11): Ward's cookies, the CSRF token, hop-by-hop and forwarding headers never reach
//! the upstream as the browser sent them, trace context is checked, and an upstream can neither
//! set Ward's cookie nor grant CORS. Tokens, paths and bodies: `proxy.rs`.

mod common;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::AppendHeaders;
use axum::routing::get;
use common::csrf::csrf_token;
use common::upstream::{all_values, only_request};
use common::{Options, Ward};
use reqwest::Method;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use ward_testkit::Browser;

const TRACE_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// W3C Trace Context version 00, lower-case hex, ids not all zero.
fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

/// An upstream that misbehaves in its response headers: CORS permission for everyone,
/// hop-by-hop fields, and a redirect off-site.
async fn rude_upstream() -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/rude/headers",
            get(|| async {
                (
                    AppendHeaders([
                        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                        (header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"),
                        (header::ACCESS_CONTROL_EXPOSE_HEADERS, "x-internal"),
                        (header::CONNECTION, "x-internal"),
                        (header::HeaderName::from_static("x-internal"), "secret"),
                        (header::HeaderName::from_static("keep-alive"), "timeout=5"),
                        (header::PROXY_AUTHENTICATE, "Basic realm=\"internal\""),
                        (header::HeaderName::from_static("x-kept"), "1"),
                    ]),
                    "rude body",
                )
            }),
        )
        .route(
            "/rude/redirect",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "http://evil.example/steal")],
                )
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[tokio::test]
async fn wards_cookies_never_reach_the_upstream_but_the_apps_do() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    // A login in progress adds the login-binding cookie next to the session cookie.
    let pending = browser.get(ward.url("/bff/login")).await.unwrap();
    assert_eq!(pending.status, 302);
    browser.set_cookie("localhost", "app", "1");
    let sent = browser.cookie_header_for(&ward.url("/api/x")).unwrap();
    for name in ["__Host-ward=", "__Host-ward-tx=", "app=1"] {
        assert!(sent.contains(name), "the browser sends {name}");
    }

    for path in ["/api/x", "/public/x"] {
        let reply = browser.get(ward.url(path)).await.unwrap();
        assert_eq!(reply.status, 200, "{path}");
        let seen = only_request(&ward.upstream);
        assert_eq!(all_values(&seen, "cookie"), ["app=1"], "{path}");
    }

    // Chunk-like names and odd spacing are Ward's too; other cookies survive.
    let session = browser.cookie("localhost", "__Host-ward").unwrap();
    let reply = browser
        .request(Method::GET, ward.url("/api/x"))
        .header(
            "cookie",
            &format!("__Host-ward={session};__Host-ward.1=x; other=2 ;  __Host-ward-tx=y"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        all_values(&only_request(&ward.upstream), "cookie"),
        ["other=2"]
    );

    // Only Ward's cookies: no Cookie header at all.
    browser.remove_cookie("localhost", "app");
    browser.remove_cookie("localhost", "__Host-ward-tx");
    browser.get(ward.url("/api/x")).await.unwrap();
    assert!(only_request(&ward.upstream).header("cookie").is_none());
}

#[tokio::test]
async fn the_csrf_token_is_not_forwarded() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let reply = browser
        .post(ward.url("/api/x"))
        .header("x-csrf-token", &csrf_token(&me))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let seen = only_request(&ward.upstream);
    assert!(seen.header("x-csrf-token").is_none());
    assert!(
        !reply.text().contains(&csrf_token(&me)),
        "the echoed headers must not hold the token"
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let hop_headers = [
        ("connection", "keep-alive, X-Secret-Hop"),
        ("x-secret-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("proxy-authorization", "Basic YWRtaW46YWRtaW4="),
        ("proxy-connection", "keep-alive"),
        ("x-end-to-end", "kept"),
    ];

    // Control: sent straight to the echo, these headers do arrive, so their absence behind
    // Ward is Ward's doing.
    let mut direct = reqwest::Client::new().get(format!("{}/direct", ward.upstream.url()));
    for (name, value) in hop_headers {
        direct = direct.header(name, value);
    }
    direct.send().await.unwrap();
    let control = only_request(&ward.upstream);
    for name in ["x-secret-hop", "te", "proxy-authorization", "keep-alive"] {
        assert!(control.header(name).is_some(), "control: {name} arrives");
    }

    for m in [Method::GET, Method::POST] {
        let mut request = browser
            .request(m.clone(), ward.url("/api/x"))
            .header("x-csrf-token", &csrf_token(&me));
        for (name, value) in hop_headers {
            request = request.header(name, value);
        }
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status, 200, "{m}");
        let seen = only_request(&ward.upstream);
        for name in [
            "x-secret-hop",
            "keep-alive",
            "te",
            "proxy-authorization",
            "proxy-connection",
        ] {
            assert!(seen.header(name).is_none(), "{m}: {name} forwarded");
        }
        if let Some(connection) = seen.header("connection") {
            assert!(
                !connection.to_ascii_lowercase().contains("x-secret-hop"),
                "{m}: Ward's own Connection header only"
            );
        }
        assert_eq!(seen.header("x-end-to-end"), Some("kept"), "{m}");
        assert!(seen.header("authorization").is_some(), "{m}");
    }
}

#[tokio::test]
async fn forwarding_headers_come_from_ward_not_the_browser() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    let reply = browser
        .request(Method::GET, ward.url("/api/x"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-user", "admin")
        .header("x_forwarded_for", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6;host=evil;proto=https")
        .header("x-real-ip", "6.6.6.6")
        .header("x-original-url", "/admin")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let seen = only_request(&ward.upstream);
    assert_eq!(all_values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(all_values(&seen, "x-forwarded-proto"), ["http"]);
    let public_host = ward.origin.trim_start_matches("http://");
    assert_eq!(all_values(&seen, "x-forwarded-host"), [public_host]);
    let upstream_host = ward.upstream.url();
    assert_eq!(
        all_values(&seen, "host"),
        [upstream_host.trim_start_matches("http://")]
    );
    for name in [
        "x-forwarded-user",
        "x_forwarded_for",
        "forwarded",
        "x-real-ip",
        "x-original-url",
    ] {
        assert!(seen.header(name).is_none(), "{name} forwarded");
    }
}

#[tokio::test]
async fn a_valid_traceparent_is_kept_and_an_invalid_one_replaced() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;

    let reply = browser
        .request(Method::GET, ward.url("/api/x"))
        .header("traceparent", TRACE_PARENT)
        .header("tracestate", "vendor=1")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let seen = only_request(&ward.upstream);
    assert_eq!(all_values(&seen, "traceparent"), [TRACE_PARENT]);
    assert_eq!(seen.header("tracestate"), Some("vendor=1"));

    let mut generated = Vec::new();
    for bad in [
        Some("garbage"),
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
        None,
    ] {
        let mut request = browser.request(Method::GET, ward.url("/api/x"));
        if let Some(bad) = bad {
            request = request
                .header("traceparent", bad)
                .header("tracestate", "vendor=1");
        }
        assert_eq!(request.send().await.unwrap().status, 200);
        let seen = only_request(&ward.upstream);
        let sent = all_values(&seen, "traceparent");
        assert_eq!(sent.len(), 1, "{bad:?}");
        assert!(is_valid_traceparent(sent[0]), "{bad:?} -> {}", sent[0]);
        assert_ne!(Some(sent[0]), bad);
        assert!(seen.header("tracestate").is_none(), "{bad:?}");
        generated.push(sent[0].to_owned());
    }
    generated.sort();
    generated.dedup();
    assert_eq!(generated.len(), 4, "each new trace is fresh");
}

#[tokio::test]
async fn an_upstream_cannot_set_wards_cookie() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let session = browser.cookie("localhost", "__Host-ward").unwrap();
    let reply = browser.get(ward.url("/api/set-cookie")).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.set_cookies(), ["app=1"]);
    assert_eq!(browser.cookie("localhost", "__Host-ward"), Some(session));
    assert_eq!(browser.cookie("localhost", "app").as_deref(), Some("1"));

    let still = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(still.status, 200);
    assert_eq!(still.json().unwrap()["sub"], "alice");
    let post = browser
        .post(ward.url("/api/x"))
        .header("x-csrf-token", &csrf_token(&me))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status, 200);
}

#[tokio::test]
async fn upstream_cors_and_hop_by_hop_response_headers_are_stripped() {
    let (rude, _server) = rude_upstream().await;
    let ward = Ward::start_with(Options {
        extra_toml: format!(
            "[[routes]]\nprefix = \"/rude\"\nupstream = \"{rude}\"\ntoken = \"none\"\n"
        ),
        ..Default::default()
    })
    .await;

    // Control: the upstream really sends them.
    let direct = reqwest::Client::new()
        .get(format!("{rude}/rude/headers"))
        .send()
        .await
        .unwrap();
    for name in [
        "access-control-allow-origin",
        "x-internal",
        "keep-alive",
        "proxy-authenticate",
    ] {
        assert!(direct.headers().contains_key(name), "control: {name}");
    }

    let browser = Browser::new().unwrap();
    let reply = browser
        .request(Method::GET, ward.url("/rude/headers"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "rude body");
    for name in reply.headers.keys() {
        assert!(
            !name.as_str().starts_with("access-control-"),
            "{name} reached the browser"
        );
    }
    for name in ["x-internal", "keep-alive", "proxy-authenticate"] {
        assert!(reply.header(name).is_none(), "{name} reached the browser");
    }
    assert_eq!(reply.header("x-kept"), Some("1"));

    // Redirects are handed to the browser, never followed by Ward.
    let redirect = browser.get(ward.url("/rude/redirect")).await.unwrap();
    assert_eq!(redirect.status, 302);
    assert_eq!(redirect.location(), Some("http://evil.example/steal"));
}
