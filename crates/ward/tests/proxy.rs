//! The API proxy through Ward with a real IdP session (SPEC §5; SECURITY-CASES P-01…P-07,
//! P-10, P-11): what the upstream receives, what the browser gets back, and what is refused
//! before any byte goes upstream.

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::AppendHeaders;
use axum::routing::get;
use common::{Options, Ward};
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use ward_testkit::{Browser, EchoUpstream, RecordedRequest, Reply};

const TRACE_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn csrf_token(me: &Value) -> String {
    me["csrfToken"]
        .as_str()
        .expect("/bff/user carries csrfToken")
        .to_owned()
}

/// An error Ward generated itself: status, SPEC JSON shape, `no-store`, no cookie.
#[track_caller]
fn assert_ward_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{code}: {}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json().expect("JSON error body");
    assert_eq!(body["error"], code);
    assert!(body["message"].is_string());
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{code}");
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert!(reply.set_cookies().is_empty(), "{code}: sets no cookie");
}

#[track_caller]
fn assert_upstream_saw_nothing(upstream: &EchoUpstream, what: &str) {
    let seen = upstream.requests();
    assert!(seen.is_empty(), "{what}: the upstream received {seen:?}");
}

/// The single request the upstream received since it was last cleared.
#[track_caller]
fn only_request(upstream: &EchoUpstream) -> RecordedRequest {
    let mut seen = upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    upstream.clear();
    seen.remove(0)
}

fn all_values<'a>(seen: &'a RecordedRequest, name: &str) -> Vec<&'a str> {
    seen.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("visible ASCII"))
        .collect()
}

fn bearer_of(seen: &RecordedRequest) -> String {
    let values = all_values(seen, "authorization");
    assert_eq!(values.len(), 1, "exactly one Authorization");
    values[0]
        .strip_prefix("Bearer ")
        .expect("a Bearer credential")
        .to_owned()
}

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

/// Sends `GET <target>` byte for byte over a fresh connection (no URL parser that would
/// resolve dot segments on the way) and returns the status code and the body.
async fn raw_get(ward: &Ward, target: &str, cookie: Option<&str>) -> (u16, String) {
    let authority = ward.origin.trim_start_matches("http://");
    raw_get_as(ward, target, authority, cookie).await
}

/// [`raw_get`] with the `Host` header of the browser's choice.
async fn raw_get_as(ward: &Ward, target: &str, host: &str, cookie: Option<&str>) -> (u16, String) {
    let authority = ward.origin.trim_start_matches("http://");
    let port = authority
        .rsplit_once(':')
        .map(|(_, p)| p)
        .expect("origin has a port");
    let mut stream = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
        .await
        .expect("connect to Ward");
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("Ward answers and closes")
        .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A loopback port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
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
async fn api_requests_carry_the_sessions_real_access_token() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    let reply = browser.get(ward.url("/api/x")).await.unwrap();
    assert_eq!(reply.status, 200);
    let token = bearer_of(&only_request(&ward.upstream));
    assert!(token.len() >= 20, "an access token, not a placeholder");

    let userinfo = reqwest::Client::new()
        .get(ward.idp.url("/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        userinfo.status(),
        200,
        "the IdP accepts the forwarded token"
    );
    let claims: Value = userinfo.json().await.unwrap();
    assert_eq!(claims["sub"], "alice");

    let (bob, _) = ward.logged_in("bob").await;
    bob.get(ward.url("/api/x")).await.unwrap();
    assert_ne!(bearer_of(&only_request(&ward.upstream)), token);
}

#[tokio::test]
async fn a_browser_authorization_header_is_replaced_by_the_sessions_token() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    browser.get(ward.url("/api/x")).await.unwrap();
    let genuine = bearer_of(&only_request(&ward.upstream));

    let reply = browser
        .request(Method::GET, ward.url("/api/x"))
        .header("authorization", "Bearer forged")
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let seen = only_request(&ward.upstream);
    assert_eq!(bearer_of(&seen), genuine);
}

#[tokio::test]
async fn api_without_a_session_is_unauthenticated_and_never_forwarded() {
    let ward = Ward::start().await;
    let anonymous = Browser::new().unwrap();
    for m in [Method::GET, Method::POST, Method::DELETE] {
        let reply = anonymous
            .request(m.clone(), ward.url("/api/x"))
            .header("authorization", "Bearer forged")
            .send()
            .await
            .unwrap();
        assert_ward_error(&reply, 401, "unauthenticated");
    }
    let bare = anonymous.get(ward.url("/api")).await.unwrap();
    assert_ward_error(&bare, 401, "unauthenticated");
    assert_upstream_saw_nothing(&ward.upstream, "no session");
}

#[tokio::test]
async fn a_tokenless_route_strips_its_prefix_and_never_sends_a_token() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    for (path, expected) in [
        ("/public/x", "/x"),
        ("/public/a/b?q=1", "/a/b?q=1"),
        ("/public", "/"),
        ("/public/", "/"),
    ] {
        let reply = browser
            .request(Method::GET, ward.url(path))
            .header("authorization", "Bearer forged")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{path}");
        let seen = only_request(&ward.upstream);
        assert_eq!(seen.path_and_query, expected, "{path}");
        assert!(seen.header("authorization").is_none(), "{path}");
        assert!(seen.header("cookie").is_none(), "{path}");
    }
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
async fn the_query_string_and_encoded_path_bytes_are_forwarded_verbatim() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    for target in [
        "/api/x?a=1&b=%2F&c",
        "/api/x?a=%20+b&&c=%zz",
        "/api/x?",
        "/api/group%2Fproject/files",
        "/api/%252e%252e/x",
        "/api/x;v=1",
        "/api//double",
    ] {
        let reply = browser.get(ward.url(target)).await.unwrap();
        assert_eq!(reply.status, 200, "{target}");
        assert_eq!(
            only_request(&ward.upstream).path_and_query,
            target,
            "{target}"
        );
    }
}

#[tokio::test]
async fn a_large_body_arrives_intact() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let body: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();

    let reply = browser
        .request(Method::POST, ward.url("/api/upload"))
        .header("x-csrf-token", &csrf_token(&me))
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json().unwrap()["body_len"], body.len());
    let seen = only_request(&ward.upstream);
    assert_eq!(seen.body.len(), body.len());
    assert!(seen.body[..] == body[..], "the bytes differ");
    assert_eq!(
        seen.header("content-type"),
        Some("application/octet-stream")
    );

    // The same bytes sent chunked, without a Content-Length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(10_000).map(|c| Ok(c.to_vec())).collect();
    let reply = browser
        .request(Method::PUT, ward.url("/api/upload"))
        .header("x-csrf-token", &csrf_token(&me))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let seen = only_request(&ward.upstream);
    assert!(seen.body[..] == body[..], "the chunked bytes differ");
}

#[tokio::test]
async fn upstream_status_and_body_pass_through() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let teapot = browser.get(ward.url("/api/status/418")).await.unwrap();
    assert_eq!(teapot.status, 418);
    let body = teapot.json().unwrap();
    assert_eq!(body["path"], "/api/status/418");
    assert_eq!(body["method"], "GET");

    for code in [401u16, 403, 404, 500, 502, 503] {
        let reply = browser
            .request(Method::DELETE, ward.url(&format!("/api/status/{code}")))
            .header("x-csrf-token", &csrf_token(&me))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, code);
        assert_eq!(
            reply.json().unwrap()["path"],
            format!("/api/status/{code}"),
            "the upstream's body, not Ward's error"
        );
    }
    let empty = browser.get(ward.url("/api/status/204")).await.unwrap();
    assert_eq!(empty.status, 204);
    assert!(empty.body.is_empty());
    // Upstream 401 must not end the Ward session.
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        200
    );
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

#[tokio::test]
async fn routes_match_whole_segments() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    for path in ["/apix", "/apix/y", "/API/x", "/ap", "/publicx/y"] {
        let reply = browser.get(ward.url(path)).await.unwrap();
        assert_ward_error(&reply, 404, "not_found");
    }
    assert_upstream_saw_nothing(&ward.upstream, "no route");
    let exact = browser.get(ward.url("/api")).await.unwrap();
    assert_eq!(exact.status, 200);
    assert_eq!(only_request(&ward.upstream).path_and_query, "/api");
}

#[tokio::test]
async fn dot_segments_are_refused_before_the_upstream() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    let cookie = browser.cookie_header_for(&ward.url("/api/x")).unwrap();

    // Control: the raw client itself gets through.
    let (status, _) = raw_get(&ward, "/api/x", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(only_request(&ward.upstream).path_and_query, "/api/x");

    for target in [
        "/api/../bff/user",
        "/api/%2e%2e/x",
        "/api/./x",
        "/api/a/%2E%2E/b",
        "/api/.%2e/x",
        "/api/..%2fbff/user",
        "/api/%2e%2e%2f%2e%2e%2fadmin",
        "/api/..;/bff/user",
        "/api/x/..",
        "/api/%c0%ae%c0%ae/x",
        "/api/x%00.json",
        "/public/../api/x",
        "/public/%2e%2e/bff/user",
    ] {
        let (status, body) = raw_get(&ward, target, Some(&cookie)).await;
        assert_eq!(status, 400, "{target}: {body}");
        let body: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{target}: {body}"));
        assert_eq!(body["error"], "bad_request", "{target}");
    }
    assert_upstream_saw_nothing(&ward.upstream, "dot segments");
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_other_routes_keep_working() {
    let port = closed_port().await;
    let ward = Ward::start_with(Options {
        extra_toml: format!(
            "[[routes]]\nprefix = \"/down\"\nupstream = \"http://127.0.0.1:{port}\"\ntoken = \"none\"\n\n\
             [[routes]]\nprefix = \"/down-user\"\nupstream = \"http://127.0.0.1:{port}\"\ntoken = \"user\"\n"
        ),
        ..Default::default()
    })
    .await;
    let anonymous = Browser::new().unwrap();
    for m in [Method::GET, Method::POST] {
        let reply = anonymous
            .request(m, ward.url("/down/x"))
            .send()
            .await
            .unwrap();
        assert_ward_error(&reply, 502, "upstream_unavailable");
    }
    let (browser, me) = ward.logged_in("alice").await;
    let reply = browser
        .post(ward.url("/down-user/x"))
        .header("x-csrf-token", &csrf_token(&me))
        .send()
        .await
        .unwrap();
    assert_ward_error(&reply, 502, "upstream_unavailable");
    assert_eq!(browser.get(ward.url("/api/x")).await.unwrap().status, 200);
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn a_slow_upstream_is_504_after_the_route_timeout() {
    let slow = EchoUpstream::start().await.unwrap();
    let ward = Ward::start_with(Options {
        extra_toml: format!(
            "[[routes]]\nprefix = \"/slowapi\"\nupstream = \"{}\"\ntoken = \"none\"\ntimeout = \"200ms\"\n",
            slow.url()
        ),
        ..Default::default()
    })
    .await;
    let browser = Browser::new().unwrap();

    let fast = browser.get(ward.url("/slowapi/slow?ms=0")).await.unwrap();
    assert_eq!(
        fast.status, 200,
        "the route works when the upstream is quick"
    );

    let started = Instant::now();
    let reply = browser
        .get(ward.url("/slowapi/slow?ms=20000"))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_ward_error(&reply, 504, "upstream_timeout");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(slow.requests().len(), 2, "the slow request did reach it");
    assert_upstream_saw_nothing(&ward.upstream, "another upstream");
}

#[tokio::test]
async fn trace_is_refused_with_405() {
    let ward = Ward::start().await;
    let anonymous = Browser::new().unwrap();
    let reply = anonymous
        .request(Method::TRACE, ward.url("/public/x"))
        .send()
        .await
        .unwrap();
    assert_ward_error(&reply, 405, "method_not_allowed");

    let (browser, me) = ward.logged_in("alice").await;
    let reply = browser
        .request(Method::TRACE, ward.url("/api/x"))
        .header("x-csrf-token", &csrf_token(&me))
        .send()
        .await
        .unwrap();
    assert_ward_error(&reply, 405, "method_not_allowed");
    assert_upstream_saw_nothing(&ward.upstream, "TRACE");
}

#[tokio::test]
async fn only_the_configured_upstream_is_contacted_whatever_the_request_names() {
    // SECURITY-CASES P-05: the path is an opaque path on the route's upstream, never a URL;
    // the browser's Host and an absolute-form target choose nothing.
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    let cookie = browser.cookie_header_for(&ward.url("/api/x")).unwrap();
    let public_host = ward.origin.trim_start_matches("http://").to_owned();
    let upstream_host = ward.upstream.url().trim_start_matches("http://").to_owned();
    for (target, host, expected) in [
        (
            "/api//evil.example/steal",
            public_host.as_str(),
            "/api//evil.example/steal",
        ),
        (
            "/api/http://evil.example/",
            public_host.as_str(),
            "/api/http://evil.example/",
        ),
        (
            "/api/@evil.example",
            public_host.as_str(),
            "/api/@evil.example",
        ),
        ("/api/x", "evil.example", "/api/x"),
        ("http://evil.example/api/x", "evil.example", "/api/x"),
    ] {
        let (status, body) = raw_get_as(&ward, target, host, Some(&cookie)).await;
        assert_eq!(status, 200, "{target} (Host {host}): {body}");
        let seen = only_request(&ward.upstream);
        assert_eq!(seen.path_and_query, expected, "{target}");
        assert_eq!(
            all_values(&seen, "host"),
            [upstream_host.as_str()],
            "{target}"
        );
        assert_eq!(
            all_values(&seen, "x-forwarded-host"),
            [public_host.as_str()],
            "{target}: from public_url, never from Host"
        );
    }
}
