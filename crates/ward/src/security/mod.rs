//! Request-level defences that depend on no endpoint: CSRF, `returnUrl` checking, response
//! headers.

pub mod client_ip;
pub mod cors;
pub mod csrf;
pub mod headers;
pub mod return_url;
