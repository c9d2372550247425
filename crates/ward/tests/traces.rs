//! Traces over OTLP (SPEC §8, SECURITY-CASES LG-01/LG-02): the real `ward serve` exports to a
//! receiver that decodes the protobuf (HTTP and gRPC). One trace per request: a server span with
//! store, sealing, IdP and upstream children; the upstream's `traceparent` names the upstream
//! span; a browser's `traceparent` is a link, never the parent; no secret in any span. A
//! collector that never answers, or is not there, neither slows nor fails a request.

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
#[path = "support/procs.rs"]
mod procs;
#[path = "support/secrets.rs"]
mod secrets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::Span;
use otlp_receiver::{Blackhole, Receiver, attr, hex, tree};
use procs::{WardProcess, free_port};
use secrets::{WalkedLogin, id_token_hint, last_bearer, leaked};
use ward_testkit::{Browser, EchoUpstream, Idp, IdpOptions};

const KEY: &str = "trc1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// A browser-chosen trace context, sampled flag set: Ward must neither adopt nor forward it.
const BROWSER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const BROWSER_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// How long the spans of a request may take to arrive (batch delay set to 100 ms).
const ARRIVAL: Duration = Duration::from_secs(20);

const SPAN_KIND_INTERNAL: i32 = 1;
const SPAN_KIND_SERVER: i32 = 2;
const SPAN_KIND_CLIENT: i32 = 3;

#[tokio::test]
async fn http_export_has_one_tree_per_request_and_no_secret() {
    traced_session(Receiver::http().await, "http").await;
}

#[tokio::test]
async fn grpc_export_has_one_tree_per_request_and_no_secret() {
    traced_session(Receiver::grpc().await, "grpc").await;
}

/// With `sampling_ratio = 0` a browser's sampled `traceparent` forces nothing: no span of the
/// request is exported, and the upstream gets Ward's own, unsampled trace context.
#[tokio::test]
async fn a_browser_cannot_force_sampling() {
    let receiver = Receiver::http().await;
    let mut stack = Stack::start_sampled(&receiver.endpoint, "http", "0.0").await;
    let origin = stack.ward.origin.clone();
    let browser = Browser::new().unwrap();
    WalkedLogin::walk(&browser, &origin, "alice", || stack.ward.output.text()).await;
    let api = browser
        .request(reqwest::Method::GET, format!("{origin}/api/things"))
        .header("traceparent", BROWSER_TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status, 200);
    let sent = stack.upstream.last().expect("the upstream was called");
    let traceparent = sent.header("traceparent").expect("traceparent");
    assert!(!traceparent.contains(BROWSER_TRACE), "{traceparent}");
    assert!(traceparent.ends_with("-00"), "unsampled: {traceparent}");
    // Shutdown flushes whatever was queued: once Ward has exited, all it would export is in.
    stack.ward.terminate();
    let status = stack.ward.exited_within(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let spans = spans_of(&receiver);
    assert!(
        spans.iter().all(|s| s.kind != SPAN_KIND_SERVER),
        "a sampled-out request was exported: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}

/// With a batch delay far beyond the test, the spans of a request still reach the collector:
/// SIGTERM flushes them before Ward exits.
#[tokio::test]
async fn shutdown_flushes_the_queued_spans() {
    let receiver = Receiver::grpc().await;
    let mut stack = Stack::start_with(&receiver.endpoint, "grpc", "1.0", "600000").await;
    let reply = Browser::new()
        .unwrap()
        .get(stack.ward.url("/bff/user"))
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    stack.ward.terminate();
    let status = stack.ward.exited_within(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let spans = spans_of(&receiver);
    let user = server_span(&spans, "/bff/user").expect("flushed at shutdown");
    assert_eq!(user.name, "GET /bff/user");
    assert_eq!(
        attr(&user.attributes, "http.response.status_code").as_deref(),
        Some("401")
    );
}

fn spans_of(receiver: &Receiver) -> Vec<Span> {
    receiver.spans().into_iter().map(|(_, s)| s).collect()
}

#[tokio::test]
async fn a_collector_that_never_answers_neither_slows_nor_fails_requests() {
    let blackhole = Blackhole::start().await;
    requests_stay_prompt(&blackhole.endpoint, "http").await;
}

#[tokio::test]
async fn a_closed_collector_port_neither_slows_nor_fails_requests() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    requests_stay_prompt(&closed, "grpc").await;
}

/// Everything a test needs running: the IdP, the upstream, and Ward exporting to `endpoint`.
struct Stack {
    _idp: Idp,
    upstream: EchoUpstream,
    ward: WardProcess,
    _dir: tempfile::TempDir,
}

impl Stack {
    async fn start(endpoint: &str, protocol: &str) -> Self {
        Self::start_with(endpoint, protocol, "1.0", "100").await
    }

    async fn start_sampled(endpoint: &str, protocol: &str, ratio: &str) -> Self {
        Self::start_with(endpoint, protocol, ratio, "100").await
    }

    /// `batch_delay_ms`: `OTEL_BSP_SCHEDULE_DELAY`, how long finished spans wait for export.
    async fn start_with(endpoint: &str, protocol: &str, ratio: &str, batch_delay_ms: &str) -> Self {
        let port = free_port();
        let origin = format!("http://localhost:{port}");
        // Refresh tokens on every login, access tokens inside the 60 s refresh skew: each API
        // call refreshes (an `idp refresh` span), each logout revokes (`idp revocation`).
        let mut options = IdpOptions::new(origin.clone());
        options.always_refresh = true;
        options.at_ttl = Some(30);
        let idp = Idp::start(options).await.expect("start the IdP");
        let upstream = EchoUpstream::start().await.expect("start the upstream");
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), port, &idp, &upstream, endpoint, protocol, ratio);
        let ward = WardProcess::start_with_env(
            dir.path(),
            &config,
            port,
            &[("OTEL_BSP_SCHEDULE_DELAY", batch_delay_ms)],
        )
        .await;
        Self {
            _idp: idp,
            upstream,
            ward,
            _dir: dir,
        }
    }
}

/// An API call carrying a browser's `traceparent` and `tracestate`; the `traceparent` the
/// upstream received (the browser's `tracestate` never reaches it).
async fn api_call_with_a_browser_context(browser: &Browser, stack: &Stack) -> String {
    let origin = &stack.ward.origin;
    let api = browser
        .request(reqwest::Method::GET, format!("{origin}/api/things?page=2"))
        .header("traceparent", BROWSER_TRACEPARENT)
        .header("tracestate", "browser=chosen")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status, 200);
    let sent = stack.upstream.last().expect("the upstream was called");
    assert_eq!(
        sent.header("tracestate"),
        None,
        "browser tracestate dropped"
    );
    sent.header("traceparent").expect("traceparent").to_owned()
}

async fn traced_session(receiver: Receiver, protocol: &str) {
    let stack = Stack::start(&receiver.endpoint, protocol).await;
    let origin = stack.ward.origin.clone();
    let browser = Browser::new().unwrap();
    let login = WalkedLogin::walk(&browser, &origin, "alice", || stack.ward.output.text()).await;
    let me = browser.get(format!("{origin}/bff/user")).await.unwrap();
    let csrf = me.json().unwrap()["csrfToken"].as_str().unwrap().to_owned();
    let upstream_traceparent = api_call_with_a_browser_context(&browser, &stack).await;
    let access_token = last_bearer(&stack.upstream);
    let logout = browser
        .post(format!("{origin}/bff/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status, 200);
    let id_token = id_token_hint(&logout);

    let arrived = receiver
        .wait_for(ARRIVAL, |spans| {
            server_span(spans, "/api/things").is_some()
                && server_span(spans, "/bff/logout").is_some()
                && spans
                    .iter()
                    .any(|s| s.name == "GET /api" && s.kind == SPAN_KIND_CLIENT)
        })
        .await;
    assert!(arrived, "spans never arrived\n{}", stack.ward.output.text());
    let all = receiver.spans();
    assert!(all.iter().all(|(service, _)| service == "ward-under-test"));
    let spans = spans_of(&receiver);

    let api_span = server_span(&spans, "/api/things").unwrap();
    let callback_span = server_span(&spans, "/bff/callback").expect("callback span");
    let logout_span = server_span(&spans, "/bff/logout").unwrap();
    for (request, span) in [
        ("GET /bff/callback", callback_span),
        ("GET /api/things", api_span),
        ("POST /bff/logout", logout_span),
    ] {
        eprintln!("--- {protocol}: {request} ---\n{}", tree(&spans, span));
    }
    eprintln!("upstream received traceparent: {upstream_traceparent}");
    let logout_children: Vec<&str> = children(&spans, logout_span)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        logout_children.contains(&"idp revocation"),
        "{logout_children:?}"
    );
    assert_the_api_tree(&spans, api_span, &upstream_traceparent);
    assert_the_callback_tree(&spans, callback_span);

    let secrets = login
        .with(csrf, access_token, id_token)
        .named_with_configured(KEY);
    assert_no_secret_in(&receiver.dump(), &secrets);
}

/// No secret of the walk, nothing JWT-shaped, no query and no browser `tracestate` in `dump`.
fn assert_no_secret_in(dump: &str, secrets: &[secrets::Secret]) {
    let found = leaked(dump, secrets);
    assert!(found.is_empty(), "exported spans hold: {found:?}");
    assert!(
        !dump.contains("eyJ"),
        "exported spans hold something JWT-shaped"
    );
    assert!(!dump.contains("page=2"), "a query reached a span");
    assert!(
        !dump.contains("browser=chosen"),
        "the browser's tracestate reached a span"
    );
}

/// The server span of the request for `path`.
fn server_span<'a>(spans: &'a [Span], path: &str) -> Option<&'a Span> {
    spans.iter().find(|s| {
        s.kind == SPAN_KIND_SERVER && attr(&s.attributes, "url.path").as_deref() == Some(path)
    })
}

fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id)
        .collect()
}

/// Root server span (HTTP conventions), a link to the browser's context but a trace of its
/// own, store/open/upstream children, and the upstream span as the upstream's parent.
fn assert_the_api_tree(spans: &[Span], api: &Span, upstream_traceparent: &str) {
    assert_eq!(api.name, "GET /api");
    assert!(api.parent_span_id.is_empty(), "the server span is a root");
    assert_ne!(
        hex(&api.trace_id),
        BROWSER_TRACE,
        "browser trace id adopted"
    );
    assert_eq!(
        attr(&api.attributes, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(attr(&api.attributes, "http.route").as_deref(), Some("/api"));
    assert_eq!(
        attr(&api.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(&api.attributes, "server.address").as_deref(),
        Some("localhost")
    );
    assert!(
        api.links.iter().any(|l| hex(&l.trace_id) == BROWSER_TRACE),
        "the browser's context is kept as a link"
    );
    let kids = children(spans, api);
    let names: Vec<&str> = kids.iter().map(|s| s.name.as_str()).collect();
    for expected in ["idp refresh", "session seal"] {
        assert!(names.contains(&expected), "no {expected} in {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("store ")), "{names:?}");
    let upstream = kids
        .iter()
        .find(|s| s.kind == SPAN_KIND_CLIENT && s.name == "GET /api")
        .unwrap_or_else(|| panic!("no upstream span among {names:?}"));
    assert_eq!(
        upstream_traceparent,
        format!("00-{}-{}-01", hex(&api.trace_id), hex(&upstream.span_id)),
        "the upstream's parent is the upstream span"
    );
    assert_eq!(
        attr(&upstream.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
}

/// The callback: the token exchange with the IdP, sealing, store writes, all children.
fn assert_the_callback_tree(spans: &[Span], callback: &Span) {
    assert_eq!(callback.name, "GET /bff/callback");
    let kids = children(spans, callback);
    let names: Vec<&str> = kids.iter().map(|s| s.name.as_str()).collect();
    // The pending login is read (store, open), the code exchanged, the session sealed, stored.
    for expected in ["idp token", "session open", "session seal"] {
        assert!(names.contains(&expected), "no {expected} in {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("store ")), "{names:?}");
    let token = kids.iter().find(|s| s.name == "idp token").unwrap();
    assert_eq!(token.kind, SPAN_KIND_CLIENT);
    let seal = kids.iter().find(|s| s.name == "session seal").unwrap();
    assert_eq!(seal.kind, SPAN_KIND_INTERNAL);
}

/// With the exporter pointed at `endpoint` (which never answers, or refuses), a login, API
/// calls and many cheap requests are all served promptly, and SIGTERM still exits in bounded
/// time.
async fn requests_stay_prompt(endpoint: &str, protocol: &str) {
    let mut stack = Stack::start(endpoint, protocol).await;
    let origin = stack.ward.origin.clone();
    let browser = Browser::new().unwrap();
    WalkedLogin::walk(&browser, &origin, "alice", || stack.ward.output.text()).await;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for i in 0..60 {
        let path = if i % 2 == 0 {
            "/bff/user"
        } else {
            "/api/things"
        };
        let sent = Instant::now();
        let reply = browser.get(format!("{origin}{path}")).await.unwrap();
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        slowest = slowest.max(sent.elapsed());
    }
    let total = started.elapsed();
    eprintln!("{protocol} collector {endpoint}: 60 requests in {total:?}, slowest {slowest:?}");
    // The exporter's timeout is 10 s: a request waiting on it would take that long.
    assert!(
        slowest < Duration::from_secs(2),
        "slowest request {slowest:?}"
    );
    assert!(
        total < Duration::from_secs(15),
        "60 requests took {total:?}"
    );

    let stopping = Instant::now();
    stack.ward.terminate();
    let status = stack
        .ward
        .exited_within(Duration::from_secs(30))
        .await
        .expect("ward exits after SIGTERM");
    eprintln!("exit after SIGTERM in {:?}", stopping.elapsed());
    assert!(status.success(), "{status:?}\n{}", stack.ward.output.text());
    // Drain (nothing in flight) plus at most the 5 s flush bound.
    assert!(
        stopping.elapsed() < Duration::from_secs(12),
        "shutdown took {:?}",
        stopping.elapsed()
    );
}

fn write_config(
    dir: &Path,
    port: u16,
    idp: &Idp,
    upstream: &EchoUpstream,
    endpoint: &str,
    protocol: &str,
    ratio: &str,
) -> PathBuf {
    let extra = format!(
        r#"
[logout]
id_token_hint = true

[telemetry]
log_format = "json"
log_level = "info"
otlp_endpoint = "{endpoint}"
otlp_protocol = "{protocol}"
service_name = "ward-under-test"
sampling_ratio = {ratio}

[[routes]]
prefix = "/api"
upstream = "{api}"
token = "user"
"#,
        api = upstream.url(),
    );
    procs::write_served_config(dir, port, idp.issuer(), KEY, &extra)
}
