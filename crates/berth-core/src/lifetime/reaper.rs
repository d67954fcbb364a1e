//! The reaper: removes what has expired, from the engine's labels and the
//! store's renewals, so it works the same after berth restarts.
//!
//! Containers carry their expiry as the annotation `expires-at` from their
//! creation (those made before annotations, as the label
//! `io.berth.expires-at`); a renewal (neither can change on a running
//! container) is kept in the store under the object's id and wins. A sweep
//! removes every managed container whose expiry has passed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::context::Context;
use crate::engine::{Engine, EngineError, GoneIsDone, Selector, WorkloadInfo};
use crate::model::ids::Clock;
use crate::policy::ExpiryRefused;
use crate::spec::{annotations, labels};
use crate::store::{Pruned, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("expires_at {requested} is past the maximum lifetime (until {limit})")]
    TooLong { requested: DateTime<Utc>, limit: DateTime<Utc> },
    #[error("expires_at {0} is in the past")]
    Past(DateTime<Utc>),
    /// Some expired containers were not removed (each with why); the
    /// others were.
    #[error(
        "{} expired containers were not removed ({}); {} were",
        .failed.len(),
        .failed.iter().map(|(name, e)| format!("{name}: {e}")).collect::<Vec<_>>().join("; "),
        .removed.len()
    )]
    NotRemoved { removed: Vec<String>, failed: Vec<(String, EngineError)> },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A workload's expiry as it was made with: the annotation, or the label of
/// workloads made before annotations. Without either, it does not expire.
pub fn expiry_of(w: &WorkloadInfo) -> Option<&str> {
    w.annotations.get(annotations::EXPIRES_AT).or(w.labels.get(labels::EXPIRES_AT)).map(String::as_str)
}

/// The moment `after` from `now`, for an expiry label: the end of time when
/// it lies beyond what a date can hold.
pub fn expiry_after(now: DateTime<Utc>, after: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(after).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub struct Reaper {
    /// Every engine that holds workloads berth made, each once.
    engines: Vec<Arc<dyn Engine>>,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    max_lifetime: Duration,
    retention: Retention,
}

/// How long the store keeps what only grows: finished runs' and ended
/// sandboxes' records, and the audit trail (by count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long a finished run's or an ended sandbox's record is kept.
    pub runs: Duration,
    pub audit_entries: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { runs: Duration::from_secs(30 * 24 * 3600), audit_entries: 100_000 }
    }
}

impl Reaper {
    pub fn new(ctx: &Context, max_lifetime: Duration) -> Self {
        Reaper {
            engines: ctx.backends.distinct().into_iter().cloned().collect(),
            store: ctx.store.clone(),
            clock: ctx.clock.clone(),
            max_lifetime,
            retention: Retention::default(),
        }
    }

    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Forgets finished runs and ended sandboxes past their retention and
    /// the oldest audit entries.
    pub fn prune(&self) -> Result<Pruned, ReaperError> {
        let keep = chrono::Duration::from_std(self.retention.runs).unwrap_or(chrono::Duration::MAX);
        let before = self.clock.now().checked_sub_signed(keep).unwrap_or(DateTime::<Utc>::MIN_UTC);
        Ok(self.store.prune(before, self.retention.audit_entries)?)
    }

    /// Checks an expiry against now and the maximum lifetime.
    pub fn check(&self, expires_at: DateTime<Utc>) -> Result<DateTime<Utc>, ReaperError> {
        crate::policy::check_expiry(self.clock.now(), expires_at, self.max_lifetime).map_err(|e| match e {
            ExpiryRefused::Past(t) => ReaperError::Past(t),
            ExpiryRefused::TooLong { requested, limit } => ReaperError::TooLong { requested, limit },
        })
    }

    /// Moves a tenant's object's expiry (checked like a new one).
    pub fn renew(&self, tenant: &str, object: &str, expires_at: DateTime<Utc>) -> Result<DateTime<Utc>, ReaperError> {
        let t = self.check(expires_at)?;
        self.store.renew(tenant, object, &t.to_rfc3339())?;
        Ok(t)
    }

    /// Removes every managed container past its expiry; returns their
    /// names. A removal that fails does not stop the sweep (one container
    /// the engine cannot remove would keep every later one alive): the
    /// failures are reported together at its end.
    pub async fn sweep(&self) -> Result<Vec<String>, ReaperError> {
        let now = self.clock.now();
        let mut removed = Vec::new();
        let mut failed = Vec::new();
        for engine in &self.engines {
            self.sweep_engine(engine, now, &mut removed, &mut failed).await?;
        }
        if failed.is_empty() {
            Ok(removed)
        } else {
            Err(ReaperError::NotRemoved { removed, failed })
        }
    }

    /// One engine's part of [`Reaper::sweep`].
    async fn sweep_engine(
        &self,
        engine: &Arc<dyn Engine>,
        now: DateTime<Utc>,
        removed: &mut Vec<String>,
        failed: &mut Vec<(String, EngineError)>,
    ) -> Result<(), ReaperError> {
        for c in engine.list(&Selector::managed()).await? {
            let Some(label) = expiry_of(&c) else {
                continue;
            };
            let renewed = match (c.labels.get(labels::TENANT), c.labels.get(labels::OBJECT)) {
                (Some(tenant), Some(object)) => self.store.renewal(tenant, object)?,
                // A spare sandbox has no tenant label: once adopted, its record names the tenant.
                (None, Some(object)) if c.labels.contains_key(labels::SPARE) => {
                    match self.store.owner(crate::sandboxes::RECORD_KIND, object)? {
                        Some(tenant) => self.store.renewal(&tenant, object)?,
                        None => None,
                    }
                }
                _ => None,
            };
            let expiry = renewed.as_deref().unwrap_or(label);
            let Ok(expiry) = DateTime::parse_from_rfc3339(expiry) else {
                continue;
            };
            if expiry.with_timezone(&Utc) <= now {
                match engine.remove(&c.handle, true).await.or_gone() {
                    Ok(()) => removed.push(c.name),
                    Err(e) => failed.push((c.name, e)),
                }
            }
        }
        Ok(())
    }

    /// Sweeps every `interval` until the returned task is aborted.
    pub fn spawn(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                match self.sweep().await {
                    Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "reaped expired containers"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%e, "reaper sweep failed"),
                }
                for engine in &self.engines {
                    match engine.sweep_leftovers().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(engine = engine.name(), n, "removed what no workload owned"),
                        Err(e) => tracing::warn!(engine = engine.name(), %e, "leftover sweep failed"),
                    }
                }
                match self.prune() {
                    Ok(p) if p != Pruned::default() => {
                        tracing::info!(runs = p.runs, sandboxes = p.sandboxes, audit = p.audit, "pruned the store")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%e, "store pruning failed"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{FakeEngine, Op};
    use crate::engine::{EngineErrorKind, Handle};
    use crate::model::ids::{FixedClock, RandomIds};
    use crate::policy::{ContainerRequest, Policy};
    use crate::spec::Kind;

    fn now() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    fn world() -> (Arc<FakeEngine>, Arc<Store>, Arc<FixedClock>, Reaper) {
        let fake = Arc::new(FakeEngine::new());
        let store = Arc::new(Store::in_memory().unwrap());
        let clock = Arc::new(FixedClock::at(now()));
        let reaper = Reaper::new(
            &crate::context::Context::new(
                fake.clone(),
                Policy::default(),
                store.clone(),
                Arc::new(RandomIds),
                clock.clone(),
            ),
            Duration::from_secs(7 * 24 * 3600),
        );
        (fake, store, clock, reaper)
    }

    /// How a container carries its expiry.
    enum Expiry<'a> {
        Annotation(&'a str),
        OldLabel(&'a str),
        Never,
    }

    /// A running managed container serving `object`.
    async fn made(fake: &FakeEngine, name: &str, object: &str, expiry: Expiry<'_>) -> Handle {
        let mut spec = Policy::default().admit(ContainerRequest::new(Kind::Agent, name, "agent:1")).unwrap();
        spec.labels.insert(labels::OBJECT.into(), object.into());
        spec.labels.insert(labels::TENANT.into(), "t1".into());
        match expiry {
            Expiry::Annotation(t) => {
                spec.annotations.insert(annotations::EXPIRES_AT.into(), t.into());
            }
            Expiry::OldLabel(t) => {
                spec.labels.insert(labels::EXPIRES_AT.into(), t.into());
            }
            Expiry::Never => {}
        }
        let h = fake.create(&spec).await.unwrap();
        fake.start(&h).await.unwrap();
        h
    }

    const PAST: &str = "2026-03-01T11:00:00+00:00";
    const FUTURE: &str = "2026-03-01T13:00:00+00:00";

    fn names(fake: &FakeEngine) -> Vec<String> {
        fake.containers().into_iter().map(|c| c.name).collect()
    }

    #[tokio::test]
    async fn the_sweep_removes_a_container_whose_expires_at_annotation_is_past_and_keeps_the_rest() {
        let (fake, _, _, reaper) = world();
        made(&fake, "expired", "a1", Expiry::Annotation(PAST)).await;
        made(&fake, "later", "a2", Expiry::Annotation(FUTURE)).await;
        made(&fake, "forever", "a3", Expiry::Never).await;
        assert_eq!(reaper.sweep().await.unwrap(), ["expired"]);
        assert_eq!(names(&fake), ["later", "forever"]);
    }

    #[tokio::test]
    async fn an_expiry_at_this_very_moment_has_passed() {
        let (fake, _, _, reaper) = world();
        made(&fake, "now", "a1", Expiry::Annotation("2026-03-01T12:00:00+00:00")).await;
        assert_eq!(reaper.sweep().await.unwrap(), ["now"]);
    }

    #[tokio::test]
    async fn the_sweep_removes_a_container_that_carries_only_the_old_expires_at_label() {
        let (fake, _, _, reaper) = world();
        made(&fake, "old-style", "a1", Expiry::OldLabel(PAST)).await;
        made(&fake, "old-style-later", "a2", Expiry::OldLabel(FUTURE)).await;
        assert_eq!(reaper.sweep().await.unwrap(), ["old-style"]);
        assert_eq!(names(&fake), ["old-style-later"]);
    }

    #[tokio::test]
    async fn the_moment_the_sweep_measures_against_is_the_clocks() {
        let (fake, _, clock, reaper) = world();
        made(&fake, "later", "a1", Expiry::Annotation(FUTURE)).await;
        assert!(reaper.sweep().await.unwrap().is_empty());
        clock.advance(chrono::Duration::hours(2));
        assert_eq!(reaper.sweep().await.unwrap(), ["later"]);
    }

    #[tokio::test]
    async fn a_container_renewed_in_the_store_is_kept_past_the_expiry_it_was_made_with() {
        let (fake, _, _, reaper) = world();
        made(&fake, "renewed", "a1", Expiry::Annotation(PAST)).await;
        made(&fake, "renewed-old-style", "a2", Expiry::OldLabel(PAST)).await;
        let later = now() + chrono::Duration::hours(3);
        reaper.renew("t1", "a1", later).unwrap();
        reaper.renew("t1", "a2", later).unwrap();
        assert!(reaper.sweep().await.unwrap().is_empty());
        assert_eq!(names(&fake), ["renewed", "renewed-old-style"]);
    }

    /// A spare sandbox `object` (no tenant label), idle until `expiry`.
    async fn spare(fake: &FakeEngine, name: &str, object: &str, expiry: &str) -> Handle {
        let mut req = ContainerRequest::new(Kind::Sandbox, name, "base:1");
        req.user = Some("1000:1000".into());
        let mut spec = Policy::default().admit(req).unwrap();
        spec.labels.insert(labels::OBJECT.into(), object.into());
        spec.labels.insert(labels::SPARE.into(), "base".into());
        spec.annotations.insert(annotations::EXPIRES_AT.into(), expiry.into());
        let h = fake.create(&spec).await.unwrap();
        fake.start(&h).await.unwrap();
        h
    }

    #[tokio::test]
    async fn an_adopted_spare_is_kept_by_its_sandboxs_renewal_and_an_idle_one_goes_at_its_expiry() {
        let (fake, store, _, reaper) = world();
        spare(&fake, "adopted", "sbx1", PAST).await;
        spare(&fake, "idle", "sbx2", PAST).await;
        store.insert_object("sbx1", crate::sandboxes::RECORD_KIND, "t1", None, &"a sandbox", None).unwrap();
        reaper.renew("t1", "sbx1", FUTURE.parse().unwrap()).unwrap();
        // A renewal under another tenant's name of the same id does not count.
        reaper.renew("t2", "sbx2", FUTURE.parse().unwrap()).unwrap();
        assert_eq!(reaper.sweep().await.unwrap(), ["idle"]);
        assert_eq!(names(&fake), ["adopted"]);
    }

    #[tokio::test]
    async fn a_renewal_that_has_passed_wins_over_a_later_expiry_the_container_was_made_with() {
        let (fake, store, _, reaper) = world();
        made(&fake, "cut-short", "a1", Expiry::Annotation(FUTURE)).await;
        store.renew("t1", "a1", PAST).unwrap();
        assert_eq!(reaper.sweep().await.unwrap(), ["cut-short"]);
    }

    #[tokio::test]
    async fn an_expiry_that_does_not_read_as_a_date_leaves_the_container_alone() {
        let (fake, _, _, reaper) = world();
        made(&fake, "garbled", "a1", Expiry::Annotation("next tuesday")).await;
        assert!(reaper.sweep().await.unwrap().is_empty());
        assert_eq!(names(&fake), ["garbled"]);
    }

    #[tokio::test]
    async fn the_sweep_leaves_containers_berth_does_not_manage() {
        let (fake, _, _, reaper) = world();
        let mut spec = Policy::default().admit(ContainerRequest::new(Kind::Agent, "theirs", "x:1")).unwrap();
        spec.labels.remove(labels::MANAGED);
        spec.annotations.insert(annotations::EXPIRES_AT.into(), PAST.into());
        fake.create(&spec).await.unwrap();
        assert!(reaper.sweep().await.unwrap().is_empty());
        assert_eq!(fake.calls_of(Op::List), ["io.berth.managed"]);
    }

    #[tokio::test]
    async fn an_expired_container_gone_before_its_removal_counts_as_reaped() {
        let (fake, _, _, reaper) = world();
        made(&fake, "expired", "a1", Expiry::Annotation(PAST)).await;
        fake.fail_next(Op::Remove, EngineError::not_found("No such container"));
        assert_eq!(reaper.sweep().await.unwrap(), ["expired"]);
    }

    #[tokio::test]
    async fn a_removal_failure_is_reported_and_the_other_expired_containers_are_still_removed() {
        let (fake, _, _, reaper) = world();
        made(&fake, "stuck", "a1", Expiry::Annotation(PAST)).await;
        made(&fake, "expired", "a2", Expiry::Annotation(PAST)).await;
        made(&fake, "later", "a3", Expiry::Annotation(FUTURE)).await;
        fake.fail_next(Op::Remove, EngineError::failed("driver failed to remove root filesystem"));
        let e = reaper.sweep().await.expect_err("one removal failed");
        match &e {
            ReaperError::NotRemoved { removed, failed } => {
                assert_eq!(removed, &["expired"]);
                assert_eq!(failed.len(), 1);
                assert_eq!(failed[0].0, "stuck");
                assert_eq!(failed[0].1.message(), "driver failed to remove root filesystem");
            }
            other => panic!("not a removal failure: {other}"),
        }
        assert!(e.to_string().contains("stuck"), "{e}");
        assert_eq!(names(&fake), ["stuck", "later"]);
        assert_eq!(crate::Error::from(e).kind(), crate::ErrorKind::Internal);
    }

    #[tokio::test]
    async fn an_engine_that_cannot_list_fails_the_sweep() {
        let (fake, _, _, reaper) = world();
        fake.fail_next(Op::List, EngineError::unavailable("no daemon"));
        let e = reaper.sweep().await.expect_err("the list fails");
        assert!(matches!(e, ReaperError::Engine(e) if e.kind() == EngineErrorKind::Unavailable));
    }

    #[test]
    fn an_expiry_is_accepted_only_in_the_future_and_within_the_maximum_lifetime() {
        let (_, _, _, reaper) = world();
        assert!(matches!(reaper.check(now()), Err(ReaperError::Past(_))));
        assert!(matches!(reaper.check(now() + chrono::Duration::days(8)), Err(ReaperError::TooLong { .. })));
        let fine = now() + chrono::Duration::days(7);
        assert_eq!(reaper.check(fine).unwrap(), fine);
    }

    #[test]
    fn a_renewal_is_kept_in_the_store_and_a_refused_one_changes_nothing() {
        let (_, store, _, reaper) = world();
        let t = now() + chrono::Duration::hours(1);
        reaper.renew("t1", "a1", t).unwrap();
        assert_eq!(store.renewal("t1", "a1").unwrap(), Some(t.to_rfc3339()));
        assert!(reaper.renew("t1", "a1", now() - chrono::Duration::hours(1)).is_err());
        assert_eq!(store.renewal("t1", "a1").unwrap(), Some(t.to_rfc3339()));
    }

    #[test]
    fn pruning_keeps_the_newest_audit_entries_the_retention_allows() {
        let (_, store, _, reaper) = world();
        let reaper = reaper.with_retention(Retention { runs: Duration::from_secs(3600), audit_entries: 2 });
        for i in 0..5 {
            store.note(now(), "t1", "x", &i.to_string(), "ok");
        }
        assert_eq!(reaper.prune().unwrap(), Pruned { runs: 0, sandboxes: 0, audit: 3 });
        let left: Vec<String> = store.audit_trail("t1", 10).unwrap().into_iter().map(|e| e.target).collect();
        assert_eq!(left, ["4", "3"]);
    }

    #[test]
    fn an_expiry_beyond_what_a_date_holds_is_the_end_of_time() {
        assert_eq!(expiry_after(now(), Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(expiry_after(now(), Duration::from_secs(60)), now() + chrono::Duration::minutes(1));
    }
}
