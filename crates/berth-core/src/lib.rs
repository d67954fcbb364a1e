//! berth-core: the orchestration core of berth, a container orchestrator
//! for AI agents and their tools.
//!
//! What the five seed systems do with containers, done once, safely,
//! behind the [`engine`] seam. Every front end (the native API,
//! each seed dialect, the CLI) holds an `Arc<`[`Core`]`>` and calls one
//! method per use case; the engine and the store are reached only from
//! inside it. Nothing here sees an HTTP type of either side or a concrete
//! engine: this crate's dependencies name neither.
//!
//! - [`policy`] turns requests into [`spec::ContainerSpec`]s or refuses them;
//! - [`runs`] executes tool and code runs to completion and keeps their records;
//! - [`pool`] keeps warm sandboxes ahead of the runs that need them;
//! - [`agents`], [`relics`] and [`sessions`] are the long-lived objects;
//! - [`observe`] reads what a container says about itself;
//! - [`reaper`] and [`recovery`] keep lifetimes across expiry and restarts;
//! - [`store`] keeps what the engine cannot (records, audit trail);
//! - [`ids`] makes ids and tells time, injectably, for replayable scenarios;
//! - [`error`] is the one classification every use case fails with.

pub mod agents;
pub mod context;
pub mod engine;
pub mod error;
pub mod lifetime;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod output;
pub mod policy;
pub mod pool;
pub mod relics;
pub mod runs;
pub mod sandboxes;
pub mod sessions;
pub mod spec;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tracing::Instrument;

use crate::agents::{AgentDefinition, AgentRecord, Agents, PortRange};
use crate::context::Context;
use crate::engine::metered::Metered;
use crate::engine::Backends;
use crate::engine::{
    Engine, EngineErrorKind, ExecOutput, ExecRequest, Handle, LogChunk, LogRequest, LogStream, NetworkInfo, Phase,
    ProcessId, PullStream, Selector, StdioSession, Stream, TtySize, Usage, WorkloadInfo,
};
use crate::lifetime::reaper::Reaper;
use crate::metrics::Metrics;
use crate::model::ids::Clock;
use crate::model::sandbox::{SandboxRecord, SandboxState};
use crate::observe::{EndingFuture, LogsRead, Target};
use crate::policy::Policy;
use crate::pool::{PoolConfig, PoolStats, Pools};
use crate::relics::{RelicRecord, RelicRequest, Relics};
use crate::runs::{RunId, RunRecord, RunRequest, Runs};
use crate::sandboxes::{CommandOutput, SandboxConfig, SandboxRequest, Sandboxes};
use crate::sessions::{check_session_id, SessionCleanup};
use crate::spec::{labels, ContainerSpec, Kind};
use crate::store::{AuditEntry, Store};
use berth_sandbox_wire::{Entry, Process, PtySize, Spawn, WatchEvent};

pub use crate::error::{Error, ErrorKind};

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
    /// Workspace sandboxes: templates, the helper, lifetimes and bounds.
    pub sandboxes: SandboxConfig,
    /// What the start-up probes of OCI runtimes found (said by health).
    pub runtimes: Vec<RuntimeProbe>,
}

/// What a start-up probe of an OCI runtime found: whether sealed runs go
/// to it, and why not when not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeProbe {
    /// `runc`, `runsc`, or `docker-runsc` for the engine's own.
    pub runtime: String,
    /// Whether the probe run passed (sealed runs go to the runtime), or
    /// the engine's configuration registers it.
    pub ok: bool,
    /// The runtime's version, or why the probe failed.
    pub detail: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ports: PortRange::default(),
            max_runs: 32,
            max_runs_per_tenant: 8,
            pools: None,
            sandboxes: SandboxConfig::default(),
            runtimes: Vec::new(),
        }
    }
}

/// An agent with its container's phase (`None` when it has no container
/// or the engine does not know it).
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub record: AgentRecord,
    pub status: Option<Phase>,
    /// Where its published ports are reached on a cluster: the address of
    /// the node it runs on (on one machine, the host's, so none here).
    pub address: Option<String>,
}

/// A session and what belongs to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: String,
    /// Its private network, when it has one.
    pub network: Option<NetworkInfo>,
    pub containers: Vec<WorkloadInfo>,
    pub relics: Vec<RelicRecord>,
}

/// A run's output as it comes, and its record once it is final.
pub struct RunFollow {
    /// What the run writes: followed from its container while it runs,
    /// from its record once it has ended.
    pub output: LogStream,
    /// The run's final record, once it has one.
    pub end: futures_util::future::BoxFuture<'static, Result<RunRecord, Error>>,
}

/// A container's output followed until it ends.
pub struct Followed {
    pub output: LogStream,
    /// How it ended, once the output has.
    pub end: EndingFuture,
}

/// A container's usage sampled until it ends.
pub struct UsageFollow {
    pub samples: futures_util::stream::BoxStream<'static, Usage>,
    pub end: EndingFuture,
}

/// The engine, as the core sees it: which backend, and whether it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineHealth {
    pub backend: &'static str,
    /// Why the engine did not answer (or, on a cluster, why no node can
    /// take work), when it did not.
    pub error: Option<String>,
    /// A cluster's nodes, each with its state; empty for one machine.
    pub nodes: Vec<engine::NodeStatus>,
}

/// The tasks a serving core runs in the background (the reaper, the warm
/// pools' upkeep, the spare sandboxes'); [`Background::stop`] ends them.
pub struct Background {
    reaping: tokio::task::JoinHandle<()>,
    upkeep: Option<tokio::task::JoinHandle<()>>,
    spares: Option<tokio::task::JoinHandle<()>>,
    gauges: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Ends the background tasks.
    pub fn stop(self) {
        self.reaping.abort();
        self.gauges.abort();
        for task in [self.upkeep, self.spares].into_iter().flatten() {
            task.abort();
        }
    }
}

/// The core: every use case of berth, one method each, over the engines of
/// a [`Context`] (one per workload kind, one shared by default), its store,
/// policy, source of ids and clock. Its parts are private: a front end
/// cannot reach an engine or the store past it.
pub struct Core {
    backends: Backends,
    store: Arc<Store>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    runs: Arc<Runs>,
    agents: Arc<Agents>,
    relics: Arc<Relics>,
    sandboxes: Arc<Sandboxes>,
    reaper: Arc<Reaper>,
    /// The warm pools, when configured (and admitted by the policy).
    pools: Option<Arc<Pools>>,
    runtimes: Vec<RuntimeProbe>,
    metrics: Arc<Metrics>,
}

/// Containers sampled at once by [`Core::running_usage`].
pub const USAGE_AT_ONCE: usize = 8;

/// How long ending a session waits for its cancelled runs to end before
/// it removes their containers.
const CANCELLED_RUNS_END: Duration = Duration::from_secs(30);

/// How long an interactive or pooled follow waits for a run's record to
/// turn final after its output ended.
const RECORD_SETTLES: Duration = Duration::from_secs(60);

/// How long a follower waits for a run still being made to have its
/// container (a task placed on a cluster has 30 s).
const FOLLOW_PLACED_WITHIN: Duration = Duration::from_secs(60);

impl Core {
    /// How long a stop waits for SIGTERM before SIGKILL, unless asked otherwise.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

    pub fn new(ctx: Context, options: Options) -> Self {
        // Every engine call the core's parts make is counted and timed.
        let metrics = ctx.metrics.clone();
        let backends = ctx.backends.clone().map(|engine| Arc::new(Metered::new(engine, metrics.clone())));
        let ctx = Context { backends, ..ctx };
        let pools = options.pools.clone().and_then(|config| {
            Pools::new(&ctx, config)
                .inspect_err(|e| tracing::error!(%e, "warm pools refused by policy; every run takes the cold path"))
                .ok()
        });
        let mut runs = Runs::new(&ctx, options.max_runs).with_per_tenant_limit(options.max_runs_per_tenant);
        if let Some(pools) = &pools {
            runs = runs.with_pools(pools.clone());
            // Fills the pools in the background (a no-op outside a runtime:
            // the first run's take starts it then).
            pools.refill();
        }
        let agents = Agents::new(&ctx, options.ports);
        let relics = Relics::new(&ctx);
        let sandboxes = Sandboxes::new(&ctx, options.sandboxes.clone());
        let reaper = Reaper::new(&ctx, ctx.policy.config.max_lifetime);
        let Context { backends, policy, store, clock, metrics, .. } = ctx;
        Core {
            backends,
            store,
            policy,
            clock,
            metrics,
            runs: Arc::new(runs),
            agents: Arc::new(agents),
            relics: Arc::new(relics),
            sandboxes: Arc::new(sandboxes),
            reaper: Arc::new(reaper),
            pools,
            runtimes: options.runtimes,
        }
    }

    /// Starts the reaper (every `reap_every`) and the warm pools' upkeep
    /// (every `upkeep_every`: members replaced before they expire, demand
    /// pools grown, shrunk and dropped; spare sandboxes made and replaced,
    /// then also whenever one is taken; the metrics' gauges refreshed every
    /// `reap_every`).
    pub fn spawn_background(&self, reap_every: Duration, upkeep_every: Duration) -> Background {
        let (backends, store, metrics) = (self.backends.clone(), self.store.clone(), self.metrics.clone());
        // With the reaper's round, not the upkeep's: counting lists every
        // engine's workloads, which on a swarm asks the manager for each
        // service's task.
        let gauges = tokio::spawn(async move {
            let mut tick = tokio::time::interval(reap_every);
            loop {
                tick.tick().await;
                metrics.set_gauges(&count_gauges(&backends, &store).await);
            }
        });
        Background {
            gauges,
            reaping: self.reaper.clone().spawn(reap_every),
            upkeep: self.pools.as_ref().map(|p| p.spawn_upkeep(upkeep_every)),
            spares: self.sandboxes.spawn_spares(upkeep_every),
        }
    }

    /// Removes every managed container past its expiry now (the background
    /// reaper does so every `reap_every`); returns their names.
    pub async fn reap(&self) -> Result<Vec<String>, Error> {
        Ok(self.reaper.sweep().await?)
    }

    /// Ends what the core keeps running for later runs: the warm pools'
    /// members and the spare sandboxes are removed (none is made afterwards).
    pub async fn shutdown(&self) {
        if let Some(pools) = &self.pools {
            pools.shutdown().await;
        }
        self.sandboxes.close_spares().await;
    }

    // ----- the engine and the core's own state -------------------------

    /// The primary backend's name (`docker`, `oci-dry-run`, …).
    pub fn backend_name(&self) -> &'static str {
        self.backends.primary().name()
    }

    /// What the start-up probes of OCI runtimes found.
    pub fn runtimes(&self) -> &[RuntimeProbe] {
        &self.runtimes
    }

    /// Whether every engine answers now (the first that does not says why).
    pub async fn engine_health(&self) -> EngineHealth {
        let mut error = None;
        let mut nodes = Vec::new();
        for engine in self.backends.distinct() {
            if let Err(e) = engine.ping().await {
                error = Some(e.to_string());
                break;
            }
            match engine.nodes().await {
                Ok(found) => nodes.extend(found),
                Err(e) => {
                    error = Some(format!("the cluster's nodes: {e}"));
                    break;
                }
            }
        }
        if error.is_none() && !nodes.is_empty() && !nodes.iter().any(|n| n.takes_work()) {
            error = Some("no node can take work".into());
        }
        EngineHealth { backend: self.backend_name(), error, nodes }
    }

    /// The tenant's audit trail, newest first, at most `limit` entries.
    pub fn audit_trail(&self, tenant: &str, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        Ok(self.store.audit_trail(tenant, limit)?)
    }

    /// Pulls `image` for the engine of tool runs and agents (again, with
    /// `refresh`; else only when it is not there), reporting its progress
    /// as it goes: what a client shows while it waits, before it asks for
    /// a workload of an image that may be missing. Every pull is audited
    /// (`image.pull`) as it ends: `pulled`, `failed: …` (a refusal to
    /// start, or a failure partway) or `failed: cancelled` (its reader
    /// went away first).
    pub async fn pull_image(&self, tenant: &str, image: &str, refresh: bool) -> Result<PullStream, Error> {
        crate::policy::check_image(image)?;
        let mut note = PullNote {
            store: self.store.clone(),
            clock: self.clock.clone(),
            tenant: tenant.to_owned(),
            image: image.to_owned(),
            noted: false,
        };
        let progress = match self.backends.of(Kind::Tool).pull_image(image, refresh).await {
            Ok(p) => p,
            Err(e) => {
                note.end(&format!("failed: {e}"));
                return Err(e.into());
            }
        };
        Ok(futures_util::stream::unfold((progress, note), |(mut progress, mut note)| async move {
            if note.noted {
                return None;
            }
            match progress.next().await {
                Some(Ok(step)) => Some((Ok(step), (progress, note))),
                Some(Err(e)) => {
                    note.end(&format!("failed: {e}"));
                    Some((Err(e), (progress, note)))
                }
                None => {
                    note.end("pulled");
                    None
                }
            }
        })
        .boxed())
    }

    /// berth's own numbers, for a scraper to encode ([`metrics`]).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Sets the gauges of what exists now ([`count_gauges`]); the
    /// background does so every reaper round.
    pub async fn refresh_gauges(&self) {
        self.metrics.set_gauges(&count_gauges(&self.backends, &self.store).await);
    }

    /// Every warm pool's numbers, the sandbox templates' spares last
    /// (empty when pools are off and no template keeps spares).
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let mut stats = self.pools.as_ref().map(|p| p.stats()).unwrap_or_default();
        stats.extend(self.sandboxes.spare_stats());
        stats
    }

    /// Now, as the core's clock tells it (front ends turn relative times
    /// such as a timeout in seconds into expiries with it).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The most output a read keeps (the policy's output cap).
    pub fn output_cap(&self) -> usize {
        self.policy.config.output_cap
    }

    // ----- runs ----------------------------------------------------------

    /// The languages code runs may be written in.
    pub fn languages(&self) -> Vec<String> {
        self.runs.languages()
    }

    /// Runs a tool image or a code snippet to completion and returns its
    /// record. The run goes on in a task of its own, so a caller that stops
    /// waiting abandons no container half-way: the record is there to fetch.
    /// `recorded`, when given, learns the record as soon as it is stored.
    pub async fn run(
        &self,
        req: RunRequest,
        recorded: Option<tokio::sync::oneshot::Sender<RunRecord>>,
    ) -> Result<RunRecord, Error> {
        let runs = self.runs.clone();
        let task = tokio::spawn(async move { runs.execute_reporting(req, recorded).await }.in_current_span());
        Ok(task.await.map_err(|e| Error::internal(format!("the run's task failed: {e}")))??)
    }

    /// The container spec a run would be given (for plans), or the refusal.
    pub fn run_spec(&self, req: &RunRequest) -> Result<ContainerSpec, Error> {
        Ok(self.runs.container_spec(req)?)
    }

    pub fn run_record(&self, tenant: &str, id: &RunId) -> Result<RunRecord, Error> {
        Ok(self.runs.get(tenant, id)?)
    }

    /// The tenant's runs, newest first, at most `limit`.
    pub fn runs(&self, tenant: &str, limit: usize) -> Result<Vec<RunRecord>, Error> {
        Ok(self.runs.list(tenant, limit)?)
    }

    /// Cancels a run in progress; false when it had already ended.
    pub fn cancel_run(&self, tenant: &str, id: &RunId) -> Result<bool, Error> {
        Ok(self.runs.cancel(tenant, id)?)
    }

    /// A run's output followed as it comes (from its container while it
    /// runs, from its record once it has ended) and its final record.
    ///
    /// A pooled run's member writes more than the run did (its ready and
    /// end lines): that is left out. A pooled run that is ending but no
    /// longer live is read from its record once that is final.
    pub async fn follow_run(&self, tenant: &str, id: &RunId, request: &LogRequest) -> Result<RunFollow, Error> {
        let mut record = self.runs.get(tenant, id)?;
        // A run still being made (its task being placed on a cluster, its
        // image checked, its container made but not started, a member not
        // yet taken) has no output to read yet: it is waited on until it
        // runs, or has ended with its output in its record.
        let running = |r: &RunRecord| r.status == runs::RunStatus::Running || r.status.is_terminal();
        if !running(&record) {
            record = self.runs.running_record(tenant, id, FOLLOW_PLACED_WITHIN).await?;
            if !running(&record) {
                record = self.runs.final_record(tenant, id, FOLLOW_PLACED_WITHIN).await?;
            }
        }
        // A member's log is its whole life: only the view of a live marker
        // shows this run's part; without one, or on an engine whose logs do
        // not follow (the dry run), the run is read from its record once it
        // ends.
        let pooled = record.path == "pooled" && !record.status.is_terminal();
        let marker = if pooled { self.runs.live_marker(id) } else { None };
        let follows = self.runs.engine_of(&record).capabilities().follow_logs;
        if pooled && marker.is_none() || !follows && !record.status.is_terminal() {
            record = settle(&self.runs, tenant, id, record, RECORD_SETTLES).await?;
        }
        let live = !record.status.is_terminal() && !record.container_removed;
        let output = match (record.handle(), live, marker) {
            (Some(cid), true, Some(marker)) => {
                // The whole of the member's log, without timestamps: the view must see its ready line.
                let whole = LogRequest { follow: true, tail: None, since: None, timestamps: false };
                let logs = self.runs.engine_of(&record).io(&cid)?.logs(&cid, &whole).await?;
                let mut view = pool::launch::MemberOutput::new(&marker);
                logs.map(move |chunk| {
                    chunk.map(|mut c| {
                        let data = match c.stream {
                            Stream::Stderr => view.stderr(&c.data),
                            Stream::Stdout | Stream::Console => view.stdout(&c.data),
                        };
                        c.data = data.into();
                        c
                    })
                })
                .filter(|c| std::future::ready(c.as_ref().map_or(true, |c| !c.data.is_empty())))
                .boxed()
            }
            (Some(cid), true, None) => {
                let request = LogRequest { follow: true, ..request.clone() };
                self.runs.engine_of(&record).io(&cid)?.logs(&cid, &request).await?
            }
            _ => {
                let out = [(Stream::Stdout, record.stdout.clone()), (Stream::Stderr, record.stderr.clone())];
                futures_util::stream::iter(out.into_iter().filter(|(_, d)| !d.is_empty()))
                    .map(|(stream, data)| Ok(LogChunk { stream, data: data.into() }))
                    .boxed()
            }
        };
        let runs = self.runs.clone();
        let (tenant, id) = (tenant.to_owned(), id.clone());
        let end = Box::pin(async move {
            // The container's output ends a moment before its record does.
            settle(&runs, &tenant, &id, record, RECORD_SETTLES).await
        });
        Ok(RunFollow { output, end })
    }

    // ----- agents --------------------------------------------------------

    /// Defines an agent (checked by policy now) and, when `start`, starts
    /// it. The start goes on in a task of its own: a caller that stops
    /// waiting leaves no half-made agent.
    pub async fn create_agent(&self, def: AgentDefinition, start: bool) -> Result<Agent, Error> {
        let record = self.agents.define(def)?;
        if !start {
            return Ok(self.with_status(record).await);
        }
        let (tenant, id) = (record.definition.tenant.clone(), record.definition.id.clone());
        self.start_agent(&tenant, &id).await
    }

    /// Defines an agent without starting it.
    pub fn define_agent(&self, def: AgentDefinition) -> Result<AgentRecord, Error> {
        Ok(self.agents.define(def)?)
    }

    pub async fn agent(&self, tenant: &str, id: &str) -> Result<Agent, Error> {
        let record = self.agents.get(tenant, id)?;
        Ok(self.with_status(record).await)
    }

    /// The agent record alone, without asking the engine for its state.
    pub fn agent_record(&self, tenant: &str, id: &str) -> Result<AgentRecord, Error> {
        Ok(self.agents.get(tenant, id)?)
    }

    /// An agent of the tenant named by its id, its container's name, or its
    /// container id (or a prefix of at least 12 characters of it).
    pub fn find_agent(&self, tenant: &str, key: &str) -> Result<AgentRecord, Error> {
        if let Ok(r) = self.agents.get(tenant, key) {
            return Ok(r);
        }
        self.agents
            .list(tenant)?
            .into_iter()
            .find(|r| {
                r.container_name == key
                    || r.definition.name.as_deref() == Some(key)
                    || r.container_id.as_deref().is_some_and(|c| key.len() >= 12 && c.starts_with(key))
            })
            .ok_or_else(|| Error::not_found(format!("no such agent: {key}")))
    }

    /// The tenant's agents with their states (one list call for every state).
    pub async fn agents(&self, tenant: &str) -> Result<Vec<Agent>, Error> {
        let records = self.agents.list(tenant)?;
        let mine = Selector::all().kind(Kind::Agent).tenant(tenant);
        let engine = self.backends.of(Kind::Agent);
        let states: BTreeMap<String, (Phase, crate::model::handle::Placement)> =
            engine.list(&mine).await?.into_iter().map(|c| (c.handle.id.0, (c.phase, c.handle.placement))).collect();
        let addresses = node_addresses(engine).await;
        Ok(records
            .into_iter()
            .map(|mut record| {
                let listed = record.container_id.as_ref().and_then(|c| states.get(c).cloned());
                let status = listed.as_ref().map(|(phase, _)| *phase);
                if let Some((_, now)) = listed.filter(|(_, p)| p.node().is_some()) {
                    record = self.agents.moved(record, now);
                }
                let address = address_of(&record, &addresses);
                Agent { record, status, address }
            })
            .collect())
    }

    /// Starts an agent, creating its container first when it is missing,
    /// in a task of its own.
    pub async fn start_agent(&self, tenant: &str, id: &str) -> Result<Agent, Error> {
        let agents = self.agents.clone();
        let (t, i) = (tenant.to_owned(), id.to_owned());
        let started = tokio::spawn(async move { agents.start(&t, &i).await }.in_current_span())
            .await
            .map_err(|e| Error::internal(format!("the agent's start failed: {e}")))??;
        Ok(self.with_status(started).await)
    }

    /// Stops an agent: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop_agent(&self, tenant: &str, id: &str, grace: Duration) -> Result<Agent, Error> {
        let record = self.agents.stop(tenant, id, grace).await?;
        Ok(self.with_status(record).await)
    }

    pub async fn restart_agent(&self, tenant: &str, id: &str, grace: Duration) -> Result<Agent, Error> {
        let record = self.agents.restart(tenant, id, grace).await?;
        Ok(self.with_status(record).await)
    }

    /// Removes an agent: its container (killed if running), its ports, its record.
    pub async fn remove_agent(&self, tenant: &str, id: &str) -> Result<(), Error> {
        Ok(self.agents.remove(tenant, id).await?)
    }

    /// Moves an agent's expiry, within the policy's maximum lifetime.
    pub fn renew_agent(&self, tenant: &str, id: &str, expires_at: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
        self.agents.get(tenant, id)?;
        let t = self.reaper.renew(tenant, id, expires_at)?;
        self.agents.set_expiry(tenant, id, t)?;
        Ok(t)
    }

    /// Runs a command in a running agent to its end (output capped).
    pub async fn exec_agent(&self, tenant: &str, id: &str, request: &ExecRequest) -> Result<ExecOutput, Error> {
        Ok(self.agents.exec(tenant, id, request).await?)
    }

    /// Starts an interactive command in a running agent: its stdin, its
    /// output as it comes and its exit. The start is audited.
    pub async fn exec_agent_interactive(
        &self,
        tenant: &str,
        id: &str,
        request: &ExecRequest,
    ) -> Result<(StdioSession, ProcessId), Error> {
        let (engine, h) = self.container_id(tenant, &Target::Agent(id.to_owned())).await?;
        let request = ExecRequest { stdin: true, ..request.clone() };
        let session = engine.io(&h)?.exec(&h, &request).await?;
        self.store.note(self.clock.now(), tenant, "agent.exec", id, "interactive");
        Ok((session.stdio, session.process))
    }

    /// Resizes the terminal of `process`, a command started with one in
    /// agent `id` ([`Core::exec_agent_interactive`]).
    pub async fn resize_agent_exec(
        &self,
        tenant: &str,
        id: &str,
        process: &ProcessId,
        size: TtySize,
    ) -> Result<(), Error> {
        let (engine, h) = self.container_id(tenant, &Target::Agent(id.to_owned())).await?;
        Ok(engine.io(&h)?.resize(&h, process, size).await?)
    }

    /// The agent as its engine has it now; a record whose workload the
    /// engine moved (a swarm's agent made again on another node) is kept
    /// up to date, so that nothing names or routes to the old place.
    async fn with_status(&self, mut record: AgentRecord) -> Agent {
        let engine = self.backends.of(Kind::Agent);
        let state = match record.handle() {
            Some(h) => engine.inspect(&h).await.ok(),
            None => None,
        };
        let status = state.as_ref().map(|s| s.phase);
        if let Some(now) = state.and_then(|s| s.placement) {
            record = self.agents.moved(record, now);
        }
        let address = match record.placement.node() {
            Some(_) => address_of(&record, &node_addresses(engine).await),
            None => None,
        };
        Agent { record, status, address }
    }

    // ----- relics and sessions -------------------------------------------

    /// Starts a relic on its session's network and waits for its health
    /// check, in a task of its own.
    pub async fn start_relic(&self, req: RelicRequest) -> Result<RelicRecord, Error> {
        let relics = self.relics.clone();
        let task = tokio::spawn(async move { relics.start(req).await }.in_current_span());
        Ok(task.await.map_err(|e| Error::internal(format!("the relic's start failed: {e}")))??)
    }

    pub fn relic(&self, tenant: &str, id: &str) -> Result<RelicRecord, Error> {
        Ok(self.relics.get(tenant, id)?)
    }

    /// The tenant's relics, of one session or of all.
    pub fn relics(&self, tenant: &str, session: Option<&str>) -> Result<Vec<RelicRecord>, Error> {
        Ok(self.relics.list(tenant, session)?)
    }

    pub async fn stop_relic(&self, tenant: &str, id: &str) -> Result<RelicRecord, Error> {
        Ok(self.relics.stop(tenant, id).await?)
    }

    pub async fn delete_relic(&self, tenant: &str, id: &str) -> Result<(), Error> {
        Ok(self.relics.delete(tenant, id).await?)
    }

    /// Opens a session: its private network is made now (or found).
    pub async fn open_session(&self, tenant: &str, session: &str) -> Result<Session, Error> {
        self.relics.sessions().ensure_network(tenant, session).await?;
        self.store.note(self.clock.now(), tenant, "session.open", session, "ok");
        self.session_view(tenant, session).await
    }

    /// A session of the tenant's, with its network, containers and relics;
    /// not found when it has none of them.
    pub async fn session(&self, tenant: &str, session: &str) -> Result<Session, Error> {
        check_session_id(session)?;
        let s = self.session_view(tenant, session).await?;
        if s.network.is_none() && s.containers.is_empty() && s.relics.is_empty() {
            return Err(Error::not_found(format!("no such session: {session}")));
        }
        Ok(s)
    }

    /// The tenant's sessions: those with a network or a relic.
    pub async fn sessions(&self, tenant: &str) -> Result<Vec<String>, Error> {
        let mine = Selector::all().kind_word(sessions::SESSION_NETWORK).tenant(tenant);
        let mut ids: BTreeSet<String> = match self.isolating().isolation() {
            Some(isolation) => isolation
                .list_networks(&mine)
                .await?
                .into_iter()
                .filter_map(|n| n.labels.get(labels::SESSION).cloned())
                .collect(),
            None => BTreeSet::new(),
        };
        ids.extend(self.relics.list(tenant, None)?.into_iter().map(|r| r.session_id));
        Ok(ids.into_iter().collect())
    }

    async fn session_view(&self, tenant: &str, session: &str) -> Result<Session, Error> {
        let mine = Selector::all().session(session).tenant(tenant);
        let network = self.relics.sessions().network(tenant, session).await?;
        let containers = self.list_everywhere(&mine).await?;
        let relics = self.relics.list(tenant, Some(session))?;
        Ok(Session { id: session.into(), network, containers, relics })
    }

    /// Ends a session: its runs in progress, its containers, its network,
    /// its relics' records. Runs in progress are cancelled with `force` (and
    /// their ends awaited, within a bound) and count as running without it,
    /// as its running containers do (a pooled run's member carries no
    /// session label, so the runs are asked here).
    pub async fn end_session(&self, tenant: &str, session: &str, force: bool) -> Result<SessionCleanup, Error> {
        let running = self.runs.active_in_session(tenant, session).len();
        if running > 0 && !force {
            return Err(sessions::SessionError::Running { session: session.into(), running }.into());
        }
        // A cancelled run ends its container itself (killed, inspected, its
        // logs read, removed): removing the container under it would fail
        // the run with its container gone. Each is given a while to end.
        if self.runs.cancel_session(tenant, session) > 0 {
            let step = Duration::from_millis(20);
            let mut waited = Duration::ZERO;
            while !self.runs.active_in_session(tenant, session).is_empty() && waited < CANCELLED_RUNS_END {
                tokio::time::sleep(step).await;
                waited += step;
            }
        }
        Ok(self.relics.end_session(tenant, session, force).await?)
    }

    /// Removes every berth network no container uses that is older than
    /// `min_age`; returns their names.
    pub async fn sweep_networks(&self, min_age: Duration) -> Result<Vec<String>, Error> {
        Ok(self.relics.sessions().sweep_networks(min_age).await?)
    }

    /// A network of that name, made (and labelled as berth's, so the sweep
    /// may remove it once unused) when missing, as the seeds' set-up
    /// scripts make theirs.
    pub async fn ensure_named_network(&self, name: &str) -> Result<(), Error> {
        let engine = self.isolating();
        let isolation =
            engine.isolation().ok_or_else(|| Error::from(sessions::SessionError::NoIsolation(engine.name())))?;
        if isolation.list_networks(&Selector::all()).await?.iter().any(|n| n.name == name) {
            return Ok(());
        }
        let net_labels = BTreeMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::KIND.to_owned(), "seed-network".to_owned()),
        ]);
        match isolation.create_network(name, false, &net_labels).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == EngineErrorKind::Conflict => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    // ----- sandboxes -------------------------------------------------------

    /// Makes a workspace sandbox from a template and waits until its helper answers.
    pub async fn create_sandbox(&self, req: SandboxRequest) -> Result<SandboxRecord, Error> {
        let sandboxes = self.sandboxes.clone();
        let task = tokio::spawn(async move { sandboxes.create(req).await }.in_current_span());
        Ok(task.await.map_err(|e| Error::internal(format!("the sandbox's task failed: {e}")))??)
    }

    /// Makes the spare sandboxes that are missing now and replaces those
    /// about to expire (the background task does so on its own; this is
    /// for a caller that wants them ready before it goes on).
    pub async fn fill_spares(&self) {
        self.sandboxes.tend_spares().await;
    }

    /// Each template's spare sandboxes, as a warm pool's numbers.
    pub fn spare_stats(&self) -> Vec<PoolStats> {
        self.sandboxes.spare_stats()
    }

    /// A sandbox, its state checked against the engine.
    pub async fn sandbox(&self, tenant: &str, id: &str) -> Result<SandboxRecord, Error> {
        Ok(self.sandboxes.get(tenant, id).await?)
    }

    /// The tenant's sandboxes, newest first, each live one checked against the engine.
    pub async fn sandboxes(&self, tenant: &str) -> Result<Vec<SandboxRecord>, Error> {
        let mut out = Vec::new();
        for r in self.sandboxes.list(tenant)? {
            out.push(if r.state == SandboxState::Ended { r } else { self.sandboxes.get(tenant, &r.id).await? });
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(out)
    }

    pub async fn kill_sandbox(&self, tenant: &str, id: &str) -> Result<SandboxRecord, Error> {
        Ok(self.sandboxes.kill(tenant, id).await?)
    }

    pub async fn set_sandbox_timeout(&self, tenant: &str, id: &str, timeout: Duration) -> Result<SandboxRecord, Error> {
        Ok(self.sandboxes.set_timeout(tenant, id, timeout).await?)
    }

    pub async fn pause_sandbox(&self, tenant: &str, id: &str) -> Result<SandboxRecord, Error> {
        Ok(self.sandboxes.pause(tenant, id).await?)
    }

    pub async fn resume_sandbox(&self, tenant: &str, id: &str) -> Result<SandboxRecord, Error> {
        Ok(self.sandboxes.resume(tenant, id).await?)
    }

    /// Starts a process in a sandbox; it outlives the request.
    pub async fn start_process(&self, tenant: &str, id: &str, spawn: Spawn) -> Result<u32, Error> {
        Ok(self.sandboxes.spawn(tenant, id, spawn).await?)
    }

    /// A process's output (what is still kept of it, then as it comes) and its exit.
    pub async fn follow_process(&self, tenant: &str, id: &str, pid: u32) -> Result<sandboxes::link::Following, Error> {
        Ok(self.sandboxes.follow(tenant, id, pid).await?)
    }

    /// Runs a command to its end within `timeout`.
    pub async fn run_command(
        &self,
        tenant: &str,
        id: &str,
        spawn: Spawn,
        timeout: Duration,
    ) -> Result<CommandOutput, Error> {
        Ok(self.sandboxes.run(tenant, id, spawn, timeout).await?)
    }

    pub async fn processes(&self, tenant: &str, id: &str) -> Result<Vec<Process>, Error> {
        Ok(self.sandboxes.processes(tenant, id).await?)
    }

    pub async fn process_input(&self, tenant: &str, id: &str, pid: u32, data: &[u8]) -> Result<(), Error> {
        Ok(self.sandboxes.input(tenant, id, pid, data).await?)
    }

    pub async fn close_process_stdin(&self, tenant: &str, id: &str, pid: u32) -> Result<(), Error> {
        Ok(self.sandboxes.close_stdin(tenant, id, pid).await?)
    }

    pub async fn signal_process(&self, tenant: &str, id: &str, pid: u32, signal: i32) -> Result<(), Error> {
        Ok(self.sandboxes.signal(tenant, id, pid, signal).await?)
    }

    pub async fn resize_process(&self, tenant: &str, id: &str, pid: u32, size: PtySize) -> Result<(), Error> {
        Ok(self.sandboxes.resize(tenant, id, pid, size).await?)
    }

    pub async fn read_file(&self, tenant: &str, id: &str, path: &str) -> Result<Vec<u8>, Error> {
        Ok(self.sandboxes.read_file(tenant, id, path).await?)
    }

    pub async fn write_file(&self, tenant: &str, id: &str, path: &str, data: &[u8]) -> Result<Entry, Error> {
        Ok(self.sandboxes.write_file(tenant, id, path, data).await?)
    }

    pub async fn stat_path(&self, tenant: &str, id: &str, path: &str) -> Result<Entry, Error> {
        Ok(self.sandboxes.stat(tenant, id, path).await?)
    }

    pub async fn list_dir(&self, tenant: &str, id: &str, path: &str, depth: u32) -> Result<Vec<Entry>, Error> {
        Ok(self.sandboxes.list_dir(tenant, id, path, depth).await?)
    }

    pub async fn make_dir(&self, tenant: &str, id: &str, path: &str) -> Result<Entry, Error> {
        Ok(self.sandboxes.make_dir(tenant, id, path).await?)
    }

    pub async fn move_path(&self, tenant: &str, id: &str, from: &str, to: &str) -> Result<Entry, Error> {
        Ok(self.sandboxes.rename(tenant, id, from, to).await?)
    }

    pub async fn remove_path(&self, tenant: &str, id: &str, path: &str) -> Result<(), Error> {
        Ok(self.sandboxes.remove(tenant, id, path).await?)
    }

    /// A file's bytes as they come (bounded by the sandboxes' file bound).
    pub async fn read_file_stream(
        &self,
        tenant: &str,
        id: &str,
        path: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<bytes::Bytes, Error>>, Error> {
        let stream = self.sandboxes.read_stream(tenant, id, path).await?;
        Ok(stream.map(|item| item.map_err(Error::from)).boxed())
    }

    /// Writes a file from a body as it comes; in place only once all of it is.
    pub async fn write_file_stream<E: std::fmt::Display>(
        &self,
        tenant: &str,
        id: &str,
        path: &str,
        body: futures_util::stream::BoxStream<'_, Result<bytes::Bytes, E>>,
    ) -> Result<Entry, Error> {
        Ok(self.sandboxes.write_stream(tenant, id, path, body).await?)
    }

    /// A tunnel to a port a sandbox's process listens on.
    pub async fn sandbox_tunnel(&self, tenant: &str, id: &str, port: u16) -> Result<sandboxes::Tunnel, Error> {
        Ok(self.sandboxes.tunnel(tenant, id, port).await?)
    }

    /// The tenant of sandbox `id`, proven by its access token.
    pub fn sandbox_tenant(&self, id: &str, access_token: &str) -> Result<String, Error> {
        Ok(self.sandboxes.tenant_of(id, access_token)?)
    }

    /// The tenant of sandbox `id`, when `proves` accepts its access token
    /// (the in-sandbox API checks a signed URL's signature with it).
    pub fn sandbox_tenant_if(&self, id: &str, proves: impl FnOnce(&str) -> bool) -> Result<String, Error> {
        Ok(self.sandboxes.tenant_if(id, proves)?)
    }

    /// One sample of a sandbox's resource use.
    pub async fn sandbox_usage(&self, tenant: &str, id: &str) -> Result<Usage, Error> {
        Ok(self.sandboxes.usage(tenant, id).await?)
    }

    /// Watches a directory of a sandbox; returns the watch's id.
    pub async fn watch_dir(&self, tenant: &str, id: &str, path: &str, recursive: bool) -> Result<u64, Error> {
        Ok(self.sandboxes.watch(tenant, id, path, recursive).await?)
    }

    /// The changes a watch saw since it was last asked.
    pub async fn watch_events(&self, tenant: &str, id: &str, wid: u64) -> Result<Vec<WatchEvent>, Error> {
        Ok(self.sandboxes.watch_events(tenant, id, wid).await?)
    }

    /// A watch's changes as they come.
    pub async fn follow_watch(
        &self,
        tenant: &str,
        id: &str,
        wid: u64,
    ) -> Result<tokio::sync::broadcast::Receiver<Vec<WatchEvent>>, Error> {
        Ok(self.sandboxes.follow_watch(tenant, id, wid).await?)
    }

    pub async fn unwatch(&self, tenant: &str, id: &str, wid: u64) -> Result<(), Error> {
        Ok(self.sandboxes.unwatch(tenant, id, wid).await?)
    }

    // ----- observing containers --------------------------------------------

    /// The tenant's containers that berth manages, of one kind (`agent`,
    /// `tool`, …) or of all.
    pub async fn containers(&self, tenant: &str, kind: Option<Kind>) -> Result<Vec<WorkloadInfo>, Error> {
        match kind {
            Some(kind) => Ok(self.backends.of(kind).list(&Selector::all().kind(kind).tenant(tenant)).await?),
            None => self.list_everywhere(&Selector::managed().tenant(tenant)).await,
        }
    }

    /// What `selector` selects on every engine.
    async fn list_everywhere(&self, selector: &Selector) -> Result<Vec<WorkloadInfo>, Error> {
        let mut all = Vec::new();
        for engine in self.backends.distinct() {
            all.extend(engine.list(selector).await?);
        }
        Ok(all)
    }

    /// The engine that keeps the session networks (the relics').
    fn isolating(&self) -> &Arc<dyn Engine> {
        self.backends.of(Kind::Relic)
    }

    /// The engine of a workload berth listed: the one of its kind label.
    fn engine_of(&self, info: &WorkloadInfo) -> &Arc<dyn Engine> {
        let kind = info.labels.get(labels::KIND).and_then(|k| Kind::from_word(k));
        kind.map_or_else(|| self.backends.primary(), |kind| self.backends.of(kind))
    }

    /// A container of the tenant's that berth manages, named as
    /// [`Target::Managed`] names it.
    pub async fn managed_container(&self, tenant: &str, key: &str) -> Result<WorkloadInfo, Error> {
        let all = self.containers(tenant, None).await?;
        observe::find_managed(all, key).ok_or_else(|| Error::not_found(format!("no container of yours is named {key}")))
    }

    /// The engine of a target's container, and its handle.
    async fn container_id(&self, tenant: &str, target: &Target) -> Result<(Arc<dyn Engine>, Handle), Error> {
        let (h, kind, id) = match target {
            Target::Agent(id) => (self.agents.get(tenant, id)?.handle(), Kind::Agent, id),
            Target::Relic(id) => (self.relics.get(tenant, id)?.handle(), Kind::Relic, id),
            Target::Managed(key) => {
                let c = self.managed_container(tenant, key).await?;
                return Ok((self.engine_of(&c).clone(), c.handle));
            }
        };
        let h = h.ok_or_else(|| Error::not_found(format!("{} {id} has no container yet", kind.as_str())))?;
        Ok((self.backends.of(kind).clone(), h))
    }

    /// A target's logs read at once, kept to the policy's output cap.
    pub async fn read_logs(&self, tenant: &str, target: &Target, request: &LogRequest) -> Result<LogsRead, Error> {
        let (engine, cid) = self.container_id(tenant, target).await?;
        let stream = engine.io(&cid)?.logs(&cid, &LogRequest { follow: false, ..request.clone() }).await?;
        Ok(LogsRead::collect(stream, self.policy.config.output_cap).await?)
    }

    /// A target's logs followed until its container ends, and how it ended.
    pub async fn follow_logs(&self, tenant: &str, target: &Target, request: &LogRequest) -> Result<Followed, Error> {
        let (engine, cid) = self.container_id(tenant, target).await?;
        let output = engine.io(&cid)?.logs(&cid, &LogRequest { follow: true, ..request.clone() }).await?;
        Ok(Followed { output, end: observe::ending(engine, cid) })
    }

    /// A managed container of the tenant's, named as [`Target::Managed`]
    /// names it, with one sample of its resource use.
    pub async fn managed_usage(&self, tenant: &str, key: &str) -> Result<(WorkloadInfo, Usage), Error> {
        let c = self.managed_container(tenant, key).await?;
        let u = self.engine_of(&c).io(&c.handle)?.usage(&c.handle).await?;
        Ok((c, u))
    }

    /// One sample of the resource use of each of the tenant's running
    /// containers, [`USAGE_AT_ONCE`] sampled at a time; a container that
    /// ends before its sample is left out.
    pub async fn running_usage(&self, tenant: &str) -> Result<Vec<(WorkloadInfo, Usage)>, Error> {
        let running: Vec<_> =
            self.containers(tenant, None).await?.into_iter().filter(|c| c.phase == Phase::Running).collect();
        Ok(futures_util::stream::iter(running)
            .map(|c| async move {
                let usage = match self.engine_of(&c).io(&c.handle) {
                    Ok(io) => io.usage(&c.handle).await.ok(),
                    Err(_) => None,
                };
                usage.map(|u| (c, u))
            })
            .buffered(USAGE_AT_ONCE)
            .filter_map(std::future::ready)
            .collect()
            .await)
    }

    /// One sample of a target's resource use.
    pub async fn usage(&self, tenant: &str, target: &Target) -> Result<Usage, Error> {
        let (engine, cid) = self.container_id(tenant, target).await?;
        Ok(engine.io(&cid)?.usage(&cid).await?)
    }

    /// A target's resource use about once a second until it ends.
    pub async fn follow_usage(&self, tenant: &str, target: &Target) -> Result<UsageFollow, Error> {
        let (engine, cid) = self.container_id(tenant, target).await?;
        let samples = engine.io(&cid)?.usage_stream(&cid).await?;
        Ok(UsageFollow { samples, end: observe::ending(engine, cid) })
    }
}

/// The record of a run once it is final, waiting at most `at_most` for it
/// on the watch its run publishes while it is in flight.
async fn settle(
    runs: &Runs,
    tenant: &str,
    id: &RunId,
    record: RunRecord,
    at_most: Duration,
) -> Result<RunRecord, Error> {
    if record.status.is_terminal() {
        return Ok(record);
    }
    Ok(runs.final_record(tenant, id, at_most).await?)
}

/// A cluster's node names and their addresses (none for one machine, or
/// when the cluster does not say).
async fn node_addresses(engine: &Arc<dyn Engine>) -> BTreeMap<String, String> {
    let nodes = engine.nodes().await.unwrap_or_default();
    nodes.into_iter().filter_map(|n| Some((n.name, n.address?))).collect()
}

/// The address of the node agent `record` runs on, among `addresses`.
fn address_of(record: &AgentRecord, addresses: &BTreeMap<String, String>) -> Option<String> {
    addresses.get(record.placement.node()?).cloned()
}

/// What exists now: berth's workloads on every engine by kind and state,
/// open sessions, sandbox records by state, a cluster's nodes by state. An
/// engine that does not answer is left out of the count.
async fn count_gauges(backends: &Backends, store: &Store) -> metrics::Gauges {
    let mut found = metrics::Gauges::default();
    let mut workloads: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    let mut nodes: BTreeMap<(String, String), i64> = BTreeMap::new();
    for engine in backends.distinct() {
        match engine.list(&Selector::all()).await {
            Ok(listed) => {
                for w in listed {
                    let kind = w.labels.get(labels::KIND).and_then(|k| Kind::from_word(k));
                    let kind = kind.map_or("other", Kind::as_str).to_owned();
                    *workloads.entry((engine.name().to_owned(), kind, w.phase.as_str().to_owned())).or_default() += 1;
                }
            }
            Err(e) => tracing::debug!(engine = engine.name(), %e, "workloads not counted"),
        }
        if let Some(isolation) = engine.isolation() {
            let sessions = Selector::all().kind_word(sessions::SESSION_NETWORK);
            if let Ok(networks) = isolation.list_networks(&sessions).await {
                found.sessions += networks.len() as i64;
            }
        }
        for node in engine.nodes().await.unwrap_or_default() {
            *nodes.entry((node.state.as_str().to_owned(), node.availability.as_str().to_owned())).or_default() += 1;
        }
    }
    found.workloads = workloads.into_iter().collect();
    found.nodes = nodes.into_iter().collect();
    match store.count_objects_by(sandboxes::RECORD_KIND, "state") {
        Ok(by_state) => found.sandboxes = by_state,
        Err(e) => tracing::debug!(%e, "sandboxes not counted"),
    }
    found
}

/// The audit entry of one image pull, written once as the pull ends
/// however it ends: a pull whose reader goes away first is `failed:
/// cancelled`.
struct PullNote {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    tenant: String,
    image: String,
    noted: bool,
}

impl PullNote {
    fn end(&mut self, outcome: &str) {
        if !std::mem::replace(&mut self.noted, true) {
            self.store.note(self.clock.now(), &self.tenant, "image.pull", &self.image, outcome);
        }
    }
}

impl Drop for PullNote {
    fn drop(&mut self) {
        self.end("failed: cancelled");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{self, Exit, FakeEngine, Op};
    use crate::engine::EngineError;
    use crate::model::handle::Placement;
    use crate::model::ids::{FixedClock, SequentialIds};
    use crate::runs::{RunStatus, Workload};

    fn now() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    fn core() -> (Arc<FakeEngine>, Core) {
        let clock = Arc::new(FixedClock::at(now()));
        let fake = Arc::new(FakeEngine::with_clock(clock.clone()));
        let store = Arc::new(Store::in_memory().unwrap());
        let ids = Arc::new(SequentialIds::default());
        let core = Core::new(Context::new(fake.clone(), Policy::default(), store, ids, clock), Options::default());
        (fake, core)
    }

    fn tool(image: &str) -> RunRequest {
        RunRequest::new("t1", Workload::Tool { image: image.into(), command: None })
    }

    fn agent(id: &str) -> AgentDefinition {
        AgentDefinition::new("t1", id, "agent:1")
    }

    #[tokio::test]
    async fn code_runs_sent_to_their_own_engine_run_there_and_every_engine_is_listed() {
        let clock = Arc::new(FixedClock::at(now()));
        let main = Arc::new(FakeEngine::with_clock(clock.clone()));
        let code = Arc::new(FakeEngine::with_clock(clock.clone()));
        let store = Arc::new(Store::in_memory().unwrap());
        let ctx = Context::new(main.clone(), Policy::default(), store, Arc::new(SequentialIds::default()), clock)
            .with_backend(Kind::Code, code.clone());
        let core = Core::new(ctx, Options::default());

        let mut snippet = RunRequest::new("t1", Workload::Code { language: "sh".into(), code: "echo hi".into() });
        snippet.cleanup = false;
        let run = core.run(snippet, None).await.unwrap();
        assert_eq!((run.status, run.kind), (RunStatus::Succeeded, Some(Kind::Code)));
        assert_eq!((code.calls_of(Op::Create).len(), main.calls_of(Op::Create).len()), (1, 0));

        let mut tool_run = tool("tool:1");
        tool_run.cleanup = false;
        core.run(tool_run, None).await.unwrap();
        core.create_agent(agent("a1"), true).await.unwrap();
        assert_eq!((code.calls_of(Op::Create).len(), main.calls_of(Op::Create).len()), (1, 2));

        let kinds: BTreeSet<String> = core
            .containers("t1", None)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|c| c.labels.get(labels::KIND).cloned())
            .collect();
        assert_eq!(kinds, BTreeSet::from(["agent".to_owned(), "code".to_owned(), "tool".to_owned()]));
        assert_eq!(core.containers("t1", Some(Kind::Code)).await.unwrap().len(), 1);
        let logs = core.read_logs("t1", &Target::Managed(run.container_name.clone()), &LogRequest::default()).await;
        assert!(logs.is_ok(), "a code run's container is read on its own engine: {logs:?}");
    }

    #[tokio::test]
    async fn an_image_pull_ends_in_the_audit_trail_and_a_bad_reference_is_refused_before_the_engine() {
        let (fake, core) = core();
        let pulled: Vec<_> = core.pull_image("t1", "tool:1", false).await.unwrap().collect().await;
        assert!(pulled.is_empty(), "the fake reports no progress");
        assert_eq!(fake.calls_of(Op::EnsureImage).len(), 1);
        let trail = core.audit_trail("t1", 1).unwrap();
        assert_eq!((trail[0].action.as_str(), trail[0].target.as_str()), ("image.pull", "tool:1"));
        assert_eq!(trail[0].outcome, "pulled");

        let refused = core.pull_image("t1", "a b", false).await.err().unwrap();
        assert_eq!(refused.kind(), ErrorKind::Policy);
        assert_eq!(fake.calls_of(Op::EnsureImage).len(), 1, "the engine was not asked");

        fake.fail_next(Op::EnsureImage, EngineError::not_found("no such image"));
        let missing = core.pull_image("t1", "gone:1", false).await.err().unwrap();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        assert!(core.audit_trail("t1", 1).unwrap()[0].outcome.starts_with("failed: "));

        drop(core.pull_image("t1", "tool:2", false).await.unwrap());
        assert_eq!(core.audit_trail("t1", 1).unwrap()[0].outcome, "failed: cancelled", "its reader went away");
        assert_eq!(core.audit_trail("t1", 10).unwrap().len(), 3, "one entry per pull that started or failed");
    }

    #[tokio::test]
    async fn an_agent_its_engine_moved_to_another_node_is_reported_and_recorded_there() {
        let (fake, core) = core();
        let made = core.create_agent(agent("a1"), true).await.unwrap();
        assert_eq!(made.record.placement, Placement::Local);
        let h = made.record.handle().unwrap();

        fake.move_to(&h, Placement::Node { name: "n3".into() });
        let seen = core.agent("t1", "a1").await.unwrap();
        assert_eq!(seen.record.placement, Placement::Node { name: "n3".into() });
        assert_eq!(core.agent_record("t1", "a1").unwrap().placement, seen.record.placement, "the record follows");

        fake.move_to(&h, Placement::Node { name: "n2".into() });
        let listed = core.agents("t1").await.unwrap();
        assert_eq!(listed[0].record.placement, Placement::Node { name: "n2".into() }, "a list sees the move too");
        assert_eq!(core.agent_record("t1", "a1").unwrap().placement, Placement::Node { name: "n2".into() });
    }

    #[tokio::test]
    async fn a_tool_run_succeeds_with_its_output_and_result_and_its_container_removed() {
        let (fake, core) = core();
        fake.set_image_logs("tool:1", vec![fake::stderr("working\n"), fake::stdout("{\"answer\": 42}\n")]);
        let run = core.run(tool("tool:1"), None).await.unwrap();
        assert_eq!((run.status, run.exit_code), (RunStatus::Succeeded, Some(0)));
        assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("{\"answer\": 42}\n", "working\n"));
        assert_eq!(run.result, Some(serde_json::json!({"answer": 42})));
        assert!(run.container_removed);
        assert!(fake.containers().is_empty());
        assert_eq!(core.run_record("t1", &run.id).unwrap(), run, "the record outlives the container");
        assert_eq!(fake.calls_of(Op::StartWatched).len(), 1);
    }

    #[tokio::test]
    async fn a_run_whose_workload_exits_non_zero_is_failed_with_its_code() {
        let (fake, core) = core();
        fake.set_image_exit("tool:1", Exit::Code(3));
        let run = core.run(tool("tool:1"), None).await.unwrap();
        assert_eq!((run.status, run.exit_code), (RunStatus::Failed, Some(3)));
    }

    #[tokio::test]
    async fn a_run_killed_for_its_memory_is_reported_out_of_memory() {
        let (fake, core) = core();
        fake.set_image_exit("hog:1", Exit::OutOfMemory);
        let run = core.run(tool("hog:1"), None).await.unwrap();
        assert_eq!((run.status, run.exit_code), (RunStatus::OomKilled, Some(fake::KILLED)));
    }

    #[tokio::test]
    async fn a_run_whose_create_fails_is_failed_with_the_engines_reason_and_leaves_nothing() {
        let (fake, core) = core();
        fake.fail_next(Op::Create, EngineError::failed("no space left on device"));
        let run = core.run(tool("tool:1"), None).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert!(run.error.as_deref().is_some_and(|e| e.contains("no space left on device")), "{:?}", run.error);
        assert!(fake.containers().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_past_its_deadline_is_timed_out_and_its_container_killed_and_removed() {
        let (fake, core) = core();
        fake.set_image_exit("slow:1", Exit::WhenStopped);
        let req = RunRequest { timeout: Some(Duration::from_secs(2)), ..tool("slow:1") };
        let run = core.run(req, None).await.unwrap();
        assert_eq!((run.status, run.exit_code), (RunStatus::TimedOut, Some(fake::KILLED)));
        assert_eq!(fake.calls_of(Op::Kill).len(), 1);
        assert!(fake.containers().is_empty());
    }

    /// Starts a run that runs until stopped, and waits until it is running.
    async fn running(
        core: &Arc<Core>,
        fake: &FakeEngine,
        req: RunRequest,
    ) -> (RunId, tokio::task::JoinHandle<RunRecord>) {
        fake.set_image_exit(
            &match &req.workload {
                Workload::Tool { image, .. } => image.clone(),
                Workload::Code { .. } => unreachable!("tool runs only"),
            },
            Exit::WhenStopped,
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        let c = core.clone();
        let task = tokio::spawn(async move { c.run(req, Some(tx)).await.unwrap() });
        let id = rx.await.expect("the run is recorded").id;
        while core.run_record("t1", &id).unwrap().status != RunStatus::Running {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (id, task)
    }

    #[tokio::test]
    async fn a_run_cancelled_while_it_runs_is_cancelled_and_its_container_removed() {
        let (fake, core) = core();
        let core = Arc::new(core);
        let (id, task) = running(&core, &fake, tool("slow:1")).await;
        assert!(core.cancel_run("t1", &id).unwrap());
        let run = task.await.unwrap();
        assert_eq!(run.status, RunStatus::Cancelled);
        assert!(fake.containers().is_empty());
        assert!(!core.cancel_run("t1", &id).unwrap(), "an ended run is not cancelled again");
    }

    #[tokio::test]
    async fn ending_a_session_with_a_run_in_progress_is_refused_without_force_and_cancels_it_with_force() {
        let (fake, core) = core();
        let core = Arc::new(core);
        let req = RunRequest { session: Some("s1".into()), ..tool("slow:1") };
        let (_, task) = running(&core, &fake, req).await;
        let refused = core.end_session("t1", "s1", false).await.expect_err("a run is in progress");
        assert_eq!((refused.kind(), refused.code()), (ErrorKind::Conflict, "session_running"));
        assert_eq!(fake.containers().len(), 1, "nothing was removed");
        core.end_session("t1", "s1", true).await.unwrap();
        let run = task.await.unwrap();
        assert_eq!(run.status, RunStatus::Cancelled, "{:?}", run.error);
        assert!(fake.containers().is_empty());
    }

    #[tokio::test]
    async fn a_tenants_agents_come_with_their_containers_phases_from_one_list() {
        let (fake, core) = core();
        core.create_agent(agent("a1"), true).await.unwrap();
        core.create_agent(agent("a2"), false).await.unwrap();
        let stopped = core.create_agent(agent("a3"), true).await.unwrap();
        core.stop_agent("t1", "a3", Duration::ZERO).await.unwrap();
        fake.clear_calls();
        let agents = core.agents("t1").await.unwrap();
        let phases: Vec<(String, Option<Phase>)> =
            agents.into_iter().map(|a| (a.record.definition.id, a.status)).collect();
        let expected = [("a1", Some(Phase::Running)), ("a2", None), ("a3", Some(Phase::Exited))];
        assert_eq!(phases, expected.map(|(id, p)| (id.to_owned(), p)));
        assert_eq!(fake.calls().len(), 1, "one list, no inspect per agent");
        assert!(core.agents("t2").await.unwrap().is_empty());
        assert!(stopped.record.container_id.is_some());
    }

    #[tokio::test]
    async fn an_agent_is_found_by_its_id_its_container_name_or_a_long_enough_container_id_prefix() {
        let (_, core) = core();
        let a = core.create_agent(agent("a1"), true).await.unwrap().record;
        let cid = a.container_id.clone().unwrap();
        assert_eq!(core.find_agent("t1", "a1").unwrap(), a);
        assert_eq!(core.find_agent("t1", &a.container_name).unwrap(), a);
        assert_eq!(core.find_agent("t1", &cid[..12]).unwrap(), a);
        assert_eq!(core.find_agent("t1", &cid[..6]).unwrap_err().kind(), ErrorKind::NotFound, "too short a prefix");
        assert_eq!(core.find_agent("t2", "a1").unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn renewing_an_agent_moves_its_expiry_only_within_the_maximum_lifetime() {
        let (_, core) = core();
        core.create_agent(agent("a1"), false).await.unwrap();
        let t = now() + chrono::Duration::days(1);
        assert_eq!(core.renew_agent("t1", "a1", t).unwrap(), t);
        assert_eq!(core.agent_record("t1", "a1").unwrap().definition.expires_at, Some(t));
        let too_late = core.renew_agent("t1", "a1", now() + chrono::Duration::days(8)).unwrap_err();
        assert_eq!(too_late.kind(), ErrorKind::Policy);
        assert_eq!(core.agent_record("t1", "a1").unwrap().definition.expires_at, Some(t));
        assert_eq!(core.renew_agent("t1", "nobody", t).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn the_engines_health_says_why_it_did_not_answer() {
        let (fake, core) = core();
        assert_eq!(core.engine_health().await, EngineHealth { backend: "fake", error: None, nodes: Vec::new() });
        fake.fail_next(Op::Ping, EngineError::unavailable("cannot connect"));
        let health = core.engine_health().await;
        assert_eq!(health.error.as_deref(), Some("engine unavailable: cannot connect"));
    }

    #[tokio::test]
    async fn a_session_is_not_found_until_it_is_opened_and_then_shows_its_network() {
        let (fake, core) = core();
        assert_eq!(core.session("t1", "s1").await.unwrap_err().kind(), ErrorKind::NotFound);
        let s = core.open_session("t1", "s1").await.unwrap();
        assert_eq!(s.network.map(|n| n.name), Some(sessions::network_name("t1", "s1")));
        assert!(core.session("t1", "s1").await.is_ok());
        assert_eq!(core.sessions("t1").await.unwrap(), ["s1"]);
        assert!(core.sessions("t2").await.unwrap().is_empty());
        core.end_session("t1", "s1", false).await.unwrap();
        assert!(fake.networks().is_empty());
        assert_eq!(core.session("t1", "s1").await.unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn a_named_network_is_made_once_and_one_made_meanwhile_is_as_good() {
        let (fake, core) = core();
        core.ensure_named_network("seed-net").await.unwrap();
        core.ensure_named_network("seed-net").await.unwrap();
        assert_eq!(fake.calls_of(Op::CreateNetwork), ["seed-net"]);
        assert_eq!(fake.networks()[0].labels[labels::KIND], "seed-network");
        fake.fail_next(Op::CreateNetwork, EngineError::conflict("network with name other already exists"));
        core.ensure_named_network("other").await.expect("made by someone else meanwhile");
        fake.fail_next(Op::CreateNetwork, EngineError::unavailable("no daemon"));
        assert_eq!(core.ensure_named_network("third").await.unwrap_err().kind(), ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn a_relics_logs_are_read_through_the_core_to_the_output_cap() {
        let (fake, core) = core();
        fake.set_image_logs("svc:1", vec![fake::stdout("ready\n"), fake::stderr("warn\n")]);
        let req = RelicRequest {
            tenant: "t1".into(),
            relic_name: "db".into(),
            session_id: "s1".into(),
            image: "svc:1".into(),
            cmd: None,
            memory: None,
            cpu: None,
            create_private_network: false,
            health_check_endpoint: None,
            health_check_timeout: Duration::from_secs(5),
            port: 8080,
            env: BTreeMap::new(),
            expires_at: None,
        };
        let relic = core.start_relic(req).await.unwrap();
        let read = core.read_logs("t1", &Target::Relic(relic.relic_id.clone()), &LogRequest::default()).await.unwrap();
        assert_eq!(
            (read.stdout.as_str(), read.stderr.as_str(), read.logs.as_str()),
            ("ready\n", "warn\n", "ready\nwarn\n")
        );
        let missing = core.read_logs("t2", &Target::Relic(relic.relic_id), &LogRequest::default()).await;
        assert_eq!(missing.unwrap_err().kind(), ErrorKind::NotFound, "another tenant's relic is not there");
    }
}
