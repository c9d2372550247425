//! Loader-level tests of aggregation and trimming: `[[composites]]` and a route's `fields` and
//! `max_buffered_response`.

use std::time::Duration;

use super::tests::{config_text, load_err, load_ok, problems_with};
use super::*;

const ROUTES: &str = "[[routes]]\nprefix = \"/api\"\nupstream = \"http://127.0.0.1:7001\"\n\
                      token = \"user\"\n\n[[routes]]\nprefix = \"/pub\"\n\
                      upstream = \"http://127.0.0.1:7002\"\ntoken = \"none\"\n";

fn with_composite(composite: &str) -> String {
    config_text(&format!("{ROUTES}\n[[composites]]\n{composite}\n"))
}

const PARTS_OF_BOTH_FORMS: &str = r#"path = "/api/dashboard"
parts = { me = "/api/me", news = { path = "/pub/news?n={n}", method = "POST", fields = ["items[].id"], timeout = "2s" } }"#;

#[test]
fn parts_are_paths_or_tables_with_documented_defaults() {
    let config = load_ok(&with_composite(PARTS_OF_BOTH_FORMS), &[]);
    let composite = &config.composites[0];
    assert_eq!(composite.timeout, Duration::from_secs(10));
    assert_eq!(composite.parts["me"].path, "/api/me");
    assert_eq!(composite.parts["me"].method, PartMethod::Get);
    assert_eq!(composite.parts["me"].timeout, None);
    let news = &composite.parts["news"];
    assert_eq!(news.method, PartMethod::Post);
    assert_eq!(news.fields.as_deref(), Some(&["items[].id".to_owned()][..]));
    assert_eq!(news.timeout, Some(Duration::from_secs(2)));
    assert_eq!(config.routes[0].fields, None);
    assert_eq!(config.routes[0].max_buffered_response, 4 << 20);
}

#[test]
fn every_composite_problem_is_reported_at_once() {
    let text = config_text(&format!(
        "{ROUTES}\n[[composites]]\npath = \"/api\"\ntimeout = \"1s\"\n\
         parts = {{ \"bad name\" = \"/api/x\", a = \"/elsewhere\", b = \"/api/{{id}}\", \
         c = {{ path = \"/api/c\", fields = [\"a..b\"], timeout = \"5s\" }}, }}\n\n\
         [[composites]]\npath = \"/bff/x\"\nparts = {{}}\n\n\
         [[composites]]\npath = \"/api/dup\"\nparts = {{ a = \"/api/a\" }}\n\n\
         [[composites]]\npath = \"/api/dup\"\nparts = {{ a = \"/api/a\" }}\n\n\
         [[composites]]\npath = \"/api/d\"\nparts = {{ d = {{ path = \"/api/d\", colour = 1 }} }}\n"
    ));
    let errors = load_err(&text, &[]);
    for expected in [
        "composites[0].path: \"/api\" is the prefix of routes[0]",
        "composites[0].parts.bad name: a part name is",
        "composites[0].parts.a.path: \"/elsewhere\" is under no [[routes]] prefix",
        "composites[0].parts.b.path: \"/api/{id}\" templates ({name}) are allowed only",
        "composites[0].parts.c.fields: \"a..b\" is not a field path",
        "composites[0].parts.c.timeout: must not exceed the composite's timeout",
        "composites[4].parts.d.colour: unknown field `colour`",
        "composites[1].path: \"/bff/x\" is reserved",
        "composites[1].parts: must name 1 to 16 parts",
        "composites[3].path: \"/api/dup\" is already the path of composites[2]",
    ] {
        assert!(
            errors.lines().any(|line| line.starts_with(expected)),
            "missing {expected:?} in:\n{errors}"
        );
    }
}

#[test]
fn a_composite_needs_a_path_and_parts() {
    let lines = problems_with(&format!("{ROUTES}\n[[composites]]\ntimeout = \"1s\"\n"));
    assert!(lines.contains(&"composites[0].path: required key is missing".to_owned()));
    assert!(lines.contains(&"composites[0].parts: required key is missing".to_owned()));
}

#[test]
fn route_fields_and_buffer_limits_are_checked() {
    let lines = problems_with(
        "[[routes]]\nprefix = \"/api\"\nupstream = \"http://127.0.0.1:7001\"\ntoken = \"user\"\n\
         fields = []\nmax_buffered_response = 0\n\n\
         [[routes]]\nprefix = \"/b\"\nupstream = \"http://127.0.0.1:7001\"\ntoken = \"user\"\n\
         fields = [\"ok\", \"items[x]\"]\nmax_buffered_response = \"2GiB\"\n\
         profiles = { Mobile = [\"id\"], web = [\"a..b\"] }\n",
    );
    let expected = [
        "routes[0].fields: must list at least one field",
        "routes[0].max_buffered_response: must be greater than zero",
        "routes[1].fields: \"items[x]\" is not a field path",
        "routes[1].max_buffered_response: 2GiB is more than the largest accepted limit, 1GiB",
        "routes[1].profiles.Mobile: a profile name is 1 to 32 of a-z, 0-9, _ and -",
        "routes[1].profiles.web: \"a..b\" is not a field path",
    ];
    for start in expected {
        assert!(
            lines.iter().any(|line| line.starts_with(start)),
            "missing {start:?} in {lines:#?}"
        );
    }
}

#[test]
fn composites_cannot_come_from_the_environment() {
    let errors = load_err(&config_text(ROUTES), &[("WARD_COMPOSITES__PATH", "/api/x")]);
    assert!(
        errors.contains("[[composites]] cannot be set from the environment"),
        "{errors}"
    );
}
