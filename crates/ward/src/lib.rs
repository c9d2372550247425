//! Ward (map to be written).
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod oidc;
pub mod proxy;
pub mod secret;
pub mod session;
