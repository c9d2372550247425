//! Loader-level tests of `[[routes]] resource` (RFC 8707 resource indicators).

use super::tests::{config_text, load_ok, problems_with};

/// A `[[routes]]` entry on `prefix` with `token` and extra `lines`.
fn route(prefix: &str, token: &str, lines: &str) -> String {
    format!(
        "[[routes]]\nprefix = \"{prefix}\"\nupstream = \"http://127.0.0.1:7001\"\n\
         token = \"{token}\"\n{lines}\n"
    )
}

#[test]
fn user_and_client_routes_take_a_resource_kept_exactly_as_written() {
    let text = config_text(&format!(
        "{}{}{}",
        route("/orders", "user", "resource = \"https://orders.example\""),
        route(
            "/billing",
            "user-optional",
            "resource = \"urn:example:billing\""
        ),
        route(
            "/reports",
            "client",
            "resource = \"https://reports.example/v1\""
        ),
    ));
    let config = load_ok(&text, &[]);
    let resources: Vec<Option<&str>> = config
        .routes
        .iter()
        .map(|r| r.resource.as_deref())
        .collect();
    assert_eq!(
        resources,
        [
            Some("https://orders.example"),
            Some("urn:example:billing"),
            Some("https://reports.example/v1"),
        ],
        "no trailing slash added: the IdP compares the string"
    );
    let config = load_ok(&config_text(&route("/api", "user", "")), &[]);
    assert_eq!(config.routes[0].resource, None);
}

#[test]
fn a_resource_that_is_no_absolute_uri_or_has_a_fragment_or_query_names_its_route() {
    let text = format!(
        "{}{}{}{}",
        route("/a", "user", "resource = \"orders.example\""),
        route("/b", "user", "resource = \"https://orders.example/#top\""),
        route(
            "/c",
            "client",
            "resource = \"https://orders.example/?tenant=1\""
        ),
        route("/d", "user", "resource = \"\""),
    );
    assert_eq!(
        problems_with(&text),
        [
            "routes[0].resource: \"orders.example\" must be an absolute URI, such as \
             \"https://api.example.com\" (RFC 8707 §2)",
            "routes[1].resource: \"https://orders.example/#top\" must not include a fragment \
             (RFC 8707 §2)",
            "routes[2].resource: \"https://orders.example/?tenant=1\" must not include a query \
             (RFC 8707 §2 advises against it; Ward refuses it)",
            "routes[3].resource: \"\" must be an absolute URI without spaces (RFC 8707 §2)",
        ]
    );
}

#[test]
fn token_exchange_needs_a_resource_on_a_user_route() {
    let ok = route(
        "/orders",
        "user",
        "resource = \"https://orders.example\"\ntoken_exchange = true",
    );
    assert!(load_ok(&config_text(&ok), &[]).routes[0].token_exchange);
    let expected = "needs a resource on a route with token = \"user\" or \"user-optional\" (it \
                    exchanges the session's access token for one for that resource)";
    for (token, lines) in [
        ("user", "token_exchange = true"),
        (
            "client",
            "resource = \"https://orders.example\"\ntoken_exchange = true",
        ),
    ] {
        assert_eq!(
            problems_with(&route("/orders", token, lines)),
            [format!("routes[0].token_exchange: {expected}")],
            "{token}"
        );
    }
}

#[test]
fn a_route_without_a_token_takes_no_resource() {
    assert_eq!(
        problems_with(&route(
            "/api",
            "none",
            "resource = \"https://orders.example\""
        )),
        [
            "routes[0].resource: only applies to a route that sends a token (token = \"user\", \
             \"user-optional\" or \"client\")"
        ]
    );
}

#[test]
fn a_resource_route_is_refused_with_dpop_until_resource_tokens_are_bound() {
    let text = config_text(&route(
        "/orders",
        "user",
        "resource = \"https://orders.example\"",
    ));
    assert!(load_ok(&text, &[]).routes[0].resource.is_some());
    let problems = super::tests::load_err(&text, &[("WARD_OIDC__DPOP", "true")]);
    assert_eq!(
        problems.trim(),
        "routes[0].resource: is not supported together with [oidc] dpop = true yet (resource \
         tokens would not be DPoP-bound)"
    );
}

#[test]
fn a_resource_route_needs_a_server_side_store() {
    let routes = route("/orders", "user", "resource = \"https://orders.example\"");
    assert!(
        load_ok(&config_text(&routes), &[]).routes[0]
            .resource
            .is_some()
    );
    assert_eq!(
        problems_with(&format!("[store]\nkind = \"cookie\"\n\n{routes}")),
        [
            "routes[0].resource: needs a server-side [store] (memory, embedded, redis, postgres): \
          with kind = \"cookie\" concurrent grants could spend one refresh token twice"
        ]
    );
}
