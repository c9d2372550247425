//! URL-valued keys (`server.public_url`, `oidc.issuer`, `routes[].upstream`,
//! `telemetry.otlp_endpoint`). A value that is not an absolute URL with a host — most often a
//! host written without its scheme (`idp.example.com`, `localhost:4000`) — gets one message
//! with an example of the key's own kind instead of the URL library's wording ("relative URL
//! without a base"), and never quotes the value (it may carry credentials). The scheme and the
//! rest of the shape are checked in `validate`, which has the whole section at hand.

use serde::{Deserialize, Deserializer};
use url::{ParseError, Url};

/// `value` as an absolute URL with a host, or the message for a key whose example is
/// `example`.
pub(crate) fn parse(value: &str, example: &str) -> Result<Url, String> {
    let detail = match Url::parse(value) {
        Ok(url) if url.has_host() => return Ok(url),
        Ok(_) | Err(ParseError::RelativeUrlWithoutBase) => "",
        Err(ParseError::EmptyHost) => " (the host is missing)",
        Err(ParseError::InvalidPort) => " (the port is not a number from 0 to 65535)",
        Err(ParseError::InvalidIpv4Address | ParseError::InvalidIpv6Address) => {
            " (the IP address is malformed)"
        }
        Err(_) => " (the host name has characters a host name cannot have)",
    };
    Err(format!(
        "must be an absolute http(s) URL, e.g. {example}{detail}"
    ))
}

fn with_example<'de, D: Deserializer<'de>>(
    deserializer: D,
    example: &str,
) -> Result<Url, D::Error> {
    let value = String::deserialize(deserializer)?;
    parse(&value, example).map_err(serde::de::Error::custom)
}

/// `server.public_url`.
pub(crate) fn public_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Url, D::Error> {
    with_example(deserializer, "https://app.example.com")
}

/// `oidc.issuer`.
pub(crate) fn issuer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Url, D::Error> {
    with_example(deserializer, "https://idp.example.com")
}

/// `routes[].upstream`.
pub(crate) fn upstream<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Url, D::Error> {
    with_example(deserializer, "http://orders.internal:8080")
}

/// `telemetry.otlp_endpoint` (present: the key is optional).
pub(crate) fn otlp_endpoint<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Url>, D::Error> {
    with_example(deserializer, "http://127.0.0.1:4317").map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "https://idp.example.com";

    #[test]
    fn an_absolute_url_with_a_host_is_taken() {
        let url = parse("https://idp.example.com/realms/x", EXAMPLE).unwrap();
        assert_eq!(url.as_str(), "https://idp.example.com/realms/x");
        assert!(parse("http://127.0.0.1:4000", EXAMPLE).is_ok());
    }

    #[test]
    fn a_host_without_a_scheme_gets_the_example() {
        for value in [
            "idp.example.com",
            "localhost:4000",
            "127.0.0.1:4000",
            "/realms/x",
            "",
        ] {
            assert_eq!(
                parse(value, EXAMPLE).unwrap_err(),
                "must be an absolute http(s) URL, e.g. https://idp.example.com",
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_broken_url_says_which_part_is_broken_without_quoting_it() {
        let message = parse("https://user:pw@idp.example.com:99999", EXAMPLE).unwrap_err();
        assert!(message.ends_with("(the port is not a number from 0 to 65535)"));
        assert!(!message.contains("pw"));
        assert!(
            parse("https://", EXAMPLE)
                .unwrap_err()
                .contains("host is missing")
        );
    }
}
