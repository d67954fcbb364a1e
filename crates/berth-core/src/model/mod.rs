//! The model: the words every other part of the core speaks in — ids and
//! the sources of ids and time, sizes, where a workload runs, and the
//! records that outlive containers.
//!
//! It is the bottom layer: nothing here imports another module of berth
//! (a test in the hermetic tier checks), so the store, the runs and the
//! pools can all name a run record without naming each other.

pub mod handle;
pub mod ids;
pub mod kind;
pub mod run;
pub mod sandbox;
pub mod units;
