//! The `berth` binary's library half: the configuration of `berth serve`,
//! kept apart from `main.rs` so that it is tested like any other module.
//! This package is the one that names concrete backends; everything else
//! lives in the crates under `crates/`.

pub mod config;
pub mod sealed;
