//! Spare sandboxes: each template's warm pool.
//!
//! A spare is a sandbox made ahead of need: its container made, the helper
//! copied in, started attached and greeted, all before anyone asks. A
//! creation of its template that needs no network takes one and gives it
//! its tenant, id, metadata and lifetime with no engine call at all, so a
//! pooled sandbox is ready as soon as its record is stored. A spare serves
//! one sandbox and is never handed out twice; the request's environment,
//! which the container was made without, is given to every process the
//! sandbox starts.
//!
//! A spare's container carries `io.berth.spare` (its template), the id its
//! sandbox will have and an expiry of its idle lifetime, but no tenant: the
//! reaper finds an adopted spare's renewal through its sandbox's record,
//! and recovery removes the spares of this instance that no record adopted.
//! What to make and when is decided sans IO in [`state`].

pub mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use self::state::{Now, SpareAction, SpareId};
use super::link::Link;
use super::{SandboxError, SandboxRequest, Sandboxes, RECORD_KIND};
use crate::engine::{Engine, EngineError, GoneIsDone, Selector};
use crate::model::sandbox::{SandboxRecord, SandboxState, StartPath};
use crate::policy::NetworkRequest;
use crate::pool::PoolStats;
use crate::spec::{annotations, engine_name, labels, Kind};
use crate::store::Inserted;
use crate::store::{Store, StoreError};

/// A spare is handed out only while it lives this much longer; upkeep
/// replaces it once it comes this close to its expiry.
const MARGIN: Duration = Duration::from_secs(60);

/// How long closing waits for a spare being made.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(20);

/// Removes the spares of `instance` that no sandbox record adopted (those
/// a berth left when it stopped, or whose making was cut off); returns
/// their names.
pub async fn remove_unadopted<E>(backend: &Arc<dyn Engine>, store: &Store, instance: &str) -> Result<Vec<String>, E>
where
    E: From<EngineError> + From<StoreError>,
{
    let mut removed = Vec::new();
    for c in backend.list(&Selector::managed().has(labels::SPARE).instance(instance)).await? {
        let adopted = match c.labels.get(labels::OBJECT) {
            Some(id) => store.owner(RECORD_KIND, id)?.is_some(),
            None => false,
        };
        if !adopted {
            backend.remove(&c.handle, true).await.or_gone()?;
            removed.push(c.name);
        }
    }
    Ok(removed)
}

/// A made spare: its record as it will start (no tenant yet) and the link
/// to its helper.
pub(super) struct Spare {
    record: SandboxRecord,
    link: Arc<Link>,
}

/// The spares' decisions and the spares they speak of.
pub(super) struct SparePool {
    state: state::SpareState,
    ready: BTreeMap<SpareId, Spare>,
    /// Spares to remove at the next tending (found dead, or too old).
    dying: Vec<Spare>,
}

impl SparePool {
    pub(super) fn new(sizes: &BTreeMap<String, usize>) -> SparePool {
        SparePool { state: state::SpareState::new(sizes), ready: BTreeMap::new(), dying: Vec::new() }
    }

    fn removals(&mut self, actions: Vec<SpareAction>) {
        for a in actions {
            if let SpareAction::Remove { spare } = a {
                if let Some(s) = self.ready.remove(&spare) {
                    self.dying.push(s);
                }
            }
        }
    }
}

impl Sandboxes {
    fn spare_now(&self) -> Now {
        Now { instant: Instant::now(), wall: self.clock.now() }
    }

    fn spare_pool(&self) -> std::sync::MutexGuard<'_, SparePool> {
        self.spares.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ready spare of `template` whose helper is still there, if any;
    /// the tending task is woken to replace it.
    pub(super) fn take_spare(&self, template: &str) -> Option<Spare> {
        let now = self.spare_now();
        let mut pool = self.spare_pool();
        if pool.state.is_empty() {
            return None;
        }
        let taken = loop {
            let (taken, removed) = pool.state.take(template, MARGIN, now);
            pool.removals(removed);
            let Some(id) = taken else { break None };
            match pool.ready.remove(&id) {
                Some(spare) if !spare.link.is_down() => break Some(spare),
                Some(spare) => {
                    // Its container ended while it waited: removed, and the next is tried.
                    pool.state.lost(template);
                    pool.dying.push(spare);
                }
                None => pool.state.lost(template),
            }
        };
        drop(pool);
        self.spare_wake.notify_one();
        taken
    }

    /// Gives a spare to the request's tenant: stored, renewed and linked,
    /// with no engine call.
    pub(super) fn adopt(
        &self,
        spare: Spare,
        req: SandboxRequest,
        expires_at: DateTime<Utc>,
    ) -> Result<SandboxRecord, SandboxError> {
        let Spare { mut record, link } = spare;
        record.tenant = req.tenant.clone();
        record.metadata = req.metadata;
        record.env = req.env;
        record.created_at = self.clock.now();
        record.expires_at = expires_at;
        record.state = SandboxState::Running;
        record.path = StartPath::Pooled;
        let id = record.id.clone();
        if self.store.insert_object(&id, RECORD_KIND, &req.tenant, None, &record, None)? != Inserted::Done {
            return Err(SandboxError::Invalid(format!("sandbox id {id} is taken")));
        }
        self.store.renew(&req.tenant, &id, &expires_at.to_rfc3339())?;
        self.links().insert(&id, &req.tenant, link);
        self.audit(&req.tenant, "sandbox.create", &id, "running (from a spare)");
        Ok(record)
    }

    /// Makes one spare of `template`.
    async fn make_spare(&self, template_name: &str) -> Result<Spare, SandboxError> {
        let template = self.template(template_name)?;
        let helper = self.config.helper.clone().ok_or(SandboxError::NoHelper)?;
        let hex = self.ids.next_hex();
        let id = format!("sbx{hex}");
        let mut spec =
            self.spec(&template, engine_name(Kind::Sandbox.as_str(), &hex), &BTreeMap::new(), NetworkRequest::Default)?;
        let instance = self.store.instance_id(|| self.ids.next_hex())?;
        let expires_at = self.after(self.config.spare_idle);
        spec.labels.insert(labels::SPARE.into(), template_name.to_owned());
        spec.labels.insert(labels::OBJECT.into(), id.clone());
        spec.labels.insert(labels::INSTANCE.into(), instance);
        spec.annotations.insert(annotations::EXPIRES_AT.into(), expires_at.to_rfc3339());
        let mut record = self.blank(id, template_name, &template, &spec, expires_at);
        let mut handle = None;
        let made = self
            .launch(&spec, &helper, |h| {
                handle = Some(h.clone());
                Ok(())
            })
            .await;
        match (made, handle) {
            (Ok(link), Some(h)) => {
                record.container_id = Some(h.id.0.clone());
                record.placement = h.placement;
                Ok(Spare { record, link })
            }
            (Ok(_), None) => unreachable!("a launch that succeeded has made its container"),
            (Err(e), h) => {
                if let Some(h) = h {
                    let _ = self.backend.remove(&h, true).await.or_gone();
                }
                Err(e)
            }
        }
    }

    async fn remove_spare(&self, spare: Spare) {
        if let Some(h) = spare.record.handle() {
            if let Err(e) = self.backend.remove(&h, true).await.or_gone() {
                tracing::warn!(container = %spare.record.container_name, %e, "a spare sandbox was not removed");
            }
        }
    }

    /// One round of tending: spares close to their expiry (or taken dead)
    /// removed, then what is missing made, one after another.
    pub async fn tend_spares(&self) {
        let (dying, makes) = {
            let now = self.spare_now();
            let mut pool = self.spare_pool();
            let old = pool.state.upkeep(MARGIN, now);
            pool.removals(old);
            (std::mem::take(&mut pool.dying), pool.state.refill(now))
        };
        for spare in dying {
            self.remove_spare(spare).await;
        }
        for action in makes {
            let SpareAction::Make { template, spare: id } = action else { continue };
            let started = Instant::now();
            match self.make_spare(&template).await {
                Ok(spare) => {
                    let expires_at = spare.record.expires_at;
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    let refused = {
                        let mut pool = self.spare_pool();
                        let removals = pool.state.made(id, expires_at, elapsed_ms);
                        if removals.is_empty() {
                            pool.ready.insert(id, spare);
                            None
                        } else {
                            Some(spare)
                        }
                    };
                    if let Some(spare) = refused {
                        self.remove_spare(spare).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(%template, %e, "a spare sandbox was not made");
                    self.spare_pool().state.not_made(id, self.spare_now());
                }
            }
        }
    }

    /// Tends the spares every `period`, and whenever one is taken, until
    /// the returned task is aborted (`None` when no template keeps spares).
    pub fn spawn_spares(self: &Arc<Self>, period: Duration) -> Option<tokio::task::JoinHandle<()>> {
        if self.spare_pool().state.is_empty() {
            return None;
        }
        let me = self.clone();
        Some(tokio::spawn(async move {
            loop {
                me.tend_spares().await;
                let retry = me.spare_pool().state.retry_at();
                let wait = retry.map_or(period, |at| at.saturating_duration_since(Instant::now()).min(period));
                tokio::select! {
                    _ = me.spare_wake.notified() => {}
                    _ = tokio::time::sleep(wait.max(Duration::from_millis(100))) => {}
                }
            }
        }))
    }

    /// Makes no more spares and removes them all: the ready ones, the one
    /// being made once it is (the tending task removes it; this waits up to
    /// [`CLOSE_WITHIN`] for that), and any of this instance's containers no
    /// sandbox adopted (one whose making was cut off).
    pub async fn close_spares(&self) {
        if self.spare_pool().state.is_empty() {
            return;
        }
        let ready: Vec<Spare> = {
            let mut pool = self.spare_pool();
            let ids = pool.state.close();
            let mut ready: Vec<Spare> = ids.into_iter().filter_map(|id| pool.ready.remove(&id)).collect();
            ready.append(&mut pool.dying);
            ready
        };
        for spare in ready {
            self.remove_spare(spare).await;
        }
        let deadline = Instant::now() + CLOSE_WITHIN;
        while self.spare_pool().state.making() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let swept = async {
            let instance = self.store.instance_id(|| self.ids.next_hex())?;
            remove_unadopted::<SandboxError>(&self.backend, &self.store, &instance).await
        };
        if let Err(e) = swept.await {
            tracing::warn!(%e, "spare sandboxes left unadopted were not all removed");
        }
    }

    /// Each template's spares, as a warm pool's numbers.
    pub fn spare_stats(&self) -> Vec<PoolStats> {
        let image_of = |name: &str| self.config.templates.get(name).map(|t| t.image.clone()).unwrap_or_default();
        self.spare_pool().state.stats(image_of)
    }
}
