//! `ward check` with `private_key_jwt` against the real IdP in its FAPI 2.0 configuration: a
//! usable key passes (discovery, algorithm choice, the credentials probe), a key the IdP does
//! not hold is `invalid_client`, an unreadable one is named clearly; and
//! `par = "auto"` at an IdP that offers PAR without requiring it, with a secret method.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Options, Ward};
use ward_testkit::{Browser, ClientKey, Idp, IdpOptions, Par};

/// `ward check` on `toml` (written to `dir/ward.toml`): its exit, stdout and stderr.
async fn check(dir: &Path, toml: &str) -> (bool, String, String) {
    std::fs::write(dir.join("ward.toml"), toml).unwrap();
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["check", "--config", "ward.toml"])
        .current_dir(dir)
        .output()
        .await
        .expect("run ward check");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (status.success(), text(stdout), text(stderr))
}

fn config(issuer: &str, key_file: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://app.example"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_auth = "private_key_jwt"
private_key_file = "{key_file}"

[store]
kind = "memory"

[crypto]
keys = ["{}"]
"#,
        common::TEST_KEY
    )
}

#[tokio::test]
async fn check_accepts_a_usable_key_and_names_an_unknown_or_unreadable_one() {
    let key = ClientKey::generate().unwrap();
    let idp = Idp::start(IdpOptions::fapi2("https://app.example", &key))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    key.write_pem(&dir.path().join("client.pem")).unwrap();
    let pem = key.pkcs8_pem().unwrap();

    let (ok, stdout, stderr) = check(dir.path(), &config(idp.issuer(), "client.pem")).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("client_auth = \"private_key_jwt\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("client credentials accepted at the token endpoint"),
        "{stdout}"
    );

    // A key the IdP does not hold: the credentials probe's assertion is refused.
    ClientKey::generate()
        .unwrap()
        .write_pem(&dir.path().join("other.pem"))
        .unwrap();
    let (ok, stdout, stderr) = check(dir.path(), &config(idp.issuer(), "other.pem")).await;
    assert!(!ok, "{stdout}");
    let all = format!("{stdout}\n{stderr}");
    assert!(all.contains("(invalid_client)"), "{all}");
    assert!(all.contains("oidc.private_key_file"), "{all}");

    let (ok, stdout, stderr) = check(dir.path(), &config(idp.issuer(), "missing.pem")).await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("client authentication: oidc.private_key_file: cannot read"),
        "{stderr}"
    );
    assert!(stderr.contains("missing.pem"), "{stderr}");
    let body = pem.lines().nth(1).unwrap();
    for output in [&stdout, &stderr] {
        assert!(!output.contains(body), "key material in the output");
    }
}

#[tokio::test]
async fn par_auto_pushes_when_the_idp_only_offers_it_with_client_secret_basic() {
    let ward = Ward::start_with(Options {
        idp: |idp| idp.par = Par::On,
        ..Options::default()
    })
    .await;
    let browser = Browser::new().unwrap();
    let start = browser
        .get(ward.url("/bff/login?returnUrl=/"))
        .await
        .unwrap();
    let authorize = url::Url::parse(start.location().unwrap()).unwrap();
    let names: Vec<String> = authorize
        .query_pairs()
        .map(|(n, _)| n.into_owned())
        .collect();
    assert_eq!(names, ["client_id", "request_uri"]);
    // The IdP holds the client to HTTP Basic on /request too, so the push authenticated so.
    assert_eq!(ward.idp.stats().await.unwrap().par_requests, 1);
    let back = browser
        .login_at_idp(authorize.as_str(), "bob")
        .await
        .unwrap();
    let callback = browser.follow(&back).await.unwrap();
    assert_eq!(callback.status, 302, "{}", callback.text());
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn par_never_keeps_the_parameters_in_the_front_channel() {
    let ward = Ward::start_with(Options {
        idp: |idp| idp.par = Par::On,
        env: [("WARD_OIDC__PAR".to_owned(), "never".to_owned())].into(),
        ..Options::default()
    })
    .await;
    let browser = Browser::new().unwrap();
    let start = browser
        .get(ward.url("/bff/login?returnUrl=/"))
        .await
        .unwrap();
    assert!(start.location_param("code_challenge").is_some());
    assert_eq!(ward.idp.stats().await.unwrap().par_requests, 0);
}
