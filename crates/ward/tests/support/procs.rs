//! Real processes for the multi-instance and fault tests: `ward serve` children configured from
//! a file, loopback ports, reachability checks that fail loudly (never skip), and a login
//! walked hop by hop so each hop can go to a different instance.

#![allow(dead_code)] // each test binary uses a different part

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use ward_testkit::{Browser, Reply};

/// How long a process may take to start answering, or a store to come back.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("bound address").port()
}

/// A key prefix no other run uses (process id, time, a counter), made of `[A-Za-z0-9_]` plus
/// `sep`, so it suits Redis keys and PostgreSQL table names alike.
pub fn unique_prefix(sep: char) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "wardproc{sep}{}{sep}{}{sep}{nanos}{sep}{}{sep}",
        ward_testkit::run_tag(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `host:port` of a `redis://` or `postgres://` URL (default ports 6379 / 5432).
pub fn address_of(url: &str) -> String {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("bad store URL ({e})"));
    let default_port = if parsed.scheme().starts_with("redis") {
        6379
    } else {
        5432
    };
    format!(
        "{}:{}",
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port().unwrap_or(default_port)
    )
}

/// Panics, naming the address, unless a TCP connection to the server of `url` opens within a
/// few seconds. These tests need the server: whether or not `CI=true`, they fail, never skip.
pub async fn require_reachable(what: &str, url: &str, override_var: &str) {
    let address = address_of(url);
    let attempt = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(address.as_str()),
    )
    .await;
    let why = match attempt {
        Ok(Ok(_)) => return,
        Ok(Err(err)) => err.to_string(),
        Err(_) => "no answer within 5 s".to_owned(),
    };
    panic!(
        "{what} at {address} is unreachable ({why}); start it or point {override_var} at one \
         (this test never skips, CI={})",
        std::env::var("CI").unwrap_or_default()
    );
}

/// Lines of a child's output stream, collected as they come.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<String>>);

impl Output {
    /// Copies `stream` in until it closes (the reader task ends then).
    pub fn collect(
        &self,
        stream: impl AsyncRead + Unpin + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let sink = self.0.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut text = sink.lock().unwrap_or_else(|p| p.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        })
    }

    /// Everything so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A `ward serve` child on a config file, killed when dropped.
pub struct WardProcess {
    /// `http://localhost:<its own port>`: where the test reaches this instance.
    pub origin: String,
    /// Its stdout and stderr, interleaved by line.
    pub output: Output,
    child: Child,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl WardProcess {
    /// Starts `ward serve --config <config>` in `dir`, listening on `port`, without inherited
    /// `WARD_*` variables, and waits until it answers.
    pub async fn start(dir: &Path, config: &Path, port: u16) -> Self {
        Self::start_with_env(dir, config, port, &[]).await
    }

    /// [`start`](Self::start) with extra environment variables (e.g. `OTEL_BSP_*`).
    pub async fn start_with_env(
        dir: &Path,
        config: &Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ward"));
        command.envs(env.iter().copied());
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, _) in std::env::vars() {
            if name.starts_with("WARD_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().expect("start ward serve");
        let output = Output::default();
        let readers = vec![
            output.collect(child.stdout.take().expect("piped stdout")),
            output.collect(child.stderr.take().expect("piped stderr")),
        ];
        let mut process = Self {
            origin: format!("http://localhost:{port}"),
            output,
            child,
            readers,
        };
        process.wait_until_serving().await;
        process
    }

    /// `origin + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Polls `GET /bff/user` until it answers 401 (up, no session); fails with the process's
    /// output if it exits or stays silent.
    async fn wait_until_serving(&mut self) {
        let browser = Browser::new().expect("browser");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(reply) = browser.get(self.url("/bff/user")).await {
                assert_eq!(reply.status, 401, "{}", reply.text());
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain_output().await;
                panic!(
                    "ward exited before serving ({status})\n{}",
                    self.output.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ward never answered on {}\n{}",
                self.origin,
                self.output.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until the output readers have read everything of an exited process.
    async fn drain_output(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
    }

    /// Sends SIGTERM (the orderly stop a supervisor sends).
    pub fn terminate(&self) {
        let pid = self.child.id().expect("ward is running");
        let sent = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
    }

    /// Waits up to `within` for the process to exit; `None` if it is still running then.
    pub async fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let status = tokio::time::timeout(within, self.child.wait()).await.ok()?;
        self.drain_output().await;
        Some(status.expect("reap ward"))
    }

    /// SIGKILL (no chance to flush or clean up), then reaps the process.
    pub async fn kill_hard(&mut self) {
        self.child.start_kill().expect("send SIGKILL");
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("ward died after SIGKILL")
            .expect("reap ward");
        assert!(!status.success(), "killed, not exited: {status:?}");
        self.drain_output().await;
    }
}

/// Starts a login on `start_origin` (`GET /bff/login`), signs in at the IdP as `user`, and
/// delivers the IdP's redirect to `callback_origin` instead of the `public_url` it names (as a
/// load balancer may route it to another instance). Returns the callback's answer.
pub async fn login_across(
    browser: &Browser,
    start_origin: &str,
    callback_origin: &str,
    user: &str,
) -> anyhow::Result<Reply> {
    login_from(browser, start_origin, callback_origin, user, None).await
}

/// [`login_across`], Ward's two requests carrying `X-Forwarded-For: <client_ip>` when given
/// (with `trusted_proxy_hops = 1`, each simulated browser is then a client of its own).
pub async fn login_from(
    browser: &Browser,
    start_origin: &str,
    callback_origin: &str,
    user: &str,
    client_ip: Option<&str>,
) -> anyhow::Result<Reply> {
    let start = forwarded(
        client_ip,
        browser.request(
            reqwest::Method::GET,
            format!("{start_origin}/bff/login?returnUrl=/"),
        ),
    )
    .send()
    .await?;
    anyhow::ensure!(
        start.status == 302,
        "GET /bff/login answered {}: {}",
        start.status,
        start.text()
    );
    let authorize = start
        .location()
        .ok_or_else(|| anyhow::anyhow!("no Location"))?
        .to_owned();
    let back = browser.login_at_idp(&authorize, user).await?;
    let mut callback = back.location_url()?;
    anyhow::ensure!(
        callback.path() == "/bff/callback",
        "the IdP sent the browser to {}",
        callback.path()
    );
    let target = url::Url::parse(callback_origin)?;
    callback
        .set_port(target.port())
        .map_err(|()| anyhow::anyhow!("cannot set the port"))?;
    forwarded(
        client_ip,
        browser.request(reqwest::Method::GET, callback.as_str()),
    )
    .send()
    .await
}

/// `request` with `X-Forwarded-For: <client_ip>` when given.
fn forwarded<'a>(
    client_ip: Option<&str>,
    request: ward_testkit::BrowserRequest<'a>,
) -> ward_testkit::BrowserRequest<'a> {
    match client_ip {
        Some(ip) => request.header("x-forwarded-for", ip),
        None => request,
    }
}

/// Writes `dir/ward.toml` for a `ward serve` child on `port`: the sections every such test
/// shares (loopback listener, a 2 s shutdown, the test IdP's client at `issuer`, a memory store,
/// `key`), then `extra` (the sections the test is about). Returns the file's path.
pub fn write_served_config(
    dir: &Path,
    port: u16,
    issuer: &str,
    key: &str,
    extra: &str,
) -> std::path::PathBuf {
    let config = dir.join("ward.toml");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"
shutdown_timeout = "2s"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "bff-secret"

[store]
kind = "memory"

[crypto]
keys = ["{key}"]
{extra}"#
    );
    std::fs::write(&config, text).expect("write ward.toml");
    config
}
