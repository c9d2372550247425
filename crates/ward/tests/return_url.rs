//! `GET /bff/login` parameters (SPEC §2; SECURITY-CASES L-03, R-01…R-06): `returnUrl` must be a
//! local path in every encoding, or `400 invalid_return_url` before any transaction; a local one
//! comes back unchanged as the callback's `Location`; `prompt` is passed on only when it is one
//! of the four OpenID values; the request headers never shape the authorization request.

mod common;

use common::{Options, Ward};
use ward_testkit::{Browser, Reply};

/// `returnUrl` values (as Ward sees them after its one round of query decoding) that would
/// send the browser off-site, or carry control characters, or are not paths at all.
fn refused_return_urls() -> Vec<(&'static str, String)> {
    let cases: &[(&str, &str)] = &[
        ("empty", ""),
        ("relative", "evil"),
        ("relative host", "evil.example/path"),
        ("scheme-relative", "//evil.example"),
        ("triple slash", "///evil.example"),
        ("quadruple slash", "////evil.example/%2e%2e"),
        ("slash backslash", "/\\evil.example"),
        ("backslash slash", "\\/evil.example"),
        ("double backslash", "\\\\evil.example"),
        ("slash backslash slash", "/\\/evil.example"),
        ("dot backslash", "/./\\evil.example"),
        ("absolute https", "https://evil.example"),
        ("absolute http", "http://evil.example"),
        ("scheme without slashes", "http:evil"),
        ("scheme one slash", "https:/evil.example"),
        ("scheme backslashes", "http:\\\\evil.example"),
        ("javascript", "javascript:alert(1)"),
        ("javascript mixed case", "JaVaScRiPt:%0aalert(1)"),
        ("data", "data:text/html,<script>alert(1)</script>"),
        ("vbscript", "vbscript:msgbox(1)"),
        ("encoded scheme-relative", "%2F%2Fevil.example"),
        ("encoded lower-case", "%2f%2fevil.example"),
        ("slash then encoded slashes", "/%2F%2Fevil.example"),
        ("slash then encoded slash", "/%2Fevil.example"),
        ("encoded backslash", "/%5Cevil"),
        ("encoded backslash lower-case", "/%5cevil"),
        ("double-encoded slashes", "%252F%252Fevil.example"),
        ("encoded tab", "/%09/evil.example"),
        ("encoded LF", "/%0a/evil.example"),
        ("encoded CR", "/%0d/evil.example"),
        ("encoded VT", "/%0b/evil.example"),
        ("encoded NUL", "/%00//evil.example"),
        ("encoded CRLF header", "/%0d%0aSet-Cookie:%20__Host-ward=x"),
        (
            "encoded LF Location",
            "/%0aLocation:%20https://evil.example",
        ),
        ("raw CRLF", "/app\r\nSet-Cookie: __Host-ward=x"),
        ("raw LF", "/app\nLocation: https://evil.example"),
        ("raw CR", "/\r/evil.example"),
        ("raw tab", "/\t/evil.example"),
        ("raw NUL", "/a\0b"),
        ("raw DEL", "/a\u{7f}b"),
        ("leading space", " //evil.example"),
        ("leading tab", "\t//evil.example"),
    ];
    let mut cases: Vec<(&'static str, String)> = cases
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect();
    cases.push(("over-long (3000)", format!("/{}", "a".repeat(2999))));
    cases.push(("one over 2 KiB", format!("/{}", "a".repeat(2048))));
    cases
}

/// `value` encoded for a query string, so Ward's query parsing yields exactly `value`.
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Every way `reply` differs from a `400` with `code` that redirects nowhere and sets no
/// cookie (no login binding, so no transaction was bound to the browser).
fn refusal_problems(reply: &Reply, code: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if reply.status != 400 {
        problems.push(format!("status {}", reply.status));
    }
    match reply.json() {
        Ok(body) if body["error"] == code => {}
        Ok(body) => problems.push(format!("error {}", body["error"])),
        Err(_) => problems.push("body is not JSON".to_owned()),
    }
    if reply.headers.get("location").is_some() {
        problems.push("a Location header".to_owned());
    }
    if reply.set_cookie("__Host-ward-tx").is_some() {
        problems.push("a login binding cookie".to_owned());
    }
    if !reply.set_cookies().is_empty() {
        problems.push(format!("{} Set-Cookie headers", reply.set_cookies().len()));
    }
    if reply.header("cache-control") != Some("no-store") {
        problems.push(format!("Cache-Control {:?}", reply.header("cache-control")));
    }
    problems
}

#[tokio::test]
async fn non_local_return_urls_are_refused_before_any_transaction() {
    // More refused values than the default login limit (20 a minute from one address) allows;
    // the limit itself is tested in rate_limit.rs.
    let ward = Ward::start_with(Options {
        extra_toml: "[rate_limit]\nlogin = { limit = 1000, window = \"1m\" }".to_owned(),
        ..Default::default()
    })
    .await;
    let mut failures = Vec::new();
    for (case, value) in refused_return_urls() {
        let browser = Browser::new().expect("browser");
        let reply = browser
            .get(ward.url(&format!("/bff/login?returnUrl={}", encode(&value))))
            .await
            .expect("GET /bff/login");
        let problems = refusal_problems(&reply, "invalid_return_url");
        if !problems.is_empty() {
            failures.push(format!("{case} ({value:?}): {}", problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "returnUrl values not refused cleanly:\n{}",
        failures.join("\n")
    );
    let stats = ward.idp.stats().await.expect("IdP stats");
    assert_eq!(stats.token_requests, 0, "the IdP's token endpoint was used");
}

#[tokio::test]
async fn a_repeated_return_url_is_refused() {
    let ward = Ward::start().await;
    for query in [
        "returnUrl=/app&returnUrl=//evil.example",
        "returnUrl=//evil.example&returnUrl=/app",
        "returnUrl=/app&returnUrl=/app",
    ] {
        let reply = Browser::new()
            .expect("browser")
            .get(ward.url(&format!("/bff/login?{query}")))
            .await
            .expect("GET /bff/login");
        // Either code is a clean refusal; what matters is that nothing is started.
        let code = match reply.json() {
            Ok(body) if body["error"] == "invalid_return_url" => "invalid_return_url",
            _ => "bad_request",
        };
        let problems = refusal_problems(&reply, code);
        assert!(problems.is_empty(), "{query}: {}", problems.join("; "));
    }
}

#[tokio::test]
async fn local_return_urls_come_back_exactly_after_the_login() {
    let ward = Ward::start().await;
    let longest = format!("/{}", "a".repeat(2047));
    for value in [
        "/",
        "/app?x=1#frag",
        "/a/b%20c",
        "/a:b",
        "/caf%C3%A9?q=%2F&r=a+b",
        longest.as_str(),
    ] {
        let browser = Browser::new().expect("browser");
        let callback = ward.login(&browser, "alice", &encode(value)).await;
        assert_eq!(
            callback.location(),
            Some(value),
            "returnUrl {value:.40} came back changed"
        );
        assert!(callback.set_cookie("__Host-ward").is_some(), "{value:.40}");
    }
}

#[tokio::test]
async fn a_non_ascii_return_url_comes_back_percent_encoded() {
    let ward = Ward::start().await;
    for (value, location) in [
        ("/café/ü x", "/caf%C3%A9/%C3%BC%20x"),
        ("/日本?q=é", "/%E6%97%A5%E6%9C%AC?q=%C3%A9"),
    ] {
        let browser = Browser::new().expect("browser");
        let callback = ward.login(&browser, "alice", &encode(value)).await;
        assert_eq!(callback.location(), Some(location), "{value}");
    }
}

#[tokio::test]
async fn a_login_without_return_url_lands_on_the_root() {
    let ward = Ward::start().await;
    let browser = Browser::new().expect("browser");
    let start = browser
        .get(ward.url("/bff/login"))
        .await
        .expect("GET /bff/login");
    assert_eq!(start.status, 302);
    let back = browser
        .login_at_idp(start.location().expect("Location"), "alice")
        .await
        .expect("login at the IdP");
    let callback = browser.follow(&back).await.expect("GET /bff/callback");
    assert_eq!(callback.status, 302, "{}", callback.text());
    assert_eq!(callback.location(), Some("/"));
}

#[tokio::test]
async fn the_four_prompt_values_are_passed_to_the_idp() {
    let ward = Ward::start().await;
    let browser = Browser::new().expect("browser");
    for prompt in ["login", "none", "consent", "select_account"] {
        let reply = browser
            .get(ward.url(&format!("/bff/login?returnUrl=/app&prompt={prompt}")))
            .await
            .expect("GET /bff/login");
        assert_eq!(reply.status, 302, "{prompt}: {}", reply.text());
        assert!(
            reply
                .location()
                .is_some_and(|l| l.starts_with(&ward.idp.url("/auth"))),
            "{prompt}: not sent to the IdP"
        );
        assert_eq!(reply.location_param("prompt").as_deref(), Some(prompt));
    }
    let plain = browser
        .get(ward.url("/bff/login?returnUrl=/app"))
        .await
        .expect("GET /bff/login");
    assert_eq!(plain.status, 302);
    assert_eq!(
        plain.location_param("prompt"),
        None,
        "no prompt unless asked"
    );
}

#[tokio::test]
async fn other_prompt_values_are_refused() {
    let ward = Ward::start().await;
    for query in [
        "prompt=evil".to_owned(),
        "prompt=create".to_owned(),
        "prompt=LOGIN".to_owned(),
        format!(
            "prompt={}",
            encode("login&redirect_uri=https://evil.example")
        ),
        "prompt=login&prompt=none".to_owned(),
    ] {
        let reply = Browser::new()
            .expect("browser")
            .get(ward.url(&format!("/bff/login?returnUrl=/app&{query}")))
            .await
            .expect("GET /bff/login");
        let problems = refusal_problems(&reply, "bad_request");
        assert!(problems.is_empty(), "{query}: {}", problems.join("; "));
    }
}

#[tokio::test]
async fn request_host_headers_never_shape_the_authorization_request() {
    let ward = Ward::start().await;
    let callback = ward.url("/bff/callback");
    let injections: [&[(&str, &str)]; 5] = [
        &[("host", "evil.example")],
        &[("x-forwarded-host", "evil.example")],
        &[
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "http"),
        ],
        &[("forwarded", "host=evil.example;proto=https")],
        &[
            ("host", "evil.example:8443"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-port", "8443"),
            ("forwarded", "for=1.2.3.4;host=evil.example;proto=https"),
        ],
    ];
    for headers in injections {
        let browser = Browser::new().expect("browser");
        let mut request =
            browser.request(reqwest::Method::GET, ward.url("/bff/login?returnUrl=/app"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let reply = request.send().await.expect("GET /bff/login");
        // SECURITY-CASES L-03 allows refusing an unknown Host; if Ward answers, the request it
        // builds must come from configuration alone.
        if reply.status == 400 {
            assert!(reply.headers.get("location").is_none(), "{headers:?}");
            continue;
        }
        assert_eq!(reply.status, 302, "{headers:?}: {}", reply.text());
        let location = reply.location().expect("Location");
        assert!(
            location.starts_with(&ward.idp.url("/auth")),
            "{headers:?}: Location {location}"
        );
        assert!(
            !location.contains("evil"),
            "{headers:?}: Location {location}"
        );
        assert_eq!(
            reply.location_param("redirect_uri").as_deref(),
            Some(callback.as_str()),
            "{headers:?}"
        );
        for set_cookie in reply.set_cookies() {
            assert!(!set_cookie.contains("evil"), "{headers:?}: {set_cookie}");
            assert!(!set_cookie.contains("Domain"), "{headers:?}: {set_cookie}");
        }
    }
}

#[tokio::test]
async fn return_urls_into_ward_endpoints_or_api_routes_are_refused() {
    let ward = Ward::start_with(Options {
        extra_toml: SPA_ROUTES.to_owned(),
        ..Options::default()
    })
    .await;
    let browser = Browser::new().unwrap();
    for target in [
        "/bff",
        "/bff/user",
        "/bff/logout",
        "/%62ff/user",
        "/api",
        "/api/orders?x=1",
        "/machine/report",
    ] {
        let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let reply = browser
            .get(ward.url(&format!("/bff/login?returnUrl={encoded}")))
            .await
            .unwrap();
        assert_eq!(reply.status, 400, "{target}");
        assert_eq!(
            reply.json().unwrap()["error"],
            "invalid_return_url",
            "{target}"
        );
    }
    let reply = browser
        .get(ward.url("/bff/login?returnUrl=/apix"))
        .await
        .unwrap();
    assert_eq!(reply.status, 302, "/apix is not the /api route");
}

/// Routes beside the harness's `/api` (`user`) and `/public` (`none`): an SPA an upstream
/// serves anonymously or with an optional session, and an API called with Ward's own token.
const SPA_ROUTES: &str = r#"
[[routes]]
prefix = "/app"
upstream = "http://127.0.0.1:9"
token = "none"

[[routes]]
prefix = "/portal"
upstream = "http://127.0.0.1:9"
token = "user-optional"

[[routes]]
prefix = "/machine"
upstream = "http://127.0.0.1:9"
token = "client"
"#;

#[tokio::test]
async fn pages_served_through_none_or_user_optional_routes_are_valid_return_urls() {
    let ward = Ward::start_with(Options {
        extra_toml: SPA_ROUTES.to_owned(),
        ..Options::default()
    })
    .await;
    let browser = Browser::new().unwrap();
    for target in ["/app/", "/app/orders/7?tab=items", "/portal", "/public/x"] {
        let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let reply = browser
            .get(ward.url(&format!("/bff/login?returnUrl={encoded}")))
            .await
            .unwrap();
        assert_eq!(
            reply.status, 302,
            "{target}: an SPA page behind Ward is a valid target"
        );
    }
}
