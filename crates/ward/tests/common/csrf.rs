//! The CSRF token as a test sees it: the methods that need it, where it comes from, and the
//! shape of a refusal.

use reqwest::Method;
use serde_json::Value;
use ward_testkit::{Browser, Reply};

use super::Ward;

/// Unsafe methods: the four of SPEC §4, one that no allowlist would name, and a lower-case
/// `post` (method names are case-sensitive, RFC 9110 §9.1: it is not `POST`, and not safe).
pub const UNSAFE: [&str; 6] = ["POST", "PUT", "PATCH", "DELETE", "PROPFIND", "post"];

/// The method named `name`, whatever its case.
pub fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("a valid method token")
}

/// The CSRF token of a `/bff/user` answer.
pub fn csrf_token(me: &Value) -> String {
    me["csrfToken"]
        .as_str()
        .expect("/bff/user carries csrfToken")
        .to_owned()
}

/// A Ward refusal with `403 csrf_failed`, the JSON error shape, no new cookie.
#[track_caller]
pub fn assert_csrf_refused(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 403, "{what}: {}", reply.text());
    let body = reply.json().expect("JSON error body");
    assert_eq!(body["error"], "csrf_failed", "{what}");
    assert!(body["message"].is_string(), "{what}");
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
    assert!(
        reply.set_cookies().is_empty(),
        "{what}: a refusal sets no cookie"
    );
}

/// The session is still alive (a refusal must not end or rotate it).
pub async fn assert_session_alive(ward: &Ward, browser: &Browser, csrf: &str) {
    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    assert_eq!(csrf_token(&me.json().unwrap()), csrf);
}
