//! Ward with mutual-TLS client authentication (RFC 8705 `tls_client_auth`) against the real
//! IdP with oidc-provider's `features.mTLS` (`MTLS=1`): served over https with a certificate of
//! a CA this test makes, asking every client for a certificate, the client registered by its
//! DNS SAN with certificate-bound access tokens. Ward presents `[oidc] client_cert`.
//!
//! A login, a refresh and a logout with revocation carry `client_id` and the certificate, never
//! a secret or an assertion (the IdP lists what each call carried); the JWT access token's
//! `cnf.x5t#S256` is the thumbprint of Ward's certificate, and an https upstream that requires
//! a client certificate receives that same certificate on a token-carrying route (and none on a
//! `token = "none"` route, whose handshake it then refuses). A certificate the IdP has not
//! registered fails the login with `invalid_client`, no key material in the log. The same login
//! works in oidc-provider's FAPI 2.0 profile, and every call goes to the IdP's
//! `mtls_endpoint_aliases` when it names them. (`ward check`: `tests/fapi_mtls_check.rs`.)

mod common;
#[path = "support/log_capture.rs"]
mod log_capture;
#[path = "support/mtls_pki.rs"]
mod mtls_pki;

use common::{Options, Ward};
use log_capture::Capture;
use mtls_pki::Pki;
use ward_testkit::{Browser, EchoUpstream, IdpMtls};

async fn mtls_ward(pki: &Pki, api: &EchoUpstream, idp: fn(&mut ward_testkit::IdpOptions)) -> Ward {
    Ward::start_with(Options {
        idp_tls: Some(pki.idp.clone()),
        idp_mtls: Some(pki.mtls()),
        idp,
        env: Pki::env(&pki.client),
        extra_toml: pki.toml(&api.url()),
        ..Options::default()
    })
    .await
}

fn browser(pki: &Pki) -> Browser {
    Browser::trusting(pki.ca.cert_pem().as_bytes()).expect("browser")
}

/// Every client-authenticated call the IdP saw carried Ward's certificate and `client_id`, no
/// secret, assertion or Basic header, and succeeded; returns how many there were.
async fn assert_calls_carry_only_the_certificate(ward: &Ward, pki: &Pki) -> usize {
    let calls = ward.idp.mtls_calls().await.expect("the IdP's mTLS calls");
    for call in &calls {
        assert_eq!(
            call.x5t.as_deref(),
            Some(pki.client.thumbprint.as_str()),
            "{call:?}"
        );
        assert!(call.authorized, "not chained to the CA: {call:?}");
        assert_eq!(call.client_id.as_deref(), Some("bff"), "{call:?}");
        assert!(!call.secret && !call.assertion && !call.basic, "{call:?}");
        assert!(call.status < 300, "{call:?}");
    }
    calls.len()
}

#[tokio::test]
async fn a_certificate_login_sends_no_secret_binds_the_tokens_and_reaches_a_bound_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let api = EchoUpstream::start_tls(&pki.upstream, pki.ca.cert_pem().as_bytes())
        .await
        .unwrap();
    let ward = mtls_ward(&pki, &api, |o| o.jwt_access_tokens = true).await;
    let browser = browser(&pki);
    ward.login(&browser, "alice", "/").await;
    let calls = assert_calls_carry_only_the_certificate(&ward, &pki).await;
    assert!(
        calls >= 1,
        "the code exchange authenticated with the certificate"
    );

    // The token is bound to Ward's certificate, and the upstream saw that certificate.
    let reply = browser.get(ward.url("/bound/before")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let before = api.last().expect("the upstream was called");
    assert_eq!(
        before.client_cert_x5t.as_deref(),
        Some(pki.client.thumbprint.as_str())
    );
    let token = bearer(&before);
    let claims = ward_testkit::jwt_claims(&token).unwrap();
    assert_eq!(claims["cnf"]["x5t#S256"], pki.client.thumbprint, "{claims}");

    // A route without a token never presents the certificate: this upstream requires one.
    let open = browser.get(ward.url("/open/x")).await.unwrap();
    assert_eq!(open.status, 502, "{}", open.text());

    // Refresh: a token request with the certificate, a new token bound to it.
    ward.clock.advance(301);
    let reply = browser.get(ward.url("/bound/after")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let after = api.last().unwrap();
    let refreshed = bearer(&after);
    assert_ne!(refreshed, token);
    let claims = ward_testkit::jwt_claims(&refreshed).unwrap();
    assert_eq!(claims["cnf"]["x5t#S256"], pki.client.thumbprint);
    assert_eq!(after.client_cert_x5t, before.client_cert_x5t);
    assert_eq!(
        assert_calls_carry_only_the_certificate(&ward, &pki).await,
        calls + 1
    );

    // Logout revokes the refresh token, authenticated by the certificate.
    let me = browser
        .get(ward.url("/bff/user"))
        .await
        .unwrap()
        .json()
        .unwrap();
    let revocations = ward.idp.stats().await.unwrap().revocations;
    let reply = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", me["csrfToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(ward.idp.stats().await.unwrap().revocations, revocations + 1);
    assert_calls_carry_only_the_certificate(&ward, &pki).await;
    let calls = ward.idp.mtls_calls().await.unwrap();
    assert_eq!(
        calls.last().map(|c| c.path.as_str()),
        Some("/token/revocation")
    );
}

fn bearer(request: &ward_testkit::RecordedRequest) -> String {
    request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .expect("a bearer token")
        .to_owned()
}

#[tokio::test]
async fn a_certificate_the_idp_has_not_registered_fails_the_login_with_invalid_client() {
    let capture = Capture::install();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    // Issued by the same CA, but for another name than the one registered for the client.
    let stranger = pki
        .ca
        .write_client(dir.path(), "stranger", "someone-else.test")
        .unwrap();
    let api = EchoUpstream::start_tls(&pki.upstream, pki.ca.cert_pem().as_bytes())
        .await
        .unwrap();
    let ward = Ward::start_with(Options {
        idp_tls: Some(pki.idp.clone()),
        idp_mtls: Some(pki.mtls()),
        // Pushed: the first client-authenticated call is part of /bff/login.
        idp: |o| o.par = ward_testkit::Par::On,
        env: Pki::env(&stranger),
        extra_toml: pki.toml(&api.url()),
        ..Options::default()
    })
    .await;

    let reply = browser(&pki)
        .get(ward.url("/bff/login?returnUrl=/"))
        .await
        .unwrap();
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["error"], "login_failed");

    let log = capture.text();
    let line = log
        .lines()
        .find(|line| line.contains("\"login_par_failed\""))
        .unwrap_or_else(|| panic!("no login_par_failed event in:\n{log}"));
    assert!(
        line.contains("IdP refused the request: invalid_client"),
        "{line}"
    );
    let key = std::fs::read_to_string(&stranger.key_file).unwrap();
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    for secret in [key_body.as_str(), "PRIVATE KEY", &key_body[..24]] {
        assert!(!log.contains(secret), "key material in the log");
    }
    // The start log names the mode: the IdP advertises bound tokens.
    let started = log
        .lines()
        .find(|line| line.contains("\"mtls_configured\""))
        .unwrap_or_else(|| panic!("no mtls_configured event in:\n{log}"));
    assert!(
        started.contains("\"certificate_bound_tokens\":\"advertised\""),
        "{started}"
    );
    assert!(started.contains(&stranger.thumbprint), "{started}");
}

#[tokio::test]
async fn a_fapi_2_login_authenticates_with_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let api = EchoUpstream::start_tls(&pki.upstream, pki.ca.cert_pem().as_bytes())
        .await
        .unwrap();
    let ward = mtls_ward(&pki, &api, |o| {
        o.fapi2 = true;
        o.par = ward_testkit::Par::Required;
    })
    .await;
    let browser = browser(&pki);
    let start = browser
        .get(ward.url("/bff/login?returnUrl=/"))
        .await
        .unwrap();
    assert_eq!(start.status, 302, "{}", start.text());
    assert_eq!(ward.idp.stats().await.unwrap().par_requests, 1);
    let back = browser
        .login_at_idp(start.location().unwrap(), "alice")
        .await
        .unwrap();
    let callback = browser.follow(&back).await.unwrap();
    assert_eq!(callback.status, 302, "{}", callback.text());
    let reply = browser.get(ward.url("/bound/x")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        api.last().unwrap().client_cert_x5t.as_deref(),
        Some(pki.client.thumbprint.as_str())
    );
    let calls = assert_calls_carry_only_the_certificate(&ward, &pki).await;
    let paths: Vec<String> = ward
        .idp
        .mtls_calls()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert_eq!(paths, ["/request", "/token"], "{calls} calls");
    let logs = ward.idp.logs();
    for refusal in ["grant.error", "pushed_authorization_request.error"] {
        assert!(!logs.contains(refusal), "the IdP logged {refusal}:\n{logs}");
    }
}

#[tokio::test]
async fn every_client_authenticated_call_goes_to_the_mtls_endpoint_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let api = EchoUpstream::start_tls(&pki.upstream, pki.ca.cert_pem().as_bytes())
        .await
        .unwrap();
    let ward = Ward::start_with(Options {
        idp_tls: Some(pki.idp.clone()),
        // The issuer is https://127.0.0.1:<port>; the aliases name https://localhost:<port>.
        idp_mtls: Some(IdpMtls {
            alias_host: Some("localhost".to_owned()),
            ..pki.mtls()
        }),
        idp: |o| o.par = ward_testkit::Par::On,
        env: Pki::env(&pki.client),
        extra_toml: pki.toml(&api.url()),
        ..Options::default()
    })
    .await;
    assert!(ward.idp.issuer().starts_with("https://127.0.0.1:"));
    let browser = browser(&pki);
    ward.login(&browser, "alice", "/").await;
    ward.clock.advance(301);
    let reply = browser.get(ward.url("/bound/x")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let me = browser
        .get(ward.url("/bff/user"))
        .await
        .unwrap()
        .json()
        .unwrap();
    let reply = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", me["csrfToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    assert_calls_carry_only_the_certificate(&ward, &pki).await;
    let calls: Vec<(String, String)> = ward
        .idp
        .mtls_calls()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.path, c.host))
        .collect();
    let at_alias = |path: &str| (path.to_owned(), "localhost".to_owned());
    assert_eq!(
        calls,
        [
            at_alias("/request"),
            at_alias("/token"),
            at_alias("/token"),
            at_alias("/token/revocation"),
        ]
    );
}
