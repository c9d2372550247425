//! The messages a newcomer meets first: a URL written without its scheme, a misspelt key or
//! section (with "did you mean"), each problem once.

use super::tests::{config_text, load_err, problems_with};

const ROUTE: &str = "[[routes]]\nprefix = \"/api\"\ntoken = \"none\"\n";

#[test]
fn a_url_without_a_scheme_gets_an_example_not_the_url_library() {
    let text = format!(
        "{}[server]\npublic_url = \"localhost:8080\"\n\
         [telemetry]\notlp_endpoint = \"collector:4317\"\n{ROUTE}upstream = \"orders.internal\"\n",
        config_text("").replace("https://idp.example.com", "idp.example.com")
    );
    let errors = load_err(&text, &[]);
    for expected in [
        "oidc.issuer: must be an absolute http(s) URL, e.g. https://idp.example.com",
        "server.public_url: must be an absolute http(s) URL, e.g. https://app.example.com",
        "telemetry.otlp_endpoint: must be an absolute http(s) URL, e.g. http://127.0.0.1:4317",
        "routes[0].upstream: must be an absolute http(s) URL, e.g. http://orders.internal:8080",
    ] {
        assert!(
            errors.lines().any(|l| l == expected),
            "{expected:?} in\n{errors}"
        );
    }
    assert!(!errors.contains("relative URL"), "{errors}");
}

#[test]
fn a_url_from_the_environment_names_its_variable_and_gets_the_example() {
    let errors = load_err(
        &config_text(""),
        &[("WARD_OIDC__ISSUER", "idp.example.com:8443")],
    );
    assert_eq!(
        errors,
        "oidc.issuer (from WARD_OIDC__ISSUER): must be an absolute http(s) URL, e.g. \
         https://idp.example.com"
    );
}

#[test]
fn a_misspelt_key_is_told_the_key_it_resembles() {
    let text = format!(
        "{}[sesion]\nidle_timeout = \"1m\"\n{ROUTE}upstream = \"http://127.0.0.1:1\"\n\
         upstrem = \"http://127.0.0.1:1\"\n[rate_limit.login]\nlimt = 3\nwindow = \"1m\"\n",
        config_text("[server]\nlisten_addr = \"127.0.0.1:1\"\n").replace("client_id", "clientid")
    );
    let errors = load_err(&text, &[("WARD_OIDC__CLIENT_SECRETS", "x")]);
    for expected in [
        "sesion: unknown section; did you mean `session`?",
        "server.listen_addr: unknown key; did you mean `listen`?",
        "oidc.clientid: unknown key; did you mean `client_id`?",
        "oidc.client_secrets (from WARD_OIDC__CLIENT_SECRETS): unknown key; did you mean \
         `client_secret`?",
        "routes[0].upstrem: unknown key; did you mean `upstream`?",
        "rate_limit.login.limt: unknown key; did you mean `limit`?",
    ] {
        assert!(
            errors.lines().any(|l| l == expected),
            "{expected:?} in\n{errors}"
        );
    }
}

#[test]
fn a_misspelt_section_in_a_variable_is_told_the_section() {
    let errors = load_err(&config_text(""), &[("WARD_SEVER__LISTEN", "127.0.0.1:1")]);
    assert_eq!(
        errors,
        "WARD_SEVER__LISTEN: unknown section [sever]; did you mean `server`?"
    );
}

#[test]
fn each_problem_is_reported_once() {
    let lines = problems_with(
        "[server]\npublic_url = \"app.example.com\"\nlistn = 1\n\
         [store]\ncolour = \"blue\"\n",
    );
    let mut unique = lines.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), lines.len(), "{lines:#?}");
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines.contains(&"store.colour: unknown key".to_owned()),
        "{lines:#?}"
    );
}
