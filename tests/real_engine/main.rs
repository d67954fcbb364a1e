//! The real-engine tier: the flows against a real dockerd with locally
//! built images (`scripts/provision.sh`). It fails, never skips, when the
//! daemon cannot be reached. Each module makes and removes its own
//! containers, named and labelled apart, so the modules run side by side;
//! what acts on everything of an instance (recovery, the network sweep),
//! restarts the daemon, runs a server of another version, or times warm
//! pools against their refill (pools) stays in a binary of its own.

mod agents;
mod browser;
mod cli;
mod console;
mod dialects;
mod exec;
mod faults;
mod http;
mod http_agents;
mod http_sessions;
mod oci_faults;
mod oci_images;
mod oci_pull;
mod oci_runc;
mod readme;
mod reaper;
mod relics;
mod runs;
mod sandboxes;
