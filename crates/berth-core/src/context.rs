//! What every part of the core stands on: the engines, the policy, the
//! store, the source of ids and the clock, passed as one value so that the
//! runs, pools, agents, relics and the reaper are built alike.

use std::sync::Arc;

use crate::engine::{Backends, Engine};
use crate::metrics::Metrics;
use crate::model::ids::{Clock, IdSource};
use crate::policy::Policy;
use crate::spec::Kind;
use crate::store::Store;

/// The parts of the core's parts.
#[derive(Clone)]
pub struct Context {
    pub backends: Backends,
    pub policy: Policy,
    pub store: Arc<Store>,
    pub ids: Arc<dyn IdSource>,
    pub clock: Arc<dyn Clock>,
    /// What the parts count ([`crate::metrics`]).
    pub metrics: Arc<Metrics>,
}

impl Context {
    /// A context with every workload kind on `engine`.
    pub fn new(
        engine: Arc<dyn Engine>,
        policy: Policy,
        store: Arc<Store>,
        ids: Arc<dyn IdSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Context { backends: Backends::shared(engine), policy, store, ids, clock, metrics: Arc::new(Metrics::default()) }
    }

    /// The same context with workloads of `kind` sent to `engine`.
    pub fn with_backend(mut self, kind: Kind, engine: Arc<dyn Engine>) -> Self {
        self.backends = self.backends.with(kind, engine);
        self
    }

    /// The same context with `engine` added for sealed runs (code and tool
    /// runs with no network); the first one added takes them by default.
    pub fn with_sealed(mut self, engine: Arc<dyn Engine>) -> Self {
        self.backends = self.backends.with_sealed(engine);
        self
    }

    /// Adds the engine under another of its own runtimes, for runs that ask
    /// for that runtime ([`Backends::with_engine_runtime`]).
    pub fn with_engine_runtime(mut self, engine: Arc<dyn Engine>) -> Self {
        self.backends = self.backends.with_engine_runtime(engine);
        self
    }

    /// The same context under another policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The engine of workloads of `kind`.
    pub fn engine(&self, kind: Kind) -> Arc<dyn Engine> {
        self.backends.of(kind).clone()
    }
}
