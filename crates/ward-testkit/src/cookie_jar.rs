//! A deliberately small cookie jar, closer to what a browser does on loopback than reqwest's.
//!
//! Browsers accept `Secure` and `__Host-` cookies from `http://localhost` / `127.0.0.1`
//! (loopback counts as a secure context), so the jar ignores `Secure`. Cookies are scoped to the
//! host without the port, as in browsers: the IdP and Ward on two ports of `127.0.0.1` share one
//! cookie space. `Domain` is ignored (every cookie is host-only), and so is `SameSite`: a test that
//! needs SameSite behaviour asserts the `Set-Cookie` attributes instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use url::Url;

/// One stored cookie. Identity is (host, path, name), as in RFC 6265.
#[derive(Clone)]
struct StoredCookie {
    host: String,
    name: String,
    value: String,
    path: String,
    /// `None`: a session cookie, kept until removed.
    expires: Option<SystemTime>,
}

impl StoredCookie {
    fn is_expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }
}

/// The jar: Set-Cookie in, Cookie header out.
#[derive(Default, Clone)]
pub(crate) struct CookieJar {
    cookies: Vec<StoredCookie>,
}

impl CookieJar {
    /// Applies one `Set-Cookie` header value received in answer to `url`. Malformed headers are
    /// ignored, as a browser would.
    pub(crate) fn store(&mut self, url: &Url, set_cookie: &str) {
        self.store_at(url, set_cookie, SystemTime::now());
    }

    fn store_at(&mut self, url: &Url, set_cookie: &str, now: SystemTime) {
        let Some(host) = url.host_str() else { return };
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let name = name.trim();
        if name.is_empty() {
            return;
        }
        let mut path = None;
        let mut max_age: Option<i64> = None;
        let mut expires = None;
        for attr in parts {
            let (key, val) = attr.split_once('=').unwrap_or((attr, ""));
            let (key, val) = (key.trim(), val.trim());
            if key.eq_ignore_ascii_case("path") && val.starts_with('/') {
                path = Some(val.to_owned());
            } else if key.eq_ignore_ascii_case("max-age") {
                max_age = val.parse().ok();
            } else if key.eq_ignore_ascii_case("expires") {
                expires = parse_http_date(val);
            }
        }
        // Max-Age wins over Expires (RFC 6265 §5.3 step 3).
        let expires = match max_age {
            Some(secs) if secs <= 0 => Some(UNIX_EPOCH),
            Some(secs) => Some(now + Duration::from_secs(secs.unsigned_abs())),
            None => expires,
        };
        let cookie = StoredCookie {
            host: host.to_owned(),
            name: name.to_owned(),
            value: value.trim().to_owned(),
            path: path.unwrap_or_else(|| default_path(url)),
            expires,
        };
        self.cookies
            .retain(|c| !(c.host == cookie.host && c.name == cookie.name && c.path == cookie.path));
        if !cookie.is_expired(now) {
            self.cookies.push(cookie);
        }
    }

    /// The `Cookie` header a browser would send to `url`, or `None` when no cookie matches.
    /// Longer paths come first, as RFC 6265 §5.4 asks.
    pub(crate) fn header_for(&self, url: &Url) -> Option<String> {
        let now = SystemTime::now();
        let host = url.host_str()?;
        let mut matching: Vec<&StoredCookie> = self
            .cookies
            .iter()
            .filter(|c| c.host == host && !c.is_expired(now) && path_matches(&c.path, url.path()))
            .collect();
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        if matching.is_empty() {
            return None;
        }
        let pairs: Vec<String> = matching
            .iter()
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        Some(pairs.join("; "))
    }

    /// The value of the first live cookie called `name` for `host`, whatever its path.
    pub(crate) fn get(&self, host: &str, name: &str) -> Option<String> {
        let now = SystemTime::now();
        self.cookies
            .iter()
            .find(|c| c.host == host && c.name == name && !c.is_expired(now))
            .map(|c| c.value.clone())
    }

    /// Sets (or replaces) a session cookie with `Path=/`, as if `host` had sent it.
    pub(crate) fn set(&mut self, host: &str, name: &str, value: &str) {
        self.cookies
            .retain(|c| !(c.host == host && c.name == name && c.path == "/"));
        self.cookies.push(StoredCookie {
            host: host.to_owned(),
            name: name.to_owned(),
            value: value.to_owned(),
            path: "/".to_owned(),
            expires: None,
        });
    }

    /// Removes every cookie called `name` for `host`, on any path.
    pub(crate) fn remove(&mut self, host: &str, name: &str) {
        self.cookies.retain(|c| !(c.host == host && c.name == name));
    }
}

/// RFC 6265 §5.1.4 path-match.
fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// RFC 6265 §5.1.4 default-path: the request path up to, not including, its last `/`.
fn default_path(url: &Url) -> String {
    match url.path().rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => url.path()[..i].to_owned(),
    }
}

/// Parses the IMF-fixdate form `Thu, 01 Jan 1970 00:00:00 GMT` (and the `01-Jan-1970` variant
/// older servers send). Anything else yields `None`: the cookie is then kept for the session.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s
        .split_once(',')
        .map_or(s, |(_, rest)| rest)
        .replace('-', " ");
    let mut it = s.split_whitespace();
    let day: u64 = it.next()?.parse().ok()?;
    let month = match it.next()?.to_ascii_lowercase().as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let mut year: i64 = it.next()?.parse().ok()?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::try_from(day).ok()? - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::try_from(h * 3600 + m * 60 + sec).ok()?;
    Some(match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL parses")
    }

    #[test]
    fn cookie_is_sent_only_under_its_path() {
        let mut jar = CookieJar::default();
        jar.store(
            &url("http://127.0.0.1:4000/interaction/abc"),
            "_interaction=abc; path=/interaction/abc; httponly",
        );
        assert_eq!(
            jar.header_for(&url("http://127.0.0.1:4000/interaction/abc")),
            Some("_interaction=abc".to_owned())
        );
        assert_eq!(
            jar.header_for(&url("http://127.0.0.1:4000/interaction/abc/abort")),
            Some("_interaction=abc".to_owned())
        );
        assert_eq!(
            jar.header_for(&url("http://127.0.0.1:4000/interaction/abcdef")),
            None
        );
        assert_eq!(jar.header_for(&url("http://127.0.0.1:4000/")), None);
    }

    #[test]
    fn cookies_are_scoped_by_host_not_port() {
        let mut jar = CookieJar::default();
        jar.store(&url("http://127.0.0.1:4000/"), "a=1; Path=/");
        assert_eq!(
            jar.header_for(&url("http://127.0.0.1:9999/x")),
            Some("a=1".to_owned())
        );
        assert_eq!(jar.header_for(&url("http://localhost:4000/x")), None);
    }

    #[test]
    fn secure_host_prefixed_cookie_is_kept_on_plain_http_loopback() {
        let mut jar = CookieJar::default();
        jar.store(
            &url("http://localhost:8080/bff/callback"),
            "__Host-ward=v1.abc; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=28800",
        );
        assert_eq!(
            jar.get("localhost", "__Host-ward"),
            Some("v1.abc".to_owned())
        );
        assert_eq!(
            jar.header_for(&url("http://localhost:8080/api/x")),
            Some("__Host-ward=v1.abc".to_owned())
        );
    }

    #[test]
    fn max_age_zero_deletes_the_cookie() {
        let mut jar = CookieJar::default();
        let u = url("http://localhost:8080/");
        jar.store(&u, "s=1; Path=/");
        jar.store(&u, "s=; Path=/; Max-Age=0");
        assert_eq!(jar.get("localhost", "s"), None);
        assert_eq!(jar.header_for(&u), None);
    }

    #[test]
    fn expires_in_the_past_deletes_the_cookie() {
        let mut jar = CookieJar::default();
        let u = url("http://localhost:8080/");
        jar.store(&u, "s=1; Path=/");
        jar.store(&u, "s=gone; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(jar.get("localhost", "s"), None);
    }

    #[test]
    fn deletion_on_another_path_leaves_the_cookie() {
        let mut jar = CookieJar::default();
        let u = url("http://localhost:8080/");
        jar.store(&u, "s=1; Path=/");
        jar.store(&u, "s=; Path=/other; Max-Age=0");
        assert_eq!(jar.get("localhost", "s"), Some("1".to_owned()));
    }

    #[test]
    fn positive_max_age_overrides_a_past_expires() {
        let mut jar = CookieJar::default();
        let u = url("http://localhost/");
        jar.store(&u, "s=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60");
        assert_eq!(jar.get("localhost", "s"), Some("1".to_owned()));
    }

    #[test]
    fn max_age_counts_from_when_the_cookie_was_stored() {
        let mut jar = CookieJar::default();
        let u = url("http://localhost/");
        jar.store_at(&u, "s=1; Max-Age=10", UNIX_EPOCH);
        assert_eq!(jar.get("localhost", "s"), None, "expired long ago");
    }

    #[test]
    fn default_path_is_the_directory_of_the_request() {
        let mut jar = CookieJar::default();
        jar.store(&url("http://h/a/b/c"), "x=1");
        assert_eq!(
            jar.header_for(&url("http://h/a/b/d")),
            Some("x=1".to_owned())
        );
        assert_eq!(jar.header_for(&url("http://h/a/c")), None);
        jar.store(&url("http://h/top"), "y=2");
        assert_eq!(jar.header_for(&url("http://h/")), Some("y=2".to_owned()));
    }

    #[test]
    fn longer_paths_come_first_and_set_replaces() {
        let mut jar = CookieJar::default();
        jar.store(&url("http://h/"), "a=1; Path=/");
        jar.store(&url("http://h/"), "b=2; Path=/deep");
        jar.store(&url("http://h/"), "a=3; Path=/");
        assert_eq!(
            jar.header_for(&url("http://h/deep/x")),
            Some("b=2; a=3".to_owned())
        );
        jar.set("h", "b", "manual");
        jar.remove("h", "a");
        assert_eq!(
            jar.header_for(&url("http://h/deep/x")),
            Some("b=2; b=manual".to_owned())
        );
    }

    #[test]
    fn malformed_set_cookie_is_ignored() {
        let mut jar = CookieJar::default();
        jar.store(&url("http://h/"), "no-equals-sign");
        jar.store(&url("http://h/"), "=value-without-name");
        assert_eq!(jar.header_for(&url("http://h/")), None);
    }

    #[test]
    fn http_dates_parse_to_unix_time() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("parses");
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(784_111_777));
        let t = parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").expect("parses");
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(parse_http_date("tomorrow"), None);
    }
}
