//! Locked-down egress (SPEC §7 `[outbound]`): the IdP is served over TLS with a certificate
//! from a private CA this test makes, and Ward reaches it only through a real forward proxy
//! (Debian `tinyproxy`, started here with its own configuration and log). With `ca_file` the
//! login works and the proxy's log shows the `CONNECT`; without it Ward refuses the IdP with a
//! clear error, in `ward check` and at start.
//!
//! tinyproxy is installed by `scripts/test`; without it the test fails under `CI=true` and is
//! skipped, loudly, elsewhere.

mod common;
#[path = "support/tinyproxy.rs"]
mod tinyproxy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Options, Ward};
use tinyproxy::{Tinyproxy, have_tinyproxy};
use ward_testkit::{Browser, Idp, IdpOptions, IdpTls, TestCa};

/// How long one `ward` command may run (discovery retries for a few seconds on failure).
const PATIENCE: Duration = Duration::from_secs(60);
/// The key ring entry of the binary runs (test-only key).
const KEY: &str = "egr1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// The test's private CA, its certificate file (what `ca_file` names) and the IdP's TLS
/// identity for 127.0.0.1.
struct Pki {
    ca: TestCa,
    ca_file: PathBuf,
    idp: IdpTls,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        let ca = TestCa::new("Ward egress test CA").expect("make the CA");
        let ca_file = ca.write_cert(dir, "private").expect("write the CA");
        let files = ca
            .write_server(dir, "idp", &["127.0.0.1"])
            .expect("make the IdP's certificate");
        let idp = IdpTls {
            cert_file: files.cert_file,
            key_file: files.key_file,
            ca_pem: ca.cert_pem().into_bytes(),
        };
        Self { ca, ca_file, idp }
    }
}

/// The port of an `https://127.0.0.1:<port>` issuer.
fn port_of(issuer: &str) -> u16 {
    url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.port())
        .expect("issuer with a port")
}

#[tokio::test]
async fn login_works_through_a_forward_proxy_to_an_idp_of_a_private_ca() {
    if !have_tinyproxy() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let proxy = Tinyproxy::start(dir.path());
    let pki = Pki::new(dir.path());
    let ward = Ward::start_with(Options {
        idp_tls: Some(pki.idp.clone()),
        extra_toml: format!(
            "\n[outbound]\nca_file = {:?}\n",
            pki.ca_file.display().to_string()
        ),
        env: BTreeMap::from([
            ("HTTPS_PROXY".to_owned(), proxy.url()),
            ("NO_PROXY".to_owned(), "svc.cluster.local".to_owned()),
        ]),
        ..Default::default()
    })
    .await;
    assert!(ward.idp.issuer().starts_with("https://127.0.0.1:"));

    let browser = Browser::trusting(pki.ca.cert_pem().as_bytes()).expect("browser");
    ward.login(&browser, "alice", "/").await;
    let me = browser
        .get(ward.url("/bff/user"))
        .await
        .expect("GET /bff/user");
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json().expect("user JSON")["sub"], "alice");

    let connect = format!("CONNECT 127.0.0.1:{} HTTP/1.1", port_of(ward.idp.issuer()));
    let log = proxy.log();
    assert!(
        log.contains(&connect),
        "the proxy saw no `{connect}`; its log:\n{log}"
    );
}

/// What a finished `ward` run printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `ward <command> --config ward.toml` in `dir` with `HTTPS_PROXY` (and no other proxy or
/// `WARD_*` variable from the test's own environment), killing it after [`PATIENCE`].
fn ward(command: &str, dir: &Path, proxy: &str) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ward"));
    cmd.args([command, "--config", "ward.toml"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        let lower = name.to_ascii_lowercase();
        if name.starts_with("WARD_") || lower.ends_with("_proxy") {
            cmd.env_remove(name);
        }
    }
    cmd.env("HTTPS_PROXY", proxy);
    let child = cmd.spawn().expect("start ward");
    let id = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = finished
        .recv_timeout(PATIENCE)
        .unwrap_or_else(|_| {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("ward {command} still running after {PATIENCE:?}")
        })
        .expect("ward's output");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A `ward.toml` for the IdP at `issuer` in `dir`, with `[outbound] ca_file` when given.
fn write_config(dir: &Path, issuer: &str, ca_file: Option<&Path>) {
    let outbound = ca_file.map_or_else(String::new, |path| {
        format!("[outbound]\nca_file = {:?}\n", path.display().to_string())
    });
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://localhost:8080"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "bff-secret"

[store]
kind = "memory"

[crypto]
keys = ["{KEY}"]

{outbound}"#
    );
    std::fs::write(dir.join("ward.toml"), toml).expect("write ward.toml");
}

#[tokio::test]
async fn without_ca_file_check_and_start_refuse_the_idp_as_untrusted() {
    if !have_tinyproxy() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let proxy = Tinyproxy::start(dir.path());
    let pki = Pki::new(dir.path());
    let mut options = IdpOptions::new("http://localhost:8080");
    options.tls = Some(pki.idp.clone());
    let idp = Idp::start(options).await.expect("start the IdP");
    let proxy_url = proxy.url();
    let runs = tokio::task::spawn_blocking({
        let (workdir, proxy_url) = (dir.path().to_owned(), proxy_url.clone());
        let ca_file = pki.ca_file.clone();
        let idp_issuer = idp.issuer().to_owned();
        move || {
            write_config(&workdir, &idp_issuer, None);
            let check = ward("check", &workdir, &proxy_url);
            let serve = ward("serve", &workdir, &proxy_url);
            write_config(&workdir, &idp_issuer, Some(&ca_file));
            let trusted = ward("check", &workdir, &proxy_url);
            (check, serve, trusted)
        }
    })
    .await
    .expect("ward runner");
    let (check, serve, trusted) = runs;
    let untrusted =
        "IdP's TLS certificate is not trusted (invalid peer certificate: UnknownIssuer)";
    for (name, run) in [("check", &check), ("serve", &serve)] {
        assert!(
            !run.ok,
            "ward {name} accepted an untrusted IdP:\n{}",
            run.stdout
        );
        assert!(
            run.stderr.contains(untrusted) && run.stderr.contains("[outbound] ca_file"),
            "ward {name}:\n{}",
            run.stderr
        );
    }
    assert!(
        trusted.ok,
        "ward check with ca_file:\n{}\n{}",
        trusted.stdout, trusted.stderr
    );
    let expected = format!(
        "+ 1 from {}; proxy for the IdP and OTLP: https via {proxy_url}",
        pki.ca_file.display()
    );
    assert!(trusted.stdout.contains(&expected), "{}", trusted.stdout);
    let connect = format!("CONNECT 127.0.0.1:{} HTTP/1.1", port_of(idp.issuer()));
    assert!(proxy.log().contains(&connect), "{}", proxy.log());
}
