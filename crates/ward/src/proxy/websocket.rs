//! WebSocket upgrades through proxy routes (SPEC §5; SECURITY-CASES P-02).
//!
//! An upgrade is admitted like any request to its route (session for `user` routes, the
//! bearer attached, Ward's cookies and `X-CSRF-Token` stripped) and, because it is a GET that
//! a page on any site can start with the browser's cookies (cross-site WebSocket hijacking),
//! only when its `Origin` is Ward's own or listed in `[server] cors_origins`
//! ([`upgrade_refused`]). The upstream's `101` is handed to the browser; any other answer
//! passes through as an ordinary response.
//!
//! Ward speaks no WebSocket itself: once both sides have switched protocols it copies bytes
//! between the two upgraded connections, tracking only where frames begin so that it can
//! close cleanly. While the socket is open, the session it was opened with is re-checked
//! every [`SESSION_CHECK_EVERY`] (a [`Liveness`] handle the gateway gives); when it has ended (logout, back-channel
//! logout, revocation, idle or absolute expiry by Ward's clock) or the store cannot say
//! (fail closed), Ward sends a close frame (1008, "session ended") each way at the next frame
//! boundary and drops both connections. A socket thus never outlives its session's absolute
//! expiry; it does not extend the idle timer either (only HTTP requests slide it).
//!
//! Upstream upgrades always go out as HTTP/1.1 (an `https` upstream is offered only
//! `http/1.1` by ALPN here), since an HTTP/1.1 `Upgrade` cannot travel over HTTP/2.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Extensions, Method, Request, Response, StatusCode, Version};
use axum::response::IntoResponse;
use hyper::upgrade::OnUpgrade;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::forward::{self, UpstreamClient};
use super::routes::Route;
use super::{ForwardContext, Proxy, ProxyError, headers};
use crate::error::ApiError;

/// How often an open socket's session is re-checked (real time). Also the longest a socket
/// stays open after its session ended, plus [`CLOSE_GRACE`].
pub(crate) const SESSION_CHECK_EVERY: Duration = Duration::from_secs(2);
/// How long Ward waits for a frame in flight to finish before it drops a connection without
/// a close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The clocks of an open socket: [`SESSION_CHECK_EVERY`] and [`CLOSE_GRACE`] in service.
#[derive(Debug, Clone, Copy)]
struct Timing {
    every: Duration,
    grace: Duration,
}
/// Bytes copied per read.
const BUFFER: usize = 16 * 1024;
/// Close status "policy violation" (RFC 6455 §7.4.1), big-endian.
const CLOSE_POLICY: [u8; 2] = 1008u16.to_be_bytes();
const CLOSE_REASON: &[u8] = b"session ended";

/// Whether the request asks to switch to WebSocket: a GET whose `Connection` names `upgrade`
/// and whose `Upgrade` names `websocket` (RFC 6455 §4.1). Other `Upgrade`s are not honoured:
/// the proxy strips them as hop-by-hop fields.
pub(crate) fn is_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && has_token(headers, &header::CONNECTION, "upgrade")
        && has_token(headers, &header::UPGRADE, "websocket")
}

/// Whether an upgrade must be refused as cross-site: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` that is absent, repeated, `null`, or neither Ward's public origin nor listed in
/// `cors_origins` (exact comparison, no Host-derived value). Browsers always send `Origin` on
/// WebSocket handshakes, so a missing one is not a browser Ward serves.
pub(crate) fn upgrade_refused(
    headers: &HeaderMap,
    public_origin: &str,
    cors_origins: &[String],
) -> bool {
    if headers
        .get_all("sec-fetch-site")
        .iter()
        .any(|v| v.as_bytes() == b"cross-site")
    {
        return true;
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let (Some(origin), None) = (origins.next(), origins.next()) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return true;
    };
    origin == "null" || (origin != public_origin && !cors_origins.iter().any(|o| o == origin))
}

fn has_token(headers: &HeaderMap, name: &header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The fields an upgrade needs on both hops, which the header rewrite strips as hop-by-hop.
fn restore_upgrade_fields(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// The client for upgrades: HTTP/1.1 only, unpooled in effect (an upgraded connection never
/// returns to the pool).
pub(crate) fn upgrade_client(needs_tls: bool) -> Result<UpstreamClient, ProxyError> {
    let builder = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .clone();
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    if !needs_tls {
        return Ok(UpstreamClient::Plain(vec![builder.build(http)]));
    }
    http.enforce_http(false);
    let https = HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(ProxyError::TrustRoots)?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(UpstreamClient::Tls(vec![builder.build(https)]))
}

/// The outcome of one re-check of an open socket's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Keep the socket open.
    Alive,
    /// Close it; the reason is a fixed word for the log.
    Ended(&'static str),
}

/// What keeps an open socket open.
pub(crate) trait Liveness: Send + 'static {
    /// Re-checks; called every [`SESSION_CHECK_EVERY`].
    fn check(&mut self) -> impl Future<Output = Check> + Send;

    /// The session's log id, for correlation in the socket's log lines.
    fn log_id(&self) -> &str;
}

impl Proxy {
    /// Forwards a WebSocket upgrade (see [`is_upgrade`]; the caller has checked the origin and
    /// the session) and, on the upstream's `101`, splices the two connections for as long as
    /// both stay open and `liveness` holds.
    pub(crate) async fn forward_upgrade<L: Liveness>(
        &self,
        route: &Route,
        req: Request<Body>,
        ctx: ForwardContext<'_>,
        liveness: Option<L>,
    ) -> Response<Body> {
        match self.try_forward_upgrade(route, req, &ctx, liveness).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        }
    }

    async fn try_forward_upgrade<L: Liveness>(
        &self,
        route: &Route,
        mut req: Request<Body>,
        ctx: &ForwardContext<'_>,
        liveness: Option<L>,
    ) -> Result<Response<Body>, ApiError> {
        // Absent when the connection cannot switch protocols (HTTP/2).
        let Some(inbound) = req.extensions_mut().remove::<OnUpgrade>() else {
            return Err(ApiError::BadRequest);
        };
        let mut upstream_req = self.upstream_request(route, req, ctx)?;
        restore_upgrade_fields(upstream_req.headers_mut());
        let mut response = forward::send(&self.upgrades, route, upstream_req).await?;
        let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switched && !has_token(response.headers(), &header::UPGRADE, "websocket") {
            // Ward tunnels WebSocket, nothing else the upstream might switch to.
            tracing::warn!(
                event = "websocket_upstream_refused",
                route = route.prefix(),
                "upstream switched to another protocol"
            );
            return Err(ApiError::UpstreamUnavailable);
        }
        let outbound = switched.then(|| hyper::upgrade::on(&mut response));
        let (mut parts, body) = response.into_parts();
        headers::rewrite_response(&mut parts.headers, ctx.ward_cookies);
        parts.version = Version::default();
        parts.extensions = Extensions::new();
        let Some(outbound) = outbound else {
            return Ok(Response::from_parts(parts, Body::new(body)));
        };
        restore_upgrade_fields(&mut parts.headers);
        let route_prefix = route.prefix().to_owned();
        tokio::spawn(tunnel(inbound, outbound, liveness, route_prefix));
        Ok(Response::from_parts(parts, Body::empty()))
    }
}

/// Waits for both sides to switch, then copies until either closes or the session ends.
async fn tunnel<L: Liveness>(
    inbound: OnUpgrade,
    outbound: OnUpgrade,
    liveness: Option<L>,
    route: String,
) {
    let (browser, upstream) = match tokio::join!(inbound, outbound) {
        (Ok(browser), Ok(upstream)) => (TokioIo::new(browser), TokioIo::new(upstream)),
        (browser, upstream) => {
            tracing::info!(
                event = "websocket_failed",
                route,
                browser_ok = browser.is_ok(),
                upstream_ok = upstream.is_ok(),
                "a side did not switch protocols"
            );
            return;
        }
    };
    let session = liveness
        .as_ref()
        .map(|l| l.log_id().to_owned())
        .unwrap_or_default();
    tracing::info!(event = "websocket_opened", route, session, "websocket open");
    let timing = Timing {
        every: SESSION_CHECK_EVERY,
        grace: CLOSE_GRACE,
    };
    let reason = splice(browser, upstream, liveness, timing).await;
    tracing::info!(
        event = "websocket_closed",
        route,
        session,
        reason,
        "websocket closed"
    );
}

/// Copies both ways; returns why it stopped.
async fn splice<B, U, L>(
    browser: B,
    upstream: U,
    liveness: Option<L>,
    timing: Timing,
) -> &'static str
where
    B: AsyncRead + AsyncWrite + Send,
    U: AsyncRead + AsyncWrite + Send,
    L: Liveness,
{
    let (browser_in, browser_out) = tokio::io::split(browser);
    let (upstream_in, upstream_out) = tokio::io::split(upstream);
    let (end, ended) = watch::channel(false);
    let pumps = async {
        tokio::join!(
            pump(
                upstream_in,
                browser_out,
                Side::Browser,
                ended.clone(),
                timing.grace
            ),
            pump(
                browser_in,
                upstream_out,
                Side::Upstream,
                ended.clone(),
                timing.grace
            ),
        )
    };
    let Some(mut liveness) = liveness else {
        pumps.await;
        return "closed";
    };
    tokio::pin!(pumps);
    let watch_session = async {
        let mut ticks = tokio::time::interval_at(Instant::now() + timing.every, timing.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Check::Ended(reason) = liveness.check().await {
                return reason;
            }
        }
    };
    tokio::select! {
        _ = &mut pumps => "closed",
        reason = watch_session => {
            // Receivers are held by the pumps until they return.
            let _ = end.send(true);
            pumps.await;
            reason
        }
    }
}

/// Which way a pump writes, for the shape of Ward's close frame.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// Server-to-client frames are not masked.
    Browser,
    /// Client-to-server frames must be masked (RFC 6455 §5.3).
    Upstream,
}

/// A close frame (1008, "session ended") for `side`.
fn close_frame(side: Side) -> Vec<u8> {
    let mut payload = CLOSE_POLICY.to_vec();
    payload.extend_from_slice(CLOSE_REASON);
    // Always under 126 bytes: the length fits the first length field.
    let len = payload.len() as u8;
    match side {
        Side::Browser => [&[0x88, len][..], &payload].concat(),
        Side::Upstream => {
            let mask = crate::session::random::bytes::<4>();
            let mut frame = vec![0x88, 0x80 | len];
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
            frame
        }
    }
}

/// Copies `from` to `to` until `from` ends or a write fails; once `ended` changes, writes a
/// close frame at the next frame boundary (waiting at most `grace` for one) and stops.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    side: Side,
    mut ended: watch::Receiver<bool>,
    grace: Duration,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = FrameTracker::default();
    let mut buf = vec![0u8; BUFFER];
    let mut closing_by: Option<Instant> = None;
    loop {
        if closing_by.is_some() && frames.at_boundary() {
            let _ = to.write_all(&close_frame(side)).await;
            let _ = to.shutdown().await;
            return;
        }
        let cut_off = closing_by.unwrap_or_else(Instant::now);
        tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => {
                    let chunk = &buf[..n];
                    if to.write_all(chunk).await.is_err() {
                        return;
                    }
                    frames.feed(chunk);
                }
            },
            // A closed channel also means "stop": the tunnel is going away.
            _ = ended.changed(), if closing_by.is_none() => {
                closing_by = Some(Instant::now() + grace);
            }
            () = tokio::time::sleep_until(cut_off), if closing_by.is_some() => return,
        }
    }
}

/// Follows WebSocket framing (RFC 6455 §5.2) over a byte stream, only far enough to know
/// whether the bytes seen so far end on a frame boundary. Control frames may be sent between
/// the fragments of a message, so a boundary is always a place for a close frame.
#[derive(Debug, Default)]
struct FrameTracker {
    head: [u8; 14],
    /// Header bytes of the current frame seen so far.
    have: usize,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
}

impl FrameTracker {
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.remaining == 0
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.remaining -= take as u64;
                bytes = &bytes[take..];
                continue;
            }
            let take = (self.header_len() - self.have).min(bytes.len());
            self.head[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            if self.have >= 2 && self.have == self.header_len() {
                self.remaining = self.payload_len();
                self.have = 0;
            }
        }
    }

    /// The header's full length as far as it is known (2 until the length byte is in).
    fn header_len(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let b1 = self.head[1];
        let extended = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    fn payload_len(&self) -> u64 {
        match self.head[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
            127 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&self.head[2..10]);
                u64::from_be_bytes(len)
            }
            short => u64::from(short),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::io::DuplexStream;
    use tokio::sync::Notify;

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
}
