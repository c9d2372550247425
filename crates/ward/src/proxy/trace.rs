//! W3C Trace Context towards the upstream when Ward exports no traces: a well-formed browser
//! `traceparent` is kept as the parent, anything else is replaced by a fresh one, so every
//! upstream request is traceable and no malformed value reaches an upstream's parser. With OTLP
//! on, the server span has already replaced the browser's value by Ward's (the browser's is a
//! link, never a parent: `telemetry::spans`), and the upstream span sets its own ([`set`]).

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::random;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Keeps one well-formed version-00 `traceparent` (and its `tracestate`); otherwise starts a
/// new trace, dropping any `tracestate` that belonged to the discarded parent.
pub(crate) fn keep_or_start(headers: &mut HeaderMap) {
    let incoming = headers.get_all(TRACEPARENT);
    let mut values = incoming.iter();
    let valid = matches!(
        (values.next(), values.next()),
        (Some(v), None) if is_valid_traceparent(v.as_bytes())
    );
    if valid {
        return;
    }
    headers.remove(TRACESTATE);
    headers.insert(TRACEPARENT, new_traceparent());
}

/// Sets `traceparent` to Ward's own value, dropping any `tracestate` of another parent.
pub(crate) fn set(headers: &mut HeaderMap, traceparent: HeaderValue) {
    headers.remove(TRACESTATE);
    headers.insert(TRACEPARENT, traceparent);
}

/// W3C Trace Context version 00: `00-<32 hex>-<16 hex>-<2 hex>`, lower-case, ids not all zero.
/// Hex digits are never `-`, so the parts sit at fixed places in exactly 55 bytes.
pub(crate) fn is_valid_traceparent(value: &[u8]) -> bool {
    let Ok(value) = <&[u8; 55]>::try_from(value) else {
        return false;
    };
    let lower_hex = |s: &[u8]| s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let not_zero = |s: &[u8]| s.iter().any(|b| *b != b'0');
    let (trace, span, flags) = (&value[3..35], &value[36..52], &value[53..]);
    value.starts_with(b"00-")
        && value[35] == b'-'
        && value[52] == b'-'
        && lower_hex(trace)
        && lower_hex(span)
        && lower_hex(flags)
        && not_zero(trace)
        && not_zero(span)
}

/// A fresh sampled `traceparent`, so upstreams with parent-based sampling record the request.
///
/// Trace ids are not secrets (they travel in clear to every upstream), but the access log
/// correlates by them, so they must not repeat: they come from a per-thread generator seeded
/// from the OS CSPRNG (see [`fast_random`]), not from a call into the CSPRNG per request.
fn new_traceparent() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let (trace_hi, trace_lo, span) = loop {
        let ids = (fast_random(), fast_random(), fast_random());
        // All-zero ids are invalid (W3C Trace Context); astronomically unlikely, but cheap.
        if (ids.0 | ids.1) != 0 && ids.2 != 0 {
            break ids;
        }
    };
    let mut put = |at: usize, value: u64| {
        for (i, byte) in value.to_be_bytes().into_iter().enumerate() {
            out[at + 2 * i] = HEX[usize::from(byte >> 4)];
            out[at + 2 * i + 1] = HEX[usize::from(byte & 0x0f)];
        }
    };
    put(3, trace_hi);
    put(19, trace_lo);
    put(36, span);
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(FALLBACK))
}

/// Unreachable in practice (the value is always lower-case hex); keeps the code panic-free.
const FALLBACK: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

thread_local! {
    /// wyrand state, seeded once per thread from the OS CSPRNG.
    static STATE: std::cell::Cell<u64> =
        std::cell::Cell::new(u64::from_ne_bytes(random::bytes::<8>()));
}

/// 64 bits from a per-thread wyrand generator: a full-period (2^64) sequence per thread from an
/// independent random seed, so ids neither repeat within a thread nor collide across threads
/// beyond chance. Not for secrets.
fn fast_random() -> u64 {
    STATE.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn sent(headers: &HeaderMap) -> Vec<&str> {
        headers
            .get_all(TRACEPARENT)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    #[test]
    fn a_valid_traceparent_and_its_tracestate_pass_through() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(PARENT));
        headers.insert(TRACESTATE, HeaderValue::from_static("v=1"));
        keep_or_start(&mut headers);
        assert_eq!(sent(&headers), [PARENT]);
        assert_eq!(
            headers.get(TRACESTATE).map(HeaderValue::as_bytes),
            Some(&b"v=1"[..])
        );
    }

    #[test]
    fn an_invalid_traceparent_is_replaced_and_its_tracestate_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static("garbage"));
        headers.insert(TRACESTATE, HeaderValue::from_static("v=1"));
        keep_or_start(&mut headers);
        let sent = sent(&headers);
        assert_eq!(sent.len(), 1);
        assert!(is_valid_traceparent(sent[0].as_bytes()), "{}", sent[0]);
        assert!(!headers.contains_key(TRACESTATE));
    }

    #[test]
    fn a_missing_traceparent_is_generated_fresh_each_time() {
        let (mut a, mut b) = (HeaderMap::new(), HeaderMap::new());
        keep_or_start(&mut a);
        keep_or_start(&mut b);
        let (a, b) = (sent(&a)[0], sent(&b)[0]);
        assert!(is_valid_traceparent(a.as_bytes()) && is_valid_traceparent(b.as_bytes()));
        assert!(a.ends_with("-01"));
        assert_ne!(a, b);
    }

    #[test]
    fn two_traceparents_are_replaced_by_one_fresh_one() {
        let mut headers = HeaderMap::new();
        headers.append(TRACEPARENT, HeaderValue::from_static(PARENT));
        headers.append(TRACEPARENT, HeaderValue::from_static(PARENT));
        keep_or_start(&mut headers);
        let sent = sent(&headers);
        assert_eq!(sent.len(), 1);
        assert_ne!(sent[0], PARENT);
    }

    #[test]
    fn generated_traceparents_are_valid_and_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let value = new_traceparent();
            assert!(is_valid_traceparent(value.as_bytes()));
            assert!(
                seen.insert(value.as_bytes()[3..35].to_vec()),
                "trace id repeated"
            );
        }
    }

    #[test]
    fn traceparent_validation_follows_version_00() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(is_valid_traceparent(ok.as_bytes()));
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "",
        ] {
            assert!(!is_valid_traceparent(bad.as_bytes()), "{bad}");
        }
    }
}
