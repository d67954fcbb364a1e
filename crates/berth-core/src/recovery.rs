//! Restart safety: on start-up berth rebuilds its view from the engine's
//! labels and the store. A run that was in flight when berth stopped cannot
//! be driven on (its deadline and cancellation lived in the old process):
//! its container is removed and the run marked failed with the reason. Run
//! containers the store does not know are orphans: removed, or kept where
//! configured (for an operator to look at; the reaper still ends them at
//! their expiry).
//! Warm-pool members of this instance are removed: they are made for one
//! run of a live pool, and the pools start empty with the new process.
//! Agents and relics outlive berth by design and are left as they are.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError, GoneIsDone, Phase, Selector};
use crate::ids::Clock;
use crate::runs::RunStatus;
use crate::spec::{labels, Kind};
use crate::store::{Store, StoreError};

/// What recovery does with run containers the store does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Orphans {
    #[default]
    Remove,
    /// Leave them running, reported.
    Keep,
}

impl std::str::FromStr for Orphans {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "remove" => Ok(Orphans::Remove),
            "keep" => Ok(Orphans::Keep),
            other => Err(format!("orphans: {other:?} is neither `remove` nor `keep`")),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// Runs marked failed, with the reason.
    pub runs_failed: Vec<(String, String)>,
    /// Containers removed: those of interrupted runs and orphans.
    pub containers_removed: Vec<String>,
    /// Orphans left in place (`Orphans::Keep`).
    pub orphans_kept: Vec<String>,
    /// Warm-pool members left by an earlier process of this instance.
    #[serde(default)]
    pub pool_members_removed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn recover(
    backend: &Arc<dyn Engine>,
    store: &Store,
    ids: &Arc<dyn crate::ids::IdSource>,
    clock: &Arc<dyn Clock>,
    orphans: Orphans,
) -> Result<RecoveryReport, RecoveryError> {
    let instance = store.instance_id(|| ids.next_hex())?;
    let mut report = RecoveryReport::default();
    let mut known = HashSet::new();
    for mut run in store.unfinished_runs()? {
        known.insert(run.id.0.clone());
        let reason = match run.handle() {
            Some(h) => match backend.remove(&h, true).await {
                Ok(()) => {
                    report.containers_removed.push(run.container_name.clone());
                    run.container_removed = true;
                    "berth restarted during the run; its container was stopped and removed"
                }
                Err(e) if e.is_not_found() => "the run's container vanished while berth was down",
                Err(e) => return Err(e.into()),
            },
            None => "berth restarted before the run's container was created",
        };
        run.status = RunStatus::Failed;
        run.error = Some(reason.to_owned());
        run.finished_at = Some(clock.now());
        store.put_run(&run)?;
        report.runs_failed.push((run.id.0.clone(), reason.to_owned()));
    }
    // Warm-pool members of this instance serve no run any more: never adopted
    // (a member serves one run and its pool's counters died with the process).
    let pooled = Selector::managed().has(labels::POOL).instance(&instance);
    for c in backend.list(&pooled).await? {
        backend.remove(&c.handle, true).await.or_gone()?;
        report.pool_members_removed.push(c.name);
    }
    for kind in [Kind::Tool, Kind::Code] {
        let filter = Selector::managed().kind(kind).instance(&instance);
        for c in backend.list(&filter).await? {
            let Some(run_id) = c.labels.get(labels::OBJECT) else { continue };
            if known.contains(run_id) {
                continue;
            }
            let tenant = c.labels.get(labels::TENANT).map(String::as_str).unwrap_or("");
            let stored = store.get_run(tenant, &crate::runs::RunId(run_id.clone()))?;
            // A finished run's container is kept only while its record says so;
            // one the store has never heard of is an orphan.
            let orphan = stored.is_none();
            if orphan && orphans == Orphans::Keep {
                report.orphans_kept.push(c.name);
                continue;
            }
            let ended =
                c.phase != Phase::Running && stored.is_some_and(|r| r.status.is_terminal() && r.container_removed);
            if orphan || ended {
                backend.remove(&c.handle, true).await.or_gone()?;
                report.containers_removed.push(c.name);
            }
        }
    }
    Ok(report)
}
