//! `ward check`: once the configuration has validated, everything Ward needs at run time is
//! tried once, without serving: the outbound trust and proxy (printed), the key ring and route
//! table, the store, the IdP's metadata,
//! the client credentials at the token endpoint ([`credentials`]) and each route's upstream
//! ([`upstreams`]).
//!
//! Each step goes on to the next whatever it found, so one run shows every problem. What
//! works is written to `out` as it is found; a warning (a part that would not work, or could
//! not be verified) to `warnings` at once; a problem (Ward would not work: the store, the IdP,
//! the client credentials) is returned, for the caller to print last and fail on. The
//! effective configuration is printed only when there is no problem.

mod credentials;
pub mod upstreams;

use std::error::Error as StdError;
use std::io::{self, Write};
use std::sync::Arc;

use ward_store::{Clock, SystemClock};

use crate::config::{Config, StoreKind, TelemetryConfig};
use crate::outbound::{ClientIdentity, Outbound};

/// What one run of the checks has found so far.
struct Report<'a> {
    out: &'a mut dyn Write,
    warnings: &'a mut dyn Write,
    problems: Vec<String>,
}

impl Report<'_> {
    fn fine(&mut self, text: impl std::fmt::Display) -> io::Result<()> {
        writeln!(self.out, "{text}")
    }

    fn warn(&mut self, text: impl std::fmt::Display) -> io::Result<()> {
        writeln!(self.warnings, "ward: warning: {text}")
    }

    fn problem(&mut self, area: &str, err: &(dyn StdError + 'static)) {
        self.problems.push(format!("{area}: {}", describe(err)));
    }
}

/// Runs every check on `config` (see the module doc); returns the problems, one line each.
/// `Err` only when `out` or `warnings` cannot be written (a closed pipe: `ward check | head`).
pub async fn run(
    config: &Config,
    out: &mut dyn Write,
    warnings: &mut dyn Write,
) -> io::Result<Vec<String>> {
    let mut report = Report {
        out,
        warnings,
        problems: Vec::new(),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Every later step connects with it; validation has read `ca_file` already.
    let outbound = match Outbound::load(&config.outbound) {
        Ok(outbound) => outbound,
        Err(err) => {
            report.problem("outbound", &err);
            return Ok(report.problems);
        }
    };
    report.fine(format_args!("outbound: {}", outbound.describe()))?;
    let (outbound, identity_usable) = report.client_certificate(config, outbound)?;
    report.keys_and_routes(config, &outbound)?;
    report.store(config, &outbound, Arc::clone(&clock)).await?;
    if identity_usable {
        report.oidc(config, &outbound, clock).await?;
    }
    report.upstreams(config).await?;
    report.telemetry(&config.telemetry)?;
    if report.problems.is_empty() {
        report.fine(format_args!(
            "\n# effective configuration (secrets masked)\n{}",
            config.to_masked_toml()
        ))?;
    }
    Ok(report.problems)
}

impl Report<'_> {
    /// `[oidc] client_cert` / `client_key` (`tls_client_auth`), loaded as `serve` loads them;
    /// `outbound` with it, and whether the IdP can be tried (a bad pair is the problem then).
    fn client_certificate(
        &mut self,
        config: &Config,
        outbound: Outbound,
    ) -> io::Result<(Outbound, bool)> {
        match ClientIdentity::from_config(&config.oidc) {
            Ok(None) => Ok((outbound, true)),
            Ok(Some(identity)) => {
                let info = identity.info();
                self.fine(format_args!(
                    "oidc: client certificate {} (not after {}, x5t#S256 {}), presented to the \
                     IdP and to https upstreams of token-carrying routes",
                    info.subject,
                    info.not_after,
                    identity.thumbprint()
                ))?;
                if info.out_of_validity {
                    self.warn(format_args!(
                        "oidc.client_cert: the certificate is not valid now (not before {}, not \
                         after {}): the IdP will refuse it",
                        info.not_before, info.not_after
                    ))?;
                }
                Ok((outbound.with_client_identity(Some(identity)), true))
            }
            Err(err) => {
                self.problem("oidc", &err);
                Ok((outbound, false))
            }
        }
    }

    fn keys_and_routes(&mut self, config: &Config, outbound: &Outbound) -> io::Result<()> {
        if let Err(err) = crate::session::keyring::KeyRing::from_config(&config.crypto.keys) {
            self.problem("crypto.keys", &err);
        }
        match crate::proxy::Proxy::new(&config.routes, &config.server.public_url, outbound) {
            Ok(_) => self.fine(format_args!("routes: {} valid", config.routes.len()))?,
            Err(err) => self.problem("routes", &err),
        }
        self.tls(config)?;
        self.fine(crate::config::describe_rate_limits(&config.rate_limit))
    }

    /// The certificate and key of `[server] tls_cert` / `tls_key`, loaded as `serve` loads them.
    fn tls(&mut self, config: &Config) -> io::Result<()> {
        match crate::tls::Termination::from_config(&config.server) {
            Ok(None) => Ok(()),
            Ok(Some(tls)) => {
                let info = tls.certificate();
                self.fine(format_args!(
                    "tls: serving {} (not after {}, SHA-256 {})",
                    info.subject, info.not_after, info.fingerprint_sha256
                ))
            }
            Err(err) => {
                self.problem("tls", &err);
                Ok(())
            }
        }
    }

    async fn store(
        &mut self,
        config: &Config,
        outbound: &Outbound,
        clock: Arc<dyn Clock>,
    ) -> io::Result<()> {
        let store = match crate::server::open_store(config, outbound, clock).await {
            Ok(store) => store,
            Err(err) => {
                self.problem("store: cannot open it", &err);
                return Ok(());
            }
        };
        if let Err(err) = store.ping().await {
            self.problem("store: it does not answer", &err);
            return Ok(());
        }
        self.fine(format_args!("store: {} reachable", store.kind()))?;
        if config.store.kind == StoreKind::Cookie {
            self.fine(
                "store: cookie (stateless) — unavailable in this mode: server-side revocation (a \
                 copied cookie stays valid until it expires), back-channel logout, session \
                 administration, and parallel logins of one browser (the later wins)",
            )?;
        }
        Ok(())
    }

    /// The IdP's metadata, then the client credentials at its token endpoint.
    async fn oidc(
        &mut self,
        config: &Config,
        outbound: &Outbound,
        clock: Arc<dyn Clock>,
    ) -> io::Result<()> {
        let client = match crate::server::discover(config, outbound, clock).await {
            Ok(client) => client,
            Err(err) => {
                // Its text begins with `oidc`.
                self.problems.push(describe(&err));
                return Ok(());
            }
        };
        self.fine(format_args!(
            "oidc: provider metadata loaded from {}",
            config.oidc.issuer
        ))?;
        let verdict = client.probe_client_credentials().await;
        match credentials::finding(verdict, &config.oidc) {
            credentials::Finding::Fine(text) => self.fine(text),
            credentials::Finding::Warning(text) => self.warn(text),
            credentials::Finding::Problem(text) => {
                self.problems.push(text);
                Ok(())
            }
        }
    }

    /// Unreachable upstreams are warnings: Ward runs, and only their routes answer 502 until
    /// they come up (often after Ward, in a deployment).
    async fn upstreams(&mut self, config: &Config) -> io::Result<()> {
        if config.routes.is_empty() {
            return Ok(());
        }
        let probes = upstreams::probe(&config.routes).await;
        let mut reachable = 0;
        for probe in &probes {
            match &probe.outcome {
                Ok(_) => reachable += 1,
                Err(why) => self.warn(format_args!(
                    "routes[{}] ({}): upstream {} is unreachable: {why}; requests under {} get \
                     502 until it accepts connections",
                    probe.index, probe.prefix, probe.authority, probe.prefix
                ))?,
            }
        }
        self.fine(format_args!(
            "upstreams: {reachable} of {} reachable (TCP connection within {}s)",
            probes.len(),
            upstreams::UPSTREAM_TIMEOUT.as_secs()
        ))
    }

    fn telemetry(&mut self, telemetry: &TelemetryConfig) -> io::Result<()> {
        match &telemetry.otlp_endpoint {
            Some(endpoint) => self.fine(format_args!(
                "telemetry: traces exported over OTLP/{:?} to {endpoint} as service {:?}, \
                 sampling ratio {}",
                telemetry.otlp_protocol, telemetry.service_name, telemetry.sampling_ratio
            )),
            None => self.fine("telemetry: traces off (no otlp_endpoint)"),
        }
    }
}

/// `err` and its causes as `a: b: c`, each cause once: a message already contained in what
/// precedes it (an error that prints its source and also returns it) is not repeated.
pub fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(current) = cause {
        let message = current.to_string();
        if !message.is_empty() && !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = current.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] io::Error);

    #[test]
    fn a_cause_printed_by_its_parent_is_not_repeated() {
        let err = Outer(Inner(io::Error::other("refused")));
        assert_eq!(describe(&err), "outer: inner: refused");
    }
}
