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
//! A pool belongs to one language of the code table and is keyed by what
//! makes two sandboxes interchangeable ([`PoolKey`]: image and the admitted
//! limit profile). Members are made through [`Policy::admit`] of a
//! [`Kind::Code`] request with an idle command, so the whole sandbox policy
//! is already applied (capabilities dropped, no-new-privileges, no network,
//! read-only root with a tmpfs, non-root user, limits). They carry
//! `io.berth.pool`, the instance and an expiry label, so recovery and the
//! reaper find them after a restart.
//!
//! This module owns the members' lifecycle (refill with bounded
//! concurrency within each pool's `max` and the memory budget, hand-out,
//! removal) and the pools' counters. It does not run anything in a member
//! and knows nothing of run records: [`crate::runs`] takes a member, hands
//! it the run's script and gives it back with [`Pools::release`], which
//! removes it. A member is never handed out twice.

pub mod launch;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

use crate::backend::{Backend, BackendError, StdioSession, Stream};
use crate::ids::{Clock, IdSource};
use crate::policy::{ContainerRequest, Policy, PolicyViolation};
use crate::spec::{labels, ContainerId, ContainerSpec, Kind, Network, Stdin};
use crate::store::{Store, StoreError};
use crate::units::{ByteSize, CpuLimit};

/// What makes two sandboxes interchangeable: a run may use a member only
/// when the spec it would run as has the member's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    pub image: String,
    pub memory: ByteSize,
    pub cpu: CpuLimit,
    pub pids: u32,
    pub network: Network,
    pub read_only_root: bool,
    pub user: Option<String>,
    pub tmpfs: BTreeMap<String, ByteSize>,
    pub cap_add: Vec<String>,
}

impl PoolKey {
    /// The key of an admitted spec. Specs with binds, ports, an entrypoint,
    /// a TTY or stdin have none: a member cannot stand in for them.
    pub fn of(spec: &ContainerSpec) -> Option<PoolKey> {
        let plain = spec.kind == Kind::Code
            && spec.binds.is_empty()
            && spec.ports.is_empty()
            && spec.entrypoint.is_none()
            && spec.working_dir.is_none()
            && spec.health.is_none()
            && !spec.tty
            && spec.stdin == Stdin::Closed;
        plain.then(|| PoolKey {
            image: spec.image.clone(),
            memory: spec.limits.memory,
            cpu: spec.limits.cpu,
            pids: spec.limits.pids,
            network: spec.network.clone(),
            read_only_root: spec.read_only_root,
            user: spec.user.clone(),
            tmpfs: spec.tmpfs.clone(),
            cap_add: spec.cap_add.clone(),
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

/// The pools' configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolConfig {
    /// By language name (of the code table).
    pub pools: BTreeMap<String, PoolSpec>,
    /// How long a member may wait for a run; carried as its expiry label.
    pub idle_lifetime: Duration,
    /// Members × their memory limit, over all pools, must fit in this.
    pub memory_budget: ByteSize,
    /// Background engine operations at once (members made and removed),
    /// over all pools, so refilling never crowds out the runs themselves.
    pub refill_concurrency: usize,
}

impl Default for PoolConfig {
    /// `python` and `sh` pools of the default images, min 2, max 4, members
    /// idle at most 10 minutes, 2 GiB across all pools, 2 made at once.
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
        }
    }
}

/// How long a started member may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("pool {0}: {1}")]
    Policy(String, PolicyViolation),
    #[error("pool {0}: min {1} is above max {2}")]
    Sizes(String, usize, usize),
    #[error("pool {0}: a member did not get ready: {1}")]
    NotReady(String, String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A started sandbox taken from a pool, for one run: its stdio attached
/// (past [`launch::READY`]) and its exit awaited.
pub struct Member {
    pub id: ContainerId,
    pub name: String,
    pub pool: String,
    pub expires_at: DateTime<Utc>,
    pub session: StdioSession,
}

impl Member {
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

/// A pool's numbers, as `GET /v1/pools` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    pub name: String,
    pub image: String,
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

struct Pool {
    spec: PoolSpec,
    key: PoolKey,
    template: ContainerSpec,
    idle: VecDeque<Member>,
    creating: usize,
    hits: u64,
    misses: u64,
    refills: u64,
    refill_failures: u64,
    lost: u64,
    last_refill_ms: Option<u64>,
}

/// Reads a started member's output up to [`launch::READY`]; what it said
/// instead when it is not ready (its shell lacks what the hand-off needs).
async fn ready(session: &mut StdioSession) -> Result<(), String> {
    use futures_util::StreamExt;
    let mut said = Vec::new();
    while said.len() < launch::READY.len() {
        match session.output.next().await {
            Some(Ok(chunk)) if chunk.stream == Stream::Stdout => said.extend_from_slice(&chunk.data),
            Some(Ok(chunk)) => return Err(String::from_utf8_lossy(&chunk.data).trim().to_owned()),
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err(format!("its output ended after {:?}", String::from_utf8_lossy(&said))),
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
    session.exit = Box::pin(async move {
        rx.await.unwrap_or_else(|_| Err(BackendError::Engine("the member's exit was not seen".into())))
    });
    session
}

/// The warm pools of one berth instance.
pub struct Pools {
    backend: Arc<dyn Backend>,
    store: Arc<Store>,
    ids: Arc<dyn IdSource>,
    clock: Arc<dyn Clock>,
    config: PoolConfig,
    pools: Mutex<BTreeMap<String, Pool>>,
    /// Bounds background engine work: creations and removals.
    background: Arc<Semaphore>,
    closed: AtomicBool,
    /// Background tasks (creations, removals) in flight.
    tasks: AtomicUsize,
    settled: Notify,
}

impl Pools {
    /// Pools as configured; nothing is created until [`Pools::refill`].
    pub fn new(
        backend: Arc<dyn Backend>,
        policy: &Policy,
        store: Arc<Store>,
        ids: Arc<dyn IdSource>,
        clock: Arc<dyn Clock>,
        config: PoolConfig,
    ) -> Result<Arc<Pools>, PoolError> {
        let mut pools = BTreeMap::new();
        for (name, spec) in &config.pools {
            if spec.min > spec.max {
                return Err(PoolError::Sizes(name.clone(), spec.min, spec.max));
            }
            let mut req = ContainerRequest::new(Kind::Code, "berth-pool-template", spec.image.clone());
            req.cmd = Some(launch::idle_command());
            let template = policy.admit(req).map_err(|e| PoolError::Policy(name.clone(), e))?;
            let key = PoolKey::of(&template).ok_or_else(|| {
                PoolError::Policy(
                    name.clone(),
                    PolicyViolation { field: "pool".into(), reason: "a member cannot be pooled".into() },
                )
            })?;
            let pool = Pool {
                spec: spec.clone(),
                key,
                template,
                idle: VecDeque::new(),
                creating: 0,
                hits: 0,
                misses: 0,
                refills: 0,
                refill_failures: 0,
                lost: 0,
                last_refill_ms: None,
            };
            pools.insert(name.clone(), pool);
        }
        Ok(Arc::new(Pools {
            backend,
            store,
            ids,
            clock,
            background: Arc::new(Semaphore::new(config.refill_concurrency.max(1))),
            config,
            pools: Mutex::new(pools),
            closed: AtomicBool::new(false),
            tasks: AtomicUsize::new(0),
            settled: Notify::new(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Pool>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
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
        let now = self.clock.now();
        let mut expired = Vec::new();
        let taken = {
            let mut pools = self.lock();
            let pool = pools.get_mut(name)?;
            if pool.key != *key {
                pool.misses += 1;
                return None;
            }
            let mut taken = None;
            while let Some(m) = pool.idle.pop_front() {
                if m.expires_at <= now {
                    expired.push(m);
                } else {
                    taken = Some(m);
                    break;
                }
            }
            match taken {
                Some(_) => pool.hits += 1,
                None => pool.misses += 1,
            }
            taken
        };
        for m in expired {
            self.remove_later(m.id);
        }
        if taken.is_none() {
            self.refill();
        }
        taken
    }

    /// A member taken but found gone before its run started: counted as
    /// lost (not as a hit) and removed, in case it is still there.
    pub fn lost(self: &Arc<Self>, member: Member) {
        if let Some(pool) = self.lock().get_mut(&member.pool) {
            pool.hits = pool.hits.saturating_sub(1);
            pool.lost += 1;
        }
        self.remove_later(member.id);
        self.refill();
    }

    /// A member whose run is over: removed in the background, never reused;
    /// its pool is refilled.
    pub fn release(self: &Arc<Self>, member: Member) {
        self.remove_later(member.id);
        self.refill();
    }

    /// Whether pool `name` has a member ready for a run whose spec has `key`.
    pub fn has_ready(&self, name: &str, key: &PoolKey) -> bool {
        let now = self.clock.now();
        self.lock().get(name).is_some_and(|p| p.key == *key && p.idle.iter().any(|m| m.expires_at > now))
    }

    fn remove_later(self: &Arc<Self>, id: ContainerId) {
        let backend = self.backend.clone();
        let background = self.background.clone();
        self.spawn(async move {
            let _permit = background.acquire().await;
            match backend.remove(&id, true).await {
                Ok(()) | Err(BackendError::NotFound(_)) => {}
                // The reaper removes it at its expiry.
                Err(e) => tracing::warn!(%e, %id, "pool member not removed"),
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

    /// Tops every pool up to its `min`, within its `max` and the memory
    /// budget, in the background (at most `refill_concurrency` at once).
    pub fn refill(self: &Arc<Self>) {
        if self.closed.load(Ordering::SeqCst) || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut planned = Vec::new();
        {
            let mut pools = self.lock();
            let mut committed: u64 =
                pools.values().map(|p| (p.idle.len() + p.creating) as u64 * p.key.memory.bytes()).sum();
            for (name, pool) in pools.iter_mut() {
                let memory = pool.key.memory.bytes();
                while pool.idle.len() + pool.creating < pool.spec.min.min(pool.spec.max)
                    && committed + memory <= self.config.memory_budget.bytes()
                {
                    pool.creating += 1;
                    committed += memory;
                    planned.push(name.clone());
                }
            }
        }
        for name in planned {
            let me = self.clone();
            self.spawn(async move { me.make(name).await });
        }
    }

    async fn make(self: Arc<Self>, name: String) {
        let permit = self.background.acquire().await;
        let started = Instant::now();
        let made = match permit {
            Ok(_permit) if !self.closed.load(Ordering::SeqCst) => Some(self.create_member(&name).await),
            _ => None,
        };
        let elapsed = started.elapsed().as_millis() as u64;
        let leftover = {
            let mut pools = self.lock();
            let closed = self.closed.load(Ordering::SeqCst);
            match pools.get_mut(&name) {
                Some(pool) => {
                    pool.creating = pool.creating.saturating_sub(1);
                    match made {
                        Some(Ok(member)) if !closed => {
                            pool.refills += 1;
                            pool.last_refill_ms = Some(elapsed);
                            pool.idle.push_back(member);
                            None
                        }
                        Some(Ok(member)) => Some(member),
                        Some(Err(e)) => {
                            pool.refill_failures += 1;
                            tracing::warn!(%e, pool = %name, "pool member not made");
                            None
                        }
                        None => None,
                    }
                }
                None => None,
            }
        };
        if let Some(member) = leftover {
            self.remove_later(member.id);
        }
    }

    async fn create_member(&self, name: &str) -> Result<Member, PoolError> {
        let mut spec = match self.lock().get(name) {
            Some(pool) => pool.template.clone(),
            None => return Err(PoolError::Sizes(name.to_owned(), 0, 0)),
        };
        let instance = self.store.instance_id(|| self.ids.next_hex())?;
        let expires_at =
            self.clock.now() + chrono::Duration::from_std(self.config.idle_lifetime).unwrap_or(chrono::Duration::MAX);
        spec.name = format!("berth-pool-{}", self.ids.next_hex());
        spec.labels.insert(labels::POOL.into(), name.to_owned());
        spec.labels.insert(labels::INSTANCE.into(), instance);
        spec.labels.insert(labels::EXPIRES_AT.into(), expires_at.to_rfc3339());
        spec.stdin = Stdin::Once;
        self.backend.ensure_image(&spec.image).await?;
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
            Ok(session) => {
                Ok(Member { id, name: spec.name, pool: name.to_owned(), expires_at, session: watched(session) })
            }
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
        self.settle().await;
        let members: Vec<Member> = self.lock().values_mut().flat_map(|p| p.idle.drain(..)).collect();
        for m in members {
            match self.backend.remove(&m.id, true).await {
                Ok(()) | Err(BackendError::NotFound(_)) => {}
                Err(e) => tracing::warn!(%e, id = %m.id, "pool member not removed"),
            }
        }
    }

    /// Every pool's numbers, by name.
    pub fn stats(&self) -> Vec<PoolStats> {
        let now = self.clock.now();
        self.lock()
            .iter()
            .map(|(name, p)| PoolStats {
                name: name.clone(),
                image: p.spec.image.clone(),
                idle: p.idle.iter().filter(|m| m.expires_at > now).count(),
                creating: p.creating,
                min: p.spec.min,
                max: p.spec.max,
                hits: p.hits,
                misses: p.misses,
                refills: p.refills,
                refill_failures: p.refill_failures,
                lost: p.lost,
                last_refill_ms: p.last_refill_ms,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(PoolKey::of(&tool), None);
    }
}
