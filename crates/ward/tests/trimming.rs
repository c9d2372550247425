//! Trimming a route's JSON responses to its `fields` (SPEC §5, docs/aggregation.md) against a
//! real upstream: JSON is reduced to the allow-list, anything else passes untouched, and what
//! cannot be trimmed fails closed with 502 rather than passing untrimmed.

mod common;
#[path = "support/parts_upstream.rs"]
mod parts_upstream;

use common::upstream::assert_ward_error;
use common::{Options, Ward};
use parts_upstream::PartsUpstream;
use serde_json::json;
use ward_testkit::Browser;

async fn start(parts: &PartsUpstream) -> Ward {
    let extra_toml = format!(
        r#"
[[routes]]
prefix = "/trim"
upstream = "{url}"
token = "none"
fields = ["items[].sku", "total", "name"]
profiles = {{ mobile = ["total"] }}
max_buffered_response = "4KiB"

[[routes]]
prefix = "/whole"
upstream = "{url}"
token = "none"
profiles = {{ tiny = ["name"] }}
max_buffered_response = "4KiB"
"#,
        url = parts.url()
    );
    Ward::start_with(Options {
        extra_toml,
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn json_responses_are_reduced_to_the_allow_list() {
    let parts = PartsUpstream::start(1).await;
    let ward = start(&parts).await;
    let browser = Browser::new().unwrap();
    let reply = browser
        .request(reqwest::Method::GET, ward.url("/trim/orders"))
        .header("accept-encoding", "gzip, br")
        .header("range", "bytes=0-10")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json().unwrap(),
        json!({"items": [{"sku": "a1"}, {"sku": "b2"}], "total": 12})
    );
    let length: usize = reply.header("content-length").unwrap().parse().unwrap();
    assert_eq!(length, reply.text().len());
    // Ward asks for a body it can read, whole.
    let seen = parts.seen_at("/trim/orders");
    assert!(seen.header("accept-encoding").is_none());
    assert!(seen.header("range").is_none());

    let error = browser.get(ward.url("/trim/status/404")).await.unwrap();
    assert_eq!(error.status, 404);
    assert_eq!(
        error.json().unwrap(),
        json!({}),
        "error bodies are trimmed too"
    );
}

#[tokio::test]
async fn a_client_profile_narrows_the_answer_further() {
    let parts = PartsUpstream::start(1).await;
    let ward = start(&parts).await;
    let browser = Browser::new().unwrap();
    let get = |path: &'static str, profile: &'static str| {
        let request = browser.request(reqwest::Method::GET, ward.url(path));
        async move {
            let reply = request
                .header("x-client-profile", profile)
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_eq!(reply.header("vary"), Some("x-client-profile"));
            reply.json().unwrap()
        }
    };
    // After the route's fields, never instead of them.
    assert_eq!(get("/trim/orders", "mobile").await, json!({"total": 12}));
    // An unknown profile adds nothing: the route's fields alone.
    assert_eq!(
        get("/trim/orders", "desktop").await,
        json!({"items": [{"sku": "a1"}, {"sku": "b2"}], "total": 12})
    );
    // On a route without fields, the profile alone; without the header, the whole document.
    assert_eq!(get("/whole/profile", "tiny").await, json!({"name": "Ada"}));
    let whole = get("/whole/profile", "").await;
    assert_eq!(whole["internal"]["ssn"], "000-00-0000");
}

#[tokio::test]
async fn non_json_passes_untouched_and_routes_without_fields_stream_as_sent() {
    let parts = PartsUpstream::start(1).await;
    let ward = start(&parts).await;
    let browser = Browser::new().unwrap();
    let html = browser.get(ward.url("/trim/html")).await.unwrap();
    assert_eq!(html.status, 200);
    assert_eq!(html.text(), "<p>not json</p>");
    // No fields: the whole body, even over the buffer cap (nothing is buffered).
    let big = browser.get(ward.url("/whole/big")).await.unwrap();
    assert_eq!(big.status, 200);
    assert!(big.text().len() > 4096);
    assert_eq!(big.json().unwrap().as_array().map(Vec::len), Some(1000));
}

#[tokio::test]
async fn what_cannot_be_trimmed_is_refused_not_passed_on() {
    let parts = PartsUpstream::start(1).await;
    let ward = start(&parts).await;
    let browser = Browser::new().unwrap();
    // Over max_buffered_response.
    let big = browser.get(ward.url("/trim/big")).await.unwrap();
    assert_ward_error(&big, 502, "upstream_unavailable");
    // Compressed although Ward asked for identity.
    let packed = browser.get(ward.url("/trim/gzip")).await.unwrap();
    assert_ward_error(&packed, 502, "upstream_unavailable");
    // No Content-Type and not JSON: not declared as something else, so trimmed, so refused.
    let untyped = browser.get(ward.url("/trim/untyped-text")).await.unwrap();
    assert_ward_error(&untyped, 502, "upstream_unavailable");
}

#[tokio::test]
async fn a_record_without_a_clear_type_is_trimmed_all_the_same() {
    let parts = PartsUpstream::start(1).await;
    let ward = start(&parts).await;
    let browser = Browser::new().unwrap();
    // A page's `response.json()` ignores the type: a record with no Content-Type, or with
    // `text/plain` and `application/json` both, must not slip past the allow-list.
    for path in ["/trim/untyped", "/trim/two-types"] {
        let reply = browser.get(ward.url(path)).await.unwrap();
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(reply.json().unwrap(), json!({"name": "Ada"}), "{path}");
        assert!(!reply.text().contains("ssn"), "{path}");
    }
}
