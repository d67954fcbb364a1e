//! The orchestrator: one value that holds the whole core (runs, agents,
//! relics, sessions, the reaper) over one backend, one store, one policy,
//! one source of ids and one clock.
//!
//! Every front end (the native API, each seed dialect, the CLI) is built on
//! an `Arc<Orchestrator>`, so they all see the same records and limits. It
//! owns construction and sharing only; what each part does lives in its own
//! module. It knows nothing of HTTP.

use std::sync::Arc;
use std::time::Duration;

use crate::agents::{Agents, PortRange};
use crate::backend::Backend;
use crate::ids::{Clock, IdSource};
use crate::policy::Policy;
use crate::reaper::Reaper;
use crate::relics::Relics;
use crate::runs::Runs;
use crate::store::Store;

/// The knobs of the core that are not policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Host ports published for agents come from here.
    pub ports: PortRange,
    /// Runs in flight at once, over all tenants.
    pub max_runs: usize,
    /// Runs in flight at once for one tenant.
    pub max_runs_per_tenant: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { ports: PortRange::default(), max_runs: 32, max_runs_per_tenant: 8 }
    }
}

pub struct Orchestrator {
    pub backend: Arc<dyn Backend>,
    pub store: Arc<Store>,
    pub policy: Policy,
    pub clock: Arc<dyn Clock>,
    pub runs: Arc<Runs>,
    pub agents: Arc<Agents>,
    pub relics: Arc<Relics>,
    pub reaper: Arc<Reaper>,
    pub options: Options,
}

impl Orchestrator {
    pub fn new(
        backend: Arc<dyn Backend>,
        policy: Policy,
        store: Arc<Store>,
        ids: Arc<dyn IdSource>,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Self {
        let runs =
            Runs::new(backend.clone(), policy.clone(), store.clone(), ids.clone(), clock.clone(), options.max_runs)
                .with_per_tenant_limit(options.max_runs_per_tenant);
        let agents =
            Agents::new(backend.clone(), policy.clone(), store.clone(), ids.clone(), clock.clone(), options.ports);
        let relics = Relics::new(backend.clone(), policy.clone(), store.clone(), ids, clock.clone());
        let reaper = Reaper::new(backend.clone(), store.clone(), clock.clone(), policy.config.max_lifetime);
        Orchestrator {
            backend,
            store,
            policy,
            clock,
            runs: Arc::new(runs),
            agents: Arc::new(agents),
            relics: Arc::new(relics),
            reaper: Arc::new(reaper),
            options,
        }
    }

    /// How long a stop waits for SIGTERM before SIGKILL, unless asked otherwise.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
}
