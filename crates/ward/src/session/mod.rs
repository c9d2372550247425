//! Sessions: the record kept server-side ([`record`]), its cookie ([`cookie`]), sealing at rest
//! ([`seal`], [`keyring`]) and the [`manager`] that loads, creates, slides and deletes them.

pub mod admin;
mod cache;
pub mod cookie;
pub mod cookie_store;
pub mod keyring;
pub mod live;
pub mod manager;
pub mod record;
pub mod refresh;
pub mod resource_tokens;
pub mod seal;

pub use manager::{LoadedSession, SessionManager, SessionSettings};
