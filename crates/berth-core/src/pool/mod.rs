//! Warm pools: code sandboxes created and started ahead of need, each
//! serving exactly one run.
//!
//! A member is created with its stdin open for one attach, attached, its
//! exit awaited and started, all before any run asks for it; it idles in
//! the shell of [`launch`], which reads the run's script from stdin and
//! becomes the run's process. Taking a member therefore costs no round trip
//! to the engine: the run writes its script, reads its output to the end
//! and has its exit code from the wait already in flight.
//!
//! A pool is keyed by what makes two sandboxes interchangeable
//! ([`PoolKey`]: kind, image and the admitted limit profile). *Configured*
//! pools belong to the languages of the code table and are kept at their
//! `min`. *Demand* pools belong to tool images: one starts when runs of an
//! image come often enough ([`DemandConfig`]), is sized from how often they
//! come, and goes when they stop. Members are made through
//! [`Policy::admit`] with the kind's whole policy already applied
//! (capabilities dropped, no-new-privileges, no network for sandboxes,
//! read-only root with a tmpfs, non-root user, limits). They carry
//! `io.berth.pool`, the instance and an expiry label, so recovery and the
//! reaper find them after a restart; [`Pools::upkeep`] replaces members
//! before they expire.
//!
//! This module owns the members' lifecycle (refill with bounded
//! concurrency within each pool's `max` and the memory budget, hand-out,
//! removal) and the pools' counters. What to do and when is decided sans
//! IO in [`state`]; [`Pools`] feeds it what happens (a member made or
//! failed, a run noted, a member taken) and carries out what it decides
//! against the engine. It does not run anything in a member and knows
//! nothing of run records: [`crate::runs`] takes a member, hands it the
//! run's script and gives it back with [`Pools::release`], which removes
//! it. A member is never handed out twice.

pub mod launch;
pub mod state;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

use self::state::{Action, DropReason, Failure, MemberId, Now, PoolsState};
use crate::context::Context;
use crate::engine::{Engine, EngineError, GoneIsDone, Handle, ImageCommand, StdioSession, Stream};
use crate::model::ids::{Clock, IdSource};
use crate::model::units::{ByteSize, CpuLimit};
use crate::policy::{ContainerRequest, Policy, PolicyViolation};
use crate::spec::{annotations, labels, ContainerSpec, Kind, Network, Stdin};
use crate::store::{Store, StoreError};

/// What makes two sandboxes interchangeable: a run may use a member only
/// when the spec it would run as has the member's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    pub kind: Kind,
    pub image: String,
    pub memory: ByteSize,
    pub cpu: CpuLimit,
    pub pids: u32,
    pub network: Network,
    pub read_only_root: bool,
    pub user: Option<String>,
    pub tmpfs: BTreeMap<String, ByteSize>,
    pub cap_add: Vec<String>,
    /// The runtime its members run on (the pools' engine's).
    pub runtime: Option<String>,
}

impl PoolKey {
    /// The key of an admitted spec of a code or tool run. Specs with binds,
    /// ports, an entrypoint, a TTY or stdin have none: a member cannot stand
    /// in for them.
    pub fn of(spec: &ContainerSpec) -> Option<PoolKey> {
        let plain = matches!(spec.kind, Kind::Code | Kind::Tool)
            && spec.binds.is_empty()
            && spec.ports.is_empty()
            && spec.entrypoint.is_none()
            && spec.working_dir.is_none()
            && spec.health.is_none()
            && !spec.tty
            && spec.stdin == Stdin::Closed;
        plain.then(|| PoolKey {
            kind: spec.kind,
            image: spec.image.clone(),
            memory: spec.limits.memory,
            cpu: spec.limits.cpu,
            pids: spec.limits.pids,
            network: spec.network.clone(),
            read_only_root: spec.read_only_root,
            user: spec.user.clone(),
            tmpfs: spec.tmpfs.clone(),
            cap_add: spec.cap_add.clone(),
            runtime: spec.runtime.clone(),
        })
    }
}

/// One configured pool: the image of its language and its size bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    pub image: String,
    /// Members kept ready.
    pub min: usize,
    /// Members at most (ready and being made).
    pub max: usize,
}

/// When tool images get pools of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemandConfig {
    /// Runs of one image (with one limit profile) within `window` that start
    /// its pool; the pool keeps one member per `after` runs in the window,
    /// at least one while it lasts.
    pub after: usize,
    /// How far back runs count; a pool with no run in it goes.
    pub window: Duration,
    /// Members of one demand pool at most.
    pub max: usize,
    /// Demand pools at once.
    pub pools: usize,
}

impl Default for DemandConfig {
    /// A pool after 3 runs within a minute, up to 2 members, 4 pools.
    fn default() -> Self {
        DemandConfig { after: 3, window: Duration::from_secs(60), max: 2, pools: 4 }
    }
}

/// The pools' configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolConfig {
    /// By language name (of the code table).
    pub pools: BTreeMap<String, PoolSpec>,
    /// How long a member may wait for a run; carried as its expiry label.
    pub idle_lifetime: Duration,
    /// Members ready and being made × their memory limit, over all pools,
    /// must fit in this (members serving a run are the runs' own).
    pub memory_budget: ByteSize,
    /// Background engine operations at once (members made and removed),
    /// over all pools, so refilling never crowds out the runs themselves.
    pub refill_concurrency: usize,
    /// Pools for tool images from demand; `None`: tool runs are never pooled.
    pub demand: Option<DemandConfig>,
}

impl Default for PoolConfig {
    /// `python` and `sh` pools of the default images, min 2, max 4, members
    /// idle at most 10 minutes, 2 GiB across all pools, 2 made at once; tool
    /// pools from demand as [`DemandConfig::default`].
    fn default() -> Self {
        let pools = crate::runs::default_languages()
            .into_iter()
            .map(|(name, lang)| (name, PoolSpec { image: lang.image, min: 2, max: 4 }))
            .collect();
        PoolConfig {
            pools,
            idle_lifetime: Duration::from_secs(600),
            memory_budget: ByteSize::mib(2048),
            refill_concurrency: 2,
            demand: Some(DemandConfig::default()),
        }
    }
}

/// How long a started member may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The longest a member may take to be made, pull included.
const MAKE_WITHIN: Duration = Duration::from_secs(600);

/// How long after its idle deadline a member's expiry label lies: a run
/// taken just before the deadline may last the longest timeout, and the
/// reaper must not remove the member under it.
fn label_slack(policy: &Policy) -> Duration {
    policy.config.max_timeout + Duration::from_secs(60)
}

/// The name of the demand pool of a tool image.
pub fn tool_pool(image: &str) -> String {
    format!("tool:{image}")
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("pool {0}: {1}")]
    Policy(String, PolicyViolation),
    #[error("pool {pool}: min {min} is above max {max}")]
    Sizes { pool: String, min: usize, max: usize },
    /// Members are handed their runs through an attach before start.
    #[error("the {0} backend cannot attach to a workload before starting it: no warm pools")]
    NoAttach(&'static str),
    #[error("pool {0}: its image cannot be read: {1}")]
    Image(String, EngineError),
    /// The member's shell cannot hand off (no `/bin/sh`, `cat` or `env`):
    /// the image cannot be pooled.
    #[error("pool {0}: a member did not get ready: {1}")]
    NotReady(String, String),
    #[error("pool {0}: a member was not made: {1}")]
    NotMade(String, String),
    #[error("pool {0} is gone")]
    Gone(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A started sandbox taken from a pool, for one run: its stdio attached
/// (past [`launch::READY`]) and its exit awaited.
pub struct Member {
    pub id: Handle,
    pub name: String,
    pub pool: String,
    pub expires_at: DateTime<Utc>,
    pub session: StdioSession,
    /// The member's image's own command, which a run's command completes.
    pub image_command: ImageCommand,
}

impl Member {
    /// The process a run of `cmd` would be in a container of its own: the
    /// image's entrypoint, then `cmd` or else the image's command.
    pub fn argv(&self, cmd: Option<&[String]>) -> Vec<String> {
        launch::argv(&self.image_command.entrypoint, &self.image_command.cmd, cmd)
    }

    /// Whether the member's process has already ended. Call it once, before
    /// the run is handed to it: an ended member serves nothing.
    pub fn has_ended(&mut self) -> bool {
        use futures_util::FutureExt;
        (&mut self.session.exit).now_or_never().is_some()
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("pool", &self.pool)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why a pool exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PoolOrigin {
    /// A language's pool from the configuration, kept at its min.
    Configured,
    /// A tool image's pool, started and sized by its runs within the last window.
    Demand,
    /// A sandbox template's spares (`sandbox:` and the template).
    Spares,
}

impl PoolOrigin {
    /// The origin's name, as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A pool's numbers: what `GET /v1/pools` and the metrics show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// The language the pool serves (`python`), or `tool:` and the tool image.
    pub name: String,
    pub image: String,
    pub origin: PoolOrigin,
    /// Members ready now.
    pub idle: usize,
    /// Members being made now.
    pub creating: usize,
    pub min: usize,
    pub max: usize,
    /// Runs served by a member.
    pub hits: u64,
    /// Runs of the pool's language that took the cold path (the pool was
    /// empty, or the request did not fit the pool's profile).
    pub misses: u64,
    /// Members made.
    pub refills: u64,
    /// Members that could not be made.
    pub refill_failures: u64,
    /// Members found gone (reaped, engine restarted) when taken.
    pub lost: u64,
    /// How long the last member took to be created and started.
    pub last_refill_ms: Option<u64>,
}

/// The spec members of a pool are made from (its command is set when one is
/// made), and the key of the runs they serve: `kind` and `image` under the
/// policy, with the limits of `limits` (memory, cpu) or the kind's.
fn template(
    policy: &Policy,
    kind: Kind,
    image: &str,
    limits: Option<(ByteSize, CpuLimit)>,
    runtime: &str,
) -> Result<(ContainerSpec, PoolKey), PolicyViolation> {
    let mut req = ContainerRequest::new(kind, "berth-pool-template", image);
    req.memory = limits.map(|l| l.0);
    req.cpu = limits.map(|l| l.1);
    let mut template = policy.admit(req)?;
    template.runtime = Some(runtime.to_owned());
    let key = PoolKey::of(&template)
        .ok_or_else(|| PolicyViolation { field: "pool".into(), reason: "a member cannot be pooled".into() })?;
    Ok((template, key))
}

/// Reads a started member's output up to [`launch::READY`]; what it said
/// instead when it is not ready (its shell lacks what the hand-off needs).
/// Its stderr before that (a shell's warning about a locale, say) is not an
/// answer: the first 512 bytes are kept for the error.
async fn ready(session: &mut StdioSession) -> Result<(), String> {
    use futures_util::StreamExt;
    let (mut said, mut complained) = (Vec::new(), Vec::new());
    while said.len() < launch::READY.len() {
        let why = || format!("{:?}", String::from_utf8_lossy(&complained).trim());
        match session.output.next().await {
            Some(Ok(chunk)) if chunk.stream == Stream::Stdout => said.extend_from_slice(&chunk.data),
            Some(Ok(chunk)) => {
                let room = 512usize.saturating_sub(complained.len());
                complained.extend_from_slice(&chunk.data[..chunk.data.len().min(room)]);
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => {
                return Err(format!("its output ended after {:?}, saying {}", String::from_utf8_lossy(&said), why()))
            }
        }
    }
    match said == launch::READY {
        true => Ok(()),
        false => Err(format!("it wrote {:?}", String::from_utf8_lossy(&said))),
    }
}

/// The session with its exit awaited by a task of its own, so a member that
/// ends while idle (reaped, engine restarted) is known to have ended the
/// moment it is taken: the engine's answer is read as it comes, not when
/// someone polls for it.
fn watched(mut session: StdioSession) -> StdioSession {
    let exit = std::mem::replace(&mut session.exit, Box::pin(std::future::pending()));
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = tx.send(exit.await);
    });
    session.exit =
        Box::pin(
            async move { rx.await.unwrap_or_else(|_| Err(EngineError::failed("the member's exit was not seen"))) },
        );
    session
}

/// What the pools keep under one lock: the decisions, how each pool's
/// members are made, and the ready members themselves.
struct Inner {
    state: PoolsState,
    /// By pool name: the spec its members are made from.
    templates: BTreeMap<String, ContainerSpec>,
    /// Ready members, by the id the decisions know them by.
    members: HashMap<MemberId, Member>,
}

/// What a batch of actions leaves to do once the lock is released.
#[derive(Default)]
struct Work {
    make: Vec<(String, MemberId)>,
    remove: Vec<Handle>,
    retry: Vec<Instant>,
}

impl Inner {
    /// Carries out what of `actions` needs no engine (a demand pool's
    /// template made or refused, a pool's template dropped, a ready member
    /// taken out for removal) and collects the rest. A member that cannot
    /// be made for want of a runtime is given up at once.
    fn apply(&mut self, policy: &Policy, actions: Vec<Action>, now: Now) -> Work {
        let can_spawn = tokio::runtime::Handle::try_current().is_ok();
        let mut queue = VecDeque::from(actions);
        let mut work = Work::default();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::MakeMember { pool, member } if can_spawn => work.make.push((pool, member)),
                Action::MakeMember { member, .. } => self.state.abandoned(member),
                Action::RemoveMember { member } => work.remove.extend(self.members.remove(&member).map(|m| m.id)),
                Action::OpenPool { pool, key } => {
                    // Only a run with the image's default limits has the pool's key.
                    match template(
                        policy,
                        Kind::Tool,
                        &key.image,
                        Some((key.memory, key.cpu)),
                        key.runtime.as_deref().unwrap_or_default(),
                    ) {
                        Ok((template, pool_key)) if pool_key == key => {
                            self.templates.insert(pool.clone(), template);
                            queue.extend(self.state.open(&pool, &key, now));
                            if let Some(min) = self.state.min(&pool) {
                                tracing::info!(pool = %pool, min, "tool image pooled from demand");
                            } else {
                                // Not opened after all (no longer due): nothing to make members from.
                                self.templates.remove(&pool);
                            }
                        }
                        _ => self.state.decline(&pool),
                    }
                }
                Action::DropPool { pool, why } => {
                    self.templates.remove(&pool);
                    if why == DropReason::Unused {
                        tracing::info!(pool = %pool, "demand pool gone: no runs within its window");
                    }
                }
                Action::RetryAt { at, .. } => work.retry.push(at),
            }
        }
        work
    }
}

/// The warm pools of one berth instance: the driver of [`PoolsState`],
/// which carries out its actions against the engine and tells it what
/// came of them.
pub struct Pools {
    backend: Arc<dyn Engine>,
    policy: Policy,
    store: Arc<Store>,
    ids: Arc<dyn IdSource>,
    clock: Arc<dyn Clock>,
    config: PoolConfig,
    inner: Mutex<Inner>,
    /// Bounds background creations.
    background: Arc<Semaphore>,
    /// Bounds background removals, apart, so a slow creation (a pull) never
    /// holds back the removal of used members.
    removals: Arc<Semaphore>,
    closed: AtomicBool,
    /// Background tasks (creations, removals) in flight.
    tasks: AtomicUsize,
    settled: Notify,
    /// When the earliest refill asked for by a pool that is backing off is due.
    wake: Mutex<Option<Instant>>,
}

impl Pools {
    /// The runtime the members run on.
    pub fn runtime(&self) -> &str {
        self.backend.runtime()
    }

    /// Pools as configured; nothing is created until [`Pools::refill`].
    pub fn new(ctx: &Context, config: PoolConfig) -> Result<Arc<Pools>, PoolError> {
        // Where a code run goes by default: the first sealed engine, else the code runs' engine.
        let backend = ctx.backends.sealed().first().cloned().unwrap_or_else(|| ctx.engine(Kind::Code));
        let policy = &ctx.policy;
        if !backend.capabilities().pools() {
            return Err(PoolError::NoAttach(backend.name()));
        }
        let mut templates = BTreeMap::new();
        let mut configured = Vec::new();
        for (name, spec) in &config.pools {
            if spec.min > spec.max {
                return Err(PoolError::Sizes { pool: name.clone(), min: spec.min, max: spec.max });
            }
            let (template, key) = template(policy, Kind::Code, &spec.image, None, backend.runtime())
                .map_err(|e| PoolError::Policy(name.clone(), e))?;
            templates.insert(name.clone(), template);
            configured.push((name.clone(), spec.clone(), key));
        }
        let state = PoolsState::new(config.memory_budget.bytes(), config.demand.clone(), configured);
        Ok(Arc::new(Pools {
            backend,
            policy: policy.clone(),
            store: ctx.store.clone(),
            ids: ctx.ids.clone(),
            clock: ctx.clock.clone(),
            background: Arc::new(Semaphore::new(config.refill_concurrency.max(1))),
            removals: Arc::new(Semaphore::new(config.refill_concurrency.max(1))),
            config,
            inner: Mutex::new(Inner { state, templates, members: HashMap::new() }),
            closed: AtomicBool::new(false),
            tasks: AtomicUsize::new(0),
            settled: Notify::new(),
            wake: Mutex::new(None),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The time decisions are taken at: now, by the monotonic clock and by the injected one.
    fn now(&self) -> Now {
        Now { instant: Instant::now(), wall: self.clock.now() }
    }

    /// Feeds an event to the decisions (under the lock) and carries out what
    /// they decide.
    fn decide<T>(self: &Arc<Self>, event: impl FnOnce(&mut Inner, Now) -> (T, Vec<Action>)) -> T {
        let now = self.now();
        let (answer, work) = {
            let mut inner = self.lock();
            let (answer, actions) = event(&mut inner, now);
            (answer, inner.apply(&self.policy, actions, now))
        };
        self.carry_out(work);
        answer
    }

    /// Starts what the decisions left to do: removals first, then the
    /// members to make, then the wake-up of a pool that backs off.
    fn carry_out(self: &Arc<Self>, work: Work) {
        for id in work.remove {
            self.remove_later(id);
        }
        for (pool, member) in work.make {
            let me = self.clone();
            self.spawn(async move { me.make(pool, member).await });
        }
        if let Some(at) = work.retry.into_iter().min() {
            self.wake_at(at);
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// A ready member of pool `name` for a run whose spec has `key`, or
    /// `None` (a miss: the pool is empty, or the run does not fit it).
    /// Expired members met on the way are removed. A miss starts a refill; a
    /// hit leaves it to [`Pools::release`], so making the next member does not
    /// compete with the run for the engine.
    pub fn take(self: &Arc<Self>, name: &str, key: &PoolKey) -> Option<Member> {
        self.decide(|inner, now| {
            let taken = inner.state.take(name, key, now);
            (taken.member.and_then(|id| inner.members.remove(&id)), taken.actions)
        })
    }

    /// A member taken but found gone before its run started: counted as
    /// lost and removed, in case it is still there.
    pub fn lost(self: &Arc<Self>, member: Member) {
        self.remove_later(member.id.clone());
        self.decide(|inner, now| ((), inner.state.lost(&member.pool, now)));
    }

    /// A member given back: removed in the background, never reused; its
    /// pool is refilled. `served`: a run was handed to it (a hit); else the
    /// run could not be, and went cold (a miss).
    pub fn release(self: &Arc<Self>, member: Member, served: bool) {
        self.remove_later(member.id.clone());
        self.decide(|inner, now| ((), inner.state.released(&member.pool, served, now)));
    }

    /// Whether pool `name` has a member ready for a run whose spec has `key`.
    pub fn has_ready(&self, name: &str, key: &PoolKey) -> bool {
        self.lock().state.has_ready(name, key, self.now())
    }

    fn remove_later(self: &Arc<Self>, id: Handle) {
        let backend = self.backend.clone();
        let background = self.removals.clone();
        self.spawn(async move {
            let _permit = background.acquire().await;
            if let Err(e) = backend.remove(&id, true).await.or_gone() {
                // The reaper removes it at its expiry.
                tracing::warn!(%e, %id, "pool member not removed");
            }
        });
    }

    fn spawn(self: &Arc<Self>, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        self.tasks.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        rt.spawn(async move {
            task.await;
            if me.tasks.fetch_sub(1, Ordering::SeqCst) == 1 {
                me.settled.notify_waiters();
            }
        });
    }

    /// Refills at `at`, unless a refill is due before then anyway. The
    /// waiting task holds the pools weakly and is not a task [`Pools::settle`]
    /// waits for: nothing is in flight while a pool backs off.
    fn wake_at(self: &Arc<Self>, at: Instant) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        {
            let mut wake = self.wake.lock().unwrap_or_else(|p| p.into_inner());
            // A wake-up that should have come already may have been lost with its runtime.
            if wake.is_some_and(|w| w <= at && w > Instant::now()) {
                return;
            }
            *wake = Some(at);
        }
        let me = Arc::downgrade(self);
        rt.spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            let Some(me) = me.upgrade() else { return };
            {
                let mut wake = me.wake.lock().unwrap_or_else(|p| p.into_inner());
                if *wake == Some(at) {
                    *wake = None;
                }
            }
            me.refill();
        });
    }

    /// Tops every pool up to its `min`, within its `max` and the memory
    /// budget, in the background (at most `refill_concurrency` at once).
    pub fn refill(self: &Arc<Self>) {
        if self.closed.load(Ordering::SeqCst) || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        self.decide(|inner, now| ((), inner.state.refill(now)));
    }

    async fn make(self: Arc<Self>, pool: String, member: MemberId) {
        let permit = self.background.acquire().await;
        let started = Instant::now();
        let made = match permit {
            Ok(_permit) if !self.closed.load(Ordering::SeqCst) => {
                match tokio::time::timeout(MAKE_WITHIN, self.create_member(&pool)).await {
                    Ok(made) => Some(made),
                    Err(_) => Some(Err(PoolError::NotMade(pool.clone(), format!("nothing within {MAKE_WITHIN:?}")))),
                }
            }
            _ => None,
        };
        let elapsed = started.elapsed().as_millis() as u64;
        self.decide(|inner, now| {
            let actions = match made {
                Some(Ok(made)) => {
                    let expires_at = made.expires_at;
                    inner.members.insert(member, made);
                    inner.state.made(member, expires_at, elapsed)
                }
                Some(Err(e)) => {
                    let failure = match e {
                        PoolError::NotReady(..) => Failure::NotReady,
                        _ => Failure::Other,
                    };
                    let actions = inner.state.not_made(member, failure, now);
                    if actions.iter().any(|a| matches!(a, Action::DropPool { .. })) {
                        // A tool image a member cannot be made of (no shell, …): its runs go cold.
                        tracing::warn!(%e, pool = %pool, "tool image not pooled");
                    } else if !matches!(e, PoolError::Gone(_)) {
                        let failures = inner.state.failures(&pool);
                        tracing::warn!(%e, pool = %pool, failures, "pool member not made");
                    }
                    actions
                }
                None => {
                    inner.state.abandoned(member);
                    Vec::new()
                }
            };
            ((), actions)
        });
    }

    /// Counts a tool run that a member of its image could serve (its spec
    /// has `key`), and starts the image's demand pool when its runs come
    /// often enough; a demand pool that is there is sized by its runs.
    pub fn note_tool_run(self: &Arc<Self>, key: &PoolKey) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        self.decide(|inner, now| ((), inner.state.note_run(key, now)));
    }

    /// Keeps the pools fresh: replaces members that expire within the next
    /// `margin` (so no run meets an expired one), resizes demand pools from
    /// their runs in the window, removes the members a smaller pool no
    /// longer keeps, drops demand pools whose runs stopped, and refills.
    pub fn upkeep(self: &Arc<Self>, margin: Duration) {
        self.decide(|inner, now| ((), inner.state.upkeep(margin, now)));
    }

    /// Runs [`Pools::upkeep`] every `period` until the pools shut down.
    pub fn spawn_upkeep(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            // Members are replaced when they are within two periods of their
            // expiry, or a quarter of their lifetime when that is shorter.
            let margin = (period * 2).min(me.config.idle_lifetime / 4);
            while !me.closed.load(Ordering::SeqCst) {
                tick.tick().await;
                me.upkeep(margin);
            }
        })
    }

    async fn create_member(&self, name: &str) -> Result<Member, PoolError> {
        let mut spec = match self.lock().templates.get(name) {
            Some(template) => template.clone(),
            None => return Err(PoolError::Gone(name.to_owned())),
        };
        let instance = self.store.instance_id(|| self.ids.next_hex())?;
        let now = self.clock.now();
        let after = |d: Duration| crate::lifetime::reaper::expiry_after(now, d);
        // Handed out until `expires_at`; the reaper's label lies past the longest run after it.
        let expires_at = after(self.config.idle_lifetime);
        let label = after(self.config.idle_lifetime + label_slack(&self.policy));
        spec.name = format!("berth-pool-{}", self.ids.next_hex());
        spec.labels.insert(labels::POOL.into(), name.to_owned());
        spec.labels.insert(labels::INSTANCE.into(), instance);
        spec.annotations.insert(annotations::EXPIRES_AT.into(), label.to_rfc3339());
        spec.stdin = Stdin::Once;
        // The idle shell replaces whatever the image would run.
        spec.entrypoint = Some(launch::idle_command());
        spec.cmd = None;
        self.backend.ensure_image(&spec.image).await?;
        // Read for every member: a tag pulled again may run something else.
        let image_command =
            self.backend.image_command(&spec.image).await.map_err(|e| PoolError::Image(name.into(), e))?;
        if self.closed.load(Ordering::SeqCst) {
            return Err(PoolError::Gone(name.to_owned()));
        }
        let id = self.backend.create(&spec).await?;
        let ready = async {
            let mut session = self.backend.start_attached(&id).await?;
            match tokio::time::timeout(READY_WITHIN, ready(&mut session)).await {
                Ok(Ok(())) => Ok(session),
                Ok(Err(said)) => Err(PoolError::NotReady(name.to_owned(), said)),
                Err(_) => Err(PoolError::NotReady(name.to_owned(), format!("nothing within {READY_WITHIN:?}"))),
            }
        };
        match ready.await {
            Ok(session) => Ok(Member {
                id,
                name: spec.name,
                pool: name.to_owned(),
                expires_at,
                session: watched(session),
                image_command,
            }),
            Err(e) => {
                let _ = self.backend.remove(&id, true).await;
                Err(e)
            }
        }
    }

    /// Waits until no creation or removal is in flight.
    pub async fn settle(&self) {
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.tasks.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Stops refilling, waits for what is in flight and removes every ready
    /// member. Runs in progress still release theirs.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.lock().state.close();
        self.settle().await;
        let members: Vec<Member> = {
            let mut inner = self.lock();
            let ready = inner.state.drain();
            ready.into_iter().filter_map(|id| inner.members.remove(&id)).collect()
        };
        for m in members {
            if let Err(e) = self.backend.remove(&m.id, true).await.or_gone() {
                tracing::warn!(%e, id = %m.id, "pool member not removed");
            }
        }
    }

    /// Every pool's numbers, by name.
    pub fn stats(&self) -> Vec<PoolStats> {
        self.lock().state.stats(self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stand_in::StandIn;
    use crate::model::ids::{SequentialIds, SystemClock};

    #[test]
    fn the_default_pools_are_python_and_sh_within_the_memory_budget() {
        let config = PoolConfig::default();
        assert_eq!(config.pools.keys().collect::<Vec<_>>(), ["python", "sh"]);
        let members: u64 = config.pools.values().map(|p| p.max as u64).sum();
        let policy = Policy::default();
        assert!(members * policy.config.code.memory.bytes() <= config.memory_budget.bytes());
    }

    #[test]
    fn a_code_spec_has_a_key_and_one_with_a_different_limit_has_another() {
        let policy = Policy::default();
        let admit = |memory| {
            let mut req = ContainerRequest::new(Kind::Code, "berth-x", "busybox:1.35");
            req.memory = memory;
            policy.admit(req).unwrap()
        };
        let plain = PoolKey::of(&admit(None)).unwrap();
        assert_eq!(plain, PoolKey::of(&admit(Some(policy.config.code.memory))).unwrap());
        assert_ne!(plain, PoolKey::of(&admit(Some(ByteSize::mib(64)))).unwrap());
        let tool = policy.admit(ContainerRequest::new(Kind::Tool, "berth-x", "busybox:1.35")).unwrap();
        assert_ne!(PoolKey::of(&tool), Some(plain), "a tool run never takes a code sandbox");
        let mut service = ContainerRequest::new(Kind::Tool, "berth-x", "busybox:1.35");
        service.tty = true;
        assert_eq!(PoolKey::of(&policy.admit(service).unwrap()), None);
    }

    #[tokio::test]
    async fn a_pool_whose_member_was_not_made_tries_again_by_itself_after_its_backoff() {
        let engine = Arc::new(StandIn { failing_creates: 1.into(), ..Default::default() });
        let spec = PoolSpec { image: "busybox:1.35".into(), min: 1, max: 1 };
        let config = PoolConfig { pools: BTreeMap::from([("sh".into(), spec)]), demand: None, ..Default::default() };
        let store = Arc::new(Store::in_memory().expect("an in-memory store"));
        let ids = Arc::new(SequentialIds::default());
        let pools = Pools::new(
            &crate::context::Context::new(engine.clone(), Policy::default(), store, ids, Arc::new(SystemClock)),
            config,
        )
        .expect("pools over the stand-in");
        pools.refill();
        pools.settle().await;
        let sh = || pools.stats().into_iter().find(|s| s.name == "sh").expect("the sh pool");
        assert_eq!((sh().refill_failures, sh().idle), (1, 0));
        // Nothing else refills: the retry after the first backoff (1 s) is the pool's own.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sh().idle < 1 {
            assert!(Instant::now() < deadline, "never tried again: {:?}", sh());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(engine.creates.load(Ordering::SeqCst), 2);
        pools.shutdown().await;
    }
}
