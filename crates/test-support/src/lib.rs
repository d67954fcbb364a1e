//! Shared pieces of berth's integration tests.
//! Each test binary uses a part of them.
#![allow(dead_code)]

pub mod api;
pub mod bench;
pub mod leftovers;
pub mod serve;

/// The core's recording, failing engine in memory (its `Op`, `Exit` and
/// helpers are in `fake`).
pub use berth_core::engine::fake::{self, FakeEngine};

use berth_core::agents::AgentDefinition;

/// A busybox agent of tenant `t1` that sleeps, with nothing else set.
pub fn sleeping_agent(id: &str) -> AgentDefinition {
    AgentDefinition { cmd: Some(vec!["sleep".into(), "600".into()]), ..AgentDefinition::new("t1", id, "busybox:1.35") }
}
