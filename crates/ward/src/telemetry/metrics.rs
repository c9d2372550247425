//! Prometheus metrics (SPEC §8), served by the admin listener's `GET /metrics`.
//!
//! Every family is a fixed field of one process-wide [`Metrics`], so each is exposed with its
//! `# HELP`/`# TYPE` from start, and every label value is one of a bounded set known when the
//! series is made: a route is its configured prefix (or a `/bff/…` endpoint, `static`,
//! `not_found`), never a raw path; a method is one of [`METHODS`]; other names fall back to
//! `other`. Hot-path updates are relaxed atomic adds on handles resolved before the request
//! (a route's [`RouteSeries`] lives on its compiled route); the one lookup per request is the
//! `(method, status)` counter of its route, under a read lock that is written only the first
//! time a pair is seen.
//!
//! Why no metrics crate: `prometheus-client` writes only OpenMetrics (counter families without
//! `_total`, an `info` type), which the Prometheus text parser behind `promtool check metrics`
//! (Debian's 2.42) refuses; the `prometheus` crate drops families that have no sample yet; and
//! `metrics-exporter-prometheus` renders only metrics that have been touched and buffers raw
//! histogram samples between scrapes. The text format 0.0.4 of a fixed set of atomics is a
//! few lines, so Ward writes it itself and depends on nothing more.

mod exposition;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{LazyLock, RwLock};
use std::time::{Duration, Instant};

use axum::http::Method;

use super::process;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of every latency histogram: Ward answers from memory in well under a
/// millisecond, a store or IdP call takes milliseconds, a slow upstream seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `method` label's values; anything else is `OTHER` (methods are client-chosen strings).
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

/// `route` values of Ward's own endpoints.
pub const ENDPOINT_ROUTES: [&str; 7] = [
    "/bff/user",
    "/bff/login",
    "/bff/login/password",
    "/bff/callback",
    "/bff/logout",
    "/bff/client.js",
    "/bff/backchannel-logout",
];
/// `route` of requests the static site answers.
pub const STATIC_ROUTE: &str = "static";
/// `route` of requests nothing answers (unknown `/bff/*` endpoints, paths outside every route).
pub const NOT_FOUND_ROUTE: &str = "not_found";
/// `route` of requests the head checks refuse before routing (414, 431, a bad `Host`).
pub const REFUSED_ROUTE: &str = "refused";

/// `endpoint` values of `ward_idp_request_duration_seconds`.
pub const IDP_ENDPOINTS: [&str; 8] = [
    "discovery",
    "jwks",
    "token",
    "refresh",
    "userinfo",
    "revocation",
    "client_credentials",
    "par",
];
/// `op` values of the store families: the methods of `ward_store::SessionStore` and its
/// capabilities.
pub const STORE_OPS: [&str; 15] = [
    "put",
    "put_new",
    "replace",
    "replace_if",
    "get",
    "get_current",
    "get_expiring",
    "take",
    "delete",
    "delete_if",
    "ping",
    "keys_by_index",
    "list_by_index",
    "sweep_expired",
    "count_live",
];
/// `limit` values of `ward_rate_limited_total` (`[rate_limit]`'s budgets).
pub const RATE_LIMITS: [&str; 4] = ["login", "api", "anonymous", "invalid_session"];
/// `result` values of `ward_logins_total`: `login_succeeded`, `login_rejected`,
/// `login_idp_error` events.
pub const LOGIN_RESULTS: [&str; 3] = ["success", "rejected", "idp_error"];
/// `result` values of `ward_refreshes_total`: `success`, else the `reason` of `refresh_failed`.
pub const REFRESH_RESULTS: [&str; 8] = [
    "success",
    "invalid_grant",
    "invalid_id_token",
    "idp_unavailable",
    "idp_error",
    "backoff",
    "lock_timeout",
    "timeout",
];
/// `reason` values of `ward_csrf_rejections_total` (the `reason` of `csrf_rejected`).
pub const CSRF_REASONS: [&str; 4] = ["cross_site", "cross_site_api", "websocket_origin", "token"];
/// The label value of a name outside a family's fixed set.
pub const OTHER: &str = "other";

/// A latency histogram over [`BUCKETS`]: one atomic per bucket (not cumulative; summed when
/// rendered, so `+Inf` always equals the count) and the sum in nanoseconds.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// A timer observing into this histogram when dropped.
    pub fn start(&'static self) -> Timer {
        Timer {
            histogram: self,
            started: Instant::now(),
        }
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            cumulative += count.load(Relaxed);
            let le = BUCKETS.get(i).map_or("+Inf".to_owned(), f64::to_string);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}",
                sep = if labels.is_empty() { "" } else { "," }
            );
        }
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let braces = |labels: &str| {
            if labels.is_empty() {
                String::new()
            } else {
                format!("{{{labels}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// Observes the time since it was made into its histogram when dropped (every exit of the
/// timed call, errors and cancellation included).
#[must_use = "the timer observes when dropped"]
pub struct Timer {
    histogram: &'static Histogram,
    started: Instant,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed());
    }
}

/// Counters over a fixed set of label values, the last one [`OTHER`].
struct Counters {
    values: &'static [&'static str],
    counts: Box<[AtomicU64]>,
}

impl Counters {
    fn new(values: &'static [&'static str]) -> Self {
        Self {
            values,
            counts: (0..=values.len()).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot(&self, value: &str) -> &AtomicU64 {
        let index = self
            .values
            .iter()
            .position(|v| *v == value)
            .unwrap_or(self.values.len());
        &self.counts[index]
    }

    fn inc(&self, value: &str) {
        self.slot(value).fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, label: &str) {
        let names = self.values.iter().copied().chain([OTHER]);
        for (value, count) in names.zip(self.counts.iter()) {
            let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {}", count.load(Relaxed));
        }
    }
}

/// Histograms over a fixed set of label values (no `other`: the callers name them).
struct Histograms {
    values: &'static [&'static str],
    histograms: Box<[Histogram]>,
}

impl Histograms {
    fn new(values: &'static [&'static str]) -> Self {
        Self {
            values,
            histograms: values.iter().map(|_| Histogram::new()).collect(),
        }
    }

    fn get(&self, value: &str) -> Option<&Histogram> {
        let index = self.values.iter().position(|v| *v == value)?;
        Some(&self.histograms[index])
    }

    fn render(&self, out: &mut String, name: &str, label: &str) {
        for (value, histogram) in self.values.iter().zip(self.histograms.iter()) {
            histogram.render(out, name, &format!("{label}=\"{value}\""));
        }
    }
}

/// The series of one `route` label value: request counts by method and status, request and
/// upstream latency. Made once per route name and never freed (route names come from the
/// configuration: a bounded set), so requests hold a plain `&'static` to it.
pub struct RouteSeries {
    name: Box<str>,
    requests: RwLock<HashMap<(u8, u16), AtomicU64>>,
    duration: Histogram,
    upstream: Histogram,
}

impl std::fmt::Debug for RouteSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RouteSeries").field(&self.name).finish()
    }
}

impl RouteSeries {
    /// The `route` label value.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts one answered request and its latency.
    pub fn record(&self, method: &Method, status: u16, elapsed: Duration) {
        self.duration.observe(elapsed);
        let key = (method_index(method), status);
        let requests = self.requests.read().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = requests.get(&key) {
            count.fetch_add(1, Relaxed);
            return;
        }
        drop(requests);
        // First request with this method and status on this route.
        self.requests
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .fetch_add(1, Relaxed);
    }

    /// Times one upstream exchange (until its response head).
    pub fn upstream_timer(&'static self) -> Timer {
        self.upstream.start()
    }
}

fn method_index(method: &Method) -> u8 {
    let index = match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    };
    index as u8
}

/// Every family Ward exposes.
struct Metrics {
    routes: RwLock<Vec<&'static RouteSeries>>,
    idp: Histograms,
    logins: Counters,
    refreshes: Counters,
    store_duration: Histograms,
    store_errors: Counters,
    rate_limited: Counters,
    csrf_rejections: Counters,
    security_events: Counters,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let metrics = Metrics {
        routes: RwLock::new(Vec::new()),
        idp: Histograms::new(&IDP_ENDPOINTS),
        logins: Counters::new(&LOGIN_RESULTS),
        refreshes: Counters::new(&REFRESH_RESULTS),
        store_duration: Histograms::new(&STORE_OPS),
        store_errors: Counters::new(&STORE_OPS),
        rate_limited: Counters::new(&RATE_LIMITS),
        csrf_rejections: Counters::new(&CSRF_REASONS),
        security_events: Counters::new(&super::events::CATALOGUE),
    };
    for name in ENDPOINT_ROUTES
        .iter()
        .chain(&[STATIC_ROUTE, NOT_FOUND_ROUTE, REFUSED_ROUTE])
    {
        make_route(&metrics, name);
    }
    metrics
});

/// The series of `route` (a configured prefix, an endpoint, `static`, `not_found`), made on
/// first use. Call it when routes are compiled, never per request.
pub fn route(name: &str) -> &'static RouteSeries {
    make_route(&METRICS, name)
}

fn make_route(metrics: &Metrics, name: &str) -> &'static RouteSeries {
    let mut routes = metrics.routes.write().unwrap_or_else(|p| p.into_inner());
    if let Some(series) = routes.iter().find(|s| &*s.name == name) {
        return series;
    }
    // Leaked on purpose: one per route name for the life of the process (bounded by the
    // configuration), so the request path holds a reference without counting it.
    let series: &'static RouteSeries = Box::leak(Box::new(RouteSeries {
        name: name.into(),
        requests: RwLock::new(HashMap::new()),
        duration: Histogram::new(),
        upstream: Histogram::new(),
    }));
    routes.push(series);
    series
}

/// The series of Ward's own routes ([`ENDPOINT_ROUTES`], then static, not found, refused),
/// resolved once so classifying a request takes no lock.
static FIXED_ROUTES: LazyLock<Vec<&'static RouteSeries>> = LazyLock::new(|| {
    ENDPOINT_ROUTES
        .iter()
        .chain(&[STATIC_ROUTE, NOT_FOUND_ROUTE, REFUSED_ROUTE])
        .map(|name| route(name))
        .collect()
});

/// The series of the `/bff/…` endpoint at `path`, if it is one.
pub fn endpoint_route(path: &str) -> Option<&'static RouteSeries> {
    let index = ENDPOINT_ROUTES.iter().position(|e| *e == path)?;
    Some(FIXED_ROUTES[index])
}

/// The series of requests the static site answers.
pub fn static_route() -> &'static RouteSeries {
    FIXED_ROUTES[ENDPOINT_ROUTES.len()]
}

/// The series of requests nothing answers.
pub fn not_found_route() -> &'static RouteSeries {
    FIXED_ROUTES[ENDPOINT_ROUTES.len() + 1]
}

/// The series of requests the head checks refuse.
pub fn refused_route() -> &'static RouteSeries {
    FIXED_ROUTES[ENDPOINT_ROUTES.len() + 2]
}

/// A timer for one call to the IdP's `endpoint` (one of [`IDP_ENDPOINTS`]).
pub fn idp_timer(endpoint: &'static str) -> Option<Timer> {
    METRICS.idp.get(endpoint).map(Histogram::start)
}

/// A timer for one store operation `op` (one of [`STORE_OPS`]).
pub fn store_timer(op: &'static str) -> Option<Timer> {
    METRICS.store_duration.get(op).map(Histogram::start)
}

/// Counts a failed store operation `op`.
pub fn store_error(op: &'static str) {
    METRICS.store_errors.inc(op);
}

/// Counts a request refused by the rate limit `limit` (one of [`RATE_LIMITS`]).
pub fn rate_limited(limit: &'static str) {
    METRICS.rate_limited.inc(limit);
}

/// Counts a login's outcome (one of [`LOGIN_RESULTS`]).
pub(crate) fn login(result: &str) {
    METRICS.logins.inc(result);
}

/// Counts a refresh's outcome (one of [`REFRESH_RESULTS`]).
pub(crate) fn refresh(result: &str) {
    METRICS.refreshes.inc(result);
}

/// Counts a CSRF rejection by its reason (one of [`CSRF_REASONS`]).
pub(crate) fn csrf_rejected(reason: &str) {
    METRICS.csrf_rejections.inc(reason);
}

/// Counts a catalogued security event (anything else as `other`).
pub(crate) fn security_event(event: &str) {
    METRICS.security_events.inc(event);
}

pub use exposition::render;

/// Writes a family's `# HELP` and `# TYPE` lines.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped for the text format (`\`, `"`, newline).
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The families SPEC §8 names.
    const SPEC_FAMILIES: [&str; 18] = [
        "ward_http_requests_total",
        "ward_http_request_duration_seconds",
        "ward_upstream_request_duration_seconds",
        "ward_idp_request_duration_seconds",
        "ward_logins_total",
        "ward_refreshes_total",
        "ward_sessions_active",
        "ward_store_operation_duration_seconds",
        "ward_store_errors_total",
        "ward_rate_limited_total",
        "ward_csrf_rejections_total",
        "ward_security_events_total",
        "ward_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ];

    #[test]
    fn every_spec_family_is_exposed_before_any_traffic() {
        let text = render(None);
        for name in SPEC_FAMILIES {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no TYPE for {name}"
            );
        }
        for limit in RATE_LIMITS {
            assert!(text.contains(&format!("ward_rate_limited_total{{limit=\"{limit}\"}} ")));
        }
    }

    #[test]
    fn a_histogram_counts_into_cumulative_buckets_and_inf_equals_the_count() {
        static H: Histogram = Histogram::new();
        H.observe(Duration::from_micros(300));
        H.observe(Duration::from_millis(3));
        H.observe(Duration::from_secs(60));
        let mut out = String::new();
        H.render(&mut out, "h", "route=\"r\"");
        assert!(
            out.contains("h_bucket{route=\"r\",le=\"0.0005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("h_bucket{route=\"r\",le=\"0.005\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("h_bucket{route=\"r\",le=\"10\"} 2\n"), "{out}");
        assert!(
            out.contains("h_bucket{route=\"r\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("h_count{route=\"r\"} 3\n"), "{out}");
    }

    #[test]
    fn unknown_methods_and_names_fall_into_bounded_labels() {
        let series = route("/metrics-test");
        let method = Method::from_bytes(b"BREW").unwrap();
        series.record(&method, 418, Duration::from_millis(1));
        rate_limited("not-a-limit");
        let text = render(None);
        assert!(text.contains(
            "ward_http_requests_total{route=\"/metrics-test\",method=\"OTHER\",status=\"418\"} 1"
        ));
        assert!(text.contains("ward_rate_limited_total{limit=\"other\"} 1"));
        assert!(!text.contains("BREW") && !text.contains("not-a-limit"));
    }

    #[test]
    fn the_live_sessions_are_a_sample_only_when_counted() {
        assert!(render(Some(7)).contains("\nward_sessions_active 7\n"));
        let uncounted = render(None);
        assert!(uncounted.contains("# TYPE ward_sessions_active gauge\n"));
        assert!(!uncounted.contains("\nward_sessions_active "));
    }

    #[test]
    fn a_route_series_is_made_once_per_name() {
        assert!(std::ptr::eq(route("/same"), route("/same")));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("/a\"b\\c"), "/a\\\"b\\\\c");
    }
}
