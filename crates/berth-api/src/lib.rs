//! berth's HTTP front ends: the native API under `/v1` ([`native`]), the
//! [`console`] page beside it and the five seed systems' APIs
//! ([`dialects`]), each a router over one shared [`native::AppState`].
//!
//! This crate knows HTTP and the orchestration core, and nothing of any
//! engine: it depends on `berth-core` and on no backend crate, so every
//! container it shows came to it through the core.

pub mod console;
pub mod dialects;
pub mod native;
pub mod proxy;
