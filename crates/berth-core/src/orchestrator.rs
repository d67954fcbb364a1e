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
use crate::pool::{PoolConfig, Pools};
use crate::reaper::Reaper;
use crate::relics::Relics;
use crate::runs::Runs;
use crate::store::Store;

/// The knobs of the core that are not policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Host ports published for agents come from here.
    pub ports: PortRange,
    /// Runs in flight at once, over all tenants.
    pub max_runs: usize,
    /// Runs in flight at once for one tenant.
    pub max_runs_per_tenant: usize,
    /// Warm pools for code runs. Off by default, so a core built with
    /// `Options::default()` (the recorded hermetic scenarios, the CLI's
    /// one-shot `berth run`) sends exactly the cold path's requests;
    /// `berth serve` turns them on with [`PoolConfig::default`].
    pub pools: Option<PoolConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Options { ports: PortRange::default(), max_runs: 32, max_runs_per_tenant: 8, pools: None }
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
    /// The warm pools, when configured (and admitted by the policy).
    pub pools: Option<Arc<Pools>>,
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
        let pools = options.pools.clone().and_then(|config| {
            Pools::new(backend.clone(), &policy, store.clone(), ids.clone(), clock.clone(), config)
                .inspect_err(|e| tracing::error!(%e, "warm pools refused by policy; every run takes the cold path"))
                .ok()
        });
        let mut runs =
            Runs::new(backend.clone(), policy.clone(), store.clone(), ids.clone(), clock.clone(), options.max_runs)
                .with_per_tenant_limit(options.max_runs_per_tenant);
        if let Some(pools) = &pools {
            runs = runs.with_pools(pools.clone());
            // Fills the pools in the background (a no-op outside a runtime:
            // the first run's take starts it then).
            pools.refill();
        }
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
            pools,
            options,
        }
    }

    /// How long a stop waits for SIGTERM before SIGKILL, unless asked otherwise.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

    /// Ends a session: its runs in progress, its containers, its network,
    /// its relics' records. Runs in progress are cancelled with `force` and
    /// count as running without it, as its running containers do (a pooled
    /// run's member carries no session label, so the runs are asked here).
    pub async fn end_session(
        &self,
        tenant: &str,
        session: &str,
        force: bool,
    ) -> Result<crate::sessions::SessionCleanup, crate::relics::RelicError> {
        let running = self.runs.active_in_session(tenant, session).len();
        if running > 0 && !force {
            return Err(crate::sessions::SessionError::Running { session: session.into(), running }.into());
        }
        self.runs.cancel_session(tenant, session);
        self.relics.end_session(tenant, session, force).await
    }
}
