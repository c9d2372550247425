//! Configuration: plain data ([`model`]), loading from TOML plus `WARD_*` overrides and
//! `*_file` secrets ([`load`]), and validation that reports every problem at once
//! ([`ConfigErrors`]), before anything binds. `docs/configuration.md` is the user's view.

mod absolute_url;
mod client_auth;
mod composite_checks;
mod composites;
pub mod duration;
mod effective;
mod env;
mod errors;
mod load;
mod masked;
mod model;
mod outbound;
mod rate_limit;
mod routes;
mod schema;
mod secrets;
mod sections;
pub mod size;
mod static_policy;
mod store;
mod suggest;
mod telemetry;
mod tls;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_composites;
#[cfg(test)]
mod tests_connections;
#[cfg(test)]
mod tests_messages;
#[cfg(test)]
mod tests_proxy_limits;
#[cfg(test)]
mod tests_resource;
#[cfg(test)]
mod tests_store_admin;
#[cfg(test)]
mod tests_telemetry;
#[cfg(test)]
mod tests_validation;

pub use composites::{CompositeConfig, PartConfig, PartMethod};
pub use errors::{ConfigError, ConfigErrors};
pub use load::{load, load_from_str};
pub use model::*;
pub use outbound::{EgressProxy, OutboundConfig, ProxyUrl};
pub use rate_limit::{Limit, RateLimitBackend, RateLimitConfig, describe as describe_rate_limits};
pub use validate::validate;
