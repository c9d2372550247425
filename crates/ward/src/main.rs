//! The `ward` binary: parse the command line, load and validate the configuration, set up
//! logging, then serve, check or generate a key. Everything else lives in the library.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ward::config::Config;

/// Ward: a Backend-for-Frontend security gateway for single-page apps.
///
/// Ward is the app's confidential OpenID Connect client: it runs the login, keeps every token
/// server-side (sealed with AES-256-GCM), gives the browser only an HttpOnly `__Host-` cookie,
/// and proxies API calls with the access token attached.
#[derive(Debug, Parser)]
#[command(name = "ward", version)]
struct Cli {
    /// Configuration file (TOML). Every key can also be set as WARD_<SECTION>__<KEY>.
    #[arg(long, short, global = true, default_value = "ward.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default when no command is given).
    Serve,
    /// Validate the configuration, reach the IdP and the store, print the effective setup
    /// with secrets masked. Exits non-zero on any problem.
    Check,
    /// Print a new `<kid>:<base64>` key for `[crypto] keys` (put it first to rotate).
    Keygen,
    /// List or revoke a subject's sessions directly in the configured store (no IdP needed).
    /// The embedded store admits one process: while `ward serve` runs on it, use the admin
    /// API (`[admin]`, `/admin/sessions`) instead.
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
}

#[derive(Debug, Subcommand)]
enum SessionsAction {
    /// Print the live sessions of a subject: id (a hash prefix), created, last seen, expires.
    List {
        /// The subject (`sub` claim) whose sessions to show.
        #[arg(long)]
        sub: String,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete every live session of a subject: its browsers must log in again.
    Revoke {
        /// The subject (`sub` claim) whose sessions to end.
        #[arg(long)]
        sub: String,
    },
}

/// Writes command output to stdout, returning the write's error instead of panicking as
/// `println!` does when the reader has gone (`ward check | head -1`).
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Keygen => {
            say!("{}", ward::session::keyring::KeyRing::generate_entry()).map_err(Into::into)
        }
        // Serving threads bring their own runtimes (`server::run`); this one accepts and runs
        // the background work.
        Command::Serve => serving_runtime().and_then(|rt| rt.block_on(serve(&cli.config))),
        Command::Check => runtime().and_then(|rt| rt.block_on(check(&cli.config))),
        Command::Sessions { action } => {
            runtime().and_then(|rt| rt.block_on(sessions(&cli.config, action)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output closed it early: what it wanted it has; nothing to report.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.is::<Reported>() => ExitCode::FAILURE,
        Err(err) => {
            // Each cause once: many errors print their source and also return it.
            let text = ward::check::describe(err.as_ref());
            let _ = writeln!(std::io::stderr().lock(), "ward: {text}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The runtime `ward serve` starts on: single-threaded, it runs the acceptor, the admin
/// listener and the store's background tasks; requests are served on worker threads.
fn serving_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    ward::config::load(path, &env)
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))
}

/// How long the admin listener may take to close its connections once the gateway has
/// drained.
const ADMIN_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

async fn serve(path: &Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    // Once, before anything connects: the trust and proxy every outbound client shares.
    let outbound = ward::outbound::Outbound::load(&config.outbound)?;
    let traces = ward::telemetry::init(&config.telemetry, &outbound, std::io::stdout)
        .map_err(|e| anyhow::anyhow!("telemetry: {e}"))?;
    outbound.log();
    if config.server.insecure_dev {
        tracing::warn!(
            event = "insecure_dev",
            "server.insecure_dev = true: cookies lose __Host- and Secure; never use this in production"
        );
    }
    ward::server::raise_descriptor_limit(config.server.max_connections);
    let listen = config.server.listen;
    let public_url = config.server.public_url.to_string();
    let admin = config.admin.clone();
    let tls = ward::tls::Termination::from_config(&config.server).context("server.tls_cert")?;
    let state = ward::server::build(config, outbound).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    // The admin listener stops when the gateway has drained, whatever ended it.
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = match admin {
        Some(admin) => {
            let admin_listener = tokio::net::TcpListener::bind(admin.listen)
                .await
                .with_context(|| format!("cannot listen on {} (admin.listen)", admin.listen))?;
            let admin_bound = admin_listener.local_addr()?;
            tracing::info!(event = "admin_listening", addr = %admin_bound, "admin listener up");
            Some(tokio::spawn(ward::server::run_admin(
                admin_listener,
                state.clone(),
                admin,
                async {
                    let _ = admin_stopped.await;
                },
            )))
        }
        None => None,
    };
    tracing::info!(event = "listening", addr = %bound, public_url, "ward is serving");
    let served = serve_gateway(listener, state, tls.as_ref()).await;
    let _ = stop_admin.send(());
    if let Some(task) = admin_task {
        // The gateway has used its shutdown_timeout already: an admin client still holding a
        // connection gets a moment, not a veto over the exit.
        match tokio::time::timeout(ADMIN_DRAIN, task).await {
            Ok(joined) => joined
                .context("admin listener task")?
                .context("admin listener")?,
            Err(_) => tracing::warn!(
                event = "shutdown_incomplete",
                "admin connections still open; stopping without them"
            ),
        }
    }
    if let Some(traces) = traces {
        // Bounded: a collector that is down costs the exit at most `SHUTDOWN_FLUSH`.
        traces.shutdown().await;
    }
    served?;
    tracing::info!(event = "stopped", "ward stopped");
    Ok(())
}

/// `ward sessions …`: session administration on the store alone, as the admin API does it.
async fn sessions(path: &Path, action: SessionsAction) -> anyhow::Result<()> {
    use ward::session::admin::{self, SessionAdmin};

    let config = load_config(path)?;
    match config.store.kind {
        ward::config::StoreKind::Memory => anyhow::bail!(
            "store.kind = \"memory\" lives inside the serving process: use the admin API \
             (GET/DELETE /admin/sessions?sub=...) of the running Ward"
        ),
        ward::config::StoreKind::Cookie => anyhow::bail!(
            "store.kind = \"cookie\" keeps sessions in the browsers: there is nothing to list \
             or revoke server-side"
        ),
        _ => {}
    }
    // Audit lines (`session_revoked`) go to stderr, leaving stdout to the listing.
    let outbound = ward::outbound::Outbound::load(&config.outbound)?;
    ward::telemetry::init(&config.telemetry, &outbound, std::io::stderr)
        .map_err(|e| anyhow::anyhow!("telemetry: {e}"))?;
    let ring = ward::session::keyring::KeyRing::from_config(&config.crypto.keys)?;
    let sealer = ward::session::seal::Sealer::new(ring);
    let clock: std::sync::Arc<dyn ward_store::Clock> = std::sync::Arc::new(ward_store::SystemClock);
    let opened = ward::server::open_store(&config, &outbound, clock).await;
    let store = opened.map_err(|err| {
        if is_held_by_another_process(&err) {
            anyhow::anyhow!(
                "the session database {} is in use by a running Ward (the embedded store admits \
                 one process at a time); use the admin API of that Ward instead: \
                 GET/DELETE http://{}/admin/sessions?sub=... with the admin token",
                config.store.path.display(),
                config
                    .admin
                    .as_ref()
                    .map_or_else(|| "<[admin] listen>".to_owned(), |a| a.listen.to_string()),
            )
        } else {
            anyhow::Error::new(err).context("cannot open the store")
        }
    })?;
    store.ping().await.context("store does not answer")?;
    let sessions = SessionAdmin::new(store.as_ref(), &sealer);
    match action {
        SessionsAction::List { sub, json } => {
            let listed = sessions.list(&sub).await.context("listing sessions")?;
            if json {
                for session in &listed {
                    say!("{}", serde_json::to_string(session)?)?;
                }
            } else {
                write!(std::io::stdout().lock(), "{}", admin::table(&listed))?;
            }
        }
        SessionsAction::Revoke { sub } => {
            let revoked = sessions.revoke(&sub).await.context("revoking sessions")?;
            say!("revoked {revoked} session(s)")?;
        }
    }
    Ok(())
}

/// Whether `err` is a write to a stdout whose reader has closed it.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Whether opening the store failed because another process holds the embedded file's lock.
/// The store reports it as `Unavailable` with the database's own error as the cause.
fn is_held_by_another_process(err: &ward_store::StoreError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if current.to_string().contains("already open") {
            return true;
        }
        cause = current.source();
    }
    false
}

async fn check(path: &Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    say!("configuration: {} is valid", path.display())?;
    let problems =
        ward::check::run(&config, &mut std::io::stdout(), &mut std::io::stderr()).await?;
    if problems.is_empty() {
        return Ok(());
    }
    let mut stderr = std::io::stderr().lock();
    for problem in &problems {
        let _ = writeln!(stderr, "ward: {problem}");
    }
    Err(Reported.into())
}

/// The failure has been printed already (`ward check`'s problems, one per line).
#[derive(Debug, thiserror::Error)]
#[error("reported above")]
struct Reported;

/// Serves the gateway until SIGTERM: over TLS, its certificate reloaded on SIGHUP and when
/// its files change, when `tls` is given (`[server] tls_cert`).
async fn serve_gateway(
    listener: tokio::net::TcpListener,
    state: ward::state::SharedState,
    tls: Option<&ward::tls::Termination>,
) -> anyhow::Result<()> {
    match tls {
        Some(tls) => {
            let _reloads = watch_certificate(tls)?;
            ward::server::run_tls(listener, state, tls, shutdown_signal()).await?;
        }
        None => {
            let _hangups = ignore_sighup().context("cannot listen for SIGHUP")?;
            ward::server::run(listener, state, shutdown_signal()).await?;
        }
    }
    Ok(())
}

/// Without TLS there is nothing to reload, but SIGHUP (`systemctl reload`, a supervisor's
/// reload) must not end the process, as its default action would.
fn ignore_sighup() -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: nothing to reload (no [server] tls_cert)");
        }
    }))
}

/// Reloads the TLS certificate on SIGHUP and when its files change, until the returned guards
/// are dropped. A watcher that cannot start is logged: SIGHUP still works.
fn watch_certificate(
    tls: &ward::tls::Termination,
) -> anyhow::Result<(Option<ward::tls::FileWatch>, tokio::task::JoinHandle<()>)> {
    let watch = match tls.watch_files() {
        Ok(watch) => Some(watch),
        Err(err) => {
            tracing::warn!(
                event = "tls_watch_failed",
                error = %err,
                "cannot watch the TLS certificate files; send SIGHUP after replacing them"
            );
            None
        }
    };
    let hangups = tls
        .reload_on_sighup()
        .context("cannot listen for SIGHUP (TLS certificate reloads)")?;
    Ok((watch, hangups))
}

/// Resolves on SIGTERM or Ctrl-C: stop accepting, finish in-flight requests.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!(event = "shutdown", "signal received, draining");
}
