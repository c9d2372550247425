//! The browser's address: the peer address, or the `X-Forwarded-For` entry that the configured
//! number of trusted proxies in front of Ward vouches for.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// With `trusted_hops = n > 0`, the n-th address from the right of `X-Forwarded-For` (each
/// trusted proxy appends the address it saw); otherwise, or when the header is short or
/// malformed, the TCP peer.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_hops: u8) -> IpAddr {
    if trusted_hops == 0 {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    hops.len()
        .checked_sub(usize::from(trusted_hops))
        .and_then(|i| hops.get(i))
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn forwarded_for_is_ignored_without_trusted_hops() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(peer, &headers, 0), peer);
    }

    #[test]
    fn trusted_hop_count_picks_from_the_right() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 203.0.113.9"),
        );
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(client_ip(peer, &headers, 1).to_string(), "203.0.113.9");
        assert_eq!(client_ip(peer, &headers, 2).to_string(), "198.51.100.1");
        assert_eq!(client_ip(peer, &headers, 3), peer);
    }
}
