//! The exposition (Prometheus text format 0.0.4): every family's `# HELP`/`# TYPE`, then its
//! samples, in the order of SPEC §8.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::{METHODS, METRICS, Metrics, RouteSeries, escape, family, process};

/// The exposition of every family; `sessions_active` is the store's count of live sessions
/// (`None`: no sample, e.g. the cookie store, which cannot count).
pub fn render(sessions_active: Option<u64>) -> String {
    let m = &*METRICS;
    let mut out = String::with_capacity(32 * 1024);
    let routes: Vec<&'static RouteSeries> =
        m.routes.read().unwrap_or_else(|p| p.into_inner()).clone();
    route_families(&mut out, &routes);
    outcome_families(&mut out, m, sessions_active);
    store_and_build_families(&mut out, m);
    process::render(&mut out);
    out
}

/// The per-route families: requests, their durations, the upstream durations.
fn route_families(out: &mut String, routes: &[&'static RouteSeries]) {
    family(
        out,
        "ward_http_requests_total",
        "counter",
        "HTTP requests answered on the public listener, by route, method and status.",
    );
    for series in routes {
        let requests = series.requests.read().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<_> = requests.keys().copied().collect();
        keys.sort_unstable();
        for key @ (method, status) in keys {
            let _ = writeln!(
                out,
                "ward_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {}",
                escape(&series.name),
                METHODS[usize::from(method)],
                requests[&key].load(Relaxed)
            );
        }
    }
    family(
        out,
        "ward_http_request_duration_seconds",
        "histogram",
        "Time from a request's head to its response head, by route.",
    );
    for series in routes {
        let labels = format!("route=\"{}\"", escape(&series.name));
        series
            .duration
            .render(out, "ward_http_request_duration_seconds", &labels);
    }
    family(
        out,
        "ward_upstream_request_duration_seconds",
        "histogram",
        "Time from sending a request upstream to its response head, by route.",
    );
    for series in routes {
        let labels = format!("route=\"{}\"", escape(&series.name));
        series
            .upstream
            .render(out, "ward_upstream_request_duration_seconds", &labels);
    }
}

/// IdP calls, logins, refreshes, active sessions.
fn outcome_families(out: &mut String, m: &Metrics, sessions_active: Option<u64>) {
    family(
        out,
        "ward_idp_request_duration_seconds",
        "histogram",
        "Duration of calls to the IdP, by endpoint.",
    );
    m.idp
        .render(out, "ward_idp_request_duration_seconds", "endpoint");
    family(
        out,
        "ward_logins_total",
        "counter",
        "Completed or refused logins, by result.",
    );
    m.logins.render(out, "ward_logins_total", "result");
    family(
        out,
        "ward_refreshes_total",
        "counter",
        "Access token refreshes, by result (success or the failure reason).",
    );
    m.refreshes.render(out, "ward_refreshes_total", "result");
    family(
        out,
        "ward_sessions_active",
        "gauge",
        "Live sessions in the store, every instance's (store-wide: aggregate instances with max, not sum); counted at most every 15 s.",
    );
    if let Some(live) = sessions_active {
        let _ = writeln!(out, "ward_sessions_active {live}");
    }
}

/// The store, the refusals and events, the build.
fn store_and_build_families(out: &mut String, m: &Metrics) {
    family(
        out,
        "ward_store_operation_duration_seconds",
        "histogram",
        "Duration of session store operations, by operation.",
    );
    m.store_duration
        .render(out, "ward_store_operation_duration_seconds", "op");
    family(
        out,
        "ward_store_errors_total",
        "counter",
        "Failed session store operations, by operation.",
    );
    m.store_errors.render(out, "ward_store_errors_total", "op");
    family(
        out,
        "ward_rate_limited_total",
        "counter",
        "Requests refused by a rate limit, by limit.",
    );
    m.rate_limited
        .render(out, "ward_rate_limited_total", "limit");
    family(
        out,
        "ward_csrf_rejections_total",
        "counter",
        "Requests refused as cross-site request forgery, by reason.",
    );
    m.csrf_rejections
        .render(out, "ward_csrf_rejections_total", "reason");
    family(
        out,
        "ward_security_events_total",
        "counter",
        "Security events logged, by catalogue name (docs/security-events.md).",
    );
    m.security_events
        .render(out, "ward_security_events_total", "event");
    family(out, "ward_build_info", "gauge", "Ward's build; always 1.");
    let _ = writeln!(
        out,
        "ward_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}
