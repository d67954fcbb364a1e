//! Restart safety: on start-up berth rebuilds its view from the engine's
//! labels and the store. A run that was in flight when berth stopped cannot
//! be driven on (its deadline and cancellation lived in the old process):
//! its container is removed and the run marked failed with the reason. Run
//! containers the store does not know are orphans: removed, or kept where
//! configured (for an operator to look at; the reaper still ends them at
//! their expiry).
//! Warm-pool members of this instance are removed: they are made for one
//! run of a live pool, and the pools start empty with the new process.
//! So are spare sandboxes of this instance that no sandbox record adopted;
//! an adopted one is a sandbox like any other.
//! Agents and relics outlive berth by design and are left as they are.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError, GoneIsDone, Phase, Selector};
use crate::model::ids::Clock;
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
    /// Spare sandboxes left by an earlier process of this instance, never adopted.
    #[serde(default)]
    pub spares_removed: Vec<String>,
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
    ids: &Arc<dyn crate::model::ids::IdSource>,
    clock: &Arc<dyn Clock>,
    orphans: Orphans,
) -> Result<RecoveryReport, RecoveryError> {
    let instance = store.instance_id(|| ids.next_hex())?;
    let mut report = RecoveryReport::default();
    let mut known = HashSet::new();
    for mut run in store.unfinished_runs()? {
        known.insert(run.id.0.clone());
        // A run on a runtime berth drives itself (runc) lived only in the
        // dead berth's memory: that backend's leftover sweep removes it.
        let elsewhere = run.runtime.as_deref().is_some_and(|r| r != backend.runtime());
        let reason = match run.handle() {
            Some(_) if elsewhere => {
                run.container_removed = true;
                "berth restarted during the run; its runtime container is removed with what that runtime left"
            }
            Some(h) => match backend.remove(&h, true).await {
                Ok(()) => {
                    report.containers_removed.push(run.container_name.clone());
                    run.container_removed = true;
                    "berth restarted during the run; its container was stopped and removed"
                }
                Err(e) if e.is_not_found() => {
                    // Gone is removed: the record says so, as a run's own cleanup does.
                    run.container_removed = true;
                    "the run's container vanished while berth was down"
                }
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
    report.spares_removed =
        crate::sandboxes::spares::remove_unadopted::<RecoveryError>(backend, store, &instance).await?;
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::engine::fake::{FakeEngine, Op};
    use crate::engine::{EngineErrorKind, Handle};
    use crate::model::ids::{FixedClock, IdSource, SequentialIds};
    use crate::policy::{ContainerRequest, Policy};
    use crate::runs::{RunId, RunRecord, RunUsage};

    const INSTANCE: &str = "inst000000001";

    fn now() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    struct World {
        fake: Arc<FakeEngine>,
        engine: Arc<dyn Engine>,
        store: Store,
        ids: Arc<dyn IdSource>,
        clock: Arc<dyn Clock>,
    }

    /// A store whose instance is [`INSTANCE`], over the fake engine.
    fn world() -> World {
        let fake = Arc::new(FakeEngine::new());
        let store = Store::in_memory().unwrap();
        assert_eq!(store.instance_id(|| INSTANCE.into()).unwrap(), INSTANCE);
        World {
            engine: fake.clone(),
            fake,
            store,
            ids: Arc::new(SequentialIds::default()),
            clock: Arc::new(FixedClock::at(now())),
        }
    }

    impl World {
        async fn recover(&self, orphans: Orphans) -> Result<RecoveryReport, RecoveryError> {
            recover(&self.engine, &self.store, &self.ids, &self.clock, orphans).await
        }

        fn run(&self, id: &str) -> RunRecord {
            self.store.get_run("t1", &RunId(id.into())).unwrap().expect("the run is stored")
        }

        fn names(&self) -> Vec<String> {
            self.fake.containers().into_iter().map(|c| c.name).collect()
        }
    }

    /// A running container of `kind` serving `object`, made by `instance`.
    async fn container(fake: &FakeEngine, name: &str, kind: Kind, object: &str, instance: &str) -> Handle {
        let mut spec = Policy::default().admit(ContainerRequest::new(kind, name, "tool:1")).unwrap();
        spec.labels.insert(labels::OBJECT.into(), object.into());
        spec.labels.insert(labels::TENANT.into(), "t1".into());
        spec.labels.insert(labels::INSTANCE.into(), instance.into());
        let h = fake.create(&spec).await.unwrap();
        fake.start(&h).await.unwrap();
        h
    }

    /// A pool's warm member, made by `instance`.
    async fn member(fake: &FakeEngine, name: &str, instance: &str) -> Handle {
        let mut spec = Policy::default().admit(ContainerRequest::new(Kind::Code, name, "python:3.11")).unwrap();
        spec.labels.insert(labels::POOL.into(), "python".into());
        spec.labels.insert(labels::INSTANCE.into(), instance.into());
        let h = fake.create(&spec).await.unwrap();
        fake.start(&h).await.unwrap();
        h
    }

    /// A spare sandbox that will be `object`, made by `instance`.
    async fn spare(fake: &FakeEngine, name: &str, object: &str, instance: &str) -> Handle {
        let mut req = ContainerRequest::new(Kind::Sandbox, name, "base:1");
        req.user = Some("1000:1000".into());
        let mut spec = Policy::default().admit(req).unwrap();
        spec.labels.insert(labels::SPARE.into(), "base".into());
        spec.labels.insert(labels::OBJECT.into(), object.into());
        spec.labels.insert(labels::INSTANCE.into(), instance.into());
        let h = fake.create(&spec).await.unwrap();
        fake.start(&h).await.unwrap();
        h
    }

    fn record(id: &str, status: RunStatus, container: Option<&Handle>, removed: bool) -> RunRecord {
        RunRecord {
            runtime: None,
            id: RunId(id.into()),
            tenant: "t1".into(),
            session: None,
            name: None,
            image: "tool:1".into(),
            kind: None,
            status,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            result: None,
            usage: RunUsage::default(),
            container_id: container.map(|h| h.id.0.clone()),
            placement: Default::default(),
            container_name: format!("berth-{id}"),
            container_removed: removed,
            error: None,
            path: "cold".into(),
            plan: None,
            created_at: now() - chrono::Duration::minutes(5),
            finished_at: None,
        }
    }

    #[tokio::test]
    async fn a_run_in_flight_is_failed_with_the_reason_and_its_container_removed() {
        let w = world();
        let h = container(&w.fake, "berth-run_1", Kind::Tool, "run_1", INSTANCE).await;
        w.store.put_run(&record("run_1", RunStatus::Running, Some(&h), false)).unwrap();
        let report = w.recover(Orphans::Remove).await.unwrap();
        let reason = "berth restarted during the run; its container was stopped and removed";
        assert_eq!(report.runs_failed, [("run_1".to_owned(), reason.to_owned())]);
        assert_eq!(report.containers_removed, ["berth-run_1"]);
        let run = w.run("run_1");
        assert_eq!((run.status, run.error.as_deref(), run.finished_at), (RunStatus::Failed, Some(reason), Some(now())));
        assert!(run.container_removed);
        assert!(w.fake.containers().is_empty());
        assert!(w.store.unfinished_runs().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_run_whose_container_vanished_is_failed_as_vanished_and_its_record_says_the_container_is_gone() {
        let w = world();
        let h = container(&w.fake, "berth-run_1", Kind::Tool, "run_1", INSTANCE).await;
        w.fake.vanish(&h);
        w.store.put_run(&record("run_1", RunStatus::Running, Some(&h), false)).unwrap();
        let report = w.recover(Orphans::Remove).await.unwrap();
        let reason = "the run's container vanished while berth was down";
        assert_eq!(report.runs_failed, [("run_1".to_owned(), reason.to_owned())]);
        assert!(report.containers_removed.is_empty(), "nothing was there to remove");
        let run = w.run("run_1");
        assert_eq!((run.status, run.error.as_deref()), (RunStatus::Failed, Some(reason)));
        assert!(run.container_removed, "the container is gone");
    }

    #[tokio::test]
    async fn a_run_on_another_runtime_is_failed_and_left_to_that_runtimes_sweep() {
        let w = world();
        let h = container(&w.fake, "berth-run_1", Kind::Code, "run_1", INSTANCE).await;
        let mut run = record("run_1", RunStatus::Running, Some(&h), false);
        run.runtime = Some("runc".into());
        w.store.put_run(&run).unwrap();
        let report = w.recover(Orphans::Keep).await.unwrap();
        let reason = "berth restarted during the run; its runtime container is removed with what that runtime left";
        assert_eq!(report.runs_failed, [("run_1".to_owned(), reason.to_owned())]);
        assert!(report.containers_removed.is_empty(), "not this engine's to remove");
        assert!(w.run("run_1").container_removed);
    }

    #[tokio::test]
    async fn a_run_that_had_no_container_yet_is_failed_as_never_created() {
        let w = world();
        w.store.put_run(&record("run_1", RunStatus::Pending, None, false)).unwrap();
        let report = w.recover(Orphans::Remove).await.unwrap();
        assert_eq!(report.runs_failed[0].1, "berth restarted before the run's container was created");
        assert_eq!(w.run("run_1").status, RunStatus::Failed);
        assert!(w.fake.calls_of(Op::Remove).is_empty());
    }

    #[tokio::test]
    async fn spares_no_sandbox_adopted_are_removed_and_adopted_ones_and_another_instances_are_kept() {
        let w = world();
        spare(&w.fake, "berth-sandbox-1", "sbx1", INSTANCE).await;
        spare(&w.fake, "berth-sandbox-2", "sbx2", INSTANCE).await;
        spare(&w.fake, "berth-sandbox-3", "sbx3", "another").await;
        w.store.insert_object("sbx2", crate::sandboxes::RECORD_KIND, "t1", None, &"a sandbox", None).unwrap();
        let report = w.recover(Orphans::Remove).await.unwrap();
        assert_eq!(report.spares_removed, ["berth-sandbox-1"]);
        assert_eq!(w.names(), ["berth-sandbox-2", "berth-sandbox-3"]);
    }

    #[tokio::test]
    async fn warm_pool_members_of_this_instance_are_removed_and_another_instances_are_kept() {
        let w = world();
        member(&w.fake, "berth-pool-1", INSTANCE).await;
        member(&w.fake, "berth-pool-other", "another").await;
        let report = w.recover(Orphans::Remove).await.unwrap();
        assert_eq!(report.pool_members_removed, ["berth-pool-1"]);
        assert_eq!(w.names(), ["berth-pool-other"]);
    }

    #[tokio::test]
    async fn a_run_container_of_this_instance_the_store_does_not_know_is_removed_as_an_orphan() {
        let w = world();
        container(&w.fake, "orphan-tool", Kind::Tool, "run_9", INSTANCE).await;
        container(&w.fake, "orphan-code", Kind::Code, "run_8", INSTANCE).await;
        container(&w.fake, "not-mine", Kind::Tool, "run_7", "another").await;
        let report = w.recover(Orphans::Remove).await.unwrap();
        assert_eq!(report.containers_removed, ["orphan-tool", "orphan-code"]);
        assert!(report.orphans_kept.is_empty());
        assert_eq!(w.names(), ["not-mine"]);
    }

    #[tokio::test]
    async fn orphans_are_kept_and_reported_when_recovery_is_told_to_keep_them() {
        let w = world();
        container(&w.fake, "orphan-tool", Kind::Tool, "run_9", INSTANCE).await;
        let report = w.recover(Orphans::Keep).await.unwrap();
        assert_eq!(report.orphans_kept, ["orphan-tool"]);
        assert!(report.containers_removed.is_empty());
        assert_eq!(w.names(), ["orphan-tool"]);
    }

    #[tokio::test]
    async fn a_finished_runs_container_is_removed_only_when_its_record_says_it_was_to_go_and_it_has_ended() {
        let w = world();
        let kept = container(&w.fake, "kept", Kind::Tool, "run_1", INSTANCE).await;
        w.fake.exit_now(&kept, 0);
        w.store.put_run(&record("run_1", RunStatus::Succeeded, Some(&kept), false)).unwrap();
        let ordered = container(&w.fake, "ordered", Kind::Tool, "run_2", INSTANCE).await;
        w.fake.exit_now(&ordered, 0);
        w.store.put_run(&record("run_2", RunStatus::Succeeded, Some(&ordered), true)).unwrap();
        let live = container(&w.fake, "still-running", Kind::Tool, "run_3", INSTANCE).await;
        w.store.put_run(&record("run_3", RunStatus::Cancelled, Some(&live), true)).unwrap();
        let report = w.recover(Orphans::Remove).await.unwrap();
        assert_eq!(report.containers_removed, ["ordered"]);
        assert!(report.runs_failed.is_empty());
        assert_eq!(w.names(), ["kept", "still-running"]);
        assert_eq!(w.run("run_1").status, RunStatus::Succeeded, "finished runs are left as they are");
    }

    #[tokio::test]
    async fn agents_and_relics_outlive_a_restart_untouched() {
        let w = world();
        container(&w.fake, "agent", Kind::Agent, "a1", INSTANCE).await;
        container(&w.fake, "relic", Kind::Relic, "relic_1", INSTANCE).await;
        let report = w.recover(Orphans::Remove).await.unwrap();
        assert_eq!(report, RecoveryReport::default());
        assert_eq!(w.names(), ["agent", "relic"]);
    }

    #[tokio::test]
    async fn an_engine_failure_removing_a_runs_container_is_an_error() {
        let w = world();
        let h = container(&w.fake, "berth-run_1", Kind::Tool, "run_1", INSTANCE).await;
        w.store.put_run(&record("run_1", RunStatus::Running, Some(&h), false)).unwrap();
        w.fake.fail_next(Op::Remove, EngineError::unavailable("no daemon"));
        let e = w.recover(Orphans::Remove).await.expect_err("the removal fails");
        assert!(matches!(e, RecoveryError::Engine(e) if e.kind() == EngineErrorKind::Unavailable));
        assert_eq!(w.run("run_1").status, RunStatus::Running, "the run is left for the next recovery");
        assert_eq!(w.names(), ["berth-run_1"]);
    }

    #[tokio::test]
    async fn an_engine_failure_listing_containers_mid_recovery_is_an_error() {
        let w = world();
        w.store.put_run(&record("run_1", RunStatus::Pending, None, false)).unwrap();
        w.fake.fail_next(Op::List, EngineError::unavailable("no daemon"));
        let e = w.recover(Orphans::Remove).await.expect_err("the list fails");
        assert!(matches!(e, RecoveryError::Engine(e) if e.kind() == EngineErrorKind::Unavailable));
        assert_eq!(w.run("run_1").status, RunStatus::Failed, "what was done before the failure stays done");
    }

    #[tokio::test]
    async fn a_store_without_an_instance_gets_one_from_the_id_source() {
        let fake: Arc<dyn Engine> = Arc::new(FakeEngine::new());
        let store = Store::in_memory().unwrap();
        let ids: Arc<dyn IdSource> = Arc::new(SequentialIds::default());
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::at(now()));
        recover(&fake, &store, &ids, &clock, Orphans::Remove).await.unwrap();
        assert_eq!(store.instance_id(|| "unused".into()).unwrap(), "000000000001");
    }

    #[test]
    fn the_orphans_setting_reads_remove_or_keep_and_nothing_else() {
        assert_eq!("remove".parse::<Orphans>(), Ok(Orphans::Remove));
        assert_eq!("keep".parse::<Orphans>(), Ok(Orphans::Keep));
        assert!("delete".parse::<Orphans>().is_err());
    }
}
