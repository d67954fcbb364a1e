//! berth: a container orchestrator for AI agents and their tools.
//!
//! This crate will hold orchestration (agents, runs, relics, sessions), its
//! backends, the store and the HTTP API. It reaches the engine only through
//! the `engine-api` crate.

pub use engine_api;
