//! `[static]` over HTTP (SPEC §7): the document's CSP with a fresh nonce per response, the
//! Trusted Types list and the `csp` override, cross-origin isolation and Permissions-Policy,
//! the caching rule (hashed assets immutable, documents never stored), and `/bff/client.js`
//! served byte for byte from the client package. What the browser does with these headers is
//! tested in Chromium (tests/browser_runtime.rs).

mod common;

use std::path::Path;

use common::{Options, Ward};
use ward_testkit::{Browser, repo_root};

/// The CSP Ward serves for `index.html` without `[static] trusted_types` or `csp`.
const EXPECTED_CSP: &str = "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic'; \
     style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; worker-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; \
     require-trusted-types-for 'script'";

const INDEX_HTML: &str = "<!doctype html><html><head><script type=\"module\" src=\"/app.3f9a1c.js\">\
     </script><style>p{}</style></head><body><p>SPA</p></body></html>";

/// A site with a document, a hashed and a plain asset, and a second HTML file.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("index.html", INDEX_HTML);
    write("app.3f9a1c.js", "console.log('app');\n");
    write("style.css", "p { color: black; }\n");
    write("other.html", "<!doctype html><p>other</p>\n");
    dir
}

async fn ward_serving(dir: &Path, extra: &str) -> Ward {
    Ward::start_with(Options {
        extra_toml: format!(
            "[static]\ndir = {}\n{extra}",
            toml::Value::String(dir.display().to_string())
        ),
        ..Options::default()
    })
    .await
}

/// The nonce of `csp`'s script-src.
fn nonce_of(csp: &str) -> String {
    let start = csp.find("'nonce-").expect("a nonce") + "'nonce-".len();
    csp[start..].split('\'').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_document_carries_a_fresh_nonce_in_a_strict_csp_and_is_never_cached() {
    let dir = site();
    let ward = ward_serving(dir.path(), "").await;
    let browser = Browser::new().unwrap();
    let first = browser.get(ward.url("/")).await.unwrap();
    assert_eq!(first.status, 200);
    let csp = first.header("content-security-policy").unwrap().to_owned();
    let nonce = nonce_of(&csp);
    assert_eq!(nonce.len(), 43, "32 random bytes, base64url");
    assert_eq!(csp, EXPECTED_CSP.replace("{nonce}", &nonce));
    println!("CSP served: {csp}");
    let body = first.text();
    assert!(
        body.contains(&format!("<script nonce=\"{nonce}\" type=\"module\"")),
        "{body}"
    );
    assert!(
        body.contains(&format!("<style nonce=\"{nonce}\">")),
        "{body}"
    );

    for (name, value) in [
        ("cache-control", "no-store"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(first.header(name), Some(value), "{name}");
    }
    let permissions = first.header("permissions-policy").unwrap();
    for feature in [
        "camera=()",
        "microphone=()",
        "geolocation=()",
        "payment=()",
        "usb=()",
    ] {
        assert!(permissions.contains(feature), "{permissions}");
    }

    // A client-side route is the same document, with another nonce.
    let route = browser.get(ward.url("/orders/7")).await.unwrap();
    let second = nonce_of(route.header("content-security-policy").unwrap());
    assert_ne!(second, nonce, "each response has its own nonce");
    assert!(route.text().contains(&second));
    ward.stop().await;
}

#[tokio::test]
async fn hashed_assets_are_immutable_others_revalidate_other_documents_get_the_policy() {
    let dir = site();
    let ward = ward_serving(dir.path(), "").await;
    let browser = Browser::new().unwrap();
    let hashed = browser.get(ward.url("/app.3f9a1c.js")).await.unwrap();
    assert_eq!(hashed.status, 200);
    assert_eq!(
        hashed.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        hashed.header("cross-origin-resource-policy"),
        Some("same-origin")
    );
    assert_eq!(hashed.header("content-security-policy"), None);

    let plain = browser.get(ward.url("/style.css")).await.unwrap();
    assert_eq!(plain.header("cache-control"), Some("no-cache"));
    assert_eq!(plain.header("x-content-type-options"), Some("nosniff"));

    let other = browser.get(ward.url("/other.html")).await.unwrap();
    assert_eq!(other.status, 200);
    assert_eq!(other.header("cache-control"), Some("no-store"));
    let csp = other.header("content-security-policy").unwrap();
    assert!(csp.contains("'strict-dynamic'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(other.header("x-frame-options"), Some("DENY"));

    let missing = browser.get(ward.url("/missing.3f9a1c.js")).await.unwrap();
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("cache-control"), Some("no-store"));
    ward.stop().await;
}

#[tokio::test]
async fn trusted_types_lists_the_policies_and_csp_replaces_the_template() {
    let dir = site();
    let ward = ward_serving(dir.path(), "trusted_types = [\"app\", \"dompurify\"]\n").await;
    let browser = Browser::new().unwrap();
    let reply = browser.get(ward.url("/")).await.unwrap();
    let csp = reply.header("content-security-policy").unwrap();
    let nonce = nonce_of(csp);
    let expected = format!(
        "{}; trusted-types app dompurify",
        EXPECTED_CSP.replace("{nonce}", &nonce)
    );
    assert_eq!(csp, expected);
    ward.stop().await;

    let custom = "script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; object-src 'none'";
    let ward = ward_serving(dir.path(), &format!("csp = \"{custom}\"\n")).await;
    let reply = browser.get(ward.url("/")).await.unwrap();
    let csp = reply.header("content-security-policy").unwrap();
    let nonce = nonce_of(csp);
    assert_eq!(csp, custom.replace("{nonce}", &nonce));
    assert!(reply.text().contains(&format!("<script nonce=\"{nonce}\"")));
    ward.stop().await;
}

#[tokio::test]
async fn bff_client_js_is_the_client_package_byte_for_byte() {
    let ward = Ward::start().await;
    let browser = Browser::new().unwrap();
    let reply = browser.get(ward.url("/bff/client.js")).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let source = std::fs::read(repo_root().join("clients/js/src/index.js")).unwrap();
    assert_eq!(reply.body.as_ref(), source.as_slice());
    ward.stop().await;
}
