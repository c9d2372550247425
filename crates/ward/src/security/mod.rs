//! Request-level defences that depend on no endpoint: CSRF, `returnUrl` checking, response
//! headers, request size limits.

pub mod client_ip;
pub mod cors;
pub mod csrf;
pub mod headers;
pub mod limits;
pub mod return_url;
