//! A store that cannot answer fails closed: `503 store_unavailable`, never a guess (SPEC §2),
//! and the same cookies work again once it is back.

mod common;

use common::flaky::Outage;
use common::{Options, Ward};
use ward_testkit::Browser;

#[tokio::test]
async fn store_outage_is_503_everywhere_a_session_is_needed_and_recovers() {
    let outage = Outage::default();
    let ward = Ward::start_with(Options {
        outage: Some(outage.clone()),
        ..Default::default()
    })
    .await;
    let (browser, me) = ward.logged_in("alice").await;
    let csrf = me["csrfToken"].as_str().unwrap().to_owned();

    outage.begin();
    every_request_that_needs_the_session_is_503(&ward, &browser, &csrf).await;

    outage.end();
    let user = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(user.status, 200, "the same cookie works again");
    assert_eq!(user.json().unwrap()["csrfToken"], csrf.as_str());
    assert_eq!(
        browser.get(ward.url("/api/data")).await.unwrap().status,
        200
    );
}

/// `/bff/user`, `/api`, an unsafe request with the cookie, logout and login: each `503`, the
/// cookie kept, nothing forwarded.
async fn every_request_that_needs_the_session_is_503(ward: &Ward, browser: &Browser, csrf: &str) {
    let user = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(user.status, 503);
    assert_eq!(user.json().unwrap()["error"], "store_unavailable");
    assert!(user.header("retry-after").is_some());
    assert_eq!(user.header("cache-control"), Some("no-store"));
    assert!(
        !user.text().contains("injected"),
        "no internals in the body"
    );

    let api = browser.get(ward.url("/api/data")).await.unwrap();
    assert_eq!(api.status, 503);
    let post = browser
        .post(ward.url("/public/form"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.status, 503,
        "an unsafe request with a cookie needs the session"
    );
    assert!(
        ward.upstream.requests().is_empty(),
        "nothing forwarded during the outage"
    );

    let logout = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status, 503);
    assert!(
        logout.set_cookie("__Host-ward").is_none(),
        "the cookie is kept"
    );
    let login = Browser::new()
        .unwrap()
        .get(ward.url("/bff/login"))
        .await
        .unwrap();
    assert_eq!(login.status, 503);
}

#[tokio::test]
async fn public_get_routes_do_not_need_the_store() {
    let outage = Outage::default();
    let ward = Ward::start_with(Options {
        outage: Some(outage.clone()),
        ..Default::default()
    })
    .await;
    outage.begin();
    let reply = Browser::new()
        .unwrap()
        .get(ward.url("/public/x"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
}
