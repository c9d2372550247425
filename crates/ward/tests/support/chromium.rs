//! Running an `e2e/*.spec.mjs` script (playwright-core driving Debian's Chromium) against a
//! Ward started by the test: the browser's path, e2e/'s npm packages, a clock that follows the
//! wall clock while the browser runs, and the script's report.
//!
//! A missing Chromium or Node.js fails the test with the command that installs it; it never
//! skips.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;
use tokio::task::JoinHandle;
use ward_store::{Clock, ManualClock, SystemClock};
use ward_testkit::repo_root;

/// Where Debian's `chromium` package puts the browser.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// One script's whole run; each normally takes well under 20 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// The browser to drive; a missing one is a failure with the command that installs it.
pub fn chromium_path() -> PathBuf {
    let path =
        std::env::var_os("CHROMIUM_PATH").map_or_else(|| DEFAULT_CHROMIUM.into(), PathBuf::from);
    assert!(
        path.is_file(),
        "no Chromium at {}: the browser tests need Debian's chromium package \
         (`apt-get install -y chromium`; scripts/test installs it) or CHROMIUM_PATH",
        path.display()
    );
    path
}

pub fn e2e_dir() -> PathBuf {
    repo_root().join("e2e")
}

/// `npm ci` in e2e/ when its packages are missing.
pub async fn install_the_e2e_packages() {
    tokio::task::spawn_blocking(|| ward_testkit::ensure_npm_installed(&e2e_dir()))
        .await
        .expect("the npm install task")
        .unwrap_or_else(|err| panic!("{err:#}"));
}

/// Runs `node e2e/<script>` with `WARD_URL=origin`, `CHROMIUM_PATH` and `env`; prints its
/// report and asserts it finished in time, successfully, to its last line ("E2E OK").
/// `idp_logs` is shown on failure. Returns the report.
pub async fn run_script(
    script: &str,
    origin: &str,
    env: &[(&str, &Path)],
    idp_logs: impl Fn() -> String,
) -> String {
    let mut command = Command::new("node");
    command
        .arg(script)
        .current_dir(e2e_dir())
        .env("WARD_URL", origin)
        .env("CHROMIUM_PATH", chromium_path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = match tokio::time::timeout(SCRIPT_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => {
            panic!("cannot run `node` ({err}): the browser tests need Node.js >= 20.19 on PATH")
        }
        Err(_) => panic!(
            "e2e/{script} did not finish within {SCRIPT_TIMEOUT:?}; the IdP's log:\n{}",
            idp_logs()
        ),
    };
    let report = script_report(script, &output);
    println!("{report}");
    assert!(
        output.status.success(),
        "e2e/{script} failed ({}):\n{report}\nthe IdP's log:\n{}",
        output.status,
        idp_logs()
    );
    assert!(
        report.contains("E2E OK"),
        "e2e/{script} did not finish:\n{report}"
    );
    report
}

/// The script's stdout and stderr (it prints no token, cookie or CSRF value).
fn script_report(script: &str, output: &Output) -> String {
    format!(
        "--- e2e/{script} stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Advances `clock` to the wall clock once a second until the returned task is dropped: the
/// harness's clock stands still, a browser run takes real seconds, and ID tokens are checked
/// against it.
pub fn follow_wall_clock(clock: Arc<ManualClock>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let (wall, now) = (SystemClock.now(), clock.now());
            if wall > now {
                clock.advance(wall - now);
            }
        }
    }))
}

pub struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
