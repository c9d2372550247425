//! WebSocket upgrades through proxy routes (SPEC §5; SECURITY-CASES P-02): admitted only
//! from Ward's own origin and with a session on `user` routes, carrying the bearer and none
//! of Ward's cookies, and closed by Ward when the session ends.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Options, Ward};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderMap;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ward_testkit::Browser;

/// How long Ward may take to notice an ended session and close: its check interval (2 s)
/// plus generous slack for a loaded machine.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// A WebSocket echo server that records each handshake's headers and reports each
/// connection's end.
struct WsUpstream {
    url: String,
    handshakes: Arc<Mutex<Vec<HeaderMap>>>,
    ended: mpsc::UnboundedReceiver<()>,
}

impl WsUpstream {
    async fn start() -> WsUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let seen = handshakes.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                let ended_tx = ended_tx.clone();
                tokio::spawn(async move {
                    // The error type is tungstenite's callback contract, not ours to shrink.
                    #[allow(clippy::result_large_err)]
                    let record = |req: &Request, resp: Response| {
                        seen.lock().unwrap().push(req.headers().clone());
                        Ok(resp)
                    };
                    if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await {
                        while let Some(Ok(message)) = ws.next().await {
                            if (message.is_text() || message.is_binary())
                                && ws.send(message).await.is_err()
                            {
                                break;
                            }
                        }
                    }
                    let _ = ended_tx.send(());
                });
            }
        });
        WsUpstream {
            url,
            handshakes,
            ended,
        }
    }

    fn handshakes(&self) -> Vec<HeaderMap> {
        self.handshakes.lock().unwrap().clone()
    }

    /// Waits until one upstream connection has ended.
    async fn connection_ended(&mut self) {
        tokio::time::timeout(CLOSE_WITHIN, self.ended.recv())
            .await
            .expect("the upstream connection did not end in time")
            .expect("upstream task alive");
    }
}

/// Ward with `/ws` (token `user`) and `/wsopen` (token `none`) routes to `upstream`.
async fn ward_for(upstream: &WsUpstream) -> Ward {
    ward_on(upstream, "memory").await
}

/// [`ward_for`] on the store of kind `store`.
async fn ward_on(upstream: &WsUpstream, store: &'static str) -> Ward {
    Ward::start_with(Options {
        store,
        extra_toml: format!(
            r#"
[[routes]]
prefix = "/ws"
upstream = "{url}"
token = "user"

[[routes]]
prefix = "/wsopen"
upstream = "{url}"
token = "none"
"#,
            url = upstream.url
        ),
        ..Options::default()
    })
    .await
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to Ward's `path` with the given extra headers.
async fn connect(ward: &Ward, path: &str, headers: &[(&str, &str)]) -> Result<Socket, WsError> {
    let url = ward.origin.replacen("http://", "ws://", 1) + path;
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().append(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                .expect("name"),
            value.parse().expect("value"),
        );
    }
    let port = ward.origin.rsplit(':').next().expect("port");
    let tcp = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("connect to Ward");
    tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
        .await
        .map(|(socket, _)| socket)
}

/// The status of a refused handshake.
#[track_caller]
fn refused_status(result: Result<Socket, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, got an open socket"),
    }
}

fn session_cookie(ward: &Ward, browser: &Browser) -> String {
    browser
        .cookie_header_for(&ward.url("/ws"))
        .expect("the browser holds a session cookie")
}

async fn echo(socket: &mut Socket, text: &str) {
    socket.send(Message::text(text)).await.expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("echo in time")
        .expect("socket open")
        .expect("a message");
    assert_eq!(reply, Message::text(text));
}

/// Waits for Ward to close the socket with 1008 ("session ended").
async fn closed_by_ward(socket: &mut Socket) {
    let message = tokio::time::timeout(CLOSE_WITHIN, socket.next())
        .await
        .expect("Ward did not close the socket in time")
        .expect("a close frame before the end of the stream")
        .expect("a clean close");
    match message {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Policy);
            assert_eq!(frame.reason.as_str(), "session ended");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_logged_in_browser_echoes_through_ward_with_the_bearer_and_without_wards_cookies() {
    let upstream = WsUpstream::start().await;
    let ward = ward_for(&upstream).await;
    let (browser, me) = ward.logged_in("alice").await;
    let csrf = me["csrfToken"].as_str().unwrap().to_owned();
    let cookie = session_cookie(&ward, &browser);
    let cookies = format!("{cookie}; theme=dark");
    let mut socket = connect(
        &ward,
        "/ws/chat?room=1",
        &[
            ("origin", &ward.origin),
            ("cookie", &cookies),
            ("authorization", "Bearer forged"),
            ("x-csrf-token", &csrf),
        ],
    )
    .await
    .expect("upgrade through Ward");
    echo(&mut socket, "hello").await;
    echo(&mut socket, &"x".repeat(70_000)).await;

    let session = ward
        .state
        .sessions
        .load(Some(&cookie))
        .await
        .unwrap()
        .expect("session");
    let seen = upstream.handshakes();
    assert_eq!(seen.len(), 1);
    let auth: Vec<_> = seen[0].get_all("authorization").iter().collect();
    assert_eq!(auth.len(), 1, "exactly one Authorization");
    assert_eq!(
        auth[0].to_str().unwrap(),
        format!("Bearer {}", session.data.access_token.expose())
    );
    assert_eq!(
        seen[0].get("cookie").map(|v| v.to_str().unwrap()),
        Some("theme=dark"),
        "Ward's cookie is not forwarded"
    );
    assert!(seen[0].get("x-csrf-token").is_none());
    let forwarded_host = ward.origin.trim_start_matches("http://");
    assert_eq!(
        seen[0].get("x-forwarded-host").unwrap().to_str().unwrap(),
        forwarded_host
    );
    socket.close(None).await.expect("close");
}

#[tokio::test]
async fn an_upgrade_without_wards_origin_is_refused_before_the_upstream() {
    let upstream = WsUpstream::start().await;
    let ward = ward_for(&upstream).await;
    let (browser, _) = ward.logged_in("alice").await;
    let cookie = session_cookie(&ward, &browser);
    let port_plus_one = format!(
        "http://localhost:{}",
        ward.origin
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
            + 1
    );
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no origin", vec![("cookie", &cookie)]),
        (
            "foreign origin",
            vec![("origin", "http://evil.example"), ("cookie", &cookie)],
        ),
        ("null origin", vec![("origin", "null"), ("cookie", &cookie)]),
        (
            "suffixed origin",
            vec![
                ("origin", "http://localhost.evil.example"),
                ("cookie", &cookie),
            ],
        ),
        (
            "other port",
            vec![("origin", &port_plus_one), ("cookie", &cookie)],
        ),
        (
            "cross-site fetch metadata",
            vec![
                ("origin", &ward.origin),
                ("sec-fetch-site", "cross-site"),
                ("cookie", &cookie),
            ],
        ),
        ("no origin on a none route", vec![]),
    ];
    for (case, headers) in cases {
        let path = if headers.is_empty() { "/wsopen" } else { "/ws" };
        assert_eq!(
            refused_status(connect(&ward, path, &headers).await),
            403,
            "{case}"
        );
    }
    assert!(
        upstream.handshakes().is_empty(),
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn an_upgrade_without_a_session_is_unauthenticated_on_a_user_route() {
    let upstream = WsUpstream::start().await;
    let ward = ward_for(&upstream).await;
    let origin = [("origin", ward.origin.as_str())];
    assert_eq!(refused_status(connect(&ward, "/ws", &origin).await), 401);
    let forged = [
        ("origin", ward.origin.as_str()),
        ("cookie", "__Host-ward=forged"),
    ];
    assert_eq!(refused_status(connect(&ward, "/ws", &forged).await), 401);
    assert!(upstream.handshakes().is_empty());

    // A `none` route opens without a session, and without a bearer.
    let mut socket = connect(&ward, "/wsopen", &origin)
        .await
        .expect("upgrade on a none route");
    echo(&mut socket, "anonymous").await;
    let seen = upstream.handshakes();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].get("authorization").is_none());
}

#[tokio::test]
async fn an_upstream_that_refuses_the_upgrade_is_answered_through() {
    let upstream = WsUpstream::start().await;
    let ward = ward_for(&upstream).await;
    let (browser, _) = ward.logged_in("alice").await;
    let cookie = session_cookie(&ward, &browser);
    // `/api` leads to the plain echo API, which answers an upgrade with an ordinary 200.
    let result = connect(
        &ward,
        "/api/socket",
        &[("origin", &ward.origin), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(refused_status(result), 200);
    let seen = ward.upstream.last().expect("the echo API saw the request");
    assert!(seen.header("authorization").unwrap().starts_with("Bearer "));
    assert_eq!(seen.header("upgrade"), Some("websocket"));
}

#[tokio::test]
async fn logout_closes_the_open_socket() {
    let mut upstream = WsUpstream::start().await;
    let ward = ward_for(&upstream).await;
    let (browser, me) = ward.logged_in("alice").await;
    let cookie = session_cookie(&ward, &browser);
    let mut socket = connect(
        &ward,
        "/ws",
        &[("origin", &ward.origin), ("cookie", &cookie)],
    )
    .await
    .expect("upgrade");
    echo(&mut socket, "before logout").await;

    let logout = browser
        .post(ward.url("/bff/logout"))
        .header("origin", &ward.origin)
        .header("x-csrf-token", me["csrfToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status, 200, "{}", logout.text());

    closed_by_ward(&mut socket).await;
    upstream.connection_ended().await;
    // The same cookie cannot open a new one.
    let again = connect(
        &ward,
        "/ws",
        &[("origin", &ward.origin), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(refused_status(again), 401);
}

#[tokio::test]
async fn the_socket_closes_when_the_session_idles_out_on_wards_clock() {
    let mut upstream = WsUpstream::start().await;
    let ward = ward_for(&upstream).await;
    let (browser, _) = ward.logged_in("alice").await;
    let cookie = session_cookie(&ward, &browser);
    let mut socket = connect(
        &ward,
        "/ws",
        &[("origin", &ward.origin), ("cookie", &cookie)],
    )
    .await
    .expect("upgrade");
    echo(&mut socket, "still here").await;

    let idle = ward.state.config.session.idle_timeout.as_secs();
    ward.clock.advance(idle + 1);

    closed_by_ward(&mut socket).await;
    upstream.connection_ended().await;
}

#[tokio::test]
async fn with_the_stateless_cookie_store_the_socket_closes_at_the_sessions_expiry() {
    let mut upstream = WsUpstream::start().await;
    let ward = ward_on(&upstream, "cookie").await;
    let (browser, _) = ward.logged_in("alice").await;
    let cookies = session_cookie(&ward, &browser);
    let mut socket = connect(
        &ward,
        "/ws",
        &[("origin", &ward.origin), ("cookie", &cookies)],
    )
    .await
    .expect("upgrade");
    echo(&mut socket, "stateless").await;
    assert!(
        upstream.handshakes()[0]
            .get("cookie")
            .is_none_or(|c| !c.to_str().unwrap().contains("__Host-ward")),
        "none of the session's cookies reach the upstream"
    );

    let idle = ward.state.config.session.idle_timeout.as_secs();
    ward.clock.advance(idle + 1);

    closed_by_ward(&mut socket).await;
    upstream.connection_ended().await;
}
