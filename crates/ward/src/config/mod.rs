//! Configuration: plain data ([`model`]), loading from TOML plus `WARD_*` overrides and
//! `*_file` secrets ([`load`]), and validation that reports every problem at once.

pub mod duration;
mod model;

pub use model::*;
