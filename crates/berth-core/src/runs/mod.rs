//! Runs: one execution to completion of a tool image or a code snippet.
//!
//! A run is admitted by policy (nothing is created when it is refused),
//! recorded, created, started with its exit awaited from before the start,
//! and raced against its deadline and its cancellation. Its outcome (exit
//! code, capped stdout and stderr, the JSON result when the output is JSON,
//! resource use, and a [`RunStatus`]) is stored and outlives the container,
//! which is removed when the request asks for cleanup.
//!
//! Two paths, one record: *cold* (a container of the run's own) and
//! *pooled* (a code run that fits a warm pool execs in a ready member of
//! [`crate::pool`], which is then removed). Both are raced against the same
//! deadline and cancellation and end in the same conclusion; `path` in the
//! record says which one ran.
//!
//! Parameters reach the workload two ways: each as an environment variable
//! `PARAM_<NAME>` (the name upper-cased, anything but letters, digits and
//! `_` turned into `_`; strings as they are, other values as JSON), and all
//! together as one JSON document in `BERTH_PARAMETERS`.
//!
//! The modules, one concern each: `request` (what is asked), `record`
//! (what is kept), `admit` (policy and labels), `in_flight` (what reaches
//! a run in progress), `slots` (how many at once), `cold` and `pooled`
//! (the two paths), `race` (the deadline and cancellation both paths are
//! raced against), `conclude` (the record decided and stored), `follow`
//! (each stored update published, and waiting for the final record).

mod admit;
mod cold;
mod conclude;
mod follow;
mod in_flight;
mod pooled;
mod race;
mod record;
mod request;
mod slots;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use self::conclude::parse_result;
use self::in_flight::InFlight;
pub use self::request::{default_languages, param_var, Language, RunRequest, Workload, MAX_CODE_BYTES};
use self::slots::Slots;
use crate::context::Context;
use crate::engine::Backends;
use crate::engine::{Engine, EngineError};
use crate::metrics::{Metrics, RunLabels};
use crate::model::ids::{Clock, IdSource};
pub use crate::model::run::{RunId, RunRecord, RunStatus, RunUsage};
use crate::policy::{Policy, PolicyViolation};
use crate::pool::Pools;
use crate::spec::{ContainerSpec, Kind};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    #[error("unknown language {0:?} (known: {1})")]
    UnknownLanguage(String, String),
    #[error("{0}")]
    BadRequest(String),
    #[error("no such run: {0}")]
    NotFound(String),
    #[error("berth is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Executes runs.
pub struct Runs {
    /// The engines runs go to ([`Backends::route`]).
    backends: Backends,
    policy: Policy,
    store: Arc<Store>,
    ids: Arc<dyn IdSource>,
    clock: Arc<dyn Clock>,
    languages: BTreeMap<String, Language>,
    in_flight: InFlight,
    slots: Slots,
    /// Warm sandboxes for code runs, when configured.
    pools: Option<Arc<Pools>>,
    metrics: Arc<Metrics>,
}

impl Runs {
    pub fn new(ctx: &Context, max_concurrent: usize) -> Self {
        Runs {
            backends: ctx.backends.clone(),
            policy: ctx.policy.clone(),
            store: ctx.store.clone(),
            ids: ctx.ids.clone(),
            clock: ctx.clock.clone(),
            languages: default_languages(),
            in_flight: InFlight::default(),
            slots: Slots::new(max_concurrent),
            pools: None,
            metrics: ctx.metrics.clone(),
        }
    }

    /// The engine that runs an admitted spec (its runtime was routed at admission).
    fn engine(&self, spec: &ContainerSpec) -> &Arc<dyn Engine> {
        self.backends.of_runtime(spec.kind, spec.runtime.as_deref())
    }

    /// The engine that ran (or runs) a recorded run.
    pub(crate) fn engine_of(&self, record: &RunRecord) -> &Arc<dyn Engine> {
        self.backends.of_runtime(record.kind.unwrap_or(Kind::Tool), record.runtime.as_deref())
    }

    /// A run as the metrics count it: bounded words only.
    pub(crate) fn run_labels(&self, record: &RunRecord) -> RunLabels {
        let engine = self.engine_of(record);
        RunLabels {
            kind: record.kind.map_or("unknown", Kind::as_str).to_owned(),
            path: record.path.clone(),
            backend: engine.name().to_owned(),
            runtime: record.runtime.clone().unwrap_or_else(|| engine.runtime().to_owned()),
        }
    }

    /// Serves code runs that fit a pool from its warm members.
    pub fn with_pools(mut self, pools: Arc<Pools>) -> Self {
        self.pools = Some(pools);
        self
    }

    pub fn pools(&self) -> Option<&Arc<Pools>> {
        self.pools.as_ref()
    }

    /// Bounds the runs one tenant may have in flight (default: the global bound).
    pub fn with_per_tenant_limit(mut self, limit: usize) -> Self {
        self.slots.set_per_tenant(limit);
        self
    }

    pub fn with_languages(mut self, languages: BTreeMap<String, Language>) -> Self {
        self.languages = languages;
        self
    }

    /// The languages of the code table, by name.
    pub fn languages(&self) -> Vec<String> {
        self.languages.keys().cloned().collect()
    }

    /// The id of this berth instance (kept in its store), labelled on every run container.
    pub fn instance(&self) -> Result<String, RunError> {
        Ok(self.store.instance_id(|| self.ids.next_hex())?)
    }

    pub fn get(&self, tenant: &str, id: &RunId) -> Result<RunRecord, RunError> {
        self.store.get_run(tenant, id)?.ok_or_else(|| RunError::NotFound(id.0.clone()))
    }

    /// Runs of `tenant`, newest first.
    pub fn list(&self, tenant: &str, limit: usize) -> Result<Vec<RunRecord>, RunError> {
        Ok(self.store.list_runs(tenant, limit)?)
    }

    /// Cancels a run in progress; false when it is not running (any more).
    pub fn cancel(&self, tenant: &str, id: &RunId) -> Result<bool, RunError> {
        let run = self.get(tenant, id)?;
        if run.status.is_terminal() {
            return Ok(false);
        }
        Ok(self.in_flight.cancel(id))
    }

    /// The end marker of a pooled run in progress: what a live view of its
    /// member's output leaves out ([`crate::pool::launch::MemberOutput`]).
    pub fn live_marker(&self, id: &RunId) -> Option<String> {
        self.in_flight.marker(id)
    }

    /// Runs of `tenant` in `session` in progress (queued or running).
    pub fn active_in_session(&self, tenant: &str, session: &str) -> Vec<RunId> {
        self.in_flight.in_session(tenant, session)
    }

    /// Cancels every run of `tenant` in `session` in progress; how many. A
    /// pooled run's member carries no session label, so ending a session
    /// reaches its runs through here.
    pub fn cancel_session(&self, tenant: &str, session: &str) -> usize {
        self.in_flight.cancel_session(tenant, session)
    }

    fn audit(&self, tenant: &str, action: &str, target: &str, outcome: &str) {
        self.store.note(self.clock.now(), tenant, action, target, outcome);
    }

    /// The container spec a request would run as (a fresh run id), or the
    /// refusal; nothing is created or recorded. What `berth plan` renders.
    pub fn container_spec(&self, req: &RunRequest) -> Result<ContainerSpec, RunError> {
        Ok(self.admit(req)?.spec)
    }

    /// Runs a request to completion and returns its stored record.
    pub async fn execute(&self, req: RunRequest) -> Result<RunRecord, RunError> {
        self.execute_reporting(req, None).await
    }

    /// [`Runs::execute`], sending the record to `recorded` as soon as it is
    /// first stored (admitted, its image there, not yet started): what an
    /// answer that does not wait for the end needs. A request refused before
    /// that drops the sender unused.
    pub async fn execute_reporting(
        &self,
        req: RunRequest,
        recorded: Option<tokio::sync::oneshot::Sender<RunRecord>>,
    ) -> Result<RunRecord, RunError> {
        let admitted = self.admit(&req)?;
        let pool = self.pool_for(&req, &admitted);
        // A ready member's image is there: the check is the cold path's.
        let mut image_checked = false;
        if !pool.as_ref().is_some_and(|p| p.has_ready()) {
            self.engine(&admitted.spec).ensure_image(&admitted.spec.image).await?;
            image_checked = true;
        }
        // Only runs of an image that is there count towards its demand pool.
        if let Some(pool) = &pool {
            pool.note_run();
        }

        let mut record = RunRecord::pending(
            admitted.id.clone(),
            &req,
            admitted.spec.image.clone(),
            admitted.name.clone(),
            self.clock.now(),
        );
        record.runtime = admitted.spec.runtime.clone();
        // Out of flight again however this future ends (returned, left early, dropped).
        let flight = self.in_flight.enter(&record);
        self.store_update(&flight, &record)?;
        if let Some(recorded) = recorded {
            let _ = recorded.send(record.clone());
        }
        let _slot = self.slots.acquire(&req.tenant).await?;
        flight.admitted();

        // The pooled path, while a member is there and the run fits its pool.
        let pooled = match &pool {
            Some(pool) => self.run_pooled(pool, &admitted, &flight, &mut record).await,
            None => None,
        };
        let (spec, timeout) = (&admitted.spec, admitted.timeout);
        let driven = match pooled {
            Some(driven) => driven,
            None if image_checked => self.drive(spec, timeout, req.cleanup, &flight, &mut record).await,
            None => match self.engine(spec).ensure_image(&spec.image).await {
                Ok(()) => self.drive(spec, timeout, req.cleanup, &flight, &mut record).await,
                Err(e) => Err(e),
            },
        };
        flight.race_over();
        self.finish(record, driven, req.cleanup, &flight).await
    }
}

#[cfg(test)]
mod tests;
