//! Shared harness of Ward's integration tests: start the real IdP and an echo API, run Ward
//! in-process on a loopback port with a manual clock, walk a browser through the login.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod csrf;
pub mod flaky;
pub mod logout_tokens;
pub mod upstream;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use ward::state::SharedState;
use ward_store::{Clock, ManualClock, SystemClock};
use ward_testkit::{Browser, EchoUpstream, Idp, IdpOptions, Reply};

/// A fixed test key ring entry (never used outside tests).
pub const TEST_KEY: &str = "test1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// How a test wants Ward set up.
pub struct Options {
    /// TOML appended to the base configuration (extra sections or routes).
    pub extra_toml: String,
    /// `memory` (default) or `embedded`.
    pub store: &'static str,
    /// Adjusts the IdP's options before it starts.
    pub idp: fn(&mut IdpOptions),
    /// Keys for `[crypto] keys`.
    pub keys: Vec<String>,
    /// Reuse this directory (embedded store file `ward.db` in it) instead of a fresh one,
    /// e.g. to restart Ward on the same store.
    pub data_dir: Option<std::path::PathBuf>,
    /// When set, the store fails every call while this switch is on.
    pub outage: Option<flaky::Outage>,
    /// `WARD_<SECTION>__<KEY>` overrides (and `HTTPS_PROXY` and the like), as the binary would
    /// read them from the environment.
    pub env: BTreeMap<String, String>,
    /// Serve the IdP over https with this identity.
    pub idp_tls: Option<ward_testkit::IdpTls>,
    /// The IdP in its FAPI 2.0 configuration with this client key registered, and Ward
    /// authenticating with it (`private_key_jwt`; `env` may point Ward at another key).
    pub client_key: Option<Arc<ward_testkit::ClientKey>>,
    /// Mutual TLS at the IdP (RFC 8705, with `idp_tls`): the client registered for
    /// `tls_client_auth`; Ward's certificate comes through `env` (`WARD_OIDC__CLIENT_*`).
    pub idp_mtls: Option<ward_testkit::IdpMtls>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            extra_toml: String::new(),
            store: "memory",
            idp: |_| {},
            keys: vec![TEST_KEY.to_owned()],
            data_dir: None,
            outage: None,
            env: BTreeMap::new(),
            idp_tls: None,
            client_key: None,
            idp_mtls: None,
        }
    }
}

/// A second instance of a [`Ward`] (see [`Ward::peer`]); stops serving when dropped.
pub struct Peer {
    /// `http://localhost:<port>`.
    pub origin: String,
    _stop: oneshot::Sender<()>,
}

/// A running Ward with its IdP and upstream.
pub struct Ward {
    /// `http://localhost:<port>`: the public origin.
    pub origin: String,
    /// The real IdP.
    pub idp: Idp,
    /// The recording API upstream.
    pub upstream: EchoUpstream,
    /// Ward's shared state (store, config) for white-box assertions.
    pub state: SharedState,
    /// The clock Ward reads; advance it to expire things.
    pub clock: Arc<ManualClock>,
    /// Directory for the embedded store file.
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Ward {
    /// Ward with default options.
    pub async fn start() -> Ward {
        Self::start_with(Options::default()).await
    }

    /// Ward with `options`.
    pub async fn start_with(options: Options) -> Ward {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("bound address").port();
        let origin = format!("http://localhost:{port}");
        let mut idp_options = IdpOptions::new(origin.clone());
        idp_options.always_refresh = true;
        idp_options.tls = options.idp_tls.clone();
        if let Some(mtls) = &options.idp_mtls {
            idp_options.mtls = Some(mtls.clone());
            idp_options.client_auth = ward_testkit::ClientAuth::TlsClientAuth;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env = options.env.clone();
        if let Some(key) = &options.client_key {
            fapi2(key, &mut idp_options, dir.path(), &mut env);
        }
        // After the FAPI 2.0 preset, so a test can add to it (DPoP, JWT access tokens).
        (options.idp)(&mut idp_options);
        let idp = Idp::start(idp_options).await.expect("start the IdP");
        let upstream = EchoUpstream::start()
            .await
            .expect("start the echo upstream");
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().to_owned());
        let toml = base_config(&origin, &idp, &upstream, &data_dir, &options);
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let config = ward::config::load_from_str(&toml, &env, dir.path())
            .unwrap_or_else(|e| panic!("test configuration invalid:\n{e}"));
        let outbound = ward::outbound::Outbound::load(&config.outbound).expect("outbound trust");
        let store = ward::server::open_store(&config, &outbound, clock.clone())
            .await
            .expect("open the store");
        let store: Arc<dyn ward_store::SessionStore> = match options.outage.clone() {
            Some(outage) => Arc::new(flaky::FlakyStore {
                inner: store,
                outage,
            }),
            None => store,
        };
        let state = ward::server::build_state_with_store(config, clock.clone(), store)
            .await
            .expect("build Ward's state");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(ward::server::run(listener, state.clone(), async {
            let _ = rx.await;
        }));
        Ward {
            origin,
            idp,
            upstream,
            state,
            clock,
            dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops serving and waits for in-flight requests (and the store handle) to finish.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }

    /// `origin + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Logs `user` in with `browser`, landing on `return_url`; returns the callback's reply.
    pub async fn login(&self, browser: &Browser, user: &str, return_url: &str) -> Reply {
        let start = browser
            .get(self.url(&format!("/bff/login?returnUrl={return_url}")))
            .await
            .expect("GET /bff/login");
        assert_eq!(start.status, 302, "login redirects to the IdP");
        let authorize = start.location().expect("Location").to_owned();
        let back = browser
            .login_at_idp(&authorize, user)
            .await
            .expect("login at the IdP");
        let callback = browser.follow(&back).await.expect("GET /bff/callback");
        assert_eq!(callback.status, 302, "callback: {}", callback.text());
        callback
    }

    /// A logged-in browser for `user` and its `/bff/user` JSON.
    pub async fn logged_in(&self, user: &str) -> (Browser, serde_json::Value) {
        let browser = Browser::new().expect("browser");
        self.login(&browser, user, "/").await;
        let me = browser
            .get(self.url("/bff/user"))
            .await
            .expect("GET /bff/user");
        assert_eq!(me.status, 200, "{}", me.text());
        (browser, me.json().expect("user JSON"))
    }

    /// A second instance on this one's configuration, and so on the same store, serving on a
    /// port of its own until the returned [`Peer`] is dropped. A shared server (Redis,
    /// PostgreSQL) gets a connection (and read cache) of its own, as a second process would;
    /// the memory store can only be shared as the same object.
    pub async fn peer(&self) -> Peer {
        self.peer_with(|_| {}).await
    }

    /// [`peer`](Self::peer) on this one's configuration as `change` leaves it (e.g. a route
    /// added after sessions were made).
    pub async fn peer_with(&self, change: impl FnOnce(&mut ward::config::Config)) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let origin = format!(
            "http://localhost:{}",
            listener.local_addr().expect("addr").port()
        );
        let store = match self.state.config.store.kind {
            ward::config::StoreKind::Memory => self.state.sessions.store().clone(),
            _ => {
                let config = &self.state.config;
                let outbound =
                    ward::outbound::Outbound::load(&config.outbound).expect("outbound trust");
                ward::server::open_store(config, &outbound, self.clock.clone())
                    .await
                    .expect("the second instance's store connection")
            }
        };
        let mut config = self.state.config.clone();
        change(&mut config);
        let state = ward::server::build_state_with_store(config, self.clock.clone(), store)
            .await
            .expect("second instance");
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(ward::server::run(listener, state, async {
            let _ = stopped.await;
        }));
        Peer {
            origin,
            _stop: stop,
        }
    }

    /// Ward's current time.
    pub fn clock_now(&self) -> u64 {
        self.clock.now()
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> String {
        self.state.config.effective_cookie_name()
    }
}

impl Drop for Ward {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The IdP in its FAPI 2.0 configuration for `key`; Ward on `private_key_jwt` with `key`
/// (written to `dir`) unless `env` names another key file.
fn fapi2(
    key: &ward_testkit::ClientKey,
    idp_options: &mut IdpOptions,
    dir: &std::path::Path,
    env: &mut BTreeMap<String, String>,
) {
    let (always_refresh, resources) = (idp_options.always_refresh, idp_options.resources.clone());
    *idp_options = IdpOptions::fapi2(idp_options.bff_origin.clone(), key);
    idp_options.always_refresh = always_refresh;
    idp_options.resources = resources;
    let path = dir.join("ward-client-key.pem");
    key.write_pem(&path).expect("write the client key");
    env.insert("WARD_OIDC__CLIENT_AUTH".into(), "private_key_jwt".into());
    env.entry("WARD_OIDC__PRIVATE_KEY_FILE".into())
        .or_insert_with(|| path.display().to_string());
}

/// The machine's Redis for tests (`WARD_TEST_REDIS_URL` overrides).
pub fn redis_url() -> String {
    std::env::var("WARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The machine's PostgreSQL for tests (`WARD_TEST_POSTGRES_URL` overrides).
pub fn postgres_url() -> String {
    std::env::var("WARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned())
}

/// `url` and a key prefix of its own for the shared-server stores, so test runs never collide.
fn store_location(options: &Options) -> String {
    let unique = format!(
        "{}_{}_{}",
        ward_testkit::run_tag(),
        std::process::id(),
        SystemClock.now() % 1_000_000 * 1000 + u64::from(rand_suffix())
    );
    match options.store {
        "redis" => format!(
            "url = \"{}\"\nkey_prefix = \"wardtest:{unique}:\"",
            redis_url()
        ),
        "postgres" => format!(
            "url = \"{}\"\nkey_prefix = \"wardtest_{unique}_\"",
            postgres_url()
        ),
        _ => String::new(),
    }
}

fn rand_suffix() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(std::time::Instant::now()) % 1000) as u16
}

fn base_config(
    origin: &str,
    idp: &Idp,
    upstream: &EchoUpstream,
    data_dir: &std::path::Path,
    options: &Options,
) -> String {
    let keys: Vec<String> = options.keys.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "{origin}"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "bff-secret"

[store]
kind = "{store}"
path = "{db}"
{store_location}

[crypto]
keys = [{keys}]

[telemetry]
log_level = "debug"

[[routes]]
prefix = "/api"
upstream = "{api}"
token = "user"

[[routes]]
prefix = "/public"
upstream = "{api}"
token = "none"
strip_prefix = true
{extra}
"#,
        issuer = idp.issuer(),
        store = options.store,
        store_location = store_location(options),
        db = data_dir.join("ward.db").display(),
        keys = keys.join(", "),
        api = upstream.url(),
        extra = options.extra_toml,
    )
}
