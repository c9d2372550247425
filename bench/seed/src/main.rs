//! `ward-bench-seed`: puts many live sessions into the store a Ward configuration names, the
//! way a login does (`SessionManager::create`: a fresh id and secret, the record sealed with
//! AES-256-GCM under the configured keys, written with the store's own `put_new`), so
//! `bench/run` can measure a Ward server that holds 100 000 sessions without 100 000 logins
//! through the IdP.
//!
//! The sessions carry fake but realistically sized tokens (an opaque access and refresh token,
//! an ID token of the test IdP's size) and never reach an IdP or an upstream. Their cookies are
//! dropped: nobody can use them, they only occupy the store until they expire.
//!
//! Usage: `ward-bench-seed --config <ward.toml> --count <n> [--tasks <k>]`. Prints one line,
//! `seeded <n> sessions in <s> s (<rate>/s)`. Benchmark tool only: not part of Ward or its tests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use ward::oidc::TokenSet;
use ward::secret::SecretString;
use ward::session::cookie::CookieAttributes;
use ward::session::keyring::KeyRing;
use ward::session::seal::Sealer;
use ward::session::{SessionManager, SessionSettings};
use ward_store::{Clock, SystemClock};

/// Command line: the configuration file, how many sessions, how many concurrent writers.
struct Args {
    config: PathBuf,
    count: u64,
    tasks: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut config = None;
    let mut count = None;
    let mut tasks = 8;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--count" => count = Some(value()?.parse().context("--count")?),
            "--tasks" => tasks = value()?.parse().context("--tasks")?,
            other => bail!("unknown argument {other}"),
        }
    }
    let (Some(config), Some(count)) = (config, count) else {
        bail!("usage: ward-bench-seed --config <ward.toml> --count <n> [--tasks <k>]");
    };
    if tasks == 0 {
        bail!("--tasks must be at least 1");
    }
    Ok(Args {
        config,
        count,
        tasks,
    })
}

/// A token set shaped like the test IdP's: 43-character opaque tokens, an RS256 ID token of
/// about 900 bytes, and the claims Ward keeps (sub, email, name).
fn fake_tokens(n: u64, now: u64) -> TokenSet {
    let opaque = |tag: &str| format!("{tag}{n:0>41}");
    let mut claims = serde_json::Map::new();
    claims.insert("email".into(), format!("bench{n}@example.test").into());
    claims.insert("email_verified".into(), true.into());
    claims.insert("name".into(), format!("Test bench{n}").into());
    TokenSet {
        access_token: SecretString::new(opaque("at")),
        refresh_token: Some(SecretString::new(opaque("rt"))),
        id_token: SecretString::new(format!(
            "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QtcnMyNTYifQ.{}.{}",
            "x".repeat(420),
            "s".repeat(342)
        )),
        access_expires_at: Some(now + 3600),
        sub: format!("bench{n}"),
        sid: Some(opaque("sid")),
        claims,
        dpop_key: None,
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let config = ward::config::load(&args.config, &env)
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let outbound = ward::outbound::Outbound::load(&config.outbound).context("outbound")?;
        let store = ward::server::open_store(&config, &outbound, clock.clone())
            .await
            .context("store")?;
        let ring = KeyRing::from_config(&config.crypto.keys).context("crypto.keys")?;
        let settings = SessionSettings {
            idle_timeout: config.session.idle_timeout.as_secs(),
            absolute_timeout: config.session.absolute_timeout.as_secs(),
            cookie_name: config.effective_cookie_name(),
            cookie: CookieAttributes {
                secure: config.cookie_secure(),
                same_site: "Strict",
            },
        };
        let manager = Arc::new(SessionManager::new(
            store,
            Sealer::new(ring),
            clock.clone(),
            settings,
        ));
        let started = Instant::now();
        let mut writers = Vec::new();
        for task in 0..args.tasks {
            let manager = manager.clone();
            let clock = clock.clone();
            let mine: Vec<u64> = (0..args.count).filter(|n| n % args.tasks == task).collect();
            writers.push(tokio::spawn(async move {
                for n in mine {
                    manager.create(fake_tokens(n, clock.now())).await?;
                }
                Ok::<(), ward_store::StoreError>(())
            }));
        }
        for writer in writers {
            writer
                .await
                .context("writer task")?
                .context("store write")?;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "seeded {} sessions in {secs:.1} s ({:.0}/s)",
            args.count,
            args.count as f64 / secs.max(1e-9)
        );
        Ok(())
    })
}
