//! Unit tests of upgrade detection, origin checks and the splice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::DuplexStream;
use tokio::sync::Notify;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::splice::{CLOSE_REASON, FrameTracker, Side, Timing, close_frame, splice};
use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    map
}

const ME: &str = "https://app.example";

#[test]
fn only_a_get_naming_upgrade_and_websocket_is_an_upgrade() {
    let ws = headers(&[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
    ]);
    assert!(is_upgrade(&Method::GET, &ws));
    assert!(!is_upgrade(&Method::POST, &ws));
    assert!(!is_upgrade(
        &Method::GET,
        &headers(&[("upgrade", "websocket")])
    ));
    assert!(!is_upgrade(
        &Method::GET,
        &headers(&[("connection", "upgrade"), ("upgrade", "h2c")])
    ));
    assert!(!is_upgrade(
        &Method::GET,
        &headers(&[("connection", "upgrades"), ("upgrade", "websocket")])
    ));
}

#[test]
fn only_wards_origin_or_a_listed_one_may_upgrade() {
    let listed = vec!["https://admin.app.example".to_owned()];
    assert!(!upgrade_refused(&headers(&[("origin", ME)]), ME, &[]));
    assert!(!upgrade_refused(
        &headers(&[
            ("origin", "https://admin.app.example"),
            ("sec-fetch-site", "same-site")
        ]),
        ME,
        &listed
    ));
    for origin in [
        "https://evil.example",
        "null",
        "https://app.example.evil.example",
        "https://app.example:444",
        "http://app.example",
        "https://app.example/",
    ] {
        assert!(
            upgrade_refused(&headers(&[("origin", origin)]), ME, &listed),
            "{origin}"
        );
    }
    assert!(upgrade_refused(&HeaderMap::new(), ME, &listed), "no origin");
    assert!(
        upgrade_refused(&headers(&[("origin", ME), ("origin", ME)]), ME, &[]),
        "two origins"
    );
    assert!(
        upgrade_refused(
            &headers(&[("origin", ME), ("sec-fetch-site", "cross-site")]),
            ME,
            &[]
        ),
        "cross-site fetch metadata"
    );
}

#[test]
fn frame_boundaries_are_found_across_any_split() {
    // A masked 5-byte text frame, an unmasked 300-byte binary frame (16-bit length) and a
    // 70000-byte one (64-bit length), fed in every kind of piece.
    let mut stream = vec![0x81, 0x85, 1, 2, 3, 4];
    stream.extend_from_slice(b"hello");
    let first_end = stream.len();
    stream.extend_from_slice(&[0x82, 126, 0x01, 0x2c]);
    stream.extend(std::iter::repeat_n(7u8, 300));
    let second_end = stream.len();
    stream.extend_from_slice(&[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    stream.extend(std::iter::repeat_n(9u8, 70_000));
    for piece in [1, 2, 3, 7, 1000, stream.len()] {
        let mut tracker = FrameTracker::default();
        let mut boundaries = Vec::new();
        let mut at = 0;
        for chunk in stream.chunks(piece) {
            tracker.feed(chunk);
            at += chunk.len();
            if tracker.at_boundary() {
                boundaries.push(at);
            }
        }
        let expected: Vec<usize> = [first_end, second_end, stream.len()]
            .into_iter()
            .filter(|b| b % piece == 0 || *b == stream.len())
            .collect();
        assert_eq!(boundaries, expected, "pieces of {piece}");
    }
}

#[test]
fn close_frames_carry_1008_masked_only_towards_the_upstream() {
    let browser = close_frame(Side::Browser);
    assert_eq!(&browser[..4], &[0x88, 15, 0x03, 0xf0]);
    assert_eq!(&browser[4..], CLOSE_REASON);
    let upstream = close_frame(Side::Upstream);
    assert_eq!(&upstream[..2], &[0x88, 0x80 | 15]);
    let mask = &upstream[2..6];
    let payload: Vec<u8> = upstream[6..]
        .iter()
        .zip(mask.iter().cycle())
        .map(|(b, m)| b ^ m)
        .collect();
    assert_eq!(payload, &browser[2..]);
}

/// Alive until the switch is flipped; reports each "ended" it answers.
struct Switch {
    alive: Arc<AtomicBool>,
    reported: Arc<Notify>,
}

impl Liveness for Switch {
    fn log_id(&self) -> &str {
        "test"
    }

    async fn check(&mut self) -> Check {
        if self.alive.load(Ordering::SeqCst) {
            Check::Alive
        } else {
            self.reported.notify_one();
            Check::Ended("test")
        }
    }
}

/// A splice between two in-memory connections, checked every 10 ms.
struct Harness {
    browser: DuplexStream,
    upstream: DuplexStream,
    alive: Arc<AtomicBool>,
    reported: Arc<Notify>,
    splice: tokio::task::JoinHandle<&'static str>,
}

fn harness(alive: bool, grace: Duration) -> Harness {
    let (browser, ward_browser) = tokio::io::duplex(4096);
    let (upstream, ward_upstream) = tokio::io::duplex(4096);
    let alive = Arc::new(AtomicBool::new(alive));
    let reported = Arc::new(Notify::new());
    let switch = Switch {
        alive: alive.clone(),
        reported: reported.clone(),
    };
    let timing = Timing {
        every: Duration::from_millis(10),
        grace,
    };
    let splice = tokio::spawn(splice(ward_browser, ward_upstream, Some(switch), timing));
    Harness {
        browser,
        upstream,
        alive,
        reported,
        splice,
    }
}

async fn read_some(stream: &mut DuplexStream) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).await.expect("read");
    buf.truncate(n);
    buf
}

async fn read_to_end(stream: &mut DuplexStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await.expect("read to end");
    all
}

#[tokio::test]
async fn bytes_flow_both_ways_until_the_session_ends_then_both_sides_get_a_close() {
    let mut h = harness(true, Duration::from_secs(10));
    let hello = [0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
    h.browser.write_all(&hello).await.unwrap();
    assert_eq!(read_some(&mut h.upstream).await, hello);
    let reply = [0x81, 0x02, b'o', b'k'];
    h.upstream.write_all(&reply).await.unwrap();
    assert_eq!(read_some(&mut h.browser).await, reply);

    h.alive.store(false, Ordering::SeqCst);
    assert_eq!(h.splice.await.unwrap(), "test");
    assert_eq!(
        read_to_end(&mut h.browser).await,
        close_frame(Side::Browser)
    );
    let to_upstream = read_to_end(&mut h.upstream).await;
    assert_eq!(&to_upstream[..2], &[0x88, 0x8f]);
    assert_eq!(to_upstream.len(), 2 + 4 + 15);
}

#[tokio::test]
async fn a_frame_in_flight_is_finished_before_the_close_frame() {
    let mut h = harness(true, Duration::from_secs(10));
    // Half of a 4-byte frame, then the session ends, then the other half.
    h.upstream.write_all(&[0x82, 0x04, 1, 2]).await.unwrap();
    assert_eq!(read_some(&mut h.browser).await, [0x82, 0x04, 1, 2]);
    h.alive.store(false, Ordering::SeqCst);
    h.reported.notified().await;
    h.upstream.write_all(&[3, 4]).await.unwrap();
    assert_eq!(h.splice.await.unwrap(), "test");
    let rest = read_to_end(&mut h.browser).await;
    assert_eq!(&rest[..2], &[3, 4]);
    assert_eq!(&rest[2..], close_frame(Side::Browser));
}

#[tokio::test]
async fn a_frame_never_finished_is_cut_off_after_the_grace_without_a_close_frame() {
    let mut h = harness(true, Duration::from_millis(50));
    h.upstream.write_all(&[0x82, 0x04, 1]).await.unwrap();
    assert_eq!(read_some(&mut h.browser).await, [0x82, 0x04, 1]);
    h.alive.store(false, Ordering::SeqCst);
    assert_eq!(h.splice.await.unwrap(), "test");
    assert!(read_to_end(&mut h.browser).await.is_empty());
}

#[tokio::test]
async fn without_a_session_the_splice_ends_when_both_sides_close() {
    let (browser, ward_browser) = tokio::io::duplex(4096);
    let (mut upstream, ward_upstream) = tokio::io::duplex(4096);
    let timing = Timing {
        every: Duration::from_millis(10),
        grace: Duration::from_millis(10),
    };
    let splice = tokio::spawn(splice(ward_browser, ward_upstream, None::<Switch>, timing));
    drop(browser);
    assert!(read_to_end(&mut upstream).await.is_empty());
    drop(upstream);
    assert_eq!(splice.await.unwrap(), "closed");
}
