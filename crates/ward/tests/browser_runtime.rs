//! The browser side in Chromium (headless, Debian's package, driven by playwright-core):
//! `[static]`'s hardened runtime (e2e/runtime.spec.mjs: a script without the nonce does not
//! run, a script a nonced script loads does, an HTML sink refuses a string under Trusted
//! Types) and the browser client (e2e/client.spec.mjs: the offline vault in IndexedDB, a
//! logout reaching every tab). Ward serves the fixture site e2e/site/ with
//! `trusted_types = ["fixture"]`, with the real IdP behind it.
//!
//! Needs Node.js with npm (e2e/'s packages are installed here when missing) and Chromium at
//! /usr/bin/chromium (or `CHROMIUM_PATH`); a missing one fails the test, never skips it.

#[path = "support/chromium.rs"]
mod chromium;
mod common;

use std::sync::Arc;

use chromium::{chromium_path, follow_wall_clock, install_the_e2e_packages, run_script};
use common::{Options, Ward};

/// Ward serving e2e/site/ under a CSP that allows the one Trusted Types policy it makes.
async fn ward_serving_the_fixture_site() -> Ward {
    chromium_path();
    install_the_e2e_packages().await;
    let site = chromium::e2e_dir().join("site");
    Ward::start_with(Options {
        extra_toml: format!(
            "[static]\ndir = {}\ntrusted_types = [\"fixture\"]\n",
            toml::Value::String(site.display().to_string())
        ),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn the_static_runtime_blocks_scripts_without_the_nonce_and_strings_in_html_sinks() {
    let ward = ward_serving_the_fixture_site().await;
    let report = run_script("runtime.spec.mjs", &ward.origin, &[], || ward.idp.logs()).await;
    assert!(report.contains("CSP served: default-src 'self'; script-src 'nonce-"));
    ward.stop().await;
}

#[tokio::test]
async fn the_client_keeps_a_ciphertext_vault_and_logs_out_every_tab() {
    let ward = ward_serving_the_fixture_site().await;
    let _clock = follow_wall_clock(Arc::clone(&ward.clock));
    run_script("client.spec.mjs", &ward.origin, &[], || ward.idp.logs()).await;
    ward.stop().await;
}
