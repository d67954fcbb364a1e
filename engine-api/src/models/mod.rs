//! Wire models of the Engine API (serde), one module per resource.
//!
//! Field names follow the daemon's JSON. Every model tolerates unknown
//! fields, and where engines disagree (Podman's lower-case `id`, extra
//! container states, numbers sent as strings) the model accepts both rather
//! than failing: unknown enum values land in an `Other(String)` variant.
//! These are wire types only; berth's domain types live in berth.

mod container;
mod exec;
mod image;
mod lenient;
mod network;
mod stats;
mod swarm;
mod system;
mod volume;

pub use container::*;
pub use exec::*;
pub use image::*;
pub use network::*;
pub use stats::*;
pub use swarm::*;
pub use system::*;
pub use volume::*;
