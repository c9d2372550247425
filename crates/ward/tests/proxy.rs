//! The API proxy through Ward with a real IdP session (SPEC §5; SECURITY-CASES P-01…P-07,
//! P-10, P-11): which token the upstream receives, what path, body and status pass through, and
//! what is refused before any byte goes upstream. Header hygiene both ways: `proxy_headers.rs`.

mod common;

use std::time::{Duration, Instant};

use common::csrf::csrf_token;
use common::upstream::{
    all_values, assert_upstream_saw_nothing, assert_ward_error, bearer_of, only_request,
};
use common::{Options, Ward};
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ward_testkit::{Browser, EchoUpstream};

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
