//! The `ward` command line (SPEC §7): help, `keygen`, `check` and `serve`'s refusal of a bad
//! configuration, run as the real binary.

#[path = "support/cli_run.rs"]
mod cli_run;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cli_run::{Run, free_port, ward, ward_async};
use ward::secret::SecretString;
use ward::session::keyring::KeyRing;
use ward_testkit::{Idp, IdpOptions};

/// The key ring entry of these tests (test-only key).
const KEY: &str = "cli1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// Its key material.
const KEY_MATERIAL: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// A client secret that must never be printed.
const CLIENT_SECRET: &str = "cli-client-secret-do-not-print";

/// A complete, valid configuration.
fn valid_config(listen_port: u16, issuer: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{listen_port}"
public_url = "http://localhost:{listen_port}"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "{CLIENT_SECRET}"

[store]
kind = "embedded"
path = "data/ward.db"

[crypto]
keys = ["{KEY}"]

[[routes]]
prefix = "/api"
upstream = "http://127.0.0.1:9"
token = "user"
"#
    )
}

/// A configuration with three problems in three sections: a bad duration, an unknown key and
/// a `public_url` that is not an origin.
fn broken_config(listen_port: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{listen_port}"
public_url = "not a url"

[oidc]
issuer = "http://127.0.0.1:9"
client_id = "bff"
client_secret = "{CLIENT_SECRET}"

[session]
idle_timeout = "forever"

[store]
kind = "memory"
colour = "blue"

[crypto]
keys = ["{KEY}"]
"#
    )
}

fn assert_no_secret(run: &Run) {
    let all = run.all();
    assert!(
        !all.contains(CLIENT_SECRET),
        "client secret printed:\n{run}"
    );
    assert!(!all.contains(KEY_MATERIAL), "key material printed:\n{run}");
}

#[test]
fn help_names_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let run = ward(&["--help"], dir.path());
    assert!(run.status.success(), "{run}");
    for command in ["serve", "check", "keygen"] {
        assert!(run.stdout.contains(command), "{command} missing:\n{run}");
    }
}

#[test]
fn keygen_prints_one_fresh_usable_key_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let one = ward(&["keygen"], dir.path());
    let two = ward(&["keygen"], dir.path());
    let mut entries = Vec::new();
    for run in [&one, &two] {
        assert!(run.status.success(), "{run}");
        assert!(run.stderr.is_empty(), "{run}");
        let lines: Vec<&str> = run.stdout.lines().collect();
        let [line] = lines.as_slice() else {
            panic!("expected one line:\n{run}");
        };
        let (kid, encoded) = line.split_once(':').expect("<kid>:<base64>");
        assert!(
            !kid.is_empty()
                && kid.len() <= 32
                && kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "key id {kid:?}"
        );
        let key = STANDARD.decode(encoded).expect("standard base64");
        assert_eq!(key.len(), 32);
        assert!(key.iter().any(|b| *b != 0));
        entries.push((kid.to_owned(), key));
    }
    assert_ne!(entries[0].0, entries[1].0, "a new key id each time");
    assert_ne!(entries[0].1, entries[1].1, "new key material each time");
    let ring = KeyRing::from_config(&[
        SecretString::new(one.stdout.trim()),
        SecretString::new(two.stdout.trim()),
    ]);
    assert!(ring.is_ok(), "[crypto] keys accepts what keygen prints");
}

#[test]
fn check_reports_every_problem_at_once_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ward.toml"), broken_config(free_port())).unwrap();
    let run = ward(&["check", "--config", "ward.toml"], dir.path());
    assert!(!run.status.success(), "{run}");
    for path in ["server.public_url", "session.idle_timeout", "store.colour"] {
        assert!(run.stderr.contains(path), "{path} not reported:\n{run}");
    }
    assert!(
        !run.stdout.contains("is valid"),
        "an invalid configuration was called valid:\n{run}"
    );
    assert_no_secret(&run);
}

#[test]
fn serve_refuses_an_invalid_configuration_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(dir.path().join("ward.toml"), broken_config(port)).unwrap();
    let run = ward(&["serve", "--config", "ward.toml"], dir.path());
    assert!(!run.status.success(), "{run}");
    for path in ["server.public_url", "session.idle_timeout", "store.colour"] {
        assert!(run.stderr.contains(path), "{path} not reported:\n{run}");
    }
    assert!(
        !run.all().contains("listening"),
        "it started serving:\n{run}"
    );
    assert_no_secret(&run);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the listen port is still free");
    assert!(
        !dir.path().join("data").exists(),
        "nothing was created on disk"
    );
}

#[tokio::test]
async fn check_of_a_valid_configuration_reaches_the_idp_and_prints_it_masked() {
    let port = free_port();
    let mut options = IdpOptions::new(format!("http://localhost:{port}"));
    // The check sends the secret to the token endpoint: the IdP must know it.
    options.extra_env = vec![("CLIENT_SECRET".into(), CLIENT_SECRET.into())];
    let idp = Idp::start(options).await.expect("start the IdP");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ward.toml"),
        valid_config(port, idp.issuer()),
    )
    .unwrap();
    let run = ward_async(&["check", "--config", "ward.toml"], dir.path()).await;
    assert!(run.status.success(), "{run}");
    assert!(run.stdout.contains("is valid"), "{run}");
    assert!(run.stdout.contains(idp.issuer()), "{run}");
    assert!(run.stdout.contains("client credentials accepted"), "{run}");
    assert!(
        run.stdout.contains(r#"client_secret = "***""#),
        "client secret not shown masked:\n{run}"
    );
    assert!(
        run.stdout.contains("cli1:***"),
        "key shown by its id only:\n{run}"
    );
    assert_no_secret(&run);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("check does not serve");
}

#[test]
fn check_fails_naming_oidc_when_the_idp_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(
        dir.path().join("ward.toml"),
        valid_config(free_port(), &dead),
    )
    .unwrap();
    let run = ward(&["check", "--config", "ward.toml"], dir.path());
    assert!(!run.status.success(), "{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ward: oidc"),
        "the failure names oidc:\n{run}"
    );
    // Each cause once, though several errors of the chain print their source too.
    let causes: Vec<&str> = last.split(": ").collect();
    for (index, cause) in causes.iter().enumerate() {
        assert!(
            !causes[index + 1..].contains(cause),
            "{cause:?} repeated:\n{run}"
        );
    }
    assert!(
        !run.stdout.contains("effective configuration"),
        "no clean bill of health:\n{run}"
    );
    assert_no_secret(&run);
}

#[test]
fn a_missing_configuration_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["check", "serve"] {
        let run = ward(&[command, "--config", "absent.toml"], dir.path());
        assert!(!run.status.success(), "{run}");
        assert!(
            run.stderr.contains("absent.toml") && run.stderr.contains("not found"),
            "the message names the file:\n{run}"
        );
    }
}
