//! The real-engine tier: every endpoint group against a real dockerd.
//!
//! Needs the daemon and images that `scripts/provision.sh` sets up; it fails
//! (never skips) when the daemon cannot be reached.

mod support;

mod containers;
mod exec;
mod images;
mod networks;
mod system;
