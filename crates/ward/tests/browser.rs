//! The demo page (demo/page/) in a real browser: headless Chromium, driven by
//! `e2e/demo.spec.mjs` (playwright-core), logs in at the real IdP, calls the API through Ward,
//! checks the session cookie's attributes and that no script can reach the session or the CSRF
//! token, tries cross-site POSTs from another site, and logs out at the IdP. This test starts the
//! stack, runs the script, and then checks what the upstream received.
//!
//! Needs Node.js with npm (e2e/'s packages are installed here when missing) and Debian's
//! `chromium` at /usr/bin/chromium (or `CHROMIUM_PATH`); a missing one fails the test, never
//! skips it. Screenshots land in `<target>/tmp/ward-e2e/` (or `E2E_ARTIFACTS_DIR`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Options, Ward};
use tokio::process::Command;
use tokio::task::JoinHandle;
use ward_store::{Clock, ManualClock, SystemClock};
use ward_testkit::repo_root;

/// Where Debian's `chromium` package puts the browser.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// The whole browser run (launch, login, API calls, logout) normally takes under 15 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn demo_page_logs_in_calls_the_api_and_logs_out_in_a_real_browser() {
    let chromium = chromium_path();
    install_the_e2e_packages().await;
    let ward = ward_serving_the_demo_page().await;
    assert_eq!(ward.cookie_name(), "__Host-ward");
    // The harness's clock stands still; a browser run takes real seconds, so let it follow the
    // wall clock (ID tokens are checked against it).
    let _clock = follow_wall_clock(Arc::clone(&ward.clock));

    run_the_demo_script(&ward, &chromium).await;

    assert_the_upstream_saw_only_the_pages_calls(&ward);
    ward.stop().await;
}

/// `npm install` in e2e/ when its packages are missing.
async fn install_the_e2e_packages() {
    tokio::task::spawn_blocking(|| ward_testkit::ensure_npm_installed(&e2e_dir()))
        .await
        .expect("the npm install task")
        .unwrap_or_else(|err| panic!("{err:#}"));
}

/// Ward (with the IdP and the echo API) serving demo/page/ as its static files.
async fn ward_serving_the_demo_page() -> Ward {
    let page_dir = repo_root().join("demo/page");
    assert!(
        page_dir.join("index.html").is_file(),
        "the demo page is missing: {}",
        page_dir.display()
    );
    Ward::start_with(Options {
        extra_toml: format!(
            "[static]\ndir = {}\n",
            toml::Value::String(page_dir.display().to_string())
        ),
        ..Options::default()
    })
    .await
}

/// Runs e2e/demo.spec.mjs against `ward` in `chromium`, prints its report, and asserts it
/// finished in time, successfully, to its last line.
async fn run_the_demo_script(ward: &Ward, chromium: &Path) {
    let artifacts = std::env::var_os("E2E_ARTIFACTS_DIR").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("ward-e2e"),
        PathBuf::from,
    );
    let run = Command::new("node")
        .arg("demo.spec.mjs")
        .current_dir(e2e_dir())
        .env("WARD_URL", &ward.origin)
        .env("CHROMIUM_PATH", chromium)
        .env("E2E_ARTIFACTS_DIR", &artifacts)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(SCRIPT_TIMEOUT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => {
            panic!("cannot run `node` ({err}): the browser test needs Node.js >= 20.19 on PATH")
        }
        Err(_) => panic!(
            "e2e/demo.spec.mjs did not finish within {SCRIPT_TIMEOUT:?}; the IdP's log:\n{}",
            ward.idp.logs()
        ),
    };
    let report = script_report(&output);
    println!("{report}");
    assert!(
        output.status.success(),
        "e2e/demo.spec.mjs failed ({}):\n{report}\nthe IdP's log:\n{}",
        output.status,
        ward.idp.logs()
    );
    assert!(
        report.contains("E2E OK"),
        "the script did not finish:\n{report}"
    );
}

/// What the upstream received: the page's calls, with the bearer token and without the
/// browser's credentials; nothing of the refused POSTs.
fn assert_the_upstream_saw_only_the_pages_calls(ward: &Ward) {
    let requests = ward.upstream.requests();
    let summary: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(
        summary,
        ["GET /api/hello", "POST /api/hello"],
        "the upstream saw exactly the page's two API calls"
    );
    for request in &requests {
        let bearer = request
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        assert!(
            bearer.is_some_and(|token| token.len() >= 8),
            "{} /api/hello carried no bearer token",
            request.method
        );
        assert!(
            !request
                .header("cookie")
                .is_some_and(|c| c.contains("__Host-ward")),
            "{} /api/hello carried Ward's session cookie",
            request.method
        );
        assert!(
            request.header("x-csrf-token").is_none(),
            "{} /api/hello carried the CSRF header",
            request.method
        );
    }
}

/// The browser to drive; a missing one is a failure with the command that installs it.
fn chromium_path() -> PathBuf {
    let path =
        std::env::var_os("CHROMIUM_PATH").map_or_else(|| DEFAULT_CHROMIUM.into(), PathBuf::from);
    assert!(
        path.is_file(),
        "no Chromium at {}: the browser test needs Debian's chromium package \
         (`apt-get install -y chromium`; scripts/test installs it) or CHROMIUM_PATH",
        path.display()
    );
    path
}

fn e2e_dir() -> PathBuf {
    repo_root().join("e2e")
}

/// Advances `clock` to the wall clock once a second until the returned task is dropped.
fn follow_wall_clock(clock: Arc<ManualClock>) -> AbortOnDrop {
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

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The script's stdout and stderr (it prints no token, cookie or CSRF value).
fn script_report(output: &Output) -> String {
    format!(
        "--- e2e/demo.spec.mjs stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
