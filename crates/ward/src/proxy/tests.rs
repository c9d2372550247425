//! End-to-end tests of the proxy against a tiny axum upstream on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::stream;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use url::Url;

use super::{ForwardContext, Proxy};
use crate::config::{RouteConfig, TokenMode};
use crate::secret::SecretString;

const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));

/// Counts the requests the upstream received, so refusals can assert it saw none.
#[derive(Clone, Default)]
struct Seen(Arc<AtomicUsize>);

/// Answers with what it received: method, target, headers (in order) and body.
async fn echo(State(seen): State<Seen>, req: Request<Body>) -> impl IntoResponse {
    seen.0.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let headers: Vec<Value> = parts
        .headers
        .iter()
        .map(|(name, value)| json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())]))
        .collect();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    axum::Json(json!({
        "method": parts.method.as_str(),
        "target": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn cookies() -> impl IntoResponse {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header("set-cookie", "__Host-ward=attacker; Path=/; Secure")
        .header("set-cookie", "__Host-ward.1=attacker")
        .header("set-cookie", "other=1; Path=/")
        .header("access-control-allow-origin", "*")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .header("x-kept", "yes")
        .body(Body::empty())
        .unwrap_or_default()
}

async fn streamed() -> impl IntoResponse {
    Body::from_stream(stream::iter(
        chunks().into_iter().map(Ok::<_, std::io::Error>),
    ))
}

async fn hang() -> StatusCode {
    std::future::pending().await
}

/// 64 distinct 16 KiB chunks: enough to span many reads and writes.
fn chunks() -> Vec<Bytes> {
    (0..64u8)
        .map(|i| Bytes::from(vec![b'a' + i % 26; 16 * 1024]))
        .collect()
}

fn concatenated(chunks: &[Bytes]) -> String {
    chunks.iter().map(|c| String::from_utf8_lossy(c)).collect()
}

async fn start_upstream() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/base/cookies", get(cookies))
        .route("/base/stream", get(streamed))
        .route("/base/hang", get(hang))
        .fallback(echo)
        .with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

fn route(prefix: &str, upstream: &str, token: TokenMode, timeout: Duration) -> RouteConfig {
    RouteConfig {
        prefix: prefix.to_owned(),
        upstream: Url::parse(upstream).expect("upstream URL"),
        token,
        strip_prefix: true,
        timeout,
        max_request_body: None,
        scopes: None,
        resource: None,
        token_exchange: false,
        fields: None,
        profiles: Default::default(),
        max_buffered_response: 4 << 20,
    }
}

fn proxy_to(addr: SocketAddr, timeout: Duration) -> Proxy {
    let upstream = format!("http://{addr}/base");
    let routes = [
        route("/api", &upstream, TokenMode::User, timeout),
        route("/public", &upstream, TokenMode::None, timeout),
    ];
    let public = Url::parse("https://app.example").expect("public URL");
    Proxy::new(&routes, &public, &outbound()).expect("proxy")
}

async fn send(proxy: &Proxy, req: Request<Body>, bearer: Option<&SecretString>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let route = proxy.route_for(&path).expect("a route");
    let ward_cookies = ["__Host-ward".to_owned()];
    let bearer = bearer.map(|token| crate::secret::bearer_value(token).expect("sendable"));
    let ctx = ForwardContext {
        bearer: bearer.as_ref(),
        client_ip: CLIENT_IP,
        ward_cookies: &ward_cookies,
        dpop: None,
    };
    proxy.forward(route, req, ctx).await
}

async fn json_body(response: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("JSON body")
}

fn header_values<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|pair| pair[0] == name)
        .filter_map(|pair| pair[1].as_str())
        .collect()
}

#[tokio::test]
async fn upstream_sees_the_bearer_and_wards_values_but_no_ward_secret() {
    let (addr, _) = start_upstream().await;
    let proxy = proxy_to(addr, Duration::from_secs(5));
    let body = Body::from_stream(stream::iter(
        chunks().into_iter().map(Ok::<_, std::io::Error>),
    ));
    let req = Request::post("/api/items?token=%2Fx&b=1")
        .header("cookie", "__Host-ward=session-secret; other=1")
        .header("x-csrf-token", "csrf-secret")
        .header("authorization", "Bearer attacker")
        .header("x-forwarded-for", "127.0.0.1")
        .header("x_forwarded_host", "evil.example")
        .header("host", "evil.example")
        .body(body)
        .expect("request");
    let token = SecretString::new("access-token-1");

    let response = send(&proxy, req, Some(&token)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let echo = json_body(response).await;
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["target"], "/base/items?token=%2Fx&b=1");
    assert_eq!(
        header_values(&echo, "authorization"),
        ["Bearer access-token-1"]
    );
    assert_eq!(header_values(&echo, "cookie"), ["other=1"]);
    assert!(header_values(&echo, "x-csrf-token").is_empty());
    assert!(header_values(&echo, "x_forwarded_host").is_empty());
    assert_eq!(header_values(&echo, "x-forwarded-for"), ["198.51.100.9"]);
    assert_eq!(header_values(&echo, "x-forwarded-proto"), ["https"]);
    assert_eq!(header_values(&echo, "x-forwarded-host"), ["app.example"]);
    assert_eq!(header_values(&echo, "host"), [addr.to_string().as_str()]);
    assert_eq!(header_values(&echo, "traceparent").len(), 1);
    // No Content-Length was known, so the body went out chunked: streamed, not collected.
    assert_eq!(header_values(&echo, "transfer-encoding"), ["chunked"]);
    assert_eq!(echo["body"], concatenated(&chunks()));
}

#[tokio::test]
async fn a_none_route_never_attaches_the_bearer() {
    let (addr, _) = start_upstream().await;
    let proxy = proxy_to(addr, Duration::from_secs(5));
    let req = Request::get("/public/x")
        .body(Body::empty())
        .expect("request");
    let token = SecretString::new("access-token-1");

    let echo = json_body(send(&proxy, req, Some(&token)).await).await;

    assert_eq!(echo["target"], "/base/x");
    assert!(header_values(&echo, "authorization").is_empty());
}

#[tokio::test]
async fn a_user_route_without_a_bearer_is_refused_before_the_upstream() {
    let (addr, seen) = start_upstream().await;
    let proxy = proxy_to(addr, Duration::from_secs(5));
    let req = Request::get("/api/x").body(Body::empty()).expect("request");

    let response = send(&proxy, req, None).await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(seen.0.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn dot_segments_are_refused_before_the_upstream() {
    let (addr, seen) = start_upstream().await;
    let proxy = proxy_to(addr, Duration::from_secs(5));
    let token = SecretString::new("access-token-1");
    for path in ["/api/../bff/user", "/api/%2e%2e/bff/user", "/api/..%2fbff"] {
        let req = Request::get(path).body(Body::empty()).expect("request");
        let response = send(&proxy, req, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(json_body(response).await["error"], "bad_request");
    }
    assert_eq!(seen.0.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn response_is_passed_through_without_wards_cookies_or_hop_by_hop_fields() {
    let (addr, _) = start_upstream().await;
    let proxy = proxy_to(addr, Duration::from_secs(5));
    let req = Request::get("/public/cookies")
        .body(Body::empty())
        .expect("request");

    let response = send(&proxy, req, None).await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let headers = response.headers();
    let set_cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(set_cookies, ["other=1; Path=/"]);
    assert!(!headers.contains_key("access-control-allow-origin"));
    assert!(!headers.contains_key("connection"));
    assert!(!headers.contains_key("x-hop"));
    assert_eq!(
        headers.get("x-kept").map(|v| v.as_bytes()),
        Some(&b"yes"[..])
    );
}

#[tokio::test]
async fn a_streamed_response_body_arrives_intact() {
    let (addr, _) = start_upstream().await;
    let proxy = proxy_to(addr, Duration::from_secs(5));
    let req = Request::get("/public/stream")
        .body(Body::empty())
        .expect("request");

    let response = send(&proxy, req, None).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    assert_eq!(String::from_utf8_lossy(&body), concatenated(&chunks()));
}

#[tokio::test]
async fn a_closed_upstream_port_gives_502() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let proxy = proxy_to(addr, Duration::from_secs(5));
    let req = Request::get("/public/x")
        .body(Body::empty())
        .expect("request");

    let response = send(&proxy, req, None).await;

    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(json_body(response).await["error"], "upstream_unavailable");
}

#[tokio::test]
async fn a_hanging_upstream_gives_504_after_the_route_timeout() {
    let (addr, _) = start_upstream().await;
    let proxy = proxy_to(addr, Duration::from_millis(200));
    let req = Request::get("/public/hang")
        .body(Body::empty())
        .expect("request");

    let started = tokio::time::Instant::now();
    let response = send(&proxy, req, None).await;

    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(json_body(response).await["error"], "upstream_timeout");
}

#[tokio::test]
async fn trace_and_connect_are_not_forwarded() {
    let (addr, seen) = start_upstream().await;
    let proxy = proxy_to(addr, Duration::from_secs(5));
    for method in ["TRACE", "CONNECT"] {
        let req = Request::builder()
            .method(method)
            .uri("/public/x")
            .body(Body::empty())
            .expect("request");
        let response = send(&proxy, req, None).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
    }
    assert_eq!(seen.0.load(Ordering::SeqCst), 0);
}

#[test]
fn route_for_picks_the_longest_segment_prefix() {
    let public = Url::parse("https://app.example").expect("public URL");
    let long = Duration::from_secs(1);
    let routes = [
        route("/api", "http://a.internal", TokenMode::User, long),
        route("/api/public", "http://b.internal", TokenMode::None, long),
    ];
    let proxy = Proxy::new(&routes, &public, &outbound()).expect("proxy");
    let prefix = |path: &str| proxy.route_for(path).map(|r| r.prefix().to_owned());
    assert_eq!(prefix("/api/public/x").as_deref(), Some("/api/public"));
    assert_eq!(prefix("/api/publicx").as_deref(), Some("/api"));
    assert_eq!(prefix("/apix"), None);
    assert_eq!(prefix("/"), None);
}

#[test]
fn a_public_url_without_host_is_refused() {
    let public = Url::parse("file:///x").expect("URL");
    assert!(Proxy::new(&[], &public, &outbound()).is_err());
}

#[tokio::test]
async fn an_https_upstream_gets_a_tls_client_with_the_shared_trust() {
    let public = Url::parse("https://app.example").expect("public URL");
    let routes = [route(
        "/api",
        "https://api.example/v1",
        TokenMode::User,
        Duration::from_secs(1),
    )];
    let proxy = Proxy::new(&routes, &public, &outbound()).expect("proxy with TLS");
    assert!(matches!(
        proxy.client,
        super::forward::UpstreamClient::Tls(_)
    ));
}

#[test]
fn only_https_routes_that_forward_a_token_present_the_client_certificate() {
    let presents = |upstream: &str, token| {
        let config = route("/api", upstream, token, Duration::from_secs(1));
        let compiled = super::routes::compile_all(&[config]).expect("route");
        super::client_cert::presents_certificate(&compiled[0])
    };
    for token in [TokenMode::User, TokenMode::UserOptional, TokenMode::Client] {
        assert!(presents("https://api.example", token), "{token:?}");
        assert!(!presents("http://api.example", token), "{token:?}");
    }
    assert!(!presents("https://api.example", TokenMode::None));
    // Without a client certificate there is no certified pool at all.
    let public = Url::parse("https://app.example").expect("public URL");
    let routes = [route(
        "/api",
        "https://api.example",
        TokenMode::User,
        Duration::from_secs(1),
    )];
    let proxy = Proxy::new(&routes, &public, &outbound()).expect("proxy");
    let api = proxy.route_for("/api/x").expect("route");
    assert!(proxy.certified.client_for(api).is_none());
}

fn outbound() -> crate::outbound::Outbound {
    crate::outbound::Outbound::load(&crate::config::OutboundConfig::default()).expect("outbound")
}
