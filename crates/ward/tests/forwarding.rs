//! Robust forwarding (SPEC §2, §5; SECURITY-CASES P-08, P-09, D-02): request size limits
//! (413 / 414 / 431) before anything goes upstream, cleartext HTTP/2 from the browser side,
//! streaming of a large body both ways with flat memory, and upstream connection reuse, all
//! against the counting upstream of `support/streaming.rs`.

mod common;
#[path = "support/streaming.rs"]
mod streaming;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::http::Version;
use bytes::Bytes;
use common::{Options, Ward};
use futures_util::stream;
use serde_json::Value;
use streaming::{RssPeak, SMALL_LIMIT, StreamingUpstream, mib, rss_bytes, upload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes sent each way by the streaming test. 1 GiB took 2.5–3.5 s up and 1.2–1.7 s down in
/// a debug build on a 2-core machine (the test prints its timings and RSS with `--nocapture`).
const STREAM_BYTES: u64 = 1 << 30;

/// Most the process's resident memory may grow while a body streams through Ward.
const RSS_GROWTH_LIMIT: u64 = 64 << 20;

// ---------------------------------------------------------------------------------------------
// Harness

async fn start(upstream: &StreamingUpstream) -> Ward {
    start_with_env(upstream, &[]).await
}

async fn start_with_env(upstream: &StreamingUpstream, env: &[(&str, &str)]) -> Ward {
    Ward::start_with(Options {
        extra_toml: upstream.routes(),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Options::default()
    })
    .await
}

fn http1() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("HTTP/1.1 client")
}

/// A client speaking cleartext HTTP/2 with prior knowledge (h2c; browsers speak HTTP/2 only
/// over TLS, which a TLS-terminating proxy in front of Ward would forward like this).
fn http2() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("HTTP/2 client")
}

/// A Ward error: status, SPEC JSON shape and code, `no-store`.
#[track_caller]
fn assert_ward_error(status: u16, headers: &reqwest::header::HeaderMap, body: &str, code: &str) {
    let json: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON: {body}"));
    assert_eq!(json["error"], code, "{status}: {body}");
    assert!(json["message"].is_string());
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "{code}"
    );
}

async fn send(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("the body");
    (status, headers, body)
}

fn ward_port(ward: &Ward) -> u16 {
    ward.origin
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("origin has a port")
}

/// One HTTP/1.1 exchange over a fresh socket, byte for byte: writes `head` (and stops
/// writing when Ward closes the connection), then reads one response. Returns the status
/// (`None` when the connection ended without one) and the response body.
async fn raw_exchange(ward: &Ward, head: &[u8]) -> (Option<u16>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", ward_port(ward)))
        .await
        .expect("connect to Ward");
    for piece in head.chunks(16 * 1024) {
        if stream.write_all(piece).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf))
            .await
            .expect("Ward answers in time");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        if response_complete(&answer) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Whether `answer` holds a response head and as many body bytes as it declares.
fn response_complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}

// ---------------------------------------------------------------------------------------------
// Request body limits (413)

#[tokio::test]
async fn a_declared_body_over_the_route_limit_is_refused_before_the_upstream() {
    let upstream = StreamingUpstream::start().await;
    let ward = start(&upstream).await;
    let client = http1();

    let over = vec![b'x'; usize::try_from(SMALL_LIMIT).unwrap() + 1];
    let (status, headers, body) = send(client.post(ward.url("/small/count")).body(over)).await;
    assert_eq!(status, 413, "{body}");
    assert_ward_error(status, &headers, &body, "payload_too_large");
    assert_eq!(upstream.connections(), 0, "nothing went upstream");

    let at = vec![b'x'; usize::try_from(SMALL_LIMIT).unwrap()];
    let (status, _, body) = send(client.post(ward.url("/small/count")).body(at)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "65536"),
        "at the limit passes"
    );
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_without_100_continue() {
    let upstream = StreamingUpstream::start().await;
    let ward = start(&upstream).await;
    let head = format!(
        "POST /small/count HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        SMALL_LIMIT + 1
    );
    let (status, body) = raw_exchange(&ward, head.as_bytes()).await;
    assert_eq!(status, Some(413), "413 first, never 100 Continue: {body}");
    assert!(body.contains("payload_too_large"), "{body}");
    assert_eq!(upstream.connections(), 0);
}

#[tokio::test]
async fn a_route_without_its_own_limit_takes_the_server_limit() {
    let upstream = StreamingUpstream::start().await;
    let ward = start_with_env(&upstream, &[("WARD_SERVER__MAX_REQUEST_BODY", "1KiB")]).await;
    let client = http1();
    // `/public` (the harness's echo upstream) sets no limit of its own.
    let (status, headers, body) =
        send(client.post(ward.url("/public/x")).body(vec![b'x'; 1025])).await;
    assert_eq!(status, 413, "{body}");
    assert_ward_error(status, &headers, &body, "payload_too_large");
    assert!(ward.upstream.requests().is_empty());
    let (status, _, _) = send(client.post(ward.url("/public/x")).body(vec![b'x'; 1024])).await;
    assert_eq!(status, 200);
    // A route's own limit wins over the server's, also upwards.
    let (status, _, body) =
        send(client.post(ward.url("/small/count")).body(vec![b'x'; 4096])).await;
    assert_eq!((status, body.as_str()), (200, "4096"));
}

#[tokio::test]
async fn a_streamed_body_growing_past_the_limit_is_413_and_never_completes_upstream() {
    let upstream = StreamingUpstream::start().await;
    let ward = start(&upstream).await;
    for (name, client) in [("HTTP/1.1", http1()), ("HTTP/2", http2())] {
        let before = upstream.received();
        let (status, headers, body) = send(
            client
                .post(ward.url("/small/count"))
                .body(upload(4 * SMALL_LIMIT)),
        )
        .await;
        assert_eq!(status, 413, "{name}: {body}");
        assert_ward_error(status, &headers, &body, "payload_too_large");
        assert_eq!(
            upstream.completed(),
            0,
            "{name}: no complete request upstream"
        );
        let received = upstream.received() - before;
        assert!(
            received <= SMALL_LIMIT,
            "{name}: the upstream received {received} bytes"
        );
    }
    // Within the limit, a streamed body passes whole.
    let (status, _, body) = send(
        http1()
            .post(ward.url("/small/count"))
            .body(upload(SMALL_LIMIT)),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "65536"));
}

#[tokio::test]
async fn bff_endpoints_refuse_bodies_over_16_kib() {
    let upstream = StreamingUpstream::start().await;
    let ward = start(&upstream).await;
    let client = http1();

    let (status, headers, body) =
        send(
            client
                .post(ward.url("/bff/logout"))
                .body(vec![b'x'; 16 * 1024 + 1]),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_ward_error(status, &headers, &body, "payload_too_large");

    // Back-channel logout, streamed (no Content-Length): still 413, its own check intact.
    let form = format!("logout_token={}", "a".repeat(20 * 1024));
    let (status, headers, body) = send(
        client
            .post(ward.url("/bff/backchannel-logout"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(reqwest::Body::wrap_stream(stream::iter([Ok::<
                _,
                Infallible,
            >(
                Bytes::from(form),
            )]))),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_ward_error(status, &headers, &body, "payload_too_large");

    // A small form still reaches the endpoint (and is refused as a token, not as a size).
    let (status, _, body) = send(
        client
            .post(ward.url("/bff/backchannel-logout"))
            .form(&[("logout_token", "not-a-jwt")]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_logout_token"), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Head limits (414 / 431)

#[tokio::test]
async fn an_oversized_request_head_is_refused_before_the_upstream() {
    let upstream = StreamingUpstream::start().await;
    let ward = start(&upstream).await;
    let request = |target: &str, extra: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n")
    };

    let fits = format!("/stream/hello?{}", "q".repeat(7 * 1024));
    let (status, _) = raw_exchange(&ward, request(&fits, "").as_bytes()).await;
    assert_eq!(status, Some(200), "a 7 KiB target is served");

    for size in [9 * 1024, 64 * 1024 - 100] {
        let target = format!("/stream/hello?{}", "q".repeat(size));
        let (status, body) = raw_exchange(&ward, request(&target, "").as_bytes()).await;
        assert_eq!(status, Some(414), "{size}-byte target: {body}");
    }
    let (_, body) = raw_exchange(
        &ward,
        request(&format!("/stream/hello?{}", "q".repeat(9 * 1024)), "").as_bytes(),
    )
    .await;
    assert!(body.contains("\"uri_too_long\""), "{body}");

    let one_big = format!("X-Big: {}\r\n", "v".repeat(40 * 1024));
    let (status, body) = raw_exchange(&ward, request("/stream/hello", &one_big).as_bytes()).await;
    assert_eq!(status, Some(431), "one 40 KiB header: {body}");
    assert!(body.contains("\"headers_too_large\""), "{body}");

    let many: String = (0..500).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let (status, _) = raw_exchange(&ward, request("/stream/hello", &many).as_bytes()).await;
    assert_eq!(status, Some(431), "500 header fields");

    let huge: String = (0..64)
        .map(|i| format!("X-Huge{i}: {}\r\n", "v".repeat(16 * 1024)))
        .collect();
    let (status, _) = raw_exchange(&ward, request("/stream/hello", &huge).as_bytes()).await;
    assert_eq!(status, Some(431), "1 MiB of header fields");

    assert_eq!(
        upstream.requests(),
        1,
        "only the request that fits went upstream"
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 from the browser side

#[tokio::test]
async fn cleartext_http2_requests_are_proxied_and_limited() {
    let upstream = StreamingUpstream::start().await;
    let ward = start(&upstream).await;
    let client = http2();

    let response = client
        .get(ward.url("/stream/hello"))
        .send()
        .await
        .expect("an HTTP/2 answer");
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "hello");

    let (status, _, body) =
        send(client.post(ward.url("/stream/count")).body(upload(8 << 20))).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "8388608"),
        "8 MiB up over h2"
    );

    let response = client
        .get(ward.url("/stream/download/8388608"))
        .send()
        .await
        .expect("an HTTP/2 answer");
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.expect("body").len(), 8 << 20);

    let long = format!("/stream/hello?{}", "q".repeat(9 * 1024));
    let (status, headers, body) = send(client.get(ward.url(&long))).await;
    assert_eq!(status, 414, "{body}");
    assert_ward_error(status, &headers, &body, "uri_too_long");

    let (status, headers, body) = send(
        client
            .get(ward.url("/stream/hello"))
            .header("x-big", "v".repeat(40 * 1024)),
    )
    .await;
    assert_eq!(status, 431, "{body}");
    assert_ward_error(status, &headers, &body, "headers_too_large");
    assert_eq!(
        upstream.requests(),
        3,
        "refused requests never went upstream"
    );
}

#[tokio::test]
async fn http2_cookie_fields_are_merged_and_the_session_rides_along() {
    let upstream = StreamingUpstream::start().await;
    let ward = start(&upstream).await;
    let (browser, _) = ward.logged_in("alice").await;
    let name = ward.cookie_name();
    let value = browser.cookie("localhost", &name).expect("session cookie");

    // HTTP/2 carries each cookie in a field of its own (RFC 9113 §8.2.3).
    let response = http2()
        .get(ward.url("/api/orders"))
        .header("cookie", "theme=dark")
        .header("cookie", format!("{name}={value}"))
        .header("cookie", "lang=en")
        .send()
        .await
        .expect("an HTTP/2 answer");
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200, "the session is found across fields");
    let seen = ward.upstream.last().expect("the upstream got the request");
    let bearer = seen.header("authorization").unwrap_or_default();
    assert!(bearer.starts_with("Bearer "), "the bearer is attached");
    let cookies: Vec<&str> = seen
        .headers
        .get_all("cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII"))
        .collect();
    let joined = cookies.join("; ");
    assert!(
        joined.contains("theme=dark") && joined.contains("lang=en"),
        "{joined}"
    );
    assert!(!joined.contains(&name), "Ward's cookie never goes upstream");
}

// ---------------------------------------------------------------------------------------------
// Streaming with flat memory

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_streams_up_and_down_with_flat_memory() {
    let upstream = StreamingUpstream::start().await;
    let ward = start(&upstream).await;
    let client = http1();
    warm_up(&client, &ward).await;

    let baseline = rss_bytes();
    let sampler = RssPeak::start();
    let up = stream_up(&client, &ward).await;
    let down = stream_down(&client, &ward).await;
    let peak = sampler.finish();

    let after = rss_bytes();
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "streamed {:.0} MiB each way: up {:.1} s, down {:.1} s; RSS baseline {:.1} MiB, \
         peak {:.1} MiB (+{:.1} MiB), after {:.1} MiB",
        mib(STREAM_BYTES),
        up.as_secs_f64(),
        down.as_secs_f64(),
        mib(baseline),
        mib(peak),
        mib(growth),
        mib(after)
    );
    assert!(
        growth < RSS_GROWTH_LIMIT,
        "memory grew by {:.1} MiB while streaming",
        mib(growth)
    );
}

/// Connections, pools and buffers exist before the baseline is taken: 8 MiB up and down.
async fn warm_up(client: &reqwest::Client, ward: &Ward) {
    let (status, _, body) =
        send(client.post(ward.url("/stream/count")).body(upload(8 << 20))).await;
    assert_eq!((status, body.as_str()), (200, "8388608"));
    let response = client
        .get(ward.url("/stream/download/8388608"))
        .send()
        .await
        .expect("download");
    assert_eq!(response.bytes().await.expect("body").len(), 8 << 20);
}

/// Streams [`STREAM_BYTES`] up; how long until the upstream counted every byte.
async fn stream_up(client: &reqwest::Client, ward: &Ward) -> Duration {
    let started = Instant::now();
    let (status, _, body) = send(
        client
            .post(ward.url("/stream/count"))
            .body(upload(STREAM_BYTES)),
    )
    .await;
    let up = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        STREAM_BYTES.to_string(),
        "every byte arrived upstream"
    );
    up
}

/// Streams [`STREAM_BYTES`] down, counting without keeping; how long until the last byte.
async fn stream_down(client: &reqwest::Client, ward: &Ward) -> Duration {
    let started = Instant::now();
    let mut response = client
        .get(ward.url(&format!("/stream/download/{STREAM_BYTES}")))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    let mut received = 0u64;
    while let Some(chunk) = response.chunk().await.expect("a chunk") {
        received += chunk.len() as u64;
    }
    let down = started.elapsed();
    assert_eq!(received, STREAM_BYTES, "every byte arrived at the browser");
    down
}

// ---------------------------------------------------------------------------------------------
// Upstream connection pooling

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let upstream = StreamingUpstream::start().await;
    // One serving worker, one pool (with more, each worker has its own: `workers.rs`).
    let ward = start_with_env(&upstream, &[("WARD_SERVER__WORKERS", "1")]).await;
    let client = http1();
    for _ in 0..20 {
        let (status, _, body) = send(client.get(ward.url("/stream/hello"))).await;
        assert_eq!((status, body.as_str()), (200, "hello"));
    }
    // Also from fresh browser connections: the pool is Ward's, not the browser's.
    for _ in 0..5 {
        let (status, _, _) = send(http1().get(ward.url("/stream/hello"))).await;
        assert_eq!(status, 200);
    }
    assert_eq!(upstream.requests(), 25);
    assert_eq!(
        upstream.connections(),
        1,
        "25 sequential requests over one pooled upstream connection"
    );
}
