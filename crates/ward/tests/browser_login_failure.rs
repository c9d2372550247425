//! SPEC §2, `GET /bff/callback`: a login that fails at the callback ends, for a person in a
//! real browser, on `[login] error_path?bff_error=login_failed` — a page, not a JSON error.
//! Headless Chromium (Debian's package, driven by playwright-core) runs
//! e2e/login-failure.spec.mjs: it logs in at the real IdP while the IdP's token endpoint
//! fails, so the code exchange behind the callback fails. Ward serves the fixture site
//! e2e/site/ as the error page.
//!
//! Needs Node.js with npm and Chromium at /usr/bin/chromium (or `CHROMIUM_PATH`); a missing
//! one fails the test, never skips it.

#[path = "support/chromium.rs"]
mod chromium;
mod common;

use chromium::{chromium_path, install_the_e2e_packages, run_script};
use common::{Options, Ward};

#[tokio::test]
async fn a_login_failing_at_the_callback_lands_on_the_error_page_in_chromium() {
    chromium_path();
    install_the_e2e_packages().await;
    let site = chromium::e2e_dir().join("site");
    let ward = Ward::start_with(Options {
        extra_toml: format!(
            "[static]\ndir = {}\ntrusted_types = [\"fixture\"]\n",
            toml::Value::String(site.display().to_string())
        ),
        ..Options::default()
    })
    .await;
    ward.idp.fail_token_requests(500).await.unwrap();

    let report = run_script("login-failure.spec.mjs", &ward.origin, &[], || {
        ward.idp.logs()
    })
    .await;
    assert!(report.contains("callback answered 302 to /?bff_error=login_failed"));
    let stats = ward.idp.stats().await.unwrap();
    assert_eq!(
        stats.token_requests, 1,
        "the one code exchange was tried, and failed"
    );
    ward.stop().await;
}
