//! A composite's trace (SPEC §8, docs/aggregation.md): the real `ward serve` exports over OTLP
//! to a receiver. The composite request is one server span with the composite's path as its
//! route; each part is a child span, and its upstream call a client span inside it, whose id
//! is the parent id of the `traceparent` that part's upstream received.

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
#[path = "support/parts_upstream.rs"]
mod parts_upstream;
#[path = "support/procs.rs"]
mod procs;

use std::path::{Path, PathBuf};
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use otlp_receiver::{Receiver, attr, hex, tree};
use parts_upstream::PartsUpstream;
use procs::{WardProcess, free_port};
use ward_testkit::{Browser, Idp, IdpOptions};

const KEY: &str = "ctr1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// How long the spans of a request may take to arrive (batch delay set to 100 ms).
const ARRIVAL: Duration = Duration::from_secs(20);
const SPAN_KIND_SERVER: i32 = 2;
const SPAN_KIND_CLIENT: i32 = 3;

#[tokio::test]
async fn each_part_is_a_child_span_around_its_upstream_call() {
    let receiver = Receiver::http().await;
    let port = free_port();
    let idp = Idp::start(IdpOptions::new(format!("http://localhost:{port}")))
        .await
        .expect("start the IdP");
    let parts = PartsUpstream::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), port, &idp, &parts, &receiver.endpoint);
    let ward = WardProcess::start_with_env(
        dir.path(),
        &config,
        port,
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let reply = Browser::new()
        .unwrap()
        .get(ward.url("/open/board"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());

    let arrived = receiver
        .wait_for(ARRIVAL, |spans| {
            spans.iter().filter(|s| s.kind == SPAN_KIND_CLIENT).count() >= 2
                && server_span(spans).is_some()
        })
        .await;
    assert!(arrived, "spans never arrived\n{}", ward.output.text());
    let spans: Vec<Span> = receiver.spans().into_iter().map(|(_, s)| s).collect();
    let server = server_span(&spans).expect("the composite's server span");
    eprintln!("{}", tree(&spans, server));
    assert_eq!(server.name, "GET /open/board");
    assert_eq!(
        attr(&server.attributes, "http.route").as_deref(),
        Some("/open/board")
    );
    for (name, path) in [("a", "/open/profile"), ("b", "/open/orders")] {
        let part = only(children(&spans, server), |s| {
            s.name == format!("part {name}")
        });
        assert_eq!(attr(&part.attributes, "ward.part").as_deref(), Some(name));
        assert_eq!(
            attr(&part.attributes, "http.route").as_deref(),
            Some("/open")
        );
        let upstream = only(children(&spans, part), |s| s.kind == SPAN_KIND_CLIENT);
        assert_eq!(upstream.name, "GET /open");
        let received = parts.seen_at(path);
        let traceparent = received.header("traceparent").expect("traceparent");
        assert_eq!(
            traceparent,
            format!("00-{}-{}-01", hex(&server.trace_id), hex(&upstream.span_id)),
            "{name}: the upstream's parent is its own client span"
        );
    }
}

fn server_span(spans: &[Span]) -> Option<&Span> {
    spans.iter().find(|s| {
        s.kind == SPAN_KIND_SERVER
            && attr(&s.attributes, "url.path").as_deref() == Some("/open/board")
    })
}

fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id)
        .collect()
}

#[track_caller]
fn only(spans: Vec<&Span>, matches: impl Fn(&Span) -> bool) -> &Span {
    let found: Vec<&Span> = spans.into_iter().filter(|s| matches(s)).collect();
    let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(found.len(), 1, "{names:?}");
    found[0]
}

fn write_config(
    dir: &Path,
    port: u16,
    idp: &Idp,
    parts: &PartsUpstream,
    endpoint: &str,
) -> PathBuf {
    let extra = format!(
        r#"
[telemetry]
log_format = "json"
otlp_endpoint = "{endpoint}"
otlp_protocol = "http"
service_name = "ward-under-test"

[[routes]]
prefix = "/open"
upstream = "{upstream}"
token = "none"

[[composites]]
path = "/open/board"
parts = {{ a = "/open/profile", b = "/open/orders" }}
"#,
        upstream = parts.url(),
    );
    procs::write_served_config(dir, port, idp.issuer(), KEY, &extra)
}
