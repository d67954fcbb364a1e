//! berth: a container orchestrator for AI agents and their tools.
//!
//! The orchestration core: what the five seed systems do with containers,
//! done once, safely, behind the [`backend::Backend`] trait. Nothing here
//! sees an HTTP type of either side; the engine is reached only through a
//! backend (the docker one speaks the Engine API through `engine-api`).
//!
//! - [`policy`] turns requests into [`spec::ContainerSpec`]s or refuses them;
//! - [`runs`] executes tool and code runs to completion and keeps their records;
//! - [`store`] keeps what the engine cannot (records, audit trail);
//! - [`ids`] makes ids and tells time, injectably, for replayable scenarios.

pub mod agents;
pub mod backend;
pub mod ids;
pub mod orchestrator;
pub mod output;
pub mod policy;
pub mod pool;
pub mod reaper;
pub mod recovery;
pub mod relics;
pub mod runs;
pub mod sessions;
pub mod spec;
pub mod store;
pub mod units;
