//! `[server]` TLS checks: the certificate and key come as a pair, the origin the browser sees is
//! `https://` when Ward terminates TLS, and `hsts` is a header value with a `max-age`. The files
//! themselves are read and checked where they are loaded (`crate::tls`), at start.

use super::effective::is_secure_origin;
use super::errors::Problems;
use super::model::ServerConfig;

/// Checks the TLS keys of `[server]`.
pub(crate) fn check_tls(server: &ServerConfig, out: &mut Problems) {
    match (&server.tls_cert, &server.tls_key) {
        (Some(_), None) => out.push(
            "server.tls_key",
            "must be set with server.tls_cert (the certificate's private key, PEM)",
        ),
        (None, Some(_)) => out.push(
            "server.tls_cert",
            "must be set with server.tls_key (the certificate chain, PEM)",
        ),
        // A plain-http origin other than localhost is refused already (validate.rs): one
        // message per cause.
        (Some(_), Some(_))
            if server.public_url.scheme() != "https"
                && !server.insecure_dev
                && is_secure_origin(&server.public_url) =>
        {
            out.push(
                "server.public_url",
                format!(
                    "must be https:// when Ward terminates TLS (server.tls_cert is set): the \
                     browser reaches Ward over TLS; write \"https://{}\" (or server.insecure_dev \
                     = true, for development only)",
                    host_and_port(server)
                ),
            );
        }
        _ => {}
    }
    if let Err(reason) = hsts_shape(&server.hsts) {
        out.push("server.hsts", reason);
    }
}

/// `host[:port]` of `public_url`, for the suggested https origin.
fn host_and_port(server: &ServerConfig) -> String {
    let url = &server.public_url;
    let host = url.host_str().unwrap_or("localhost");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// A `Strict-Transport-Security` value (RFC 6797 §6.1): printable ASCII, directives separated
/// by `;`, exactly one `max-age=<seconds>`.
pub(crate) fn hsts_shape(value: &str) -> Result<(), String> {
    if value.is_empty() || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(format!(
            "{value:?} is not a header value (printable ASCII, e.g. \
             \"max-age=63072000; includeSubDomains\")"
        ));
    }
    let max_ages: Vec<&str> = value
        .split(';')
        .map(str::trim)
        .filter_map(|directive| {
            let (name, seconds) = directive.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then_some(seconds.trim().trim_matches('"'))
        })
        .collect();
    match max_ages.as_slice() {
        [seconds] if !seconds.is_empty() && seconds.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        [_] => Err("max-age must be a number of seconds (0 tells browsers to forget)".into()),
        [] => Err("needs a max-age directive, e.g. \"max-age=63072000; includeSubDomains\"".into()),
        _ => Err("has more than one max-age directive".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::hsts_shape;

    #[test]
    fn hsts_values_need_one_numeric_max_age_in_printable_ascii() {
        for good in [
            "max-age=63072000; includeSubDomains",
            "max-age=0",
            "includeSubDomains; max-age=\"31536000\"; preload",
        ] {
            assert_eq!(hsts_shape(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "includeSubDomains",
            "max-age=",
            "max-age=1y",
            "max-age=1; max-age=2",
            "max-age=1\r\nSet-Cookie: x",
        ] {
            assert!(hsts_shape(bad).is_err(), "{bad:?} accepted");
        }
    }
}
