//! What is kept of a run: its id, where it stands, its resource use and the
//! record that outlives its container (the store keeps it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::handle::{Handle, Placement};
use super::kind::Kind;

/// berth's id of a run: `run_` and 12 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

/// Where a run stands. All but the first two are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Killed at its deadline.
    TimedOut,
    /// Killed by the kernel for going over its memory limit.
    OomKilled,
    /// Stopped on request.
    Cancelled,
    /// Nothing ran: the backend renders plans (the OCI dry run); the record carries the plan.
    DryRun,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Pending | RunStatus::Running)
    }
}

/// Resource use of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUsage {
    /// From start to exit (pooled: from the hand-off of its script to its exit).
    pub wall_ms: u64,
    /// CPU time, from the last stats sample before the exit (sampled about once
    /// a second, so a very short run may have none). `None` for pooled runs:
    /// the member's counters include its idle process and the time before
    /// the run, and sampling them would cost the round trips pools save.
    pub cpu_ms: Option<u64>,
    pub peak_memory_bytes: Option<u64>,
}

/// A run's record, kept in the store after its container is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub tenant: String,
    pub session: Option<String>,
    pub name: Option<String>,
    pub image: String,
    /// A tool or a code run (`None` in records made before runs said so):
    /// which engine it went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// What ran it: `docker` (the engine's own runtime), `runc` or `runsc`
    /// (berth's `oci` backend); records made before runs said so have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    pub status: RunStatus,
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// The output parsed, when it is JSON.
    pub result: Option<serde_json::Value>,
    pub usage: RunUsage,
    pub container_id: Option<String>,
    /// Where its container runs (records made before placements read as local).
    #[serde(default)]
    pub placement: Placement,
    pub container_name: String,
    /// The container is gone. For a pooled run: its removal was ordered, in
    /// the background so the answer is not delayed (the reaper removes it at
    /// its expiry should that fail).
    pub container_removed: bool,
    /// Why a run failed without an exit code, or what went wrong around it.
    pub error: Option<String>,
    /// `cold` (its own container) or `pooled` (a warm sandbox).
    pub path: String,
    /// What would have run, when nothing ran (status `dry_run`): the backend's
    /// rendered plan (for the OCI dry run, the bundle with its `config.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl RunRecord {
    /// Its container, once it has one.
    pub fn handle(&self) -> Option<Handle> {
        self.container_id.as_ref().map(|id| Handle::at(id.clone(), self.placement.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_are_the_six_endings() {
        let terminal: Vec<_> = [
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::TimedOut,
            RunStatus::OomKilled,
            RunStatus::Cancelled,
            RunStatus::DryRun,
        ]
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
        assert_eq!(terminal.len(), 6);
        assert_eq!(serde_json::to_string(&RunStatus::TimedOut).unwrap(), "\"timed_out\"");
        assert_eq!(serde_json::to_string(&RunStatus::DryRun).unwrap(), format!("\"{}\"", RunStatus::DryRun.as_str()));
    }
}
