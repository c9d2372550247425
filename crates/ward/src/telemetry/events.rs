//! The catalogue of Ward's log events (`docs/security-events.md`) and the layer that counts
//! them.
//!
//! Every `tracing` event Ward writes with an `event = "…"` field is named in [`CATALOGUE`]; a
//! test fails when the code emits a name the catalogue (or its document) lacks, so alerts keyed
//! on these names survive rewording. [`EventCounter`] counts each one in
//! `ward_security_events_total{event}` (a name outside the catalogue as `other`, keeping the
//! label bounded) and derives the outcome families from the same events:
//! `ward_logins_total`, `ward_refreshes_total` and `ward_csrf_rejections_total`
//! (`ward_sessions_active` is the store's own count: [`crate::session::live`]). Counting sits beside the log output, under its own filter, so an
//! event is counted even when `log_level` hides it.

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};

use super::metrics;

/// Every event name Ward emits, sorted.
pub const CATALOGUE: [&str; 79] = [
    "accept_failed",
    "accept_recovered",
    "admin_auth_failed",
    "admin_listening",
    "auth_param_ignored",
    "backchannel_logout",
    "backchannel_logout_rejected",
    "client_token_failed",
    "client_token_fetched",
    "composite_part_failed",
    "connection_closed",
    "connection_error",
    "connection_handoff_failed",
    "connection_limit_reached",
    "cors_refused",
    "csrf_rejected",
    "descriptor_limit",
    "descriptor_limit_low",
    "descriptor_limit_unknown",
    "discovery_failed",
    "dpop_nonce_retry",
    "dpop_not_advertised",
    "insecure_dev",
    "jwks_refetch_skipped",
    "jwks_refresh_failed",
    "jwks_refreshed",
    "listening",
    "login_idp_error",
    "login_par_failed",
    "login_prompt_dropped",
    "login_rejected",
    "login_started",
    "login_succeeded",
    "login_superseded",
    "mtls_configured",
    "not_ready",
    "oidc_discovered",
    "outbound_configured",
    "password_grant_enabled",
    "pkce_s256_not_advertised",
    "proxy_bearer_unsendable",
    "proxy_path_refused",
    "proxy_route_mismatch",
    "rate_limit_unavailable",
    "rate_limited",
    "refresh_failed",
    "refresh_lock_kept",
    "refresh_lock_lost",
    "refresh_lock_renewal_failed",
    "refresh_skipped",
    "refresh_succeeded",
    "request_malformed",
    "request_too_large",
    "resource_token_failed",
    "resource_token_fetched",
    "response_trim_refused",
    "revocation_failed",
    "session_ended",
    "session_resealed",
    "session_revoked",
    "session_unreadable",
    "shutdown",
    "shutdown_incomplete",
    "stopped",
    "store_error",
    "telemetry_flush_failed",
    "tls_certificate_invalid_now",
    "tls_certificate_loaded",
    "tls_handshake_failed",
    "tls_reload_failed",
    "tls_watch_failed",
    "upstream_failed",
    "userinfo_failed",
    "websocket_closed",
    "websocket_failed",
    "websocket_opened",
    "websocket_session_check_failed",
    "websocket_upstream_refused",
    "worker_failed",
];

/// The layer counting catalogued events; install it with [`EventCounter::filter`].
pub struct EventCounter;

impl EventCounter {
    /// Passes only events that carry an `event` field, decided once per call site (so every
    /// other call site costs nothing), at any level down to `debug`, whatever `log_level` is.
    pub fn filter() -> EventsOnly {
        EventsOnly
    }
}

/// The [`Filter`] of [`EventCounter`].
pub struct EventsOnly;

impl EventsOnly {
    fn wanted(metadata: &Metadata<'_>) -> bool {
        metadata.is_event()
            && *metadata.level() <= LevelFilter::DEBUG
            && metadata.fields().field("event").is_some()
    }
}

impl<S> Filter<S> for EventsOnly {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::wanted(metadata)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::wanted(metadata) {
            // Not `always`: each event then passes `enabled`, which is what records this
            // filter's verdict for the event's dispatch beside the log output's own.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }
}

impl<S: Subscriber> Layer<S> for EventCounter {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(name) = fields.event {
            count(name, fields.reason);
        }
    }
}

/// The fields an event's counters depend on; names and reasons are static strings in Ward's
/// code, so they are kept only when recorded as `&'static str` — any other value is not
/// copied.
#[derive(Default)]
struct Fields {
    event: Option<&'static str>,
    reason: Option<&'static str>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        // The visitor sees a borrowed value; look it up in the fixed sets instead of copying.
        match field.name() {
            "event" => self.event = Some(intern(value, &CATALOGUE)),
            "reason" => self.reason = Some(intern_reason(value)),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// `value` as its static copy in `known`, or [`metrics::OTHER`].
fn intern(value: &str, known: &[&'static str]) -> &'static str {
    known
        .iter()
        .find(|k| **k == value)
        .copied()
        .unwrap_or(metrics::OTHER)
}

fn intern_reason(value: &str) -> &'static str {
    let in_refresh = intern(value, &metrics::REFRESH_RESULTS);
    if in_refresh != metrics::OTHER {
        return in_refresh;
    }
    intern(value, &metrics::CSRF_REASONS)
}

/// Counts one event and what it says about logins, refreshes and CSRF.
fn count(event: &str, reason: Option<&str>) {
    metrics::security_event(event);
    let reason = reason.unwrap_or(metrics::OTHER);
    match event {
        "login_succeeded" => metrics::login("success"),
        "login_rejected" => metrics::login("rejected"),
        "login_idp_error" => metrics::login("idp_error"),
        "login_par_failed" => metrics::login("rejected"),
        "refresh_succeeded" => metrics::refresh("success"),
        "refresh_failed" => metrics::refresh(reason),
        "csrf_rejected" => metrics::csrf_rejected(reason),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    /// Every `event = "…"` literal under `dir`.
    fn emitted(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                emitted(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (at, _) in text.match_indices("event = \"") {
                    let rest = &text[at + "event = \"".len()..];
                    let name = &rest[..rest.find('"').unwrap()];
                    found.insert(name.to_owned());
                }
            }
        }
    }

    #[test]
    fn every_event_the_code_emits_is_in_the_catalogue_and_its_document() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found = BTreeSet::new();
        emitted(&root.join("src"), &mut found);
        // This file's own test strings are not events.
        found.remove("…");
        let doc = std::fs::read_to_string(root.join("../../docs/security-events.md")).unwrap();
        let missing: Vec<_> = found
            .iter()
            .filter(|name| !CATALOGUE.contains(&name.as_str()))
            .collect();
        assert!(missing.is_empty(), "not in CATALOGUE: {missing:?}");
        let undocumented: Vec<_> = CATALOGUE
            .iter()
            .filter(|name| !doc.contains(&format!("`{name}`")))
            .collect();
        assert!(
            undocumented.is_empty(),
            "not in docs/security-events.md: {undocumented:?}"
        );
    }

    #[test]
    fn the_catalogue_is_sorted_and_without_duplicates() {
        assert!(CATALOGUE.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn events_are_counted_even_when_the_log_level_hides_them() {
        let config = crate::config::TelemetryConfig {
            log_level: "error".to_owned(),
            ..Default::default()
        };
        let outbound = crate::outbound::Outbound::load(&Default::default()).unwrap();
        super::super::init(&config, &outbound, std::io::sink).unwrap();
        tracing::info!(event = "login_started");
        tracing::info!(event = "login_succeeded", session = "abc");
        tracing::warn!(event = "csrf_rejected", reason = "token", session = "abc");
        tracing::info!(event = "session_ended", reason = "logout", session = "abc");
        tracing::warn!(event = concat!("not_in_", "the_catalogue"));
        let text = metrics::render(None);
        for sample in [
            "ward_security_events_total{event=\"login_started\"} 1\n",
            "ward_security_events_total{event=\"other\"} 1\n",
            "ward_logins_total{result=\"success\"} 1\n",
            "ward_csrf_rejections_total{reason=\"token\"} 1\n",
        ] {
            assert!(text.contains(sample), "no {sample:?}");
        }
    }
}
