//! OTLP/HTTP export through the egress proxy (SPEC §7 `[outbound]`): the real `ward serve`,
//! with `HTTP_PROXY` naming a Debian `tinyproxy` started here, sends its spans to a decoding
//! OTLP receiver through that proxy, as the proxy's log shows.

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
#[path = "support/procs.rs"]
mod procs;
#[path = "support/tinyproxy.rs"]
mod tinyproxy;

use std::path::Path;
use std::time::Duration;

use otlp_receiver::Receiver;
use procs::{WardProcess, free_port};
use tinyproxy::{Tinyproxy, have_tinyproxy};
use ward_testkit::{Browser, Idp, IdpOptions};

const KEY: &str = "eotl:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// How long the spans of a request may take to arrive (batch delay set to 100 ms).
const ARRIVAL: Duration = Duration::from_secs(20);

fn write_config(dir: &Path, port: u16, issuer: &str, endpoint: &str) -> std::path::PathBuf {
    let extra = format!(
        r#"
[telemetry]
otlp_endpoint = "{endpoint}"
otlp_protocol = "http"
"#
    );
    procs::write_served_config(dir, port, issuer, KEY, &extra)
}

#[tokio::test]
async fn otlp_http_export_goes_through_the_http_proxy() {
    if !have_tinyproxy() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let proxy = Tinyproxy::start(dir.path());
    let receiver = Receiver::http().await;
    let port = free_port();
    let idp = Idp::start(IdpOptions::new(format!("http://localhost:{port}")))
        .await
        .expect("start the IdP");
    let config = write_config(dir.path(), port, idp.issuer(), &receiver.endpoint);
    let proxy_url = proxy.url();
    let ward = WardProcess::start_with_env(
        dir.path(),
        &config,
        port,
        &[
            ("HTTP_PROXY", proxy_url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let me = Browser::new()
        .unwrap()
        .get(ward.url("/bff/user"))
        .await
        .expect("GET /bff/user");
    assert_eq!(me.status, 401);
    assert!(
        receiver.wait_for(ARRIVAL, |spans| !spans.is_empty()).await,
        "no span arrived; Ward's output:\n{}",
        ward.output.text()
    );
    let post = format!(
        "POST {}/v1/traces HTTP/1.1",
        receiver.endpoint.trim_end_matches('/')
    );
    let log = proxy.log();
    assert!(
        log.contains(&post),
        "the proxy saw no `{post}`; its log:\n{log}"
    );
}
