//! An upstream API that answers every request with a JSON description of it and records it,
//! so proxy tests can assert exactly what the upstream received.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use crate::dpop::{DpopPolicy, DpopRefusal, DpopState, verify};

/// Largest request body the echo server reads (bigger bodies get 413).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A request as the upstream received it. `Debug` shows header names and the body length
/// only: bearer tokens and cookies stay out of test output.
#[derive(Clone)]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The path and, when present, `?query`, exactly as received.
    pub path_and_query: String,
    /// All request headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Over TLS ([`EchoUpstream::start_tls`]): RFC 8705 `x5t#S256` of the client certificate
    /// the connection presented.
    pub client_cert_x5t: Option<String>,
}

impl std::fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("path_and_query", &self.path_and_query)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .field("client_cert_x5t", &self.client_cert_x5t)
            .finish()
    }
}

impl RecordedRequest {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(path, _)| path)
    }

    /// The first value of header `name`, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) type Log = Arc<Mutex<Vec<RecordedRequest>>>;

/// The `x5t#S256` of a TLS connection's client certificate, put on each of its requests.
#[derive(Clone, Debug)]
pub(crate) struct PeerCertificate(pub(crate) Option<String>);

/// The handler's state: the log, and the DPoP check when one is asked for.
#[derive(Clone)]
struct Shared {
    log: Log,
    dpop: Arc<Mutex<DpopState>>,
    addr: SocketAddr,
}

/// The echo upstream on `127.0.0.1:<free port>`; it stops when dropped.
///
/// Every method and path answers `200` with
/// `{"method","path","query","headers":{name:[values]},"body_len","body_sha256"}`, except paths
/// *ending* in (so they work behind any route prefix):
/// - `/slow?ms=N`: waits N ms first (timeout tests; the request is recorded on arrival);
/// - `/set-cookie`: also sends `Set-Cookie: __Host-ward=evil; Path=/` and `Set-Cookie: app=1`;
/// - `/status/<code>`: answers with that status (no body for 204 and 304).
///
/// With [`EchoUpstream::require_dpop`] every request must also pass a resource server's DPoP
/// check ([`crate::dpop::verify`]); one that fails is answered `401` with a DPoP
/// `WWW-Authenticate` challenge (and recorded, and its reason kept: [`Self::dpop_rejections`]).
pub struct EchoUpstream {
    addr: SocketAddr,
    log: Log,
    dpop: Arc<Mutex<DpopState>>,
    server: JoinHandle<()>,
    /// `http`, or `https` for [`EchoUpstream::start_tls`].
    scheme: &'static str,
}

impl EchoUpstream {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the echo upstream")?;
        let addr = listener.local_addr().context("echo upstream address")?;
        let log: Log = Arc::default();
        let dpop: Arc<Mutex<DpopState>> = Arc::default();
        let app = Self::app(&log, &dpop, addr);
        let server = tokio::spawn(async move {
            // Serving ends only when the task is aborted (on drop) or the socket fails.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            log,
            dpop,
            server,
            scheme: "http",
        })
    }

    /// From now on, every request must carry a DPoP-bound token and a valid proof for its
    /// method and URL (`http://127.0.0.1:<port><path>`), and, with `policy.nonce`, that nonce.
    pub fn require_dpop(&self, policy: DpopPolicy) {
        lock_dpop(&self.dpop).policy = Some(policy);
    }

    /// Why requests failed the DPoP check, oldest first (`use_dpop_nonce` challenges excluded).
    pub fn dpop_rejections(&self) -> Vec<String> {
        lock_dpop(&self.dpop).rejections.clone()
    }

    /// How many requests were answered `use_dpop_nonce`.
    pub fn dpop_nonce_challenges(&self) -> u64 {
        lock_dpop(&self.dpop).nonce_challenges
    }

    /// The same upstream served over TLS (`tls.rs`); `https://localhost:<port>` from `url`.
    pub(crate) fn from_tls_parts(
        addr: SocketAddr,
        log: Log,
        dpop: Arc<Mutex<DpopState>>,
        server: JoinHandle<()>,
    ) -> Self {
        Self {
            addr,
            log,
            dpop,
            server,
            scheme: "https",
        }
    }

    /// The app every echo upstream serves, recording into `log`, checking DPoP by `dpop` for
    /// the URLs of `addr`.
    pub(crate) fn app(log: &Log, dpop: &Arc<Mutex<DpopState>>, addr: SocketAddr) -> Router {
        let shared = Shared {
            log: Arc::clone(log),
            dpop: Arc::clone(dpop),
            addr,
        };
        Router::new().fallback(echo).with_state(shared)
    }

    /// `http://127.0.0.1:<port>` (`https://localhost:<port>` over TLS), without a trailing
    /// slash.
    pub fn url(&self) -> String {
        match self.scheme {
            "https" => format!("https://localhost:{}", self.addr.port()),
            _ => format!("http://{}", self.addr),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).clone()
    }

    /// The most recent request, if any.
    pub fn last(&self) -> Option<RecordedRequest> {
        lock(&self.log).last().cloned()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        lock(&self.log).clear();
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(log: &Log) -> MutexGuard<'_, Vec<RecordedRequest>> {
    // Entries are pushed whole, so a poisoned lock still holds a consistent list.
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock_dpop(dpop: &Mutex<DpopState>) -> MutexGuard<'_, DpopState> {
    dpop.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn echo(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    record(&shared.log, &parts, &path, &body);
    if let Some(refused) = check_dpop(&shared, &parts, &path) {
        return refused;
    }

    let description = describe(
        &parts.method,
        &path,
        query.as_deref(),
        &parts.headers,
        &body,
    );
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        [.., "slow"] => slow(query.as_deref(), &description).await,
        [.., "set-cookie"] => with_set_cookies(&description),
        [.., "status", code] => with_status(code, &description),
        _ => json_response(StatusCode::OK, &description),
    }
}

/// The DPoP check of [`EchoUpstream::require_dpop`], when on: `None` to go on, else the `401`.
fn check_dpop(shared: &Shared, parts: &axum::http::request::Parts, path: &str) -> Option<Response> {
    let mut state = lock_dpop(&shared.dpop);
    let policy = state.policy.clone()?;
    let url = format!("http://{}{path}", shared.addr);
    let state = &mut *state;
    let refusal = verify(
        &parts.method,
        &url,
        &parts.headers,
        policy.nonce.as_deref(),
        &mut state.seen_jti,
    )
    .err()?;
    let mut response = match refusal {
        DpopRefusal::UseNonce => {
            state.nonce_challenges += 1;
            let mut response = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "use_dpop_nonce"}),
            );
            if let Some(nonce) = policy.nonce.as_deref().and_then(|n| n.parse().ok()) {
                response.headers_mut().insert("dpop-nonce", nonce);
            }
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(r#"DPoP error="use_dpop_nonce", algs="ES256""#),
            );
            return Some(response);
        }
        DpopRefusal::Invalid(why) => {
            state.rejections.push(why.clone());
            json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "invalid_dpop_proof", "reason": why}),
            )
        }
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static(r#"DPoP error="invalid_dpop_proof", algs="ES256""#),
    );
    Some(response)
}

/// Appends the request, as received, to the log.
fn record(log: &Log, parts: &axum::http::request::Parts, path: &str, body: &Bytes) {
    let recorded = RecordedRequest {
        method: parts.method.clone(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| path.to_owned(), |pq| pq.as_str().to_owned()),
        headers: parts.headers.clone(),
        body: body.clone(),
        client_cert_x5t: parts
            .extensions
            .get::<PeerCertificate>()
            .and_then(|peer| peer.0.clone()),
    };
    lock(log).push(recorded);
}

/// `/slow?ms=N`: the description after N ms.
async fn slow(query: Option<&str>, description: &Value) -> Response {
    let ms = query
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "ms"))
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    json_response(StatusCode::OK, description)
}

/// `/set-cookie`: the description with a forged session cookie and an app cookie.
fn with_set_cookies(description: &Value) -> Response {
    let mut response = json_response(StatusCode::OK, description);
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        header::HeaderValue::from_static("__Host-ward=evil; Path=/"),
    );
    headers.append(
        header::SET_COOKIE,
        header::HeaderValue::from_static("app=1"),
    );
    response
}

/// `/status/<code>`: that status, with no body for 204 and 304.
fn with_status(code: &str, description: &Value) -> Response {
    match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(status) if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED => {
            (status, Body::empty()).into_response()
        }
        Some(status) => json_response(status, description),
        None => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "bad status code"}),
        ),
    }
}

fn describe(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Value {
    let mut by_name: Map<String, Value> = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if let Value::Array(values) = by_name
            .entry(name.as_str().to_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            values.push(Value::String(value));
        }
    }
    json!({
        "method": method.as_str(),
        "path": path,
        "query": query,
        "headers": by_name,
        "body_len": body.len(),
        "body_sha256": sha256_hex(body),
    })
}

fn sha256_hex(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, axum::Json(value.clone())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds")
    }

    #[tokio::test]
    async fn records_method_path_query_headers_and_body() {
        let echo = EchoUpstream::start().await.expect("echo starts");
        let response = client()
            .await
            .post(format!("{}/api/items?x=1&y=two", echo.url()))
            .header("x-test", "a")
            .header("x-test", "b")
            .body("hello")
            .send()
            .await
            .expect("request succeeds");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json body");
        assert_eq!(body["method"], "POST");
        assert_eq!(body["path"], "/api/items");
        assert_eq!(body["query"], "x=1&y=two");
        assert_eq!(body["headers"]["x-test"], json!(["a", "b"]));
        assert_eq!(body["body_len"], 5);
        assert_eq!(
            body["body_sha256"],
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );

        let recorded = echo.requests();
        assert_eq!(recorded.len(), 1);
        let last = echo.last().expect("a request was recorded");
        assert_eq!(last.method, Method::POST);
        assert_eq!(last.path_and_query, "/api/items?x=1&y=two");
        assert_eq!(last.path(), "/api/items");
        assert_eq!(last.header("x-test"), Some("a"));
        assert_eq!(&last.body[..], b"hello");
        echo.clear();
        assert!(echo.requests().is_empty());
    }

    #[tokio::test]
    async fn special_paths_work_behind_a_prefix() {
        let echo = EchoUpstream::start().await.expect("echo starts");
        let http = client().await;
        let cookies = http
            .get(format!("{}/api/set-cookie", echo.url()))
            .send()
            .await
            .expect("set-cookie answers");
        let set: Vec<&str> = cookies
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(set, ["__Host-ward=evil; Path=/", "app=1"]);

        let teapot = http
            .delete(format!("{}/api/status/418", echo.url()))
            .send()
            .await
            .expect("status answers");
        assert_eq!(teapot.status(), 418);
        let empty = http
            .get(format!("{}/status/204", echo.url()))
            .send()
            .await
            .expect("status answers");
        assert_eq!(empty.status(), 204);

        let started = std::time::Instant::now();
        let slow = http
            .get(format!("{}/api/slow?ms=200", echo.url()))
            .send()
            .await
            .expect("slow answers");
        assert_eq!(slow.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(echo.requests().len(), 4);
    }
}
