//! Ward's integration-test harness.
//!
//! - [`Idp`]: the real OpenID Provider (oidc-provider 9 under node, `idp/provider.mjs`) on a free
//!   port, with test hooks that forge bad ID tokens, fail token requests and count calls.
//! - [`EchoUpstream`]: an API upstream that answers with a JSON description of each request and
//!   records it, plus slow, `Set-Cookie` and status endpoints.
//! - [`TestCa`]: a private CA and the server certificates it signs, for TLS tests.
//! - [`Browser`]: a cookie-jar HTTP client without automatic redirects, which can also drive the
//!   IdP's dev login and consent pages ([`Browser::login_at_idp`]).
//!
//! A test starts the IdP and the upstream, points Ward at both, and walks a login hop by hop:
//! Ward's `/bff/login` → `login_at_idp` → `follow` to `/bff/callback` → API calls.
//! Node.js and npm are required; a missing one is an error, never a skip.

mod browser;
mod cookie_jar;
pub mod dpop;
mod echo;
mod echo_tls;
mod fapi;
mod idp;
mod mtls;
mod npm;
mod password_grant;
mod pki;

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use browser::{Browser, BrowserRequest, Reply};
pub use dpop::DpopPolicy;
pub use echo::{EchoUpstream, RecordedRequest};
pub use idp::{
    CLIENT_ID, CLIENT_SECRET, ClientAuth, ClientKey, Dpop, Idp, IdpMtls, IdpOptions, IdpStats,
    MtlsCall, Par, ensure_idp_installed, ensure_npm_installed,
};
pub use password_grant::{PASSWORD_SECRET, PASSWORD_USER};
pub use pki::{ClientFiles, IdpTls, ServerFiles, TestCa};

/// The tag of this test run: `WARD_TEST_RUN` (set by `scripts/test`), reduced to at most 16
/// characters of `[a-z0-9]`, or `local`. Every Redis key prefix and PostgreSQL table name a
/// test makes starts with `wardtest_<tag>_` or `wardproc_<tag>_`, so a run's cleanup drops what
/// it made and nothing of a run beside it.
pub fn run_tag() -> String {
    let tag: String = std::env::var("WARD_TEST_RUN")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .take(16)
        .collect();
    if tag.is_empty() {
        "local".to_owned()
    } else {
        tag
    }
}

/// The workspace root (where `Cargo.toml` and `idp/` live), from this crate's manifest path.
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(|crates| crates.parent())
        .map_or(manifest.clone(), PathBuf::from)
}

/// The claims of a JWT, decoded WITHOUT checking the signature: for asserting what a test IdP
/// issued, never for trusting anything.
pub fn jwt_claims(jwt: &str) -> anyhow::Result<serde_json::Value> {
    jwt_part(jwt, 1)
}

/// The protected header of a JWT, decoded without any check.
pub fn jwt_header(jwt: &str) -> anyhow::Result<serde_json::Value> {
    jwt_part(jwt, 0)
}

fn jwt_part(jwt: &str, index: usize) -> anyhow::Result<serde_json::Value> {
    let part = jwt
        .split('.')
        .nth(index)
        .context("not a JWT: too few segments")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .context("not a JWT: a segment is not base64url")?;
    serde_json::from_slice(&bytes).context("not a JWT: a segment is not JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_holds_the_idp() {
        assert!(repo_root().join("idp/provider.mjs").is_file());
        assert!(repo_root().join("Cargo.toml").is_file());
    }

    #[test]
    fn jwt_parts_decode_without_verification() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let claims = URL_SAFE_NO_PAD.encode(br#"{"aud":"bff"}"#);
        let jwt = format!("{header}.{claims}.");
        assert_eq!(jwt_header(&jwt).expect("header")["alg"], "none");
        assert_eq!(jwt_claims(&jwt).expect("claims")["aud"], "bff");
        assert!(jwt_claims("garbage").is_err());
        assert!(jwt_claims("a.!!!.c").is_err());
    }
}
