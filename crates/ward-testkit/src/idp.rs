//! The real test IdP: `node idp/provider.mjs` (oidc-provider) on a free port, with its test hooks.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

pub use crate::fapi::{ClientKey, Par};
pub use crate::mtls::{IdpMtls, MtlsCall};
pub use crate::npm::ensure_npm_installed;
use crate::pki::IdpTls;
use crate::repo_root;

/// The client id registered at the test IdP.
pub const CLIENT_ID: &str = "bff";
/// The client secret registered at the test IdP (a well-known test value, not a secret).
pub const CLIENT_SECRET: &str = "bff-secret";

/// How long one start of the IdP may take to print `READY`. Node prints it within 2.5 s here even
/// with both cores busy (300 starts measured under a cargo build); CI twice saw a start that
/// printed nothing for 30 s and then 120 s, so a silent start is given up and tried again.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many starts [`Idp::start`] tries before it fails.
const START_ATTEMPTS: u32 = 3;

/// How the registered client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`), the default.
    #[default]
    Basic,
    /// Form fields `client_id` and `client_secret` (`client_secret_post`).
    Post,
    /// A signed JWT (`private_key_jwt`); the keys are [`IdpOptions::client_jwks`].
    PrivateKeyJwt,
    /// A PKI client certificate (`tls_client_auth`, RFC 8705); needs [`IdpOptions::mtls`].
    TlsClientAuth,
}

impl ClientAuth {
    fn as_env(self) -> &'static str {
        match self {
            Self::Basic => "client_secret_basic",
            Self::Post => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
        }
    }
}

/// `DPOP` of the test IdP (RFC 9449).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dpop {
    /// DPoP off (the default).
    #[default]
    Off,
    /// DPoP on, proofs without a nonce accepted.
    On,
    /// DPoP on, every proof must carry a nonce the IdP issued (`use_dpop_nonce` otherwise).
    Nonce,
}

/// Knobs of [`Idp::start`]; each maps to an environment variable of `idp/provider.mjs`.
#[derive(Clone, Debug)]
pub struct IdpOptions {
    /// Origin of the client (Ward's `public_url`): the IdP registers `<origin>/bff/callback`,
    /// `<origin>/` and `<origin>/bff/logged-out`, and `<origin>/bff/backchannel-logout`.
    pub bff_origin: String,
    /// `OP_HOST`: the interface and the issuer's host (default `127.0.0.1`).
    pub host: Option<String>,
    /// `AT_TTL`: access-token lifetime in seconds (IdP default 300).
    pub at_ttl: Option<u64>,
    /// `RT_TTL`: refresh-token lifetime in seconds (IdP default 86400).
    pub rt_ttl: Option<u64>,
    /// `IDT_TTL`: ID-token lifetime in seconds (IdP default 3600).
    pub idt_ttl: Option<u64>,
    /// `ALWAYS_REFRESH=1`: a refresh token on every code exchange, even without
    /// `offline_access` + `prompt=consent`.
    pub always_refresh: bool,
    /// `AT_FORMAT=jwt`: JWT access tokens with `aud=urn:bff:api` (else opaque).
    pub jwt_access_tokens: bool,
    /// `CLIENT_AUTH`: the client's token-endpoint authentication method.
    pub client_auth: ClientAuth,
    /// `KEEP_SSRF_GUARD=1`: keep oidc-provider's block on back-channel calls to loopback.
    pub keep_ssrf_guard: bool,
    /// `PAR`: pushed authorization requests off (the default), offered, or required.
    pub par: Par,
    /// `FAPI=2.0`: oidc-provider's FAPI 2.0 Security Profile checks.
    pub fapi2: bool,
    /// `CLIENT_JWKS`: the client's public JWKS, for [`ClientAuth::PrivateKeyJwt`].
    pub client_jwks: Option<serde_json::Value>,
    /// `DPOP=1` (RFC 9449, `features.dPoP`), and with [`Dpop::Nonce`] `DPOP_NONCE=1` (every
    /// proof must carry a nonce the IdP issued). With [`IdpOptions::fapi2`] the client must
    /// then bind its tokens (`dpop_bound_access_tokens`).
    pub dpop: Dpop,
    /// `RESOURCES`: RFC 8707 resource servers; a token request naming one gets a JWT access
    /// token with `aud` = that resource (see [`Idp::resource_token_requests`]).
    pub resources: Vec<String>,
    /// Any further environment variables for the node process.
    pub extra_env: Vec<(String, String)>,
    /// Serve https with this certificate (the issuer becomes `https://…`).
    pub tls: Option<IdpTls>,
    /// `MTLS=1` (RFC 8705; needs `tls`): client certificates, `tls_client_auth`, bound tokens.
    pub mtls: Option<IdpMtls>,
}

impl IdpOptions {
    /// Defaults for a client at `bff_origin` (e.g. Ward's `http://localhost:<port>`).
    pub fn new(bff_origin: impl Into<String>) -> Self {
        Self {
            bff_origin: bff_origin.into(),
            host: None,
            at_ttl: None,
            rt_ttl: None,
            idt_ttl: None,
            always_refresh: false,
            jwt_access_tokens: false,
            client_auth: ClientAuth::Basic,
            keep_ssrf_guard: false,
            par: Par::Off,
            fapi2: false,
            client_jwks: None,
            dpop: Dpop::Off,
            resources: Vec::new(),
            extra_env: Vec::new(),
            tls: None,
            mtls: None,
        }
    }
}

impl Default for IdpOptions {
    fn default() -> Self {
        Self::new("http://127.0.0.1:8080")
    }
}

/// Counters kept by the IdP's test hooks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdpStats {
    /// `POST /token` requests received, failed ones included.
    pub token_requests: u64,
    /// `POST /token/revocation` requests received.
    pub revocations: u64,
    /// `POST /request` (PAR) requests received.
    pub par_requests: u64,
}

/// A running test IdP. The node process is killed when this is dropped, and also exits by
/// itself when the test process dies (it watches its stdin, which only we hold).
pub struct Idp {
    issuer: String,
    bff_origin: String,
    logs: Arc<Mutex<String>>,
    http: reqwest::Client,
    child: Child,
    _stdin: Option<ChildStdin>,
}

impl Idp {
    /// Installs the IdP's npm packages if needed, starts it on a free port with the test hooks
    /// on, and waits (at most [`READY_TIMEOUT`]) for its `READY <issuer>` line; a start that
    /// stays silent is given up (its diagnostic report printed) and tried again, at most
    /// [`START_ATTEMPTS`] times. The error carries the IdP's output when it fails to come up.
    pub async fn start(options: IdpOptions) -> anyhow::Result<Self> {
        tokio::task::spawn_blocking(ensure_idp_installed)
            .await
            .context("the npm install task panicked")??;
        let idp_dir = idp_dir();
        let mut attempt = 1;
        let (issuer, mut child, logs) = loop {
            match start_once(&options, &idp_dir).await {
                Ok(started) => break started,
                Err(Start::Silent(report)) if attempt < START_ATTEMPTS => {
                    // Printed to the test's output: kept by the test runner for a failing test.
                    eprintln!(
                        "ward-testkit: start {attempt} of the test IdP printed no READY within \
                         {READY_TIMEOUT:?}; starting it again. {report}"
                    );
                    attempt += 1;
                }
                Err(Start::Silent(report)) => {
                    bail!("the test IdP printed no READY in {START_ATTEMPTS} starts; {report}")
                }
                Err(Start::Failed(err)) => return Err(err),
            }
        };
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        if let Some(tls) = &options.tls {
            let ca = reqwest::Certificate::from_pem(&tls.ca_pem).context("the IdP's CA")?;
            http = http.tls_certs_only([ca]);
        }
        let http = http.build().context("building the HTTP client")?;
        let stdin = child.stdin.take();
        Ok(Self {
            issuer,
            bff_origin: options.bff_origin,
            logs,
            http,
            child,
            _stdin: stdin,
        })
    }

    /// Kills the IdP process and waits for it to exit: from now on its port answers nothing,
    /// as in an IdP outage.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing the test IdP")
    }

    /// The issuer, `http://127.0.0.1:<port>` (`https://` with [`IdpOptions::tls`]; no trailing
    /// slash).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `<issuer><path>`, e.g. `idp.url("/token")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The redirect URI registered for the client: `<bff_origin>/bff/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("{}/bff/callback", self.bff_origin)
    }

    /// Everything the IdP printed so far (stdout lines prefixed `out| `, stderr `err| `).
    /// Holds no tokens: the IdP logs none.
    pub fn logs(&self) -> String {
        lock(&self.logs).clone()
    }

    /// Changes how the `id_token` of later token responses (code and refresh) is made, until
    /// changed again: `none` (untouched), `bad-signature`, `unknown-kid`, `rotated-key` (also
    /// published in `/jwks` from now on), `wrong-aud`, `wrong-iss`, `wrong-nonce`, `expired`,
    /// `future-iat`, `no-nonce`, `alg-none`, `azp-mismatch`, `omit` (no `id_token` in the
    /// answer). An unknown mode is an error.
    pub async fn set_id_token_mode(&self, mode: &str) -> anyhow::Result<()> {
        self.hook("/__test/mode", json!({ "idToken": mode })).await
    }

    /// Makes every later `POST /token` answer `status` with an OAuth `server_error` body, until
    /// called again; `0` restores normal answers.
    pub async fn fail_token_requests(&self, status: u16) -> anyhow::Result<()> {
        self.hook("/__test/fail-token", json!({ "status": status }))
            .await
    }

    /// Makes only the next `times` `POST /token` requests answer `status` (a transient fault);
    /// later ones succeed again.
    pub async fn fail_next_token_requests(&self, status: u16, times: u32) -> anyhow::Result<()> {
        self.hook(
            "/__test/fail-token",
            json!({ "status": status, "times": times }),
        )
        .await
    }

    /// The IdP's request counters.
    pub async fn stats(&self) -> anyhow::Result<IdpStats> {
        let response = self
            .http
            .get(self.url("/__test/stats"))
            .send()
            .await
            .context("GET /__test/stats")?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.context("stats body")?;
        if !status.is_success() {
            bail!("GET /__test/stats answered {status}: {body}");
        }
        let count = |name: &str| {
            body[name]
                .as_u64()
                .ok_or_else(|| anyhow!("stats lack {name}: {body}"))
        };
        Ok(IdpStats {
            token_requests: count("tokenRequests")?,
            revocations: count("revocations")?,
            par_requests: count("parRequests")?,
        })
    }

    /// With [`IdpOptions::mtls`]: every client-authenticated call so far, as the IdP saw it.
    pub async fn mtls_calls(&self) -> anyhow::Result<Vec<MtlsCall>> {
        #[derive(serde::Deserialize)]
        struct Calls {
            calls: Vec<MtlsCall>,
        }
        let response = self
            .http
            .get(self.url("/__test/mtls"))
            .send()
            .await
            .context("GET /__test/mtls")?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET /__test/mtls answered {status} (is IdpOptions::mtls set?)");
        }
        let calls: Calls = response.json().await.context("the mTLS calls")?;
        Ok(calls.calls)
    }

    /// Token requests naming `resource` (RFC 8707) the IdP has answered so far, by outcome:
    /// `ok` or the OAuth error code (`invalid_target`, `invalid_grant`, …), in order. Needs
    /// [`IdpOptions::resources`].
    pub fn resource_token_requests(&self, resource: &str) -> Vec<String> {
        let prefix = format!("out| resource-token {resource} ");
        self.logs()
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect()
    }

    async fn hook(&self, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("POST {path} answered {status}: {text}");
        }
        Ok(())
    }
}

fn lock(logs: &Mutex<String>) -> MutexGuard<'_, String> {
    // Lines are appended whole, so a poisoned lock still holds consistent text.
    logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Copies the lines of one output stream into `logs`; the first `READY <issuer>` line on
/// stdout is sent to `ready`.
async fn capture(
    stream: impl AsyncRead + Unpin,
    tag: &str,
    logs: Arc<Mutex<String>>,
    mut ready: Option<oneshot::Sender<String>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let _ = writeln!(lock(&logs), "{tag}| {line}");
        if let Some(issuer) = line.strip_prefix("READY ")
            && let Some(ready) = ready.take()
        {
            let _ = ready.send(issuer.trim().to_owned());
        }
    }
}

fn idp_dir() -> PathBuf {
    repo_root().join("idp")
}

/// `node provider.mjs` in `idp_dir` with the test hooks on and `options` as its environment;
/// its standard streams piped, killed when dropped; SIGUSR2 writes a diagnostic report into
/// `report_dir`.
fn node_command(options: &IdpOptions, idp_dir: &Path, report_dir: &Path) -> Command {
    let mut command = Command::new("node");
    command
        .arg("--report-on-signal")
        .arg("--report-signal=SIGUSR2")
        .arg(format!("--report-directory={}", report_dir.display()))
        .arg("provider.mjs")
        .current_dir(idp_dir)
        .env("OP_PORT", "0")
        .env("TEST_HOOKS", "1")
        .env("EXIT_WITH_STDIN", "1")
        .env("BFF_ORIGIN", &options.bff_origin)
        .env("CLIENT_AUTH", options.client_auth.as_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(tls) = &options.tls {
        command
            .env("TLS_CERT", &tls.cert_file)
            .env("TLS_KEY", &tls.key_file);
    }
    if let Some(mtls) = &options.mtls {
        command
            .env("MTLS", "1")
            .env("MTLS_CA", &mtls.client_ca_file)
            .env("MTLS_SAN_DNS", &mtls.san_dns);
        if let Some(host) = &mtls.alias_host {
            command.env("MTLS_ALIAS_HOST", host);
        }
    }
    let optional = [
        ("OP_HOST", options.host.clone()),
        ("AT_TTL", options.at_ttl.map(|v| v.to_string())),
        ("RT_TTL", options.rt_ttl.map(|v| v.to_string())),
        ("IDT_TTL", options.idt_ttl.map(|v| v.to_string())),
        (
            "ALWAYS_REFRESH",
            options.always_refresh.then(|| "1".to_owned()),
        ),
        (
            "AT_FORMAT",
            options.jwt_access_tokens.then(|| "jwt".to_owned()),
        ),
        (
            "KEEP_SSRF_GUARD",
            options.keep_ssrf_guard.then(|| "1".to_owned()),
        ),
        ("PAR", Some(options.par.as_env().to_owned())),
        ("FAPI", options.fapi2.then(|| "2.0".to_owned())),
        (
            "CLIENT_JWKS",
            options.client_jwks.as_ref().map(|jwks| jwks.to_string()),
        ),
        ("DPOP", (options.dpop != Dpop::Off).then(|| "1".to_owned())),
        (
            "DPOP_NONCE",
            (options.dpop == Dpop::Nonce).then(|| "1".to_owned()),
        ),
        (
            "RESOURCES",
            (!options.resources.is_empty()).then(|| options.resources.join(",")),
        ),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            command.env(name, value);
        }
    }
    for (name, value) in &options.extra_env {
        command.env(name, value);
    }
    command
}

/// Why one start of the IdP gave no issuer.
enum Start {
    /// It ran but printed no `READY` within [`READY_TIMEOUT`]: its output and Node's diagnostic
    /// report (where it hung).
    Silent(String),
    /// It could not run or exited: retrying would not help.
    Failed(anyhow::Error),
}

/// Runs the IdP once: its issuer, process and output once it printed `READY`.
async fn start_once(
    options: &IdpOptions,
    idp_dir: &Path,
) -> Result<(String, Child, Arc<Mutex<String>>), Start> {
    let report_dir = std::env::temp_dir().join(format!(
        "ward-testkit-idp-report-{}-{}",
        std::process::id(),
        REPORTS.fetch_add(1, Ordering::Relaxed)
    ));
    // Node writes no report into a directory that does not exist.
    std::fs::create_dir_all(&report_dir)
        .map_err(|err| Start::Failed(anyhow!("creating {}: {err}", report_dir.display())))?;
    let mut command = node_command(options, idp_dir, &report_dir);
    let mut child = command.spawn().map_err(|err| {
        Start::Failed(anyhow!(
            "cannot run `node` ({err}): the integration tests need Node.js >= 20.19 and npm \
             on PATH to run the test IdP in {}",
            idp_dir.display()
        ))
    })?;
    let logs = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = oneshot::channel();
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Start::Failed(anyhow!("node's output is not piped")));
    };
    tokio::spawn(capture(stdout, "out", Arc::clone(&logs), Some(ready_tx)));
    let stderr_task = tokio::spawn(capture(stderr, "err", Arc::clone(&logs), None));

    let outcome = tokio::time::timeout(READY_TIMEOUT, ready_rx).await;
    if let Ok(Ok(issuer)) = outcome {
        let _ = std::fs::remove_dir(&report_dir);
        return Ok((issuer, child, logs));
    }
    let report = if outcome.is_err() {
        diagnostic_report(&child, &report_dir).await
    } else {
        String::new()
    };
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), stderr_task).await;
    let _ = std::fs::remove_dir_all(&report_dir);
    let output = lock(&logs).clone();
    match outcome {
        Err(_) => Err(Start::Silent(format!(
            "Its output:\n{output}\nWhere it was (Node's diagnostic report): {report}"
        ))),
        Ok(_) => Err(Start::Failed(anyhow!(
            "the test IdP exited before printing READY; its output:\n{output}"
        ))),
    }
}

/// A distinct report directory per start within this process.
static REPORTS: AtomicU32 = AtomicU32::new(0);

/// Asks the silent node process for its diagnostic report (SIGUSR2 with `--report-on-signal`)
/// and returns its JavaScript and native stacks, or why there is none.
async fn diagnostic_report(child: &Child, report_dir: &Path) -> String {
    let Some(pid) = child.id() else {
        return "none (the process has gone)".to_owned();
    };
    let signalled = Command::new("kill")
        .args(["-USR2", &pid.to_string()])
        .status()
        .await;
    if !matches!(signalled, Ok(status) if status.success()) {
        return format!("none (kill -USR2 {pid} failed: {signalled:?})");
    }
    for _ in 0..50 {
        let written = std::fs::read_dir(report_dir)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
            .and_then(|entry| std::fs::read_to_string(entry.path()).ok())
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
        if let Some(report) = written {
            // What the event loop waits on (an idle hang) and the JavaScript stack (if any ran).
            let handles: Vec<String> = report["libuv"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|handle| {
                    let mut fields = handle.clone();
                    if let Some(object) = fields.as_object_mut() {
                        object.remove("address");
                    }
                    fields.to_string()
                })
                .collect();
            return format!(
                "javascriptStack: {}\nlibuv handles:\n{}",
                report["javascriptStack"]["stack"],
                handles.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    "none within 5 s of SIGUSR2 (the process does not answer signals)".to_owned()
}

/// Runs `npm ci` in `idp/` when needed (see [`ensure_npm_installed`]).
pub fn ensure_idp_installed() -> anyhow::Result<()> {
    ensure_npm_installed(&idp_dir())
}
