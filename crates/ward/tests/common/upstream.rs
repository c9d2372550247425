//! What the upstream received through Ward, and the errors Ward answers in its place.

use ward_testkit::{EchoUpstream, RecordedRequest, Reply};

/// An error Ward generated itself: status, SPEC JSON shape, `no-store`, no cookie.
#[track_caller]
pub fn assert_ward_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{code}: {}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json().expect("JSON error body");
    assert_eq!(body["error"], code);
    assert!(body["message"].is_string());
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{code}");
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert!(reply.set_cookies().is_empty(), "{code}: sets no cookie");
}

/// Nothing reached the upstream.
#[track_caller]
pub fn assert_upstream_saw_nothing(upstream: &EchoUpstream, what: &str) {
    let seen = upstream.requests();
    assert!(seen.is_empty(), "{what}: the upstream received {seen:?}");
}

/// The single request the upstream received since it was last cleared.
#[track_caller]
pub fn only_request(upstream: &EchoUpstream) -> RecordedRequest {
    let mut seen = upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    upstream.clear();
    seen.remove(0)
}

/// Every value of header `name`, in order.
pub fn all_values<'a>(seen: &'a RecordedRequest, name: &str) -> Vec<&'a str> {
    seen.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("visible ASCII"))
        .collect()
}

/// The one bearer token the request carried.
pub fn bearer_of(seen: &RecordedRequest) -> String {
    let values = all_values(seen, "authorization");
    assert_eq!(values.len(), 1, "exactly one Authorization");
    values[0]
        .strip_prefix("Bearer ")
        .expect("a Bearer credential")
        .to_owned()
}
