//! SPEC §2, `POST /bff/login/password` (`[login] password_grant = true`) on the browser's real
//! path: headless Chromium (Debian's package, driven by playwright-core) runs
//! e2e/password-login.spec.mjs against Ward serving e2e/password-site/ with `[static]`, with the
//! real test IdP's password grant behind it. A wrong password shows `invalid_credentials` and
//! leaves no `__Host-` cookie; the right one shows the user from `getUser()` and a `bffFetch`
//! to a proxied route goes upstream with a bearer. Neither password is in Ward's log (its real
//! JSON subscriber at `debug`) or in the script's report.
//!
//! The only test in this binary: it installs the process-wide subscriber. Needs Node.js with
//! npm and Chromium at /usr/bin/chromium (or `CHROMIUM_PATH`); a missing one fails the test,
//! never skips it.

#[path = "support/chromium.rs"]
mod chromium;
mod common;
#[path = "support/log_capture.rs"]
mod log_capture;

use std::path::Path;

use chromium::{chromium_path, install_the_e2e_packages, run_script};
use common::{Options, Ward};
use log_capture::Capture;
use ward_testkit::{IdpOptions, PASSWORD_SECRET, PASSWORD_USER};

/// A wrong password as distinctive as the right one, so a leak of either is found.
const WRONG_PASSWORD: &str = "wrong-browser-password-never-logged";

#[tokio::test]
async fn a_password_login_form_logs_in_and_out_of_reach_of_the_log_in_chromium() {
    let capture = Capture::install();
    chromium_path();
    install_the_e2e_packages().await;
    let site = chromium::e2e_dir().join("password-site");
    let ward = Ward::start_with(Options {
        extra_toml: format!(
            "[login]\npassword_grant = true\n[static]\ndir = {}\n",
            toml::Value::String(site.display().to_string())
        ),
        idp: |idp: &mut IdpOptions| *idp = idp.clone().with_password_grant(),
        ..Options::default()
    })
    .await;

    let env = [
        ("E2E_PASSWORD_USER", Path::new(PASSWORD_USER)),
        ("E2E_PASSWORD", Path::new(PASSWORD_SECRET)),
        ("E2E_WRONG_PASSWORD", Path::new(WRONG_PASSWORD)),
    ];
    let report = run_script("password-login.spec.mjs", &ward.origin, &env, || {
        ward.idp.logs()
    })
    .await;
    let cookie = ward.cookie_name();
    assert!(
        report.contains(&format!("answered 401, 200; session cookie {cookie}")),
        "{report}"
    );
    let sent = ward.upstream.last().expect("bffFetch reached the upstream");
    let bearer = sent.header("authorization").unwrap_or_default();
    assert!(bearer.starts_with("Bearer "), "the proxied call's bearer");
    ward.stop().await;

    let log = capture.text();
    for secret in [PASSWORD_SECRET, WRONG_PASSWORD] {
        assert!(!log.contains(secret), "Ward's log holds a password");
        assert!(
            !report.contains(secret),
            "the script's report holds a password"
        );
    }
    for event in ["login_rejected", "login_succeeded"] {
        let logged = log.lines().any(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            line["event"] == event && line["method"] == "password"
        });
        assert!(logged, "no {event} with method password in the log:\n{log}");
    }
}
