//! `demo/run` checks its three ports before it installs or builds anything: a busy port fails
//! at once, naming the port, what holds it and the variable that moves the demo elsewhere.
//! (The demo's page itself is tested in a real browser by tests/browser.rs.)

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Far more than a port check needs; a demo that got as far as building is killed and fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("bound address").port()
}

/// Runs `demo/run` with the three ports given. PATH holds the system directories only, so a
/// demo that went past its port check would fail for want of cargo rather than build.
fn demo(ward: u16, idp: u16, api: u16) -> Output {
    let mut child = Command::new("bash")
        .arg(ward_testkit::repo_root().join("demo/run"))
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DEMO_WARD_PORT", ward.to_string())
        .env("DEMO_IDP_PORT", idp.to_string())
        .env("DEMO_API_PORT", api.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bash demo/run");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("wait for the demo").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo/run still running after {PATIENCE:?}: it did not stop at a busy port");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("the demo's output")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `ss` (iproute2) is what names the holder; `scripts/test` installs it.
fn require_ss() {
    let found = Command::new("ss")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`ss` (Debian package iproute2) is needed to see who holds a port; scripts/test installs it"
    );
}

#[test]
fn a_busy_port_stops_the_demo_before_it_installs_or_builds_naming_the_holder() {
    require_ss();
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = busy.local_addr().unwrap().port();
    let output = demo(free_port(), port, free_port());
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("port {port} is already in use by ")),
        "the port is named:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("(pid {})", std::process::id())),
        "the holder (this test) is named:\n{stderr}"
    );
    assert!(
        stderr.contains("the test IdP needs it") && stderr.contains("DEMO_IDP_PORT=<free port>"),
        "who needs it and how to move it:\n{stderr}"
    );
    assert!(
        !stdout.contains("Installing") && !stdout.contains("Building"),
        "nothing was installed or built first:\n{stdout}"
    );
    drop(busy);
}

#[test]
fn the_demo_refuses_one_port_for_two_of_its_parts() {
    let port = free_port();
    let output = demo(port, free_port(), port);
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("DEMO_WARD_PORT={port}"))
            && stderr.contains(&format!("DEMO_API_PORT={port}"))
            && stderr.contains("three different ports"),
        "{stderr}"
    );
    assert!(!stdout.contains("Building"), "{stdout}");
}
