//! The demo page (demo/page/) in a real browser: headless Chromium, driven by
//! `e2e/demo.spec.mjs` (playwright-core), logs in at the real IdP, calls the API through Ward,
//! checks the session cookie's attributes and that no script can reach the session or the CSRF
//! token, shows the masked bearer, the 403 of a POST without the CSRF token and the expiry
//! warning, tries cross-site POSTs from another site, reloads offline (service worker and
//! vault), and logs out at the IdP to a clean address bar. This test starts the stack, runs the
//! script, and then checks what the upstream received.
//!
//! Needs Node.js with npm (e2e/'s packages are installed here when missing) and Debian's
//! `chromium` at /usr/bin/chromium (or `CHROMIUM_PATH`); a missing one fails the test, never
//! skips it. Screenshots land in `<target>/tmp/ward-e2e/` (or `E2E_ARTIFACTS_DIR`).

#[path = "support/chromium.rs"]
mod chromium;
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chromium::{follow_wall_clock, install_the_e2e_packages, run_script};
use common::{Options, Ward};
use ward_testkit::repo_root;

#[tokio::test]
async fn demo_page_logs_in_calls_the_api_and_logs_out_in_a_real_browser() {
    chromium::chromium_path();
    install_the_e2e_packages().await;
    let ward = ward_serving_the_demo_page().await;
    assert_eq!(ward.cookie_name(), "__Host-ward");
    let _clock = follow_wall_clock(Arc::clone(&ward.clock));

    let artifacts = std::env::var_os("E2E_ARTIFACTS_DIR").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("ward-e2e"),
        PathBuf::from,
    );
    run_script(
        "demo.spec.mjs",
        &ward.origin,
        &[("E2E_ARTIFACTS_DIR", artifacts.as_path())],
        || ward.idp.logs(),
    )
    .await;

    assert_the_upstream_saw_only_the_pages_calls(&ward);
    ward.stop().await;
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
            // The demo's Trusted Types policy (demo/run sets the same), an idle timeout just
            // over the client's 120 s warning, so its `expiring` event comes at once, and the
            // demo's dashboard composite, its parts trimmed to fields the echo API has.
            "[static]\ndir = {}\ntrusted_types = [\"ward-demo\"]\n\n\
             [session]\nidle_timeout = \"121s\"\n\n\
             [[composites]]\npath = \"/api/dashboard\"\n\
             parts = {{ hello = {{ path = \"/api/hello\", fields = [\"method\", \"path\"] }}, \
             clock = {{ path = \"/api/time\", fields = [\"method\", \"path\"] }} }}\n",
            toml::Value::String(page_dir.display().to_string())
        ),
        ..Options::default()
    })
    .await
}

/// What the upstream received: the page's calls, with the bearer token and without the
/// browser's credentials; nothing of the refused POSTs.
fn assert_the_upstream_saw_only_the_pages_calls(ward: &Ward) {
    let requests = ward.upstream.requests();
    let mut summary: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    // The dashboard's two parts (first) run at once: in either order.
    if let Some(parts) = summary.get_mut(..2) {
        parts.sort();
    }
    assert_eq!(
        summary,
        [
            "GET /api/hello",
            "GET /api/time",
            "GET /api/hello",
            "POST /api/hello"
        ],
        "the upstream saw exactly the dashboard's two parts and the page's two API calls"
    );
    for request in &requests {
        let bearer = request
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        assert!(
            bearer.is_some_and(|token| token.len() >= 8),
            "{} {} carried no bearer token",
            request.method,
            request.path()
        );
        assert!(
            !request
                .header("cookie")
                .is_some_and(|c| c.contains("__Host-ward")),
            "{} {} carried Ward's session cookie",
            request.method,
            request.path()
        );
        assert!(
            request.header("x-csrf-token").is_none(),
            "{} {} carried the CSRF header",
            request.method,
            request.path()
        );
    }
}
