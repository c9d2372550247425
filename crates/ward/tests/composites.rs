//! Aggregation (SPEC §5 `[[composites]]`, docs/aggregation.md) against the real IdP and a real
//! upstream: one browser request, several routes at once, each with its own token mode and
//! trimming; failed parts reported by code and status; one admission (session, CSRF, one
//! count against the `api` limit).

mod common;
#[path = "support/parts_upstream.rs"]
mod parts_upstream;

use common::csrf::csrf_token;
use common::upstream::assert_ward_error;
use common::{Options, Ward};
use parts_upstream::PartsUpstream;
use reqwest::Method;
use serde_json::json;
use ward_testkit::Browser;

/// Routes onto `parts` (`/shop` user, `/open` none, `/trim` none with `fields`) and the
/// composites the tests call.
fn config(parts: &PartsUpstream) -> String {
    format!(
        r#"
[[routes]]
prefix = "/shop"
upstream = "{url}"
token = "user"

[[routes]]
prefix = "/open"
upstream = "{url}"
token = "none"

[[routes]]
prefix = "/trim"
upstream = "{url}"
token = "none"
fields = ["items[].sku", "total", "name"]
max_buffered_response = "4KiB"

[[composites]]
path = "/shop/dashboard"
parts = {{ profile = {{ path = "/shop/profile", fields = ["name"] }}, orders = "/trim/orders?limit={{limit}}&fixed=1", news = "/open/orders" }}

[[composites]]
path = "/open/meeting"
timeout = "60s"
parts = {{ a = "/open/meet/a", b = "/open/meet/b", c = "/open/meet/c" }}

[[composites]]
path = "/open/broken"
parts = {{ ok = "/open/profile", slow = {{ path = "/open/hang", timeout = "1s" }}, html = "/open/html", missing = "/open/status/404", failing = "/open/status/500", big = "/trim/big", packed = "/trim/gzip" }}

[[routes]]
prefix = "/patient"
upstream = "{url}"
token = "none"
timeout = "1h"

[[composites]]
path = "/open/waiting"
timeout = "1s"
parts = {{ quick = "/open/profile", slow = "/patient/hang" }}

[[composites]]
path = "/shop/act"
parts = {{ seen = {{ path = "/shop/orders", method = "POST" }}, me = "/shop/profile" }}
"#,
        url = parts.url()
    )
}

async fn start(parts: &PartsUpstream, extra: &str) -> Ward {
    Ward::start_with(Options {
        extra_toml: format!("{}{extra}", config(parts)),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_composite_answers_each_parts_json_through_its_own_route() {
    let parts = PartsUpstream::start(3).await;
    let ward = start(&parts, "").await;
    let (browser, _me) = ward.logged_in("alice").await;
    let reply = browser
        .request(
            Method::GET,
            ward.url("/shop/dashboard?limit=5%26admin%3Dtrue&other=x"),
        )
        .header("accept-language", "de")
        .header("if-none-match", "\"v1\"")
        .header("range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.json().unwrap(),
        json!({
            // The part's own fields.
            "profile": {"name": "Ada"},
            // The route's fields.
            "orders": {"items": [{"sku": "a1"}, {"sku": "b2"}], "total": 12},
            // Neither: the whole document.
            "news": {
                "items": [{"sku": "a1", "price": 5, "supplier": "s1"}, {"sku": "b2", "price": 7}],
                "total": 12,
                "query": "",
            },
        })
    );
    assert_each_part_went_through_its_route(&parts, &ward.cookie_name());
}

/// What the upstream received for `/shop/dashboard?limit=5%26admin%3Dtrue&other=x`.
fn assert_each_part_went_through_its_route(parts: &PartsUpstream, ward_cookie: &str) {
    // Each part carried its route's token: the user's on `/shop`, none on `/open`, `/trim`.
    let profile = parts.seen_at("/shop/profile");
    assert!(
        profile
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer "))
    );
    assert!(
        parts
            .seen_at("/open/orders")
            .header("authorization")
            .is_none()
    );
    // The browser's value filled the template, encoded: no parameter of its own got through.
    let orders = parts.seen_at("/trim/orders");
    assert_eq!(
        orders.path_and_query,
        "/trim/orders?limit=5%26admin%3Dtrue&fixed=1"
    );
    for seen in parts.seen() {
        assert_eq!(seen.method, Method::GET);
        assert!(seen.header("x-csrf-token").is_none());
        let cookie = seen.header("cookie").unwrap_or("");
        assert!(!cookie.contains(ward_cookie), "Ward's cookie went upstream");
        assert_eq!(seen.header("accept"), Some("application/json"));
        assert_eq!(seen.header("accept-language"), Some("de"), "inherited");
        assert!(seen.header("if-none-match").is_none() && seen.header("range").is_none());
    }
}

#[tokio::test]
async fn a_composite_is_one_request_labelled_with_its_path() {
    let parts = PartsUpstream::start(3).await;
    let ward = start(&parts, "").await;
    let reply = Browser::new()
        .unwrap()
        .get(ward.url("/open/broken"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let metrics = ward::telemetry::metrics::render(None);
    let line = "ward_http_requests_total{route=\"/open/broken\",method=\"GET\",status=\"200\"} 1\n";
    assert!(metrics.contains(line), "{metrics}");
    // Its parts are upstream calls of their routes, not requests of their own.
    assert!(
        !metrics.contains("ward_http_requests_total{route=\"/open\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("ward_upstream_request_duration_seconds_count{route=\"/open\"} 5"),
        "{metrics}"
    );
}

#[tokio::test]
async fn parts_run_concurrently() {
    // Each part waits at the upstream until all three have arrived: parts sent one after
    // another would never get past the first, and time out instead.
    let parts = PartsUpstream::start(3).await;
    let ward = start(&parts, "").await;
    let reply = Browser::new()
        .unwrap()
        .get(ward.url("/open/meeting"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json().unwrap(),
        json!({"a": {"met": "a"}, "b": {"met": "b"}, "c": {"met": "c"}})
    );
}

#[tokio::test]
async fn failed_parts_are_members_with_a_code_and_a_status() {
    let parts = PartsUpstream::start(3).await;
    let ward = start(&parts, "").await;
    let reply = Browser::new()
        .unwrap()
        .get(ward.url("/open/broken"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json().unwrap(),
        json!({
            "ok": {"name": "Ada", "email": "ada@example.com", "internal": {"ssn": "000-00-0000"}},
            "slow": {"error": "upstream_timeout", "status": 504},
            "html": {"error": "upstream_unavailable", "status": 502},
            "missing": {"error": "upstream_error", "status": 404},
            "failing": {"error": "upstream_error", "status": 500},
            "big": {"error": "upstream_unavailable", "status": 502},
            "packed": {"error": "upstream_unavailable", "status": 502},
        })
    );
}

/// A part without a `timeout` of its own is held to the composite's: the composite answers with
/// the quick part and the slow one as `upstream_timeout`, not after its route's hour (the test
/// runner would stop the test long before).
#[tokio::test]
async fn a_part_without_its_own_timeout_gets_the_composites() {
    let parts = PartsUpstream::start(3).await;
    let ward = start(&parts, "").await;
    let reply = Browser::new()
        .unwrap()
        .get(ward.url("/open/waiting"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json().unwrap(),
        json!({
            "quick": {"name": "Ada", "email": "ada@example.com", "internal": {"ssn": "000-00-0000"}},
            "slow": {"error": "upstream_timeout", "status": 504},
        })
    );
}

#[tokio::test]
async fn a_user_composite_needs_a_session_before_any_part_is_sent() {
    let parts = PartsUpstream::start(3).await;
    let ward = start(&parts, "").await;
    let reply = Browser::new()
        .unwrap()
        .get(ward.url("/shop/dashboard"))
        .await
        .unwrap();
    assert_ward_error(&reply, 401, "unauthenticated");
    assert!(parts.seen().is_empty(), "{:?}", parts.seen());
}

#[tokio::test]
async fn a_cross_site_request_riding_the_session_is_refused() {
    let parts = PartsUpstream::start(3).await;
    let ward = start(&parts, "").await;
    let (browser, _me) = ward.logged_in("alice").await;
    let reply = browser
        .request(Method::GET, ward.url("/shop/dashboard"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_ward_error(&reply, 403, "csrf_failed");
    assert!(parts.seen().is_empty(), "{:?}", parts.seen());
}

#[tokio::test]
async fn an_unsafe_part_makes_a_post_composite_that_needs_the_csrf_token() {
    let parts = PartsUpstream::start(3).await;
    let ward = start(&parts, "").await;
    let (browser, me) = ward.logged_in("alice").await;
    let get = browser.get(ward.url("/shop/act")).await.unwrap();
    assert_ward_error(&get, 405, "method_not_allowed");
    let no_token = browser.post(ward.url("/shop/act")).send().await.unwrap();
    assert_ward_error(&no_token, 403, "csrf_failed");
    assert!(parts.seen().is_empty(), "{:?}", parts.seen());

    let reply = browser
        .post(ward.url("/shop/act"))
        .header("x-csrf-token", &csrf_token(&me))
        .body("{\"ignored\": true}")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["me"]["name"], "Ada");
    let seen = parts.seen_at("/shop/orders");
    assert_eq!(seen.method, Method::POST);
    assert_eq!(
        seen.header("content-length"),
        Some("0"),
        "parts get no body"
    );
    assert_eq!(parts.seen_at("/shop/profile").method, Method::GET);
}

#[tokio::test]
async fn a_composite_counts_once_against_the_api_limit() {
    let parts = PartsUpstream::start(3).await;
    let ward = start(
        &parts,
        "\n[rate_limit]\napi = { limit = 2, window = \"1m\" }\n",
    )
    .await;
    let (browser, _me) = ward.logged_in("alice").await;
    for _ in 0..2 {
        let reply = browser.get(ward.url("/shop/dashboard")).await.unwrap();
        assert_eq!(reply.status, 200, "3 parts, one count: {}", reply.text());
    }
    let third = browser.get(ward.url("/shop/dashboard")).await.unwrap();
    assert_eq!(third.status, 429, "{}", third.text());
    assert_eq!(third.json().unwrap()["error"], "rate_limited");
    assert_eq!(parts.seen().len(), 6, "two composites of three parts each");
}
