//! The `ward` binary: parse the command line, load and validate the configuration, set up
//! logging, then serve, check or generate a key. Everything else lives in the library.

use std::collections::BTreeMap;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Keygen => {
            println!("{}", ward::session::keyring::KeyRing::generate_entry());
            Ok(())
        }
        Command::Serve => runtime().and_then(|rt| rt.block_on(serve(&cli.config))),
        Command::Check => runtime().and_then(|rt| rt.block_on(check(&cli.config))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ward: {err:#}");
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

fn load_config(path: &Path) -> anyhow::Result<Config> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    ward::config::load(path, &env)
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))
}

async fn serve(path: &Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    ward::telemetry::init(&config.telemetry, std::io::stdout)
        .map_err(|e| anyhow::anyhow!("telemetry: {e}"))?;
    if config.server.insecure_dev {
        tracing::warn!(
            event = "insecure_dev",
            "server.insecure_dev = true: cookies lose __Host- and Secure; never use this in production"
        );
    }
    let listen = config.server.listen;
    let public_url = config.server.public_url.to_string();
    let state = ward::server::build(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(event = "listening", addr = %bound, public_url, "ward is serving");
    ward::server::run(listener, state, shutdown_signal()).await?;
    tracing::info!(event = "stopped", "ward stopped");
    Ok(())
}

async fn check(path: &Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    println!("configuration: {} is valid", path.display());
    let clock: std::sync::Arc<dyn ward_store::Clock> = std::sync::Arc::new(ward_store::SystemClock);
    ward::session::keyring::KeyRing::from_config(&config.crypto.keys)?;
    let store = ward::server::open_store(&config, clock.clone())?;
    store.ping().await.context("store does not answer")?;
    println!("store: {} reachable", store.kind());
    ward::server::discover(&config, clock).await?;
    println!("oidc: provider metadata loaded from {}", config.oidc.issuer);
    println!(
        "\n# effective configuration (secrets masked)\n{}",
        config.to_masked_toml()
    );
    Ok(())
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
