//! Certificate rotation in the real binary (SPEC §7: reloaded on SIGHUP and when the files
//! change, a Kubernetes secret volume's update included): new connections get the new
//! certificate from the same process, connections opened before keep working, and a broken new
//! pair keeps the old certificate. Every wait polls for
//! an event (a certificate served, a line logged) with a generous deadline.

mod common;
#[path = "support/served.rs"]
mod served;
#[path = "support/tls.rs"]
mod tls;
#[path = "support/tls_ward.rs"]
mod tls_ward;

use std::process::Command;

use tls::{Client, TestCa, connect, negotiated, wait_for_certificate};
use tls_ward::TlsWard;

#[tokio::test]
async fn rotated_files_reach_new_connections_while_open_ones_keep_working() {
    let ca = TestCa::new();
    let (a, b, c) = (ca.leaf("a"), ca.leaf("b"), ca.leaf("c"));
    let mut ward = TlsWard::start(ca, &a, "").await;
    let pid = ward.ward.pid();
    let client = ward.ca.client(&[b"h2", b"http/1.1"]);
    let early = connect(&client, ward.addr).await.expect("connect");
    assert_eq!(negotiated(&early).1, a.fingerprint);
    let mut early = Client::on(early).await;
    assert_eq!(early.get("/bff/user").await.expect("early").status, 401);

    // Replaced as certificate managers do it: complete files renamed over the old ones.
    b.install(&ward.tls_dir);
    let output = || ward.output();
    wait_for_certificate(&client, ward.addr, &b.fingerprint, output).await;
    ward.logged(
        &["tls_certificate_loaded", "file_change", &b.fingerprint],
        1,
    )
    .await;
    assert_eq!(early.get("/bff/user").await.expect("early").status, 401);

    // A broken pair (c's certificate, b's key): refused, b stays.
    let failures = ward.output().matches("tls_reload_failed").count();
    let staged = ward.tls_dir.join("cert.pem.staged");
    std::fs::write(&staged, &c.cert_pem).expect("write");
    std::fs::rename(&staged, ward.tls_dir.join("cert.pem")).expect("rename");
    ward.logged(&["tls_reload_failed"], failures + 1).await;
    assert!(
        ward.output().contains("does not belong to the certificate"),
        "{}",
        ward.output()
    );
    let fresh = connect(&client, ward.addr).await.expect("connect");
    assert_eq!(
        negotiated(&fresh).1,
        b.fingerprint,
        "the broken pair was served"
    );
    assert_eq!(early.get("/bff/user").await.expect("early").status, 401);

    assert_one_process(&mut ward, pid, &[&a, &b, &c]);
}

#[tokio::test]
async fn sighup_reloads_the_files_also_where_the_watcher_cannot_see() {
    // tls/cert.pem and tls/key.pem are symlinks into store/, rewritten in place there: no entry
    // of tls/ changes, so only SIGHUP tells Ward.
    let ca = TestCa::new();
    let (a, b) = (ca.leaf("a"), ca.leaf("b"));
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, tls_dir) = (dir.path().join("store"), dir.path().join("tls"));
    std::fs::create_dir(&store).expect("store dir");
    std::fs::create_dir(&tls_dir).expect("tls dir");
    for name in ["cert.pem", "key.pem"] {
        std::os::unix::fs::symlink(store.join(name), tls_dir.join(name)).expect("symlink");
    }
    a.install(&store);
    let mut ward = TlsWard::start_in(ca, dir, tls_dir, "").await;
    let pid = ward.ward.pid();
    let client = ward.ca.client(&[b"http/1.1"]);
    let mut early = Client::on(connect(&client, ward.addr).await.expect("connect")).await;
    assert_eq!(early.get("/up/before").await.expect("early").status, 200);

    std::fs::write(store.join("cert.pem"), &b.cert_pem).expect("write");
    std::fs::write(store.join("key.pem"), &b.key_pem).expect("write");
    let sent = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -HUP {pid}");
    wait_for_certificate(&client, ward.addr, &b.fingerprint, || ward.output()).await;
    ward.logged(&["tls_certificate_loaded", "signal", &b.fingerprint], 1)
        .await;
    assert_eq!(early.get("/up/after").await.expect("early").status, 200);

    assert_one_process(&mut ward, pid, &[&a, &b]);
}

#[tokio::test]
async fn a_kubernetes_secret_volume_update_is_picked_up() {
    // The kubelet's layout: tls/cert.pem -> ..data/cert.pem, ..data -> ..<timestamp>/; an
    // update writes a new timestamped directory and renames a new ..data link over the old.
    let ca = TestCa::new();
    let (a, b) = (ca.leaf("a"), ca.leaf("b"));
    let dir = tempfile::tempdir().expect("temp dir");
    let volume = dir.path().join("tls");
    std::fs::create_dir(&volume).expect("volume");
    publish(&volume, "..2026_12_07_01", &a);
    for name in ["cert.pem", "key.pem"] {
        std::os::unix::fs::symlink(format!("..data/{name}"), volume.join(name)).expect("link");
    }
    let mut ward = TlsWard::start_in(ca, dir, volume.clone(), "").await;
    let pid = ward.ward.pid();
    let client = ward.ca.client(&[b"h2"]);
    let mut early = Client::on(connect(&client, ward.addr).await.expect("connect")).await;

    publish(&volume, "..2026_12_07_02", &b);
    wait_for_certificate(&client, ward.addr, &b.fingerprint, || ward.output()).await;
    ward.logged(
        &["tls_certificate_loaded", "file_change", &b.fingerprint],
        1,
    )
    .await;
    assert_eq!(early.get("/bff/user").await.expect("early").status, 401);
    assert_one_process(&mut ward, pid, &[&a, &b]);
}

/// Writes `leaf` into `volume/<version>/` and points `volume/..data` at it atomically, as the
/// kubelet's atomic writer does.
fn publish(volume: &std::path::Path, version: &str, leaf: &tls::Leaf) {
    let data = volume.join(version);
    std::fs::create_dir(&data).expect("version dir");
    std::fs::write(data.join("cert.pem"), &leaf.cert_pem).expect("cert");
    std::fs::write(data.join("key.pem"), &leaf.key_pem).expect("key");
    let staged = volume.join("..data_tmp");
    std::os::unix::fs::symlink(version, &staged).expect("staged link");
    std::fs::rename(&staged, volume.join("..data")).expect("swap ..data");
}

/// The same process served throughout: running, one start, and no key material in its log.
fn assert_one_process(ward: &mut TlsWard, pid: u32, leaves: &[&tls::Leaf]) {
    assert_eq!(ward.ward.pid(), pid);
    assert!(ward.ward.is_running(), "ward exited:\n{}", ward.output());
    let output = ward.output();
    assert_eq!(
        output.matches("\"listening\"").count(),
        1,
        "ward started more than once:\n{output}"
    );
    for leaf in leaves {
        for line in leaf
            .key_pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
        {
            assert!(!output.contains(line), "key material in the log:\n{output}");
        }
    }
}
