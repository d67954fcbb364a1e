//! Lifetimes kept across time and restarts: the [`reaper`] removes what
//! has expired, [`recovery`] settles what a restart of berth interrupted.

pub mod reaper;
pub mod recovery;
