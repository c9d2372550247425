//! Request-level defences that depend on no endpoint: CSRF, `returnUrl` checking, response
//! headers, request size limits, rate limits.

pub mod client_ip;
pub mod cors;
pub mod csrf;
pub mod headers;
pub mod limits;
pub mod rate_limit;
pub mod return_url;
