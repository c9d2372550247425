//! Several Ward instances behind one load balancer (SPEC §6): two `ward serve` processes with
//! the same `public_url` and keys share a Redis (then a PostgreSQL) store, so a session made by
//! one is served, used and ended by the other, and a login begun on one finishes on the other.

mod common;
#[path = "support/procs.rs"]
mod procs;

use std::path::Path;

use procs::{WardProcess, free_port, login_across, require_reachable, unique_prefix};
use ward_testkit::{Browser, EchoUpstream, Idp, IdpOptions};

/// Writes the configuration of one instance listening on `port`, and returns its path.
fn write_config(
    dir: &Path,
    name: &str,
    port: u16,
    public_url: &str,
    idp: &Idp,
    upstream: &EchoUpstream,
    store: &str,
) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{public_url}"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "bff-secret"

[store]
{store}

[crypto]
keys = ["{key}"]

[telemetry]
log_format = "json"
log_level = "info"

[[routes]]
prefix = "/api"
upstream = "{api}"
token = "user"
"#,
            issuer = idp.issuer(),
            api = upstream.url(),
            key = common::TEST_KEY,
        ),
    )
    .expect("write the configuration");
    path
}

/// The whole multi-instance scenario on the store described by `store` (`[store]` lines).
async fn two_instances_share_one_store(store: String) {
    let instances = TwoInstances::start(&store).await;
    let alice = Browser::new().expect("browser");
    let csrf = a_session_made_by_a_is_used_by_b(&instances, &alice).await;
    logout_through_b_ends_the_session_everywhere(&instances, &alice, &csrf).await;
    a_login_begun_on_a_finishes_on_b(&instances).await;

    let log = instances.outputs();
    assert!(!log.contains("store_error"), "{log}");
    drop(instances);
}

/// Two `ward serve` processes on one store behind one public origin, with their IdP and API.
/// Fields drop in order: the processes stop before their configuration and the IdP go.
struct TwoInstances {
    a: WardProcess,
    b: WardProcess,
    /// What the browser sees: one origin, as behind a load balancer; the test reaches each
    /// instance on its own port (the cookie jar is per host, not per port).
    public_url: String,
    _dir: tempfile::TempDir,
    upstream: EchoUpstream,
    _idp: Idp,
}

impl TwoInstances {
    async fn start(store: &str) -> Self {
        let (port_a, port_b) = (free_port(), free_port());
        let public_url = format!("http://localhost:{port_a}");
        let idp = Idp::start(IdpOptions::new(public_url.clone()))
            .await
            .expect("start the IdP");
        let upstream = EchoUpstream::start().await.expect("start the upstream");
        let dir = tempfile::tempdir().expect("temp dir");
        let config =
            |name, port| write_config(dir.path(), name, port, &public_url, &idp, &upstream, store);
        let (config_a, config_b) = (config("a", port_a), config("b", port_b));
        let a = WardProcess::start(dir.path(), &config_a, port_a).await;
        let b = WardProcess::start(dir.path(), &config_b, port_b).await;
        Self {
            a,
            b,
            public_url,
            _dir: dir,
            upstream,
            _idp: idp,
        }
    }

    /// Both instances' output, for failure messages.
    fn outputs(&self) -> String {
        format!(
            "--- instance A\n{}\n--- instance B\n{}",
            self.a.output.text(),
            self.b.output.text()
        )
    }
}

/// A session made by A is served and used by B (and still by A); alice's CSRF token.
async fn a_session_made_by_a_is_used_by_b(instances: &TwoInstances, alice: &Browser) -> String {
    let TwoInstances { a, b, upstream, .. } = instances;
    let callback = login_across(alice, &a.origin, &a.origin, "alice")
        .await
        .unwrap_or_else(|e| panic!("login via A: {e:#}\n{}", instances.outputs()));
    assert_eq!(callback.status, 302, "{}", callback.text());
    assert!(callback.set_cookie("__Host-ward").is_some());
    let me = alice
        .get(b.url("/bff/user"))
        .await
        .expect("GET B /bff/user");
    assert_eq!(me.status, 200, "{}\n{}", me.text(), instances.outputs());
    let me = me.json().expect("user JSON");
    assert_eq!(me["sub"], "alice");
    let csrf = me["csrfToken"].as_str().expect("csrfToken").to_owned();
    let via_a = alice
        .get(a.url("/bff/user"))
        .await
        .expect("GET A /bff/user");
    assert_eq!(via_a.status, 200);
    assert_eq!(via_a.json().expect("user JSON")["sub"], "alice");

    upstream.clear();
    let api = alice.get(b.url("/api/things")).await.expect("GET B /api");
    assert_eq!(api.status, 200, "{}", api.text());
    let seen = upstream.last().expect("B forwarded the call");
    assert_eq!(seen.path(), "/api/things");
    let bearer = seen.header("authorization").unwrap_or_default();
    assert!(
        bearer.len() > "Bearer ".len() && bearer.starts_with("Bearer "),
        "the upstream saw the user's bearer token"
    );
    csrf
}

/// Logout through B ends the session everywhere.
async fn logout_through_b_ends_the_session_everywhere(
    instances: &TwoInstances,
    alice: &Browser,
    csrf: &str,
) {
    let TwoInstances { a, b, .. } = instances;
    let logout = alice
        .post(b.url("/bff/logout"))
        .header("origin", &instances.public_url)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .expect("POST B /bff/logout");
    assert_eq!(logout.status, 200, "{}", logout.text());
    let after = alice
        .get(a.url("/bff/user"))
        .await
        .expect("GET A /bff/user");
    assert_eq!(after.status, 401, "A still serves a session B ended");
    assert_eq!(
        alice.get(a.url("/api/things")).await.expect("GET A").status,
        401
    );
    assert_eq!(
        alice.get(b.url("/bff/user")).await.expect("GET B").status,
        401
    );
}

/// A login begun on A, its callback routed to B: B completes it and both serve the session.
async fn a_login_begun_on_a_finishes_on_b(instances: &TwoInstances) {
    let TwoInstances { a, b, .. } = instances;
    let bob = Browser::new().expect("browser");
    let callback = login_across(&bob, &a.origin, &b.origin, "bob")
        .await
        .unwrap_or_else(|e| panic!("login A -> B: {e:#}\n{}", instances.outputs()));
    assert_eq!(
        callback.status,
        302,
        "B completes A's login: {}\n{}",
        callback.text(),
        instances.outputs()
    );
    assert!(
        callback.set_cookie("__Host-ward").is_some(),
        "B set the cookie"
    );
    let me = bob.get(a.url("/bff/user")).await.expect("GET A /bff/user");
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json().expect("user JSON")["sub"], "bob");
    let via_b = bob.get(b.url("/bff/user")).await.expect("GET B /bff/user");
    assert_eq!(via_b.status, 200);
}

#[tokio::test]
async fn two_instances_on_one_redis_share_logins_sessions_and_logouts() {
    let url = common::redis_url();
    require_reachable("Redis", &url, "WARD_TEST_REDIS_URL").await;
    two_instances_share_one_store(format!(
        "kind = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{}\"",
        unique_prefix(':')
    ))
    .await;
}

#[tokio::test]
async fn two_instances_on_one_postgres_share_logins_sessions_and_logouts() {
    let url = common::postgres_url();
    require_reachable("PostgreSQL", &url, "WARD_TEST_POSTGRES_URL").await;
    two_instances_share_one_store(format!(
        "kind = \"postgres\"\nurl = \"{url}\"\nkey_prefix = \"{}\"",
        unique_prefix('_')
    ))
    .await;
}
