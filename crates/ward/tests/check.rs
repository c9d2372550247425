//! `ward check` as a newcomer meets it, run as the real binary against the real IdP: a wrong
//! client secret told apart from the right one (both client authentication methods), an
//! unreachable upstream named, an issuer mismatch answered with the value to write, and the
//! typical mistakes of a first configuration each reported once, in Ward's own words.

#[path = "support/cli_run.rs"]
mod cli_run;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use cli_run::{Run, command, free_port, ward, ward_async};
use ward_testkit::{ClientAuth, EchoUpstream, Idp, IdpOptions};

/// The key ring entry of these tests (test-only key).
const KEY: &str = "chk1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// The secret the IdP registers for the client.
const RIGHT_SECRET: &str = "check-right-secret-never-printed";
/// A secret the IdP does not know.
const WRONG_SECRET: &str = "check-wrong-secret-never-printed";

/// The test IdP knowing [`RIGHT_SECRET`], for a Ward at `http://localhost:<port>`.
async fn idp(port: u16, client_auth: ClientAuth) -> Idp {
    let mut options = IdpOptions::new(format!("http://localhost:{port}"));
    options.client_auth = client_auth;
    options.extra_env = vec![("CLIENT_SECRET".into(), RIGHT_SECRET.into())];
    Idp::start(options).await.expect("start the IdP")
}

/// A configuration on the memory store; `routes` is appended as written.
fn config(port: u16, issuer: &str, secret: &str, client_auth: &str, routes: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "{secret}"
client_auth = "{client_auth}"

[store]
kind = "memory"

[crypto]
keys = ["{KEY}"]
{routes}"#
    )
}

/// Runs `ward check` on `text` in a fresh directory.
async fn check(text: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ward.toml"), text).unwrap();
    ward_async(&["check", "--config", "ward.toml"], dir.path()).await
}

/// Neither secret, nor what the IdP said about the client (its `error_description`s: "client
/// authentication failed", "client must authenticate with …"), is printed.
fn assert_nothing_echoed(run: &Run) {
    let all = run.all();
    for secret in [RIGHT_SECRET, WRONG_SECRET] {
        assert!(!all.contains(secret), "a client secret was printed:\n{run}");
    }
    for description in ["authentication failed", "must authenticate with"] {
        assert!(
            !all.contains(description),
            "the IdP's body was printed:\n{run}"
        );
    }
}

#[tokio::test]
async fn check_tells_a_wrong_client_secret_from_the_right_one_with_either_method() {
    for (auth, method, other) in [
        (
            ClientAuth::Basic,
            "client_secret_basic",
            "client_secret_post",
        ),
        (
            ClientAuth::Post,
            "client_secret_post",
            "client_secret_basic",
        ),
    ] {
        let port = free_port();
        let idp = idp(port, auth).await;
        let right = check(&config(port, idp.issuer(), RIGHT_SECRET, method, "")).await;
        assert!(right.status.success(), "{method}, right secret:\n{right}");
        assert!(
            right.stdout.contains(&format!(
                "oidc: client credentials accepted at the token endpoint (client \"bff\", {method})"
            )),
            "{method}, right secret:\n{right}"
        );
        assert_nothing_echoed(&right);

        let wrong = check(&config(port, idp.issuer(), WRONG_SECRET, method, "")).await;
        assert_refused(&wrong, method);
        // The right secret sent the other way is refused by this IdP too.
        let misnamed = check(&config(port, idp.issuer(), RIGHT_SECRET, other, "")).await;
        assert_refused(&misnamed, other);
    }
}

/// The check failed on `invalid_client`, naming the keys to look at, and printed no clean
/// bill of health.
fn assert_refused(run: &Run, method: &str) {
    assert!(!run.status.success(), "{method}:\n{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ward: oidc: the IdP refused Ward's client credentials (invalid_client)")
            && last.contains("oidc.client_secret")
            && last.contains(&format!("oidc.client_auth = \"{method}\"")),
        "{method}:\n{run}"
    );
    assert!(!run.stdout.contains("effective configuration"), "{run}");
    assert_nothing_echoed(run);
}

#[tokio::test]
async fn check_warns_about_an_unreachable_upstream_by_route_and_passes() {
    let port = free_port();
    let idp = idp(port, ClientAuth::Basic).await;
    let upstream = EchoUpstream::start()
        .await
        .expect("start the echo upstream");
    let closed = free_port();
    let routes = format!(
        r#"
[[routes]]
prefix = "/api"
upstream = "{}"
token = "user"

[[routes]]
prefix = "/reports"
upstream = "http://127.0.0.1:{closed}/v1"
token = "none"
"#,
        upstream.url()
    );
    let text = config(
        port,
        idp.issuer(),
        RIGHT_SECRET,
        "client_secret_basic",
        &routes,
    );
    let run = check(&text).await;
    assert!(
        run.status.success(),
        "an unreachable upstream is a warning:\n{run}"
    );
    let warnings: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        warnings,
        [format!(
            "ward: warning: routes[1] (/reports): upstream 127.0.0.1:{closed} is unreachable: \
             connection refused by 127.0.0.1:{closed}; requests under /reports get 502 until \
             it accepts connections"
        )],
        "{run}"
    );
    assert!(run.stdout.contains("upstreams: 1 of 2 reachable"), "{run}");
    assert!(run.stdout.contains("effective configuration"), "{run}");
    assert!(
        upstream.requests().is_empty(),
        "the check sends no request to an upstream"
    );
}

#[tokio::test]
async fn an_issuer_mismatch_says_what_to_set_issuer_to() {
    let port = free_port();
    let idp = idp(port, ClientAuth::Basic).await;
    // The same IdP by another name: its document still says http://127.0.0.1:<port>.
    let elsewhere = idp.issuer().replace("127.0.0.1", "localhost");
    let text = config(port, &elsewhere, RIGHT_SECRET, "client_secret_basic", "");
    let run = check(&text).await;
    assert!(!run.status.success(), "{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ward: oidc")
            && last.ends_with(&format!("set issuer to exactly \"{}\"", idp.issuer())),
        "{run}"
    );
}

#[test]
fn first_configuration_mistakes_are_each_reported_once_in_wards_words() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        free_port(),
        "idp.example.com",
        WRONG_SECRET,
        "client_secret_basic",
        "[[routes]]\nprefix = \"/api\"\nupstream = \"localhost:7001\"\ntoken = \"user\"\n",
    )
    .replace("client_secret =", "client_secrets =")
    .replace(
        "public_url = \"http://localhost",
        "public_url = \"localhost",
    );
    std::fs::write(dir.path().join("ward.toml"), text).unwrap();
    let run = ward(&["check", "--config", "ward.toml"], dir.path());
    assert!(!run.status.success(), "{run}");
    for expected in [
        "oidc.issuer: must be an absolute http(s) URL, e.g. https://idp.example.com",
        "server.public_url: must be an absolute http(s) URL, e.g. https://app.example.com",
        "routes[0].upstream: must be an absolute http(s) URL, e.g. http://orders.internal:8080",
        "oidc.client_secrets: unknown key; did you mean `client_secret`?",
    ] {
        let count = run.stderr.lines().filter(|l| *l == expected).count();
        assert_eq!(count, 1, "{expected:?} once:\n{run}");
    }
    assert!(!run.stderr.contains("relative URL"), "{run}");
    assert!(!run.all().contains(WRONG_SECRET), "{run}");
}

/// `ward check | head -1` with every probe running: the reader takes the first line and goes;
/// Ward's later writes find the pipe closed and it ends quietly.
#[tokio::test]
async fn check_piped_into_head_exits_cleanly() {
    let port = free_port();
    let idp = idp(port, ClientAuth::Basic).await;
    let dir = tempfile::tempdir().unwrap();
    let routes = format!(
        "[[routes]]\nprefix = \"/api\"\nupstream = \"http://127.0.0.1:{}\"\ntoken = \"user\"\n",
        free_port()
    );
    let text = config(
        port,
        idp.issuer(),
        RIGHT_SECRET,
        "client_secret_basic",
        &routes,
    );
    std::fs::write(dir.path().join("ward.toml"), text).unwrap();
    let dir_path = dir.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command(&["check", "--config", "ward.toml"], &dir_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ward");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut first)
            .expect("read the first line");
        assert!(first.starts_with("configuration: "), "{first:?}");
        child.wait_with_output().expect("wait for ward")
    })
    .await
    .expect("the pipe reader");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
}
