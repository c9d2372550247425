//! Malformed HTTP is the browser's fault (SPEC §2): `400 bad_request`, never forwarded as a
//! complete request, never answered as an upstream failure (`502`).

mod common;

use std::time::Duration;

use common::Ward;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` on a fresh connection and reads until Ward closes it (every request here
/// says `Connection: close` or is one Ward refuses), within a bounded time.
async fn exchange(ward: &Ward, request: &[u8]) -> String {
    let port = ward.origin.rsplit_once(':').map(|(_, p)| p).expect("port");
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("connect to Ward");
    stream.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    // A read error (a reset after Ward's answer) ends the answer like an EOF.
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("Ward answers and closes in time");
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_bad_request(answer: &str, case: &str) {
    assert!(
        answer.starts_with("HTTP/1.1 400 "),
        "{case}: {:?}",
        answer.lines().next()
    );
    assert!(answer.contains("\"bad_request\""), "{case}: {answer}");
}

/// A chunked POST to the `none` route `/public` with `chunks` as its body.
fn chunked_post(chunks: &str) -> String {
    format!(
        "POST /public/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunks}"
    )
}

#[tokio::test]
async fn malformed_chunked_bodies_are_400_and_reach_no_upstream() {
    let ward = Ward::start().await;
    for (case, chunks) in [
        (
            "oversized chunk size",
            "ffffffffffffffffff\r\nx\r\n0\r\n\r\n",
        ),
        ("bare LF chunk line", "5\nhello\n0\n\n"),
        ("chunk size not hex", "zz\r\nhello\r\n0\r\n\r\n"),
    ] {
        let answer = exchange(&ward, chunked_post(chunks).as_bytes()).await;
        assert_bad_request(&answer, case);
    }
    assert!(
        ward.upstream.requests().is_empty(),
        "no complete request reached the upstream"
    );
    // A well-formed chunked body on the same route still goes through.
    let answer = exchange(&ward, chunked_post("5\r\nhello\r\n0\r\n\r\n").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(ward.upstream.requests().len(), 1);
}

#[tokio::test]
async fn an_http11_request_must_name_its_host_exactly_once() {
    let ward = Ward::start().await;
    for (case, head) in [
        (
            "no Host",
            "GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
        (
            "two Hosts",
            "GET /public/x HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\
             Connection: close\r\n\r\n",
        ),
        (
            "two Hosts on /bff",
            "GET /bff/user HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\
             Connection: close\r\n\r\n",
        ),
    ] {
        assert_bad_request(&exchange(&ward, head.as_bytes()).await, case);
    }
    assert!(ward.upstream.requests().is_empty());
    // HTTP/1.0 may omit it; one Host is the normal case.
    for head in [
        "GET /public/x HTTP/1.0\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ] {
        let answer = exchange(&ward, head.as_bytes()).await;
        assert!(answer.contains(" 200 OK"), "{head:?}: {answer}");
    }
}

/// Request smuggling (RFC 9112 §6.1, §6.3): a request with both `Content-Length` and
/// `Transfer-Encoding` is refused, or framed by `Transfer-Encoding` alone and the connection
/// closed after the answer. Either way the bytes after the chunked body (a second request a
/// front proxy framing by `Content-Length` would not see) never become a request, and the
/// upstream never receives both framings.
#[tokio::test]
async fn a_request_with_content_length_and_transfer_encoding_smuggles_nothing() {
    let ward = Ward::start().await;
    let request = "POST /public/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
                   Content-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
                   GET /public/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let answer = exchange(&ward, request.as_bytes()).await;
    let statuses: Vec<&str> = answer
        .lines()
        .filter(|line| line.starts_with("HTTP/1.1 "))
        .collect();
    assert_eq!(
        statuses.len(),
        1,
        "one answer, then the connection closed: {answer}"
    );
    let seen = ward.upstream.requests();
    assert!(
        seen.iter().all(|r| !r.path().contains("smuggled")),
        "the smuggled request reached the upstream: {seen:?}"
    );
    for forwarded in &seen {
        assert!(
            forwarded.header("content-length").is_none()
                || forwarded.header("transfer-encoding").is_none(),
            "the upstream received both framings"
        );
    }
}
