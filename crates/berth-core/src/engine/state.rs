//! What a workload is doing, typed: its phase, its health when it has a
//! check, and how it ended. Engines report their own words; a backend
//! turns them into these, so the core never compares strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::handle::{Handle, Placement};

/// Where a workload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Made, not started.
    Created,
    Running,
    /// Frozen: its processes exist but get no CPU.
    Paused,
    /// Being restarted by its engine.
    Restarting,
    /// Being removed.
    Removing,
    /// Its process ended.
    Exited,
    /// Its engine could not stop or remove it cleanly.
    Dead,
    /// A word the engine used that berth does not know.
    Unknown,
}

impl Phase {
    /// The phase as the Docker Engine spells it (the seeds show these words).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether its processes exist (running, paused or restarting).
    pub fn is_live(self) -> bool {
        matches!(self, Phase::Running | Phase::Paused | Phase::Restarting)
    }
}

/// What a workload's own health check says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Checked, not yet passed (within its start period or retries).
    Starting,
    Healthy,
    Unhealthy,
}

/// A workload's state, as one inspect tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadState {
    pub phase: Phase,
    /// `None` without a health check.
    pub health: Option<Health>,
    /// Its exit code, once it has exited.
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// The last health-check outputs, newest last.
    pub health_log: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Values berth keeps with the workload that are not for selecting it.
    pub annotations: BTreeMap<String, String>,
    pub name: String,
    /// Where it runs now, when the engine may move it after it was made (a
    /// swarm makes an agent's task again on another node when its node is
    /// lost); `None` when it stays where it was made.
    #[serde(default)]
    pub placement: Option<Placement>,
}

impl WorkloadState {
    /// Whether its processes exist.
    pub fn running(&self) -> bool {
        self.phase.is_live()
    }
}

/// A workload berth manages, as a list by selector shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    pub handle: Handle,
    pub name: String,
    pub phase: Phase,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Annotations are carried as labels under this prefix on engines that
/// have no annotations of their own (the Docker Engine before API 1.46).
pub const ANNOTATION_PREFIX: &str = "io.berth.annotation.";

/// Splits an engine's labels into berth's labels and its annotations kept
/// as `io.berth.annotation.*` labels.
pub fn split_annotations(mut labels: BTreeMap<String, String>) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let keys: Vec<String> = labels.keys().filter(|k| k.starts_with(ANNOTATION_PREFIX)).cloned().collect();
    let mut annotations = BTreeMap::new();
    for key in keys {
        if let Some(value) = labels.remove(&key) {
            annotations.insert(key[ANNOTATION_PREFIX.len()..].to_owned(), value);
        }
    }
    (labels, annotations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_kept_as_labels_come_back_apart_from_the_labels() {
        let labels = BTreeMap::from([
            ("io.berth.kind".to_owned(), "tool".to_owned()),
            ("io.berth.annotation.expires-at".to_owned(), "2026-12-01T00:00:00+00:00".to_owned()),
        ]);
        let (labels, annotations) = split_annotations(labels);
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["io.berth.kind"]);
        assert_eq!(annotations["expires-at"], "2026-12-01T00:00:00+00:00");
    }

    #[test]
    fn paused_and_restarting_workloads_are_live_and_exited_ones_are_not() {
        assert!(Phase::Paused.is_live() && Phase::Restarting.is_live() && Phase::Running.is_live());
        assert!(!Phase::Exited.is_live() && !Phase::Created.is_live() && !Phase::Dead.is_live());
    }
}
