//! `GET /bff/client.js`: the browser client (ES module) of SPEC §2.
//!
//! One truth: the bytes served are `clients/js/src/index.js`, the module the npm package
//! `ward-client` ships (whose version is this crate's; the tests below hold both).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The browser client's source, compiled in.
pub const CLIENT_JS: &str = include_str!("../../../../clients/js/src/index.js");

/// The browser client, as JavaScript.
pub async fn client_js() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        CLIENT_JS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn package_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/js")
    }

    #[test]
    fn the_served_client_is_the_packages_module() {
        let source = std::fs::read_to_string(package_dir().join("src/index.js")).unwrap();
        assert_eq!(CLIENT_JS, source);
    }

    #[test]
    fn the_package_is_versioned_with_ward() {
        let manifest = std::fs::read_to_string(package_dir().join("package.json")).unwrap();
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        assert_eq!(
            manifest["version"].as_str(),
            Some(env!("CARGO_PKG_VERSION")),
            "clients/js/package.json's version must be Ward's (crates/ward)"
        );
        assert_eq!(manifest["name"].as_str(), Some("ward-client"));
    }
}
