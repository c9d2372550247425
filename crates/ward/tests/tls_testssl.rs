//! `testssl.sh` (Debian package `testssl.sh`) against the real binary terminating TLS on a
//! loopback port: protocols, cipher categories, forward secrecy, server defaults, HTTP headers
//! and the vulnerability checks, with its JSON findings parsed. Nothing of severity HIGH or
//! CRITICAL may be found. The test CA is given to testssl (`--add-ca`), so the chain of trust
//! is judged as a browser trusting that CA would judge it. One finding is about the test
//! certificate rather than Ward and is filtered, with its reason, in [`INHERENT`].

mod common;
#[path = "support/served.rs"]
mod served;
#[path = "support/tls.rs"]
mod tls;
#[path = "support/tls_ward.rs"]
mod tls_ward;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use tls::TestCa;
use tls_ward::TlsWard;

/// The checks run: everything but the slow per-cipher enumeration (`-e`/`-E`) and the
/// client simulations, which judge nothing about Ward's own settings. (`--fast` saves nothing
/// here and leaves RC4 untested with Debian's OpenSSL.)
const CHECKS: &[&str] = &[
    "--protocols",
    "--std",
    "--fs",
    "--server-defaults",
    "--headers",
    "--vulnerable",
];

/// Findings about the certificate the test made, not about Ward, which serves whatever
/// certificate it is given: `(id, reason)`.
const INHERENT: &[(&str, &str)] = &[(
    "cert_revocation",
    "the test CA publishes no CRL or OCSP responder, so its leaf names neither; a public CA's \
     certificate does, and Ward serves the operator's certificate as it is",
)];

#[tokio::test]
async fn testssl_finds_nothing_high_or_critical() {
    let ca = TestCa::new();
    let leaf = ca.leaf("ward");
    let ward = TlsWard::start(ca, &leaf, "").await;
    let started = Instant::now();
    let (findings, report) = run_testssl(&ward);
    let mut counts = BTreeMap::<String, usize>::new();
    for finding in &findings {
        *counts.entry(field(finding, "severity")).or_default() += 1;
    }
    let notable = describe(&findings, |f| {
        !matches!(field(f, "severity").as_str(), "OK" | "INFO")
    });
    println!(
        "testssl: {:.1?}, findings per severity: {counts:?}\n{}",
        started.elapsed(),
        notable.join("\n")
    );
    let serious = describe(&findings, |f| {
        matches!(field(f, "severity").as_str(), "HIGH" | "CRITICAL")
            && INHERENT.iter().all(|(id, _)| field(f, "id") != *id)
    });
    assert!(
        serious.is_empty(),
        "testssl found:\n{}\n\n{report}",
        serious.join("\n")
    );
    // It did test Ward: the protocols it found, and the HSTS header.
    for (id, expected) in [
        ("TLS1", "not offered"),
        ("TLS1_1", "not offered"),
        ("TLS1_2", "offered"),
        ("TLS1_3", "offered"),
        ("HSTS_time", "730 days"),
    ] {
        let found = findings
            .iter()
            .find(|f| field(f, "id") == id)
            .map(|f| field(f, "finding"))
            .unwrap_or_else(|| panic!("no {id} finding in\n{report}"));
        assert!(found.contains(expected), "{id}: {found}");
    }
}

/// Runs testssl against `ward` (trusting its test CA); its JSON findings and its report.
fn run_testssl(ward: &TlsWard) -> (Vec<serde_json::Value>, String) {
    let ca_file = ward.dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, ward.ca.pem()).expect("write the CA");
    let json = ward.dir.path().join("testssl.json");
    let run = Command::new("testssl")
        .args(["--quiet", "--color", "0", "--warnings", "batch"])
        .args([
            "--nodns",
            "none",
            "--sneaky",
            "--ip",
            "127.0.0.1",
            "--add-ca",
        ])
        .arg(&ca_file)
        .arg("--jsonfile")
        .arg(&json)
        .args(CHECKS)
        .arg(format!("https://localhost:{}", ward.addr.port()))
        .output()
        .unwrap_or_else(|e| panic!("testssl (Debian package testssl.sh) is required: {e}"));
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("testssl wrote no JSON ({e}); it said:\n{report}"));
    let findings = serde_json::from_str(&text).expect("testssl JSON");
    (findings, report)
}

/// `SEVERITY id: finding` of each finding that `keep` selects.
fn describe(
    findings: &[serde_json::Value],
    keep: impl Fn(&serde_json::Value) -> bool,
) -> Vec<String> {
    findings
        .iter()
        .filter(|f| keep(f))
        .map(|f| {
            let [severity, id, finding] = ["severity", "id", "finding"].map(|n| field(f, n));
            format!("{severity} {id}: {finding}")
        })
        .collect()
}

fn field(finding: &serde_json::Value, name: &str) -> String {
    finding[name].as_str().unwrap_or_default().to_owned()
}
