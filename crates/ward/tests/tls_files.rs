//! Loading `[server] tls_cert` / `tls_key` (no server): the key forms operators have (PKCS#8,
//! and the traditional PKCS#1 RSA and SEC1 EC that `openssl` writes), and a bad pair refused
//! with a message naming the file and never quoting it. Reloading a bad pair keeps the old one.

#[path = "support/tls.rs"]
mod tls;

use std::path::Path;
use std::process::Command;

use ward::config::ServerConfig;
use ward::tls::{Termination, TlsError, Trigger};

fn server(dir: &Path) -> ServerConfig {
    let mut server: ServerConfig = toml::from_str("").expect("defaults");
    server.tls_cert = Some(dir.join("cert.pem"));
    server.tls_key = Some(dir.join("key.pem"));
    server
}

/// `openssl pkey -traditional`: the PKCS#1 (RSA) or SEC1 (EC) form of a PKCS#8 key.
fn traditional(pkcs8_pem: &str, dir: &Path) -> String {
    let input = dir.join("pkcs8.pem");
    std::fs::write(&input, pkcs8_pem).expect("write the key");
    let out = Command::new("openssl")
        .args(["pkey", "-traditional", "-in"])
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("openssl (Debian package openssl) is required: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("PEM")
}

#[test]
fn pkcs8_pkcs1_and_sec1_keys_of_rsa_and_ec_certificates_load() {
    let ca = tls::TestCa::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let ec = ca.leaf("ec");
    let rsa_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let rsa = ca.leaf_with_key("rsa", rsa_key);
    for (leaf, header) in [
        (&ec, "BEGIN EC PRIVATE KEY"),
        (&rsa, "BEGIN RSA PRIVATE KEY"),
    ] {
        for key_pem in [leaf.key_pem.clone(), traditional(&leaf.key_pem, dir.path())] {
            std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem).expect("cert");
            std::fs::write(dir.path().join("key.pem"), &key_pem).expect("key");
            let tls = Termination::from_config(&server(dir.path()))
                .unwrap_or_else(|e| panic!("{header} form: {e}"))
                .expect("TLS on");
            let info = tls.certificate();
            assert_eq!(info.fingerprint_sha256, leaf.fingerprint);
            assert!(!info.out_of_validity, "{info:?}");
            assert!(info.not_after.ends_with('Z'), "{info:?}");
        }
        assert!(traditional(&leaf.key_pem, dir.path()).contains(header));
    }
}

#[test]
fn without_tls_cert_there_is_no_termination() {
    let server: ServerConfig = toml::from_str("").expect("defaults");
    assert!(
        Termination::from_config(&server)
            .expect("no error")
            .is_none()
    );
}

/// What a case's error must be.
type Expected = fn(&TlsError) -> bool;

#[test]
fn a_bad_pair_is_refused_naming_the_file_without_quoting_it() {
    let ca = tls::TestCa::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (ca.leaf("a"), ca.leaf("b"));
    let secret_line = b.key_pem.lines().nth(1).expect("a base64 line").to_owned();
    let cases: [(&str, String, Expected); 5] = [
        (&a.cert_pem, b.key_pem.clone(), |e| {
            matches!(e, TlsError::KeyMismatch { .. })
        }),
        (&a.cert_pem, a.cert_pem.clone(), |e| {
            matches!(e, TlsError::NoKey(_))
        }),
        (&a.key_pem, a.key_pem.clone(), |e| {
            matches!(e, TlsError::NoCertificate(_))
        }),
        // A key whose base64 is broken mid-way: the error must not echo its lines.
        (
            &a.cert_pem,
            b.key_pem
                .replacen(&secret_line, &format!("{secret_line}!"), 1),
            |e| matches!(e, TlsError::Pem { .. } | TlsError::UnusableKey { .. }),
        ),
        (
            &a.cert_pem,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n".to_owned(),
            |e| matches!(e, TlsError::Pem { .. }),
        ),
    ];
    for (index, (cert, key, expected)) in cases.iter().enumerate() {
        std::fs::write(dir.path().join("cert.pem"), cert).expect("cert");
        std::fs::write(dir.path().join("key.pem"), key).expect("key");
        let err = Termination::from_config(&server(dir.path()))
            .err()
            .unwrap_or_else(|| panic!("case {index}: a bad pair was accepted"));
        assert!(expected(&err), "case {index}: {err:?}");
        let message = format!("{err} {err:?}");
        assert!(
            message.contains(".pem"),
            "case {index}: names no file: {message}"
        );
        assert!(
            !message.contains(&secret_line) && !message.contains("AAAA"),
            "case {index}: quotes the file: {message}"
        );
    }
}

#[test]
fn reloading_a_bad_pair_keeps_the_served_one_and_a_good_one_replaces_it() {
    let ca = tls::TestCa::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (ca.leaf("a"), ca.leaf("b"));
    a.install(dir.path());
    let tls = Termination::from_config(&server(dir.path()))
        .expect("pair a")
        .expect("TLS on");
    // Unchanged files: a file event reloads nothing; SIGHUP reloads all the same.
    assert_eq!(tls.reload(Trigger::FileChange).expect("no error"), None);
    assert!(tls.reload(Trigger::Signal).expect("same pair").is_some());
    // b's certificate with a's key.
    std::fs::write(dir.path().join("cert.pem"), &b.cert_pem).expect("cert");
    assert!(matches!(
        tls.reload(Trigger::FileChange),
        Err(TlsError::KeyMismatch { .. })
    ));
    assert_eq!(tls.certificate().fingerprint_sha256, a.fingerprint);
    // The same refused pair again: nothing new to say.
    assert_eq!(tls.reload(Trigger::FileChange).expect("no error"), None);
    b.install(dir.path());
    let served = tls
        .reload(Trigger::FileChange)
        .expect("pair b")
        .expect("reloaded");
    assert_eq!(served.fingerprint_sha256, b.fingerprint);
    assert_eq!(tls.certificate(), served);
}

#[test]
fn serve_with_a_bad_pair_exits_before_anything_else_naming_the_files() {
    let ca = tls::TestCa::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (ca.leaf("a"), ca.leaf("b"));
    std::fs::write(dir.path().join("cert.pem"), &a.cert_pem).expect("cert");
    std::fs::write(dir.path().join("key.pem"), &b.key_pem).expect("key");
    // No IdP and no store server: the pair is checked before either is reached.
    let config = dir.path().join("ward.toml");
    std::fs::write(
        &config,
        "[server]\npublic_url = \"https://ward.example\"\ntls_cert = \"cert.pem\"\n\
         tls_key = \"key.pem\"\n\n[oidc]\nissuer = \"https://127.0.0.1:9\"\nclient_id = \"c\"\n\
         client_secret = \"s\"\n\n[store]\nkind = \"memory\"\n\n[crypto]\n\
         keys = [\"k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"]\n",
    )
    .expect("config");
    let run = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run ward");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("server.tls_cert")
            && stderr.contains("key.pem does not belong to the certificate in")
            && !stderr.contains("discovery"),
        "{stderr}"
    );
    for line in b.key_pem.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!stderr.contains(line), "key material in:\n{stderr}");
    }
}
