//! The browser over real HTTP: cookies by path, deletion, redirects, bodies.

use super::*;
use crate::EchoUpstream;
use axum::Router;
use axum::http::header;
use axum::response::{AppendHeaders, IntoResponse};
use axum::routing::{get, post};

/// A small site that sets, deletes and redirects, to drive the browser over real HTTP.
async fn site() -> String {
    let app = Router::new()
        .route(
            "/set",
            get(|| async {
                (
                    AppendHeaders([
                        (header::SET_COOKIE, "a=1; Path=/"),
                        (header::SET_COOKIE, "deep=2; Path=/deep; HttpOnly"),
                    ]),
                    "set",
                )
            }),
        )
        .route(
            "/clear",
            get(|| async { ([(header::SET_COOKIE, "a=; Path=/; Max-Age=0")], "cleared") }),
        )
        .route(
            "/deep/start",
            get(|| async { (StatusCode::SEE_OTHER, [(header::LOCATION, "next?x=1")]) }),
        )
        .route(
            "/deep/next",
            get(|req: axum::extract::Request| async move {
                let cookie = req
                    .headers()
                    .get(header::COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                format!("{}|{cookie}", req.uri())
            }),
        )
        .route(
            "/form",
            post(|| async {
                (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/set")]).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn cookies_follow_path_and_deletion_over_http() -> anyhow::Result<()> {
    let base = site().await;
    let browser = Browser::new()?;
    let set = browser.get(format!("{base}/set")).await?;
    assert_eq!(set.set_cookie("deep"), Some("deep=2; Path=/deep; HttpOnly"));
    assert_eq!(browser.cookie("127.0.0.1", "a").as_deref(), Some("1"));
    assert_eq!(
        browser
            .cookie_header_for(&format!("{base}/deep/next"))
            .as_deref(),
        Some("deep=2; a=1")
    );
    assert_eq!(
        browser
            .cookie_header_for(&format!("{base}/other"))
            .as_deref(),
        Some("a=1")
    );

    // A relative Location resolves against the request URL; each hop is explicit.
    let start = browser.get(format!("{base}/deep/start")).await?;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    assert_eq!(start.location(), Some("next?x=1"));
    let next = browser.follow(&start).await?;
    assert_eq!(next.text(), "/deep/next?x=1|deep=2; a=1");

    browser.get(format!("{base}/clear")).await?;
    assert_eq!(browser.cookie("127.0.0.1", "a"), None);
    let next = browser.get(format!("{base}/deep/next")).await?;
    assert_eq!(next.text(), "/deep/next|deep=2");

    // Planted, removed, explicit and suppressed cookies.
    browser.set_cookie("127.0.0.1", "planted", "p");
    browser.remove_cookie("127.0.0.1", "deep");
    let next = browser.get(format!("{base}/deep/next")).await?;
    assert_eq!(next.text(), "/deep/next|planted=p");
    let explicit = browser
        .request(Method::GET, format!("{base}/deep/next"))
        .header("cookie", "mine=1")
        .send()
        .await?;
    assert_eq!(explicit.text(), "/deep/next|mine=1");
    let none = browser
        .request(Method::GET, format!("{base}/deep/next"))
        .without_cookies()
        .send()
        .await?;
    assert_eq!(none.text(), "/deep/next|");

    let other = browser.fresh()?;
    assert_eq!(other.cookie("127.0.0.1", "planted"), None);
    Ok(())
}

#[tokio::test]
async fn follow_until_walks_the_chain_and_refuses_to_replay_a_body() -> anyhow::Result<()> {
    let base = site().await;
    let browser = Browser::new()?;
    let start = browser.get(format!("{base}/deep/start")).await?;
    let end = browser
        .follow_until(start.clone(), |r| r.url.path() == "/deep/next")
        .await?;
    assert_eq!(end.status, StatusCode::OK);
    assert!(
        browser.follow_until(end, |_| false).await.is_err(),
        "chain ended"
    );
    assert!(
        browser
            .follow_all(start)
            .await?
            .text()
            .starts_with("/deep/next")
    );

    let posted = browser
        .post(format!("{base}/form"))
        .body("x")
        .send()
        .await?;
    assert_eq!(posted.status, StatusCode::TEMPORARY_REDIRECT);
    assert!(browser.follow(&posted).await.is_err());
    Ok(())
}

#[tokio::test]
async fn jar_cookies_reach_an_upstream_and_json_bodies_are_sent() -> anyhow::Result<()> {
    let echo = EchoUpstream::start().await?;
    let browser = Browser::new()?;
    browser.get(format!("{}/set-cookie", echo.url())).await?;
    let reply = browser
        .post(format!("{}/api/x", echo.url()))
        .header("x-csrf-token", "t")
        .json(&serde_json::json!({"k": "v"}))
        .send()
        .await?;
    let body = reply.json()?;
    assert_eq!(
        body["headers"]["cookie"],
        serde_json::json!(["__Host-ward=evil; app=1"])
    );
    assert_eq!(
        body["headers"]["content-type"],
        serde_json::json!(["application/json"])
    );
    let last = echo.last().context("recorded")?;
    assert_eq!(&last.body[..], br#"{"k":"v"}"#);
    assert_eq!(last.header("x-csrf-token"), Some("t"));
    Ok(())
}
