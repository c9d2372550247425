//! The admin listener (SPEC §7): health, readiness and session administration behind the
//! admin token, on its own socket. `admin_cli.rs` drives the same through the binary.

#[path = "support/admin_api.rs"]
mod admin_api;
mod common;

use admin_api::{ADMIN_TOKEN, Admin, Answer, status_of};
use common::flaky::Outage;
use common::{Options, Ward};

#[tokio::test]
async fn the_admin_api_lists_and_revokes_one_subjects_sessions_behind_the_token() {
    let ward = Ward::start().await;
    let admin = Admin::start(&ward).await;
    let (alice_1, me) = ward.logged_in("alice").await;
    let (alice_2, _) = ward.logged_in("alice").await;
    let (bob, _) = ward.logged_in("bob").await;
    let sub = me["sub"].as_str().expect("sub").to_owned();
    assert_eq!(status_of(&alice_1, ward.url("/api/who")).await, 200);
    let bearer = ward
        .upstream
        .last()
        .and_then(|r| r.header("authorization").map(str::to_owned))
        .expect("the upstream saw alice's access token");
    let access_token = bearer.trim_start_matches("Bearer ").to_owned();

    assert_refused_without_the_bearer_token(&admin, &sub).await;

    let listed = admin
        .sessions(reqwest::Method::GET, &sub, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.header("cache-control"), Some("no-store"));
    assert_two_sessions_listed(&listed.json(), ward.clock_now());
    let mut secrets = vec![sub.clone(), access_token, "alice@example.test".to_owned()];
    for browser in [&alice_1, &alice_2] {
        secrets.push(browser.cookie("localhost", "__Host-ward").expect("cookie"));
    }
    secrets.push(me["csrfToken"].as_str().expect("csrf").to_owned());
    for secret in &secrets {
        assert!(!listed.body.contains(secret.as_str()), "leaks {secret:?}");
    }

    let revoked = admin
        .sessions(reqwest::Method::DELETE, &sub, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.json(), serde_json::json!({ "revoked": 2 }));
    assert_eq!(revoked.header("cache-control"), Some("no-store"));

    assert_eq!(status_of(&alice_1, ward.url("/bff/user")).await, 401);
    assert_eq!(status_of(&alice_2, ward.url("/bff/user")).await, 401);
    assert_eq!(status_of(&alice_1, ward.url("/api/who")).await, 401);
    assert_eq!(status_of(&bob, ward.url("/bff/user")).await, 200);
    let again = admin
        .sessions(reqwest::Method::GET, &sub, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(again.json(), serde_json::json!([]));
    let unauthenticated_delete = admin.sessions(reqwest::Method::DELETE, "bob", None).await;
    assert_eq!(unauthenticated_delete.status, 401);
    assert_eq!(status_of(&bob, ward.url("/bff/user")).await, 200);
}

/// No token, a wrong or truncated one, Basic auth: `401`; the right token without `sub`: `400`.
async fn assert_refused_without_the_bearer_token(admin: &Admin, sub: &str) {
    for token in [None, Some("wrong-token"), Some(&ADMIN_TOKEN[1..])] {
        let refused = admin.sessions(reqwest::Method::GET, sub, token).await;
        assert_eq!(refused.status, 401, "{token:?}: {}", refused.body);
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        assert_eq!(refused.header("cache-control"), Some("no-store"));
        assert_eq!(refused.json()["error"], "unauthenticated");
    }
    let basic = Answer::of(
        admin
            .http
            .get(admin.url("/admin/sessions?sub=alice"))
            .basic_auth("admin", Some(ADMIN_TOKEN))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(basic.status, 401, "only a bearer token is accepted");
    let no_sub = Answer::of(
        admin
            .http
            .get(admin.url("/admin/sessions"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(no_sub.status, 400);
    assert_eq!(no_sub.json()["error"], "bad_request");
}

/// Two entries, each only an 8-character id and its times (created ≤ last seen ≤ `now` <
/// expiry ≤ created + 8 h), with different ids.
fn assert_two_sessions_listed(listed: &serde_json::Value, now: u64) {
    let entries = listed.as_array().expect("a JSON array");
    assert_eq!(entries.len(), 2, "{listed}");
    for entry in entries {
        let fields: Vec<&str> = entry
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ["createdAt", "expiresAt", "id", "lastSeen"]);
        assert_eq!(entry["id"].as_str().expect("id").len(), 8);
        let created = entry["createdAt"].as_u64().expect("createdAt");
        let last_seen = entry["lastSeen"].as_u64().expect("lastSeen");
        let expires = entry["expiresAt"].as_u64().expect("expiresAt");
        assert!(created <= last_seen && last_seen <= now, "{entry}");
        assert!(expires > now && expires <= created + 8 * 3600, "{entry}");
    }
    assert_ne!(entries[0]["id"], entries[1]["id"]);
}

#[tokio::test]
async fn the_cookie_store_has_no_sessions_to_administer_and_says_so() {
    let ward = Ward::start_with(Options {
        store: "cookie",
        ..Default::default()
    })
    .await;
    let admin = Admin::start(&ward).await;
    ward.logged_in("alice").await;
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let answer = admin
            .sessions(method.clone(), "alice", Some(ADMIN_TOKEN))
            .await;
        assert_eq!(answer.status, 404, "{method}: {}", answer.body);
        assert_eq!(answer.json()["error"], "not_found");
    }
    let refused = admin.sessions(reqwest::Method::GET, "alice", None).await;
    assert_eq!(refused.status, 401, "the token is checked first");
}

#[tokio::test]
async fn the_admin_endpoints_are_not_served_on_the_public_listener() {
    let ward = Ward::start().await;
    let (_browser, me) = ward.logged_in("alice").await;
    let sub = me["sub"].as_str().expect("sub");
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/admin/sessions"] {
        let response = http
            .delete(ward.url(path))
            .query(&[("sub", sub)])
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_ne!(response.status().as_u16(), 200, "{path}");
        let listed = http
            .get(ward.url(path))
            .query(&[("sub", sub)])
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status().as_u16(), 404, "{path}");
    }
}

#[tokio::test]
async fn readiness_names_the_idp_when_it_stops_answering() {
    let mut ward = Ward::start().await;
    let admin = Admin::start(&ward).await;
    let ready = Answer::of(admin.get("/readyz").await).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        ready.json()["checks"],
        serde_json::json!({ "store": "up", "idp": "up" })
    );

    ward.idp.stop().await.expect("stop the IdP");
    // A probe's answer is reused for a few seconds of Ward's clock; after that the IdP is asked.
    ward.clock.advance(5);
    let unready = Answer::of(admin.get("/readyz").await).await;
    assert_eq!(unready.status, 503, "{}", unready.body);
    assert_eq!(
        unready.json(),
        serde_json::json!({
            "status": "unavailable",
            "checks": { "store": "up", "idp": "down" }
        })
    );
    assert_eq!(unready.header("cache-control"), Some("no-store"));
    assert_eq!(Answer::of(admin.get("/healthz").await).await.status, 200);
}

#[tokio::test]
async fn health_is_the_process_and_readiness_follows_the_store() {
    let outage = Outage::default();
    let ward = Ward::start_with(Options {
        outage: Some(outage.clone()),
        ..Default::default()
    })
    .await;
    let admin = Admin::start(&ward).await;

    let health = Answer::of(admin.get("/healthz").await).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), serde_json::json!({ "status": "ok" }));
    assert_eq!(health.header("cache-control"), Some("no-store"));
    let ready = Answer::of(admin.get("/readyz").await).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["status"], "ok");

    outage.begin();
    let unready = Answer::of(admin.get("/readyz").await).await;
    assert_eq!(unready.status, 503);
    assert_eq!(
        unready.json(),
        serde_json::json!({
            "status": "unavailable",
            "checks": { "store": "down", "idp": "up" }
        })
    );
    assert_eq!(unready.header("cache-control"), Some("no-store"));
    let listing = admin
        .sessions(reqwest::Method::GET, "alice", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(listing.status, 503);
    assert_eq!(listing.json()["error"], "store_unavailable");
    assert!(!listing.body.contains("injected"), "no internals");
    let revoking = admin
        .sessions(reqwest::Method::DELETE, "alice", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(revoking.status, 503);
    assert_eq!(
        Answer::of(admin.get("/healthz").await).await.status,
        200,
        "the process is still up"
    );

    outage.end();
    let back = Answer::of(admin.get("/readyz").await).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let unknown = Answer::of(admin.get("/metricz").await).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "not_found");
}
