//! The route table: matching, upstream URIs, prefixes and refusals.

use super::*;

fn config(prefix: &str, upstream: &str, strip_prefix: bool) -> RouteConfig {
    RouteConfig {
        prefix: prefix.to_owned(),
        upstream: Url::parse(upstream).expect("test URL"),
        token: TokenMode::User,
        strip_prefix,
        timeout: Duration::from_secs(30),
        max_request_body: None,
        scopes: None,
        resource: None,
        token_exchange: false,
        fields: None,
        profiles: Default::default(),
        max_buffered_response: 4 << 20,
    }
}

fn route(prefix: &str, upstream: &str, strip_prefix: bool) -> Route {
    Route::compile(0, &config(prefix, upstream, strip_prefix)).expect("valid route")
}

fn target(route: &Route, path: &str, query: Option<&str>) -> Option<String> {
    route.upstream_uri(path, query).map(|u| u.to_string())
}

#[test]
fn prefix_matches_whole_segments_only() {
    let r = route("/api", "http://h:1", false);
    assert!(r.matches("/api"));
    assert!(r.matches("/api/"));
    assert!(r.matches("/api/x/y"));
    assert!(!r.matches("/apix"));
    assert!(!r.matches("/ap"));
    assert!(!r.matches("/API/x"));
    assert!(!r.matches("/other/api"));
}

#[test]
fn root_prefix_matches_every_path() {
    let r = route("/", "http://h:1", false);
    assert!(r.matches("/"));
    assert!(r.matches("/anything/else"));
}

#[test]
fn longest_prefix_is_tried_first() {
    let routes = compile_all(&[
        config("/api", "http://a:1", false),
        config("/api/admin", "http://b:1", false),
        config("/", "http://c:1", false),
    ])
    .expect("valid routes");
    let first = |path: &str| routes.iter().find(|r| r.matches(path)).map(Route::prefix);
    assert_eq!(first("/api/admin/x"), Some("/api/admin"));
    assert_eq!(first("/api/adminx"), Some("/api"));
    assert_eq!(first("/api"), Some("/api"));
    assert_eq!(first("/static/x"), Some("/"));
}

#[test]
fn upstream_base_path_is_prepended() {
    let r = route("/api", "http://h:1/base", false);
    assert_eq!(
        target(&r, "/api/x", None).as_deref(),
        Some("http://h:1/base/api/x")
    );
    let r = route("/api", "http://h:1/base/", false);
    assert_eq!(
        target(&r, "/api/x", None).as_deref(),
        Some("http://h:1/base/api/x")
    );
}

#[test]
fn strip_prefix_removes_the_prefix_only() {
    let r = route("/api", "http://h:1/base", true);
    assert_eq!(
        target(&r, "/api/x", None).as_deref(),
        Some("http://h:1/base/x")
    );
    assert_eq!(target(&r, "/api", None).as_deref(), Some("http://h:1/base"));
    assert_eq!(
        target(&r, "/api/", None).as_deref(),
        Some("http://h:1/base/")
    );
    let r = route("/api", "http://h:1", true);
    assert_eq!(target(&r, "/api", None).as_deref(), Some("http://h:1/"));
}

#[test]
fn query_is_preserved_verbatim() {
    let r = route("/api", "https://h", false);
    assert_eq!(
        target(&r, "/api/x", Some("a=%2F&b=c+d&&e")).as_deref(),
        Some("https://h/api/x?a=%2F&b=c+d&&e")
    );
    assert_eq!(
        target(&r, "/api/x", Some("")).as_deref(),
        Some("https://h/api/x?")
    );
}

#[test]
fn a_network_path_lookalike_never_changes_the_upstream_host() {
    let r = route("/api", "http://h:1", true);
    let uri = r
        .upstream_uri("/api//evil.example/steal", None)
        .expect("uri");
    assert_eq!(uri.authority().map(|a| a.as_str()), Some("h:1"));
    assert_eq!(uri.path(), "//evil.example/steal");
}

#[test]
fn upstream_uri_of_a_foreign_path_is_none() {
    let r = route("/api", "http://h:1", true);
    assert!(r.upstream_uri("/apix", None).is_none());
    assert!(r.upstream_uri("", None).is_none());
    let r = route("/api", "http://h:1", false);
    assert!(r.upstream_uri("/other", None).is_none());
}

#[test]
fn upstream_uri_never_panics_on_odd_input() {
    let r = route("/api", "http://h:1/b", false);
    for path in [
        "/api/\u{0}",
        "/api/ x",
        "/api/é",
        "/api/#",
        "/api/?",
        "/api/%",
    ] {
        let _ = r.upstream_uri(path, Some("\u{7f}"));
    }
}

#[test]
fn host_header_is_the_upstream_authority() {
    assert_eq!(route("/api", "http://h:81/b", false).host_header(), "h:81");
    assert_eq!(route("/api", "https://h:443", false).host_header(), "h");
    assert_eq!(
        route("/api", "http://[::1]:9/", false).host_header(),
        "[::1]:9"
    );
}

#[test]
fn prefixes_are_normalised_or_refused() {
    assert_eq!(normalise_prefix("/api/").as_deref(), Ok("/api"));
    assert_eq!(normalise_prefix("/").as_deref(), Ok("/"));
    for bad in [
        "api", "/a//b", "/a/../b", "/a/./b", "/a%2f", "/a?x", "/bff", "/bff/x", "/a\\b",
    ] {
        assert!(normalise_prefix(bad).is_err(), "{bad}");
    }
    assert!(normalise_prefix("/bffx").is_ok());
}

#[test]
fn invalid_upstreams_and_duplicates_are_refused() {
    for bad in ["ftp://h/", "http://u:p@h/", "http://h/?q=1", "http://h/#f"] {
        let err = Route::compile(3, &config("/api", bad, false)).expect_err(bad);
        assert!(
            matches!(err, ProxyError::InvalidRoute { index: 3, .. }),
            "{bad}"
        );
    }
    let dup = compile_all(&[
        config("/api", "http://a", false),
        config("/api/", "http://b", false),
    ]);
    assert!(matches!(
        dup,
        Err(ProxyError::InvalidRoute { index: 1, .. })
    ));
    let mut zero = config("/api", "http://a", false);
    zero.timeout = Duration::ZERO;
    assert!(Route::compile(0, &zero).is_err());
}

#[test]
fn the_request_uri_gives_the_same_upstream_uri_as_its_path_and_query() {
    let requests = [
        "/api",
        "/api/",
        "/api/a/b?x=1&y=%2F",
        "/api/a?",
        "/api//evil.example/steal",
        "/api/group%2Fproject",
        "/apix",
        "/other?q",
        "http://browser.example/api/a?b",
    ];
    for (upstream, strip) in [
        ("http://h:1", false),
        ("http://h:1", true),
        ("http://h:1/b", false),
    ] {
        let r = route("/api", upstream, strip);
        for request in requests {
            let uri: Uri = request.parse().expect("request URI");
            let of = r.upstream_uri_of(&uri).map(|u| u.to_string());
            let from_parts = target(&r, uri.path(), uri.query());
            assert_eq!(of, from_parts, "{upstream} strip={strip} {request}");
        }
    }
    // The `/` route: an absolute-form target with an empty path still gets its `/`.
    let root = route("/", "http://h:1", false);
    for request in ["http://browser.example?x", "/?x", "/a"] {
        let uri: Uri = request.parse().expect("request URI");
        let of = root.upstream_uri_of(&uri).map(|u| u.to_string());
        assert_eq!(of, target(&root, uri.path(), uri.query()), "/ {request}");
        assert!(
            of.is_some_and(|u| u.starts_with("http://h:1/")),
            "{request}"
        );
    }
}
