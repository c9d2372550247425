//! Ward: a Backend-for-Frontend security gateway.
//!
//! The map, following a request:
//! - [`server`] builds the shared [`state`] from a validated [`config`] (key ring, store,
//!   IdP discovery, routes) and serves [`app::router`].
//! - [`app`] orders the layers: head limits → login rate limit → access log → `/bff`
//!   [`endpoints`] (with [`security`] headers) → the gateway fallback: [`proxy`] routes (fetch
//!   metadata, session, rate limits, CSRF, then upstream), then the static [`site`], then 404.
//! - [`endpoints`] run the login flow with [`oidc`] and keep state in [`session`]: the cookie,
//!   sealing at rest (AES-256-GCM under a key needing the cookie), the manager over a
//!   `ward_store::SessionStore` backend.
//! - [`error::ApiError`] is the one mapping from failures to HTTP; [`telemetry`] sets up logs.
//! - [`admin`] is the separate operations listener: health, readiness, session revocation.
//! - [`check`] is `ward check` beyond validation: store, IdP, client credentials, upstreams.

pub mod admin;
pub mod app;
pub mod check;
pub mod config;
pub mod cookie_header;
pub mod endpoints;
pub mod error;
pub mod gateway;
pub mod oidc;
pub mod proxy;
pub mod random;
pub mod secret;
pub mod security;
pub mod server;
pub mod session;
pub mod site;
pub mod state;
pub mod telemetry;
