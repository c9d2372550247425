//! Audience-restricted tokens per route (RFC 8707 resource indicators; SPEC §5 `resource`)
//! against the real IdP, which issues JWT access tokens with `aud` = the resource for each of
//! its `RESOURCES`, rotates the refresh token on every use, and logs each token request that
//! names a resource (`Idp::resource_token_requests`).
//!
//! Ward's clock is advanced past a resource token's expiry; the IdP, on real time, still
//! renews it with the session's (rotated) refresh token.

mod common;
#[path = "support/log_capture.rs"]
mod log_capture;

use std::sync::Arc;

use common::{Options, Ward};
use log_capture::Capture;
use ward_testkit::{Browser, ClientKey, EchoUpstream, IdpOptions, jwt_claims};

const ORDERS: &str = "https://orders.example";
const BILLING: &str = "https://billing.example";
const AT_TTL: u64 = 120;

/// `/orders` and `/billing`, each with its resource (`token`: their token mode), on `apis`;
/// the harness's `/api` (the session's own token) stays on its own upstream.
fn resource_routes(apis: &EchoUpstream, token: &str) -> String {
    format!(
        r#"
[[routes]]
prefix = "/orders"
upstream = "{url}"
token = "{token}"
resource = "{ORDERS}"

[[routes]]
prefix = "/billing"
upstream = "{url}"
token = "{token}"
resource = "{BILLING}"
"#,
        url = apis.url()
    )
}

fn idp_with_resources(idp: &mut IdpOptions) {
    idp.resources = vec![ORDERS.to_owned(), BILLING.to_owned()];
    idp.at_ttl = Some(AT_TTL);
}

/// Ward with `extra_toml`, the IdP serving [`ORDERS`] and [`BILLING`]; FAPI 2.0 with a key.
async fn start(extra_toml: String, client_key: Option<Arc<ClientKey>>) -> Ward {
    Ward::start_with(Options {
        idp: idp_with_resources,
        extra_toml,
        client_key,
        ..Options::default()
    })
    .await
}

/// `GET <origin><path>` with `browser`: its status and the `Authorization` `upstream` got.
async fn call(
    upstream: &EchoUpstream,
    browser: &Browser,
    origin: &str,
    path: &str,
) -> (u16, Option<String>) {
    let reply = browser.get(format!("{origin}{path}")).await.expect("GET");
    let bearer = upstream
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path() == path)
        .and_then(|r| r.header("authorization").map(str::to_owned));
    (reply.status.as_u16(), bearer)
}

/// One call that must succeed; the bearer it carried.
async fn bearer(upstream: &EchoUpstream, browser: &Browser, origin: &str, path: &str) -> String {
    let (status, bearer) = call(upstream, browser, origin, path).await;
    assert_eq!(status, 200, "{path}");
    bearer.unwrap_or_else(|| panic!("{path}: the upstream received no bearer"))
}

/// The token of a `Bearer` header value.
fn token(bearer: &str) -> &str {
    bearer.strip_prefix("Bearer ").expect("a Bearer token")
}

/// The `aud` of a JWT access token, as a list.
fn audiences(bearer: &str) -> Vec<String> {
    let claims = jwt_claims(token(bearer)).expect("a JWT access token");
    match &claims["aud"] {
        serde_json::Value::String(aud) => vec![aud.clone()],
        serde_json::Value::Array(auds) => auds
            .iter()
            .map(|a| a.as_str().expect("aud string").to_owned())
            .collect(),
        other => panic!("no aud in {claims}: {other}"),
    }
}
/// Logs `alice` in through the IdP at the Ward on `origin`; the authorization URL the browser
/// was sent to.
async fn log_in_at(origin: &str, browser: &Browser) -> url::Url {
    let start = browser
        .get(format!("{origin}/bff/login?returnUrl=/"))
        .await
        .expect("GET /bff/login");
    assert_eq!(start.status, 302, "{}", start.text());
    let authorize = url::Url::parse(start.location().expect("Location")).expect("a URL");
    let back = browser
        .login_at_idp(authorize.as_str(), "alice")
        .await
        .expect("login at the IdP");
    let callback = browser.follow(&back).await.expect("GET /bff/callback");
    assert_eq!(callback.status, 302, "callback: {}", callback.text());
    authorize
}

async fn log_in(ward: &Ward, browser: &Browser) -> url::Url {
    log_in_at(&ward.origin, browser).await
}

/// The `resource` parameters of an authorization URL, in order.
fn named_resources(authorize: &url::Url) -> Vec<String> {
    authorize
        .query_pairs()
        .filter(|(name, _)| name == "resource")
        .map(|(_, value)| value.into_owned())
        .collect()
}

#[tokio::test]
async fn each_route_gets_a_token_for_its_own_resource_and_the_main_route_keeps_the_sessions() {
    let apis = EchoUpstream::start().await.unwrap();
    let ward = start(resource_routes(&apis, "user"), None).await;
    let browser = Browser::new().unwrap();
    let authorize = log_in(&ward, &browser).await;

    // The authorization request named every route's resource (RFC 8707 §2.1), once each.
    assert_eq!(named_resources(&authorize), [ORDERS, BILLING]);

    let main = bearer(&ward.upstream, &browser, &ward.origin, "/api/a").await;
    let orders = bearer(&apis, &browser, &ward.origin, "/orders/a").await;
    let billing = bearer(&apis, &browser, &ward.origin, "/billing/a").await;
    assert_eq!(
        audiences(&orders),
        [ORDERS],
        "the orders API's token is its alone"
    );
    assert_eq!(
        audiences(&billing),
        [BILLING],
        "the billing API's token is its alone"
    );
    assert_eq!(jwt_claims(token(&orders)).unwrap()["sub"], "alice");
    assert_ne!(main, orders);
    assert_ne!(main, billing);
    assert_eq!(ward.idp.resource_token_requests(ORDERS), ["ok"]);
    assert_eq!(ward.idp.resource_token_requests(BILLING), ["ok"]);

    // Cached: the same tokens again, no further token request; the session's own token is
    // the one it had.
    assert_eq!(
        bearer(&apis, &browser, &ward.origin, "/orders/b").await,
        orders
    );
    assert_eq!(
        bearer(&apis, &browser, &ward.origin, "/billing/b").await,
        billing
    );
    assert_eq!(
        bearer(&ward.upstream, &browser, &ward.origin, "/api/b").await,
        main
    );
    assert_eq!(ward.idp.resource_token_requests(ORDERS), ["ok"]);

    // Each resource grant rotated the refresh token, and Ward kept the newest: the session's
    // own refresh works past its token's expiry (an old refresh token would be invalid_grant,
    // and revoke the whole grant at this IdP).
    ward.clock.advance(AT_TTL + 1);
    let refreshed = bearer(&ward.upstream, &browser, &ward.origin, "/api/c").await;
    assert_ne!(refreshed, main);
    let renewed = bearer(&apis, &browser, &ward.origin, "/orders/c").await;
    assert_ne!(renewed, orders);
    assert_eq!(audiences(&renewed), [ORDERS]);
    assert_eq!(ward.idp.resource_token_requests(ORDERS), ["ok", "ok"]);
    let logs = ward.idp.logs();
    assert!(
        !logs.contains("grant.error"),
        "the IdP refused a grant:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_two_instances_fetch_one_token_and_renew_it_once_past_its_expiry() {
    let apis = Arc::new(EchoUpstream::start().await.unwrap());
    let ward = Arc::new(start(resource_routes(&apis, "user"), None).await);
    let browser = Browser::new().unwrap();
    log_in(&ward, &browser).await;
    // A second instance on the same store: only the store lock keeps the two apart.
    let peer = ward.peer().await;
    let origins = [ward.origin.clone(), peer.origin.clone()];

    let burst = |round: usize| {
        let tasks: Vec<_> = (0..20)
            .map(|n| {
                let origin = origins[n % 2].clone();
                let (apis, browser) = (apis.clone(), browser.clone());
                tokio::spawn(async move {
                    call(&apis, &browser, &origin, &format!("/orders/{round}-{n}")).await
                })
            })
            .collect();
        async move {
            let mut bearers = Vec::new();
            for task in tasks {
                let (status, bearer) = task.await.expect("request task");
                assert_eq!(status, 200);
                bearers.push(bearer.expect("a bearer upstream"));
            }
            bearers
        }
    };

    let first = burst(1).await;
    assert!(
        first.iter().all(|b| *b == first[0]),
        "all use the one token"
    );
    assert_eq!(audiences(&first[0]), [ORDERS]);
    assert_eq!(
        ward.idp.resource_token_requests(ORDERS),
        ["ok"],
        "fetched once"
    );

    ward.clock.advance(AT_TTL + 1);
    let second = burst(2).await;
    assert!(
        second.iter().all(|b| *b == second[0]),
        "all use the one renewed token"
    );
    assert_ne!(second[0], first[0]);
    assert_eq!(
        ward.idp.resource_token_requests(ORDERS),
        ["ok", "ok"],
        "renewed once"
    );
    assert!(ward.idp.resource_token_requests(BILLING).is_empty());
    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
}

#[tokio::test]
async fn a_resource_the_sessions_grant_does_not_cover_is_403_until_the_user_logs_in_again() {
    let capture = Capture::install();
    // This instance names only ORDERS at login; a second one on the same store (a newer
    // configuration) also routes /billing to BILLING, which the session's grant lacks.
    let apis = EchoUpstream::start().await.unwrap();
    let both = resource_routes(&apis, "user");
    let orders_only = &both[..both.find("\n[[routes]]\nprefix = \"/billing\"").unwrap()];
    let ward = start(orders_only.to_owned(), None).await;
    let browser = Browser::new().unwrap();
    assert_eq!(named_resources(&log_in(&ward, &browser).await), [ORDERS]);
    let billing_route = |config: &mut ward::config::Config| {
        let mut billing = config.routes.last().expect("the orders route").clone();
        billing.prefix = "/billing".to_owned();
        billing.resource = Some(BILLING.to_owned());
        config.routes.push(billing);
    };
    let newer = ward.peer_with(billing_route).await;

    let refused = browser
        .get(format!("{}/billing/a", newer.origin))
        .await
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.json().unwrap()["error"], "resource_not_granted");
    assert!(
        !refused.text().contains("invalid_target"),
        "no IdP answer to the browser"
    );
    assert!(
        apis.requests().iter().all(|r| r.path() != "/billing/a"),
        "never forwarded"
    );
    assert_eq!(
        ward.idp.resource_token_requests(BILLING),
        ["invalid_target"]
    );
    // Remembered for a moment: a second call does not ask the IdP again.
    let again = browser
        .get(format!("{}/billing/b", newer.origin))
        .await
        .unwrap();
    assert_eq!(again.status, 403);
    assert_eq!(
        ward.idp.resource_token_requests(BILLING),
        ["invalid_target"]
    );

    // oidc-provider 9.13 consumes a rotating refresh token before it checks the resource, so
    // the refused grant cost the session its refresh token: the next use is invalid_grant,
    // which ends the session as a refused main refresh does (401, cookie cleared).
    let ended = browser
        .get(format!("{}/orders/a", newer.origin))
        .await
        .unwrap();
    assert_eq!(ended.status, 401, "{}", ended.text());
    assert_eq!(ended.json().unwrap()["error"], "unauthenticated");
    assert!(
        ended.set_cookie(&ward.cookie_name()).is_some(),
        "the cookie is cleared"
    );
    assert_eq!(ward.idp.resource_token_requests(ORDERS), ["invalid_grant"]);

    // Logging in again (through the newer configuration) names both; both routes work.
    assert_eq!(
        named_resources(&log_in_at(&newer.origin, &browser).await),
        [ORDERS, BILLING]
    );
    let billing = bearer(&apis, &browser, &newer.origin, "/billing/c").await;
    assert_eq!(audiences(&billing), [BILLING]);
    let orders = bearer(&apis, &browser, &newer.origin, "/orders/c").await;
    assert_eq!(audiences(&orders), [ORDERS]);

    // Every outcome is logged by name, and no token is.
    let log = capture.text();
    for (event, reason) in [
        ("resource_token_failed", "invalid_target"),
        ("resource_token_failed", "invalid_grant"),
        ("resource_token_fetched", ""),
    ] {
        assert!(
            log.lines()
                .any(|line| line.contains(&format!("\"{event}\"")) && line.contains(reason)),
            "no {event} {reason} in:\n{log}"
        );
    }
    for line in log.lines().filter(|line| line.contains("resource_token")) {
        assert!(!line.contains("eyJ"), "a JWT in the log: {line}");
    }
    for sent in [billing, orders] {
        assert!(!log.contains(token(&sent)), "a resource token in the log");
    }
}

#[tokio::test]
async fn an_idp_outage_keeps_a_valid_resource_token_and_never_sends_an_expired_one() {
    let apis = EchoUpstream::start().await.unwrap();
    let ward = start(resource_routes(&apis, "user"), None).await;
    let browser = Browser::new().unwrap();
    log_in(&ward, &browser).await;
    let orders = bearer(&apis, &browser, &ward.origin, "/orders/a").await;

    ward.idp.fail_token_requests(503).await.unwrap();
    // Within the skew, still valid: the cached token goes on while the IdP fails.
    ward.clock.advance(AT_TTL - 30);
    assert_eq!(
        bearer(&apis, &browser, &ward.origin, "/orders/b").await,
        orders
    );
    // Expired: 502, and neither the expired token nor the session's own goes upstream.
    ward.clock.advance(31);
    let (status, _) = call(&apis, &browser, &ward.origin, "/orders/c").await;
    assert_eq!(status, 502);
    assert!(apis.requests().iter().all(|r| r.path() != "/orders/c"));

    ward.idp.fail_token_requests(0).await.unwrap();
    ward.clock.advance(ward::session::refresh::BACKOFF);
    let renewed = bearer(&apis, &browser, &ward.origin, "/orders/d").await;
    assert_ne!(renewed, orders);
    assert_eq!(audiences(&renewed), [ORDERS]);
}

#[tokio::test]
async fn user_optional_resource_routes_send_no_token_without_a_session() {
    let apis = EchoUpstream::start().await.unwrap();
    let ward = start(resource_routes(&apis, "user-optional"), None).await;
    let anonymous = Browser::new().unwrap();
    let (status, sent) = call(&apis, &anonymous, &ward.origin, "/orders/anon").await;
    assert_eq!((status, sent), (200, None));

    let browser = Browser::new().unwrap();
    log_in(&ward, &browser).await;
    let orders = bearer(&apis, &browser, &ward.origin, "/orders/a").await;
    assert_eq!(audiences(&orders), [ORDERS]);
}

#[tokio::test]
async fn a_client_route_with_a_resource_gets_a_client_credentials_token_for_it() {
    let apis = EchoUpstream::start().await.unwrap();
    let ward = start(
        format!(
            "[[routes]]\nprefix = \"/reports\"\nupstream = \"{}\"\ntoken = \"client\"\n\
             resource = \"{ORDERS}\"\n",
            apis.url()
        ),
        None,
    )
    .await;
    let anonymous = Browser::new().unwrap();
    let sent = bearer(&apis, &anonymous, &ward.origin, "/reports/a").await;
    assert_eq!(audiences(&sent), [ORDERS]);
    assert_eq!(jwt_claims(token(&sent)).unwrap()["client_id"], "bff");
    assert_eq!(
        bearer(&apis, &anonymous, &ward.origin, "/reports/b").await,
        sent
    );
    assert_eq!(ward.idp.resource_token_requests(ORDERS), ["ok"]);
}

#[tokio::test]
async fn under_fapi_2_the_pushed_request_names_the_resources_and_each_route_gets_its_audience() {
    let apis = EchoUpstream::start().await.unwrap();
    let key = Arc::new(ClientKey::generate().unwrap());
    let ward = start(resource_routes(&apis, "user"), Some(key)).await;
    let browser = Browser::new().unwrap();
    let authorize = log_in(&ward, &browser).await;
    let names: Vec<String> = authorize
        .query_pairs()
        .map(|(n, _)| n.into_owned())
        .collect();
    assert_eq!(
        names,
        ["client_id", "request_uri"],
        "PAR: the resources went in the push"
    );

    let orders = bearer(&apis, &browser, &ward.origin, "/orders/a").await;
    let billing = bearer(&apis, &browser, &ward.origin, "/billing/a").await;
    assert_eq!(audiences(&orders), [ORDERS]);
    assert_eq!(audiences(&billing), [BILLING]);
    assert_eq!(ward.idp.resource_token_requests(ORDERS), ["ok"]);
    // Past its expiry (the FAPI IdP keeps its own access-token lifetime).
    let claims = jwt_claims(token(&orders)).unwrap();
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    ward.clock.advance(lifetime + 1);
    let renewed = bearer(&apis, &browser, &ward.origin, "/orders/b").await;
    assert_ne!(renewed, orders);
    assert_eq!(ward.idp.resource_token_requests(ORDERS), ["ok", "ok"]);
    let logs = ward.idp.logs();
    for refusal in ["grant.error", "pushed_authorization_request.error"] {
        assert!(!logs.contains(refusal), "the IdP logged {refusal}:\n{logs}");
    }
}

#[tokio::test]
async fn a_token_exchange_route_exchanges_the_sessions_token_for_one_for_its_resource() {
    let apis = EchoUpstream::start().await.unwrap();
    let ward = Ward::start_with(Options {
        idp: |idp| {
            idp_with_resources(idp);
            idp.extra_env
                .push(("TOKEN_EXCHANGE".to_owned(), "1".to_owned()));
        },
        extra_toml: format!(
            "[[routes]]\nprefix = \"/orders\"\nupstream = \"{}\"\ntoken = \"user\"\n\
             resource = \"{ORDERS}\"\ntoken_exchange = true\n",
            apis.url()
        ),
        ..Options::default()
    })
    .await;
    let browser = Browser::new().unwrap();
    log_in(&ward, &browser).await;
    let main = bearer(&ward.upstream, &browser, &ward.origin, "/api/a").await;

    let orders = bearer(&apis, &browser, &ward.origin, "/orders/a").await;
    assert_ne!(orders, main);
    assert_eq!(audiences(&orders), [ORDERS]);
    assert_eq!(jwt_claims(token(&orders)).unwrap()["sub"], "alice");
    assert_eq!(
        bearer(&apis, &browser, &ward.origin, "/orders/b").await,
        orders
    );
    let exchanges = |ward: &Ward| {
        ward.idp
            .logs()
            .lines()
            .filter(|line| line.ends_with(&format!("token-exchange {ORDERS}")))
            .count()
    };
    assert_eq!(exchanges(&ward), 1, "exchanged once, then cached");

    // Past both tokens' expiry: the session's own token is refreshed, then exchanged again.
    ward.clock.advance(AT_TTL + 1);
    let renewed = bearer(&apis, &browser, &ward.origin, "/orders/c").await;
    assert_ne!(renewed, orders);
    assert_eq!(audiences(&renewed), [ORDERS]);
    assert_eq!(exchanges(&ward), 2);
    assert_ne!(
        bearer(&ward.upstream, &browser, &ward.origin, "/api/b").await,
        main
    );
}

#[tokio::test]
async fn a_resource_the_idp_does_not_know_fails_the_login_with_invalid_target() {
    let apis = EchoUpstream::start().await.unwrap();
    let ward = start(
        format!(
            "[[routes]]\nprefix = \"/unknown\"\nupstream = \"{}\"\ntoken = \"user\"\n\
             resource = \"https://unknown.example\"\n",
            apis.url()
        ),
        None,
    )
    .await;
    let browser = Browser::new().unwrap();
    let start = browser
        .get(ward.url("/bff/login?returnUrl=/"))
        .await
        .unwrap();
    assert_eq!(start.status, 302);
    let back = browser
        .login_at_idp(start.location().unwrap(), "alice")
        .await
        .unwrap();
    // The IdP refuses the authorization request itself (RFC 8707 §2: invalid_target) and
    // sends the browser back; Ward names the IdP's error to the SPA and makes no session.
    assert_eq!(
        back.location_param("error").as_deref(),
        Some("invalid_target")
    );
    let callback = browser.follow(&back).await.unwrap();
    assert_eq!(callback.status, 302);
    assert_eq!(callback.location(), Some("/?bff_error=invalid_target"));
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        401
    );
}
