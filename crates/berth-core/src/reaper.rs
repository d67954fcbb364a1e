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

use crate::engine::{Engine, EngineError, GoneIsDone, Selector, WorkloadInfo};
use crate::ids::Clock;
use crate::policy::ExpiryRefused;
use crate::spec::{annotations, labels};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("expires_at {requested} is past the maximum lifetime (until {limit})")]
    TooLong { requested: DateTime<Utc>, limit: DateTime<Utc> },
    #[error("expires_at {0} is in the past")]
    Past(DateTime<Utc>),
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
    backend: Arc<dyn Engine>,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    max_lifetime: Duration,
    retention: Retention,
}

/// How long the store keeps what only grows: finished runs' records, and
/// the audit trail (by count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub runs: Duration,
    pub audit_entries: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { runs: Duration::from_secs(30 * 24 * 3600), audit_entries: 100_000 }
    }
}

impl Reaper {
    pub fn new(backend: Arc<dyn Engine>, store: Arc<Store>, clock: Arc<dyn Clock>, max_lifetime: Duration) -> Self {
        Reaper { backend, store, clock, max_lifetime, retention: Retention::default() }
    }

    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Forgets finished runs past their retention and the oldest audit entries.
    pub fn prune(&self) -> Result<(usize, usize), ReaperError> {
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

    /// Removes every managed container past its expiry; returns their names.
    pub async fn sweep(&self) -> Result<Vec<String>, ReaperError> {
        let now = self.clock.now();
        let mut removed = Vec::new();
        for c in self.backend.list(&Selector::managed()).await? {
            let Some(label) = expiry_of(&c) else {
                continue;
            };
            let renewed = match (c.labels.get(labels::TENANT), c.labels.get(labels::OBJECT)) {
                (Some(tenant), Some(object)) => self.store.renewal(tenant, object)?,
                _ => None,
            };
            let expiry = renewed.as_deref().unwrap_or(label);
            let Ok(expiry) = DateTime::parse_from_rfc3339(expiry) else {
                continue;
            };
            if expiry.with_timezone(&Utc) <= now {
                self.backend.remove(&c.handle, true).await.or_gone()?;
                removed.push(c.name);
            }
        }
        Ok(removed)
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
                match self.prune() {
                    Ok((runs, audit)) if runs + audit > 0 => tracing::info!(runs, audit, "pruned the store"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%e, "store pruning failed"),
                }
            }
        })
    }
}
