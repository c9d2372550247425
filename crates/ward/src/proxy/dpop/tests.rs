//! The proxy's DPoP proofs and its `use_dpop_nonce` retry, against an upstream on 127.0.0.1
//! that demands a nonce of its own (RFC 9449 §9).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use url::Url;

use super::*;
use crate::config::{RouteConfig, TokenMode};
use crate::proxy::{ForwardContext, Proxy};

const NONCE: &str = "rs-nonce-1";

type Seen = Arc<Mutex<Vec<(Method, HeaderMap, Bytes)>>>;

fn claims(headers: &HeaderMap) -> Value {
    let proof = headers.get("dpop").unwrap().to_str().unwrap();
    let part = proof.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Records the request; without the nonce in its proof, a `use_dpop_nonce` challenge.
async fn api(State(seen): State<Seen>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let has_nonce = claims(&parts.headers)["nonce"] == NONCE;
    seen.lock()
        .unwrap()
        .push((parts.method, parts.headers, body.clone()));
    if !has_nonce {
        return (
            StatusCode::UNAUTHORIZED,
            [
                ("www-authenticate", r#"DPoP error="use_dpop_nonce""#),
                ("dpop-nonce", NONCE),
            ],
        )
            .into_response();
    }
    (StatusCode::OK, body).into_response()
}

async fn upstream() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new().fallback(api).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

fn proxy(addr: SocketAddr) -> Proxy {
    let route = RouteConfig {
        prefix: "/api".to_owned(),
        upstream: Url::parse(&format!("http://{addr}/base")).unwrap(),
        token: TokenMode::User,
        strip_prefix: true,
        timeout: Duration::from_secs(5),
        max_request_body: None,
        scopes: None,
        fields: None,
        profiles: Default::default(),
        max_buffered_response: 4 << 20,
        resource: None,
        token_exchange: false,
    };
    let outbound =
        crate::outbound::Outbound::load(&crate::config::OutboundConfig::default()).unwrap();
    Proxy::new(
        &[route],
        &Url::parse("https://app.example").unwrap(),
        &outbound,
    )
    .unwrap()
}

async fn send(proxy: &Proxy, req: Request<Body>, proof: &DpopProof) -> Response<Body> {
    let route = proxy.route_for(req.uri().path()).unwrap();
    let token = SecretString::new("bound-token");
    let authorization = dpop_value(&token).unwrap();
    let cookies = ["__Host-ward".to_owned()];
    let ctx = ForwardContext {
        bearer: Some(&authorization),
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ward_cookies: &cookies,
        dpop: Some(proof),
    };
    proxy.forward(route, req, ctx).await
}

fn proof() -> DpopProof {
    let key = DpopKey::generate().unwrap();
    DpopProof::new(&key, &SecretString::new("bound-token"), 1_700_000_000)
}

#[tokio::test]
async fn a_nonce_challenge_is_answered_once_and_the_nonce_kept_for_the_next_call() {
    let (addr, seen) = upstream().await;
    let proxy = proxy(addr);
    let proof = proof();
    let req = Request::get("/api/items?page=2")
        .header("dpop", "from-the-browser")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&proxy, req, &proof).await.status(), StatusCode::OK);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let (first, second) = (claims(&seen[0].1), claims(&seen[1].1));
        assert!(first.get("nonce").is_none());
        assert_eq!(second["nonce"], NONCE);
        assert_ne!(first["jti"], second["jti"]);
        for (method, headers, _) in seen.iter() {
            let claims = claims(headers);
            assert_eq!(claims["htm"], method.as_str());
            assert_eq!(claims["htu"], format!("http://{addr}/base/items"));
            assert_eq!(
                claims["ath"],
                access_token_hash(&SecretString::new("bound-token"))
            );
            assert_eq!(headers["authorization"], "DPoP bound-token");
            assert_eq!(headers.get_all("dpop").iter().count(), 1);
        }
    }

    // The nonce is known now: a POST goes through at once, its body whole.
    let req = Request::post("/api/orders")
        .header("content-length", "7")
        .body(Body::from("{\"a\":1}"))
        .unwrap();
    let response = send(&proxy, req, &proof).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"{\"a\":1}");
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_small_body_is_replayed_whole_with_the_nonce() {
    let (addr, seen) = upstream().await;
    let proxy = proxy(addr);
    let req = Request::put("/api/orders/7")
        .header("content-length", "5")
        .body(Body::from("hello"))
        .unwrap();
    let response = send(&proxy, req, &proof()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|(_, _, body)| &body[..] == b"hello"));
}

#[tokio::test]
async fn a_streamed_body_is_not_held_back_the_challenge_goes_to_the_browser() {
    let (addr, seen) = upstream().await;
    let proxy = proxy(addr);
    let proof = proof();
    let chunks = futures_util::stream::iter(
        [Bytes::from_static(b"part-1"), Bytes::from_static(b"part-2")].map(Ok::<_, std::io::Error>),
    );
    let req = Request::post("/api/upload")
        .body(Body::from_stream(chunks))
        .unwrap();
    let response = send(&proxy, req, &proof).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(&seen.lock().unwrap()[0].2[..], b"part-1part-2");

    // The nonce was remembered: the next request carries it from the start.
    let req = Request::get("/api/after").body(Body::empty()).unwrap();
    assert_eq!(send(&proxy, req, &proof).await.status(), StatusCode::OK);
    assert_eq!(seen.lock().unwrap().len(), 2);
}
