//! `ward check` with `tls_client_auth` (RFC 8705) against the real IdP with `MTLS=1`: a
//! registered certificate passes (`client credentials accepted`, its thumbprint printed), a
//! certificate of the right CA for another name is `invalid_client` naming `oidc.client_cert`,
//! and a key of another certificate is named before the IdP is asked; no key bytes in any output.

mod common;
#[path = "support/mtls_pki.rs"]
mod mtls_pki;

use std::path::Path;

use mtls_pki::Pki;

/// `ward check --config ward.toml` in `dir` (no `WARD_*` variable of the test's environment):
/// its exit, stdout and stderr.
async fn check(dir: &Path, toml: &str) -> (bool, String, String) {
    std::fs::write(dir.join("ward.toml"), toml).unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ward"));
    command
        .args(["check", "--config", "ward.toml"])
        .current_dir(dir);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("WARD_")) {
        command.env_remove(name);
    }
    let output = command.output().await.expect("run ward check");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (
        output.status.success(),
        text(output.stdout),
        text(output.stderr),
    )
}

fn check_config(issuer: &str, ca_file: &str, cert: &Path, key: &Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://app.example"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_auth = "tls_client_auth"
client_cert = {cert:?}
client_key = {key:?}

[outbound]
ca_file = {ca_file:?}

[store]
kind = "memory"

[crypto]
keys = ["{}"]
"#,
        common::TEST_KEY,
        cert = cert.display().to_string(),
        key = key.display().to_string(),
    )
}

#[tokio::test]
async fn check_accepts_a_registered_certificate_and_names_an_unknown_or_mismatched_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let idp = ward_testkit::Idp::start(
        ward_testkit::IdpOptions::new("https://app.example").with_mtls(pki.idp.clone(), pki.mtls()),
    )
    .await
    .unwrap();
    let client = &pki.client;
    let config = |cert: &Path, key: &Path| check_config(idp.issuer(), &pki.ca_file, cert, key);

    let (ok, stdout, stderr) =
        check(dir.path(), &config(&client.cert_file, &client.key_file)).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("x5t#S256 {}", client.thumbprint)),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "client credentials accepted at the token endpoint (client \"bff\", tls_client_auth)"
        ),
        "{stdout}"
    );

    // A certificate of the right CA for another name: the IdP refuses it.
    let stranger = pki
        .ca
        .write_client(dir.path(), "stranger", "someone-else.test")
        .unwrap();
    let (ok, stdout, stderr) =
        check(dir.path(), &config(&stranger.cert_file, &stranger.key_file)).await;
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("(invalid_client)"), "{stderr}");
    assert!(stderr.contains("oidc.client_cert"), "{stderr}");

    // The key of another certificate: named before the IdP is asked.
    let (ok, stdout, stderr) =
        check(dir.path(), &config(&client.cert_file, &stranger.key_file)).await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("does not belong to the certificate in"),
        "{stderr}"
    );
    assert!(stderr.contains("stranger-key.pem"), "{stderr}");
    for key_file in [&client.key_file, &stranger.key_file] {
        let pem = std::fs::read_to_string(key_file).unwrap();
        let body = pem.lines().nth(1).unwrap();
        for output in [&stdout, &stderr] {
            assert!(!output.contains(body), "key material in the output");
        }
    }
}
