//! The pools' decisions, sans IO (quinn-proto's connection is the model).
//!
//! [`PoolsState`] decides which members to make and remove, which member a
//! run takes, when a demand pool opens, grows, shrinks and goes, and when a
//! failing pool may try again. Time comes in as an argument ([`Now`]: the
//! monotonic instant for backoff and demand windows, the injected clock's
//! time for members' expiry); what is to be done goes out as [`Action`]s.
//! [`super::Pools`] carries them out against the engine and feeds back what
//! happened (a member made, a member that failed, a run noted, a member
//! taken). Nothing here touches an engine, a clock, a lock or a task.
//!
//! Members are known by a [`MemberId`] given when they are to be made.
//! Ready members and members being made count against their pool's `max`
//! and, times their memory limit, against the budget across all pools
//! (members being made for a pool that has gone still count until they
//! are made). A member taken for a run is no longer the pools': nothing
//! here removes it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{tool_pool, DemandConfig, PoolKey, PoolOrigin, PoolSpec, PoolStats};
use crate::spec::Kind;

/// Tool images whose members could not be made, remembered at most (they
/// are never pooled again while remembered).
pub const MAX_REFUSED: usize = 256;

/// The longest a failing pool waits before it tries again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How long a pool waits after `failures` failures in a row before it
/// tries again: 1 s, 2 s, 4 s, … up to [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.clamp(1, 16).saturating_sub(1)).min(MAX_BACKOFF)
}

/// The time a decision is taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic: what backoff and demand windows are measured by.
    pub instant: Instant,
    /// The injected clock's: what members' expiry is measured by.
    pub wall: DateTime<Utc>,
}

/// A member of a pool, as the decisions know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(u64);

/// Why a pool went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A demand pool whose image no member can be made of (no shell, …).
    Refused,
    /// A demand pool with no run within its window and no member left.
    Unused,
}

/// What the driver is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make `member` for `pool`; answer with [`PoolsState::made`],
    /// [`PoolsState::not_made`] or [`PoolsState::abandoned`].
    MakeMember { pool: String, member: MemberId },
    /// Remove `member` (expired, no longer kept, or made for a pool that went).
    RemoveMember { member: MemberId },
    /// Runs with `key` come often enough for a demand pool `pool`; answer
    /// with [`PoolsState::open`] when members can be made for them, else
    /// [`PoolsState::decline`].
    OpenPool { pool: String, key: PoolKey },
    /// `pool` is gone: what the driver keeps for it can go.
    DropPool { pool: String, why: DropReason },
    /// `pool` is backing off: refill again at `at`.
    RetryAt { pool: String, at: Instant },
}

/// Why a member could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It was made but did not get ready: its image cannot hand off.
    NotReady,
    /// Anything else (the engine refused, the image could not be read, …).
    Other,
}

/// What [`PoolsState::take`] decided: the member handed out, if any, and
/// what else is to be done.
#[derive(Debug, Default)]
pub struct Taken {
    pub member: Option<MemberId>,
    pub actions: Vec<Action>,
}

/// A ready member.
#[derive(Debug, Clone, Copy)]
struct Idle {
    member: MemberId,
    expires_at: DateTime<Utc>,
}

/// A member being made: for which pool (and which opening of it), and its memory.
#[derive(Debug, Clone)]
struct Making {
    pool: String,
    generation: u64,
    memory: u64,
}

/// One pool's state.
#[derive(Debug)]
struct PoolState {
    spec: PoolSpec,
    key: PoolKey,
    /// Tells this opening of the pool from an earlier one of the same name.
    generation: u64,
    /// A demand pool's runs within the window; `None` for configured pools.
    demand: Option<VecDeque<Instant>>,
    idle: VecDeque<Idle>,
    creating: usize,
    hits: u64,
    misses: u64,
    refills: u64,
    refill_failures: u64,
    lost: u64,
    last_refill_ms: Option<u64>,
    /// Failures since the last member made, and when the next try may be.
    failures: u32,
    retry_at: Option<Instant>,
}

impl PoolState {
    fn new(spec: PoolSpec, key: PoolKey, generation: u64, demand: Option<VecDeque<Instant>>) -> PoolState {
        PoolState {
            spec,
            key,
            generation,
            demand,
            idle: VecDeque::new(),
            creating: 0,
            hits: 0,
            misses: 0,
            refills: 0,
            refill_failures: 0,
            lost: 0,
            last_refill_ms: None,
            failures: 0,
            retry_at: None,
        }
    }

    /// A demand pool's runs before `window_start` forgotten, and its `min`
    /// one member per `after` runs left (at least one while any is left).
    fn size_demand(&mut self, window_start: Instant, demand: &DemandConfig) {
        let Some(uses) = &mut self.demand else { return };
        while uses.front().is_some_and(|t| *t < window_start) {
            uses.pop_front();
        }
        self.spec.min = uses.len().div_ceil(demand.after.max(1)).min(demand.max);
    }

    fn wants(&self) -> bool {
        self.idle.len() + self.creating < self.spec.min.min(self.spec.max)
    }
}

/// The start of the demand window that ends at `now`.
fn window_start(now: Now, demand: &DemandConfig) -> Instant {
    now.instant.checked_sub(demand.window).unwrap_or(now.instant)
}

/// The decisions of all the pools of one berth instance.
#[derive(Debug)]
pub struct PoolsState {
    memory_budget: u64,
    demand: Option<DemandConfig>,
    pools: BTreeMap<String, PoolState>,
    /// Runs of tool images without a pool, by pool name, within the window
    /// (at most `4 × demand.pools` images).
    seen: BTreeMap<String, (PoolKey, VecDeque<Instant>)>,
    /// Tool images whose members could not be made.
    refused: BTreeSet<String>,
    making: BTreeMap<MemberId, Making>,
    next_member: u64,
    next_generation: u64,
    closed: bool,
}

impl PoolsState {
    /// The configured pools (name, sizes, key), within `memory_budget`
    /// bytes, with tool pools from `demand` when it is there.
    pub fn new(
        memory_budget: u64,
        demand: Option<DemandConfig>,
        configured: impl IntoIterator<Item = (String, PoolSpec, PoolKey)>,
    ) -> PoolsState {
        let mut state = PoolsState {
            memory_budget,
            demand,
            pools: BTreeMap::new(),
            seen: BTreeMap::new(),
            refused: BTreeSet::new(),
            making: BTreeMap::new(),
            next_member: 0,
            next_generation: 0,
            closed: false,
        };
        for (name, spec, key) in configured {
            let generation = state.generation();
            state.pools.insert(name, PoolState::new(spec, key, generation, None));
        }
        state
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// Memory held by ready members and members being made, in bytes.
    fn committed(&self) -> u64 {
        let idle: u64 = self.pools.values().map(|p| p.idle.len() as u64 * p.key.memory.bytes()).sum();
        idle + self.making.values().map(|m| m.memory).sum::<u64>()
    }

    /// Tops every pool up to its `min`, within its `max` and the memory
    /// budget; a pool backing off is left until its retry, which is asked for.
    pub fn refill(&mut self, now: Now) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.closed {
            return actions;
        }
        let mut committed = self.committed();
        for (name, pool) in self.pools.iter_mut() {
            if let Some(at) = pool.retry_at.filter(|at| *at > now.instant) {
                if pool.wants() {
                    actions.push(Action::RetryAt { pool: name.clone(), at });
                }
                continue;
            }
            let memory = pool.key.memory.bytes();
            while pool.wants() && committed.saturating_add(memory) <= self.memory_budget {
                self.next_member += 1;
                let member = MemberId(self.next_member);
                pool.creating += 1;
                committed += memory;
                self.making.insert(member, Making { pool: name.clone(), generation: pool.generation, memory });
                actions.push(Action::MakeMember { pool: name.clone(), member });
            }
        }
        actions
    }

    /// A ready member of pool `name` for a run whose spec has `key`, or none
    /// (a miss: the pool is empty, or the run does not fit it). Expired
    /// members met on the way are removed. A miss refills; a hit leaves
    /// that to the member's release, so making the next member does not
    /// compete with the run for the engine.
    pub fn take(&mut self, name: &str, key: &PoolKey, now: Now) -> Taken {
        let mut taken = Taken::default();
        let Some(pool) = self.pools.get_mut(name) else { return taken };
        if pool.key != *key {
            pool.misses += 1;
            return taken;
        }
        while let Some(idle) = pool.idle.pop_front() {
            if idle.expires_at <= now.wall {
                taken.actions.push(Action::RemoveMember { member: idle.member });
            } else {
                taken.member = Some(idle.member);
                break;
            }
        }
        if taken.member.is_none() {
            pool.misses += 1;
            taken.actions.extend(self.refill(now));
        }
        taken
    }

    /// Whether pool `name` has a member ready for a run whose spec has `key`.
    pub fn has_ready(&self, name: &str, key: &PoolKey, now: Now) -> bool {
        self.pools.get(name).is_some_and(|p| p.key == *key && p.idle.iter().any(|m| m.expires_at > now.wall))
    }

    /// A member taken from `pool` was found gone before its run started.
    pub fn lost(&mut self, pool: &str, now: Now) -> Vec<Action> {
        if let Some(pool) = self.pools.get_mut(pool) {
            pool.lost += 1;
        }
        self.refill(now)
    }

    /// A member taken from `pool` was given back (the driver removes it):
    /// `served`, a run was handed to it (a hit); else the run went cold (a miss).
    pub fn released(&mut self, pool: &str, served: bool, now: Now) -> Vec<Action> {
        if let Some(pool) = self.pools.get_mut(pool) {
            match served {
                true => pool.hits += 1,
                false => pool.misses += 1,
            }
        }
        self.refill(now)
    }

    /// `member` was made, ready until `expires_at`, in `elapsed_ms`.
    pub fn made(&mut self, member: MemberId, expires_at: DateTime<Utc>, elapsed_ms: u64) -> Vec<Action> {
        let remove = vec![Action::RemoveMember { member }];
        let Some(making) = self.making.remove(&member) else { return remove };
        let Some(pool) = self.pools.get_mut(&making.pool).filter(|p| p.generation == making.generation) else {
            // The pool went (a demand pool no longer used) while this member was made.
            return remove;
        };
        pool.creating = pool.creating.saturating_sub(1);
        if self.closed {
            return remove;
        }
        pool.refills += 1;
        pool.last_refill_ms = Some(elapsed_ms);
        pool.failures = 0;
        pool.retry_at = None;
        pool.idle.push_back(Idle { member, expires_at });
        Vec::new()
    }

    /// `member` could not be made. A demand pool whose image cannot hand
    /// off goes, and its image is never pooled again (while remembered);
    /// any other pool backs off.
    pub fn not_made(&mut self, member: MemberId, failure: Failure, now: Now) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(making) = self.making.remove(&member) else { return actions };
        let Some(pool) = self.pools.get_mut(&making.pool).filter(|p| p.generation == making.generation) else {
            return actions;
        };
        pool.creating = pool.creating.saturating_sub(1);
        if failure == Failure::NotReady && pool.demand.is_some() {
            let image = pool.key.image.clone();
            if let Some(gone) = self.pools.remove(&making.pool) {
                actions.extend(gone.idle.into_iter().map(|m| Action::RemoveMember { member: m.member }));
            }
            actions.push(Action::DropPool { pool: making.pool, why: DropReason::Refused });
            if self.refused.len() >= MAX_REFUSED {
                self.refused.pop_first();
            }
            self.refused.insert(image);
            return actions;
        }
        pool.refill_failures += 1;
        pool.failures = pool.failures.saturating_add(1);
        let at = now.instant.checked_add(backoff(pool.failures)).unwrap_or(now.instant);
        pool.retry_at = Some(at);
        actions.push(Action::RetryAt { pool: making.pool, at });
        actions
    }

    /// `member` was never tried (shutting down): it is no longer being made.
    pub fn abandoned(&mut self, member: MemberId) {
        if let Some(making) = self.making.remove(&member) {
            if let Some(pool) = self.pools.get_mut(&making.pool).filter(|p| p.generation == making.generation) {
                pool.creating = pool.creating.saturating_sub(1);
            }
        }
    }

    /// Failures in a row of pool `name`'s members.
    pub fn failures(&self, name: &str) -> u32 {
        self.pools.get(name).map_or(0, |p| p.failures)
    }

    /// Counts a tool run that a member of its image could serve (its spec
    /// has `key`): a demand pool that is there is sized by its runs; an
    /// image whose runs come often enough is offered a pool of its own.
    pub fn note_run(&mut self, key: &PoolKey, now: Now) -> Vec<Action> {
        let Some(demand) = self.demand.clone() else { return Vec::new() };
        if key.kind != Kind::Tool || self.closed {
            return Vec::new();
        }
        let name = tool_pool(&key.image);
        let window_start = window_start(now, &demand);
        if let Some(pool) = self.pools.get_mut(&name) {
            if pool.key == *key {
                if let Some(uses) = &mut pool.demand {
                    uses.push_back(now.instant);
                    // Sizing needs no more than `after × max` runs.
                    if uses.len() > demand.after.max(1) * demand.max.max(1) {
                        uses.pop_front();
                    }
                    pool.size_demand(window_start, &demand);
                }
            }
            return self.refill(now);
        }
        if self.refused.contains(&key.image) {
            return Vec::new();
        }
        let mut actions = Vec::new();
        let entry = self.seen.entry(name.clone()).or_insert_with(|| (key.clone(), VecDeque::new()));
        if entry.0 != *key {
            *entry = (key.clone(), VecDeque::new());
        }
        entry.1.push_back(now.instant);
        while entry.1.front().is_some_and(|t| *t < window_start) || entry.1.len() > demand.after.max(1) {
            entry.1.pop_front();
        }
        if entry.1.len() >= demand.after.max(1) && self.demand_pools() < demand.pools {
            actions.push(Action::OpenPool { pool: name, key: key.clone() });
        } else if self.seen.len() > 4 * demand.pools.max(1) {
            // Forget the image whose last run is oldest.
            let oldest = self.seen.iter().min_by_key(|(_, (_, uses))| uses.back().copied()).map(|(n, _)| n.clone());
            if let Some(oldest) = oldest {
                self.seen.remove(&oldest);
            }
        }
        actions.extend(self.refill(now));
        actions
    }

    fn demand_pools(&self) -> usize {
        self.pools.values().filter(|p| p.demand.is_some()).count()
    }

    /// Opens demand pool `name` for runs with `key`, as [`Action::OpenPool`]
    /// asked, sized by the runs seen so far; nothing when it is no longer
    /// due (already open, too many demand pools, shutting down).
    pub fn open(&mut self, name: &str, key: &PoolKey, now: Now) -> Vec<Action> {
        let Some(demand) = self.demand.clone() else { return Vec::new() };
        if self.closed || self.pools.contains_key(name) || self.demand_pools() >= demand.pools {
            return Vec::new();
        }
        let uses = match self.seen.remove(name) {
            Some((seen, uses)) if seen == *key => uses,
            _ => VecDeque::new(),
        };
        let spec = PoolSpec { image: key.image.clone(), min: 0, max: demand.max };
        let generation = self.generation();
        let mut pool = PoolState::new(spec, key.clone(), generation, Some(uses));
        pool.size_demand(window_start(now, &demand), &demand);
        self.pools.insert(name.to_owned(), pool);
        self.refill(now)
    }

    /// Declines demand pool `name` ([`Action::OpenPool`]): its runs so far are forgotten.
    pub fn decline(&mut self, name: &str) {
        self.seen.remove(name);
    }

    /// The minimum of pool `name` (a demand pool's, as its runs size it).
    pub fn min(&self, name: &str) -> Option<usize> {
        self.pools.get(name).map(|p| p.spec.min)
    }

    /// Keeps the pools fresh: replaces members that expire within `margin`
    /// of now (so no run meets an expired one), resizes demand pools from
    /// their runs in the window, removes the members a smaller pool no
    /// longer keeps, drops demand pools whose runs stopped, and refills.
    pub fn upkeep(&mut self, margin: Duration, now: Now) -> Vec<Action> {
        let soon = now.wall + chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::zero());
        let mut actions = Vec::new();
        for pool in self.pools.values_mut() {
            let (stale, fresh): (VecDeque<Idle>, VecDeque<Idle>) =
                pool.idle.drain(..).partition(|m| m.expires_at <= soon);
            pool.idle = fresh;
            actions.extend(stale.into_iter().map(|m| Action::RemoveMember { member: m.member }));
            if let (Some(demand), Some(_)) = (&self.demand, &pool.demand) {
                pool.size_demand(window_start(now, demand), demand);
                // The oldest go first: they expire soonest.
                while pool.idle.len() > pool.spec.min {
                    actions.extend(pool.idle.pop_front().map(|m| Action::RemoveMember { member: m.member }));
                }
            }
        }
        let unused: Vec<String> = self
            .pools
            .iter()
            .filter(|(_, p)| p.demand.as_ref().is_some_and(VecDeque::is_empty) && p.idle.is_empty() && p.creating == 0)
            .map(|(name, _)| name.clone())
            .collect();
        for pool in unused {
            self.pools.remove(&pool);
            actions.push(Action::DropPool { pool, why: DropReason::Unused });
        }
        actions.extend(self.refill(now));
        actions
    }

    /// Stops refilling and opening pools; members made from now on are removed.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Every ready member, handed over for removal.
    pub fn drain(&mut self) -> Vec<MemberId> {
        self.pools.values_mut().flat_map(|p| p.idle.drain(..)).map(|m| m.member).collect()
    }

    /// Every pool's numbers, by name.
    pub fn stats(&self, now: Now) -> Vec<PoolStats> {
        self.pools
            .iter()
            .map(|(name, p)| PoolStats {
                name: name.clone(),
                image: p.spec.image.clone(),
                origin: if p.demand.is_some() { PoolOrigin::Demand } else { PoolOrigin::Configured },
                idle: p.idle.iter().filter(|m| m.expires_at > now.wall).count(),
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
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::model::units::{ByteSize, CpuLimit};
    use crate::spec::Network;

    fn key(kind: Kind, image: &str, mib: u64) -> PoolKey {
        PoolKey {
            kind,
            image: image.into(),
            memory: ByteSize::mib(mib),
            cpu: CpuLimit(1_000_000_000),
            pids: 128,
            network: Network::None,
            read_only_root: true,
            user: None,
            tmpfs: BTreeMap::new(),
            cap_add: Vec::new(),
            runtime: Some("fake".into()),
        }
    }

    const TOOL_IMAGES: [&str; 3] = ["tool-a", "tool-b", "tool-c"];
    const TOOL_MIB: [u64; 2] = [128, 256];

    /// The pools a sequence of events runs against.
    #[derive(Debug, Clone)]
    struct Setup {
        budget_mib: u64,
        /// Per configured pool: min, how far max lies above it, memory in MiB.
        configured: Vec<(usize, usize, u64)>,
        demand: Option<DemandConfig>,
        lifetime: Duration,
    }

    fn setup() -> impl Strategy<Value = Setup> {
        let configured =
            proptest::collection::vec((0usize..4, 0usize..3, prop_oneof![Just(64u64), Just(128), Just(256)]), 0..3);
        let demand = proptest::option::of((1usize..4, 1u64..120, 0usize..3, 0usize..3).prop_map(
            |(after, window, max, pools)| DemandConfig { after, window: Duration::from_secs(window), max, pools },
        ));
        (0u64..2048, configured, demand, 1u64..900).prop_map(|(budget_mib, configured, demand, lifetime)| Setup {
            budget_mib,
            configured,
            demand,
            lifetime: Duration::from_secs(lifetime),
        })
    }

    /// Something that happens to the pools. Indices pick among what is
    /// there at the time (pools, members being made, members taken).
    #[derive(Debug, Clone)]
    enum Event {
        Refill,
        Take { pool: usize, fits: bool },
        Release { taken: usize, served: bool },
        Lost { taken: usize },
        Made { making: usize },
        Failed { making: usize, not_ready: bool },
        Abandoned { making: usize },
        NoteRun { image: usize, profile: usize, accept: bool },
        Upkeep { margin: Duration },
        Advance { by: Duration },
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            1 => Just(Event::Refill),
            3 => (any::<usize>(), proptest::bool::weighted(0.8)).prop_map(|(pool, fits)| Event::Take { pool, fits }),
            2 => (any::<usize>(), any::<bool>()).prop_map(|(taken, served)| Event::Release { taken, served }),
            1 => any::<usize>().prop_map(|taken| Event::Lost { taken }),
            4 => any::<usize>().prop_map(|making| Event::Made { making }),
            2 => (any::<usize>(), proptest::bool::weighted(0.3))
                .prop_map(|(making, not_ready)| Event::Failed { making, not_ready }),
            1 => any::<usize>().prop_map(|making| Event::Abandoned { making }),
            4 => (0..TOOL_IMAGES.len(), 0..TOOL_MIB.len(), proptest::bool::weighted(0.9))
                .prop_map(|(image, profile, accept)| Event::NoteRun { image, profile, accept }),
            1 => (0u64..900).prop_map(|s| Event::Upkeep { margin: Duration::from_secs(s) }),
            3 => (0u64..400_000).prop_map(|ms| Event::Advance { by: Duration::from_millis(ms) }),
        ]
    }

    /// A pool as the harness knows it, from the setup and the actions.
    #[derive(Debug, Clone)]
    struct Known {
        key: PoolKey,
        max: usize,
        demand: bool,
        /// Bumped when the pool goes, so members made for an earlier
        /// opening of a name are not counted as the new one's.
        opening: u64,
    }

    /// The pools' decisions driven by events, checked against a model of
    /// what their actions did.
    struct Harness {
        state: PoolsState,
        setup: Setup,
        now: Now,
        known: BTreeMap<String, Known>,
        openings: u64,
        /// Members being made: pool, its opening, memory.
        making: Vec<(MemberId, String, u64, u64)>,
        /// Ready members: pool, memory, expiry.
        ready: BTreeMap<MemberId, (String, u64, DateTime<Utc>)>,
        /// Members handed out and not yet given back, with their pool.
        taken: Vec<(MemberId, String)>,
        taken_ever: BTreeSet<MemberId>,
        /// Per pool: its failures in a row, the backoff of the last, and
        /// until when it waits.
        backoff: BTreeMap<String, (u32, Duration, Instant)>,
        dropped: Vec<(String, DropReason)>,
    }

    impl Harness {
        fn new(setup: Setup) -> Harness {
            let configured: Vec<(String, PoolSpec, PoolKey)> = setup
                .configured
                .iter()
                .enumerate()
                .map(|(i, (min, extra, mib))| {
                    let image = format!("img-c{i}");
                    let spec = PoolSpec { image: image.clone(), min: *min, max: min + extra };
                    (format!("c{i}"), spec, key(Kind::Code, &image, *mib))
                })
                .collect();
            let mut known = BTreeMap::new();
            for (name, spec, key) in &configured {
                known.insert(name.clone(), Known { key: key.clone(), max: spec.max, demand: false, opening: 0 });
            }
            let budget = ByteSize::mib(setup.budget_mib).bytes();
            let state = PoolsState::new(budget, setup.demand.clone(), configured);
            let wall = DateTime::from_timestamp(1_700_000_000, 0).expect("a time");
            Harness {
                state,
                setup,
                now: Now { instant: Instant::now(), wall },
                known,
                openings: 0,
                making: Vec::new(),
                ready: BTreeMap::new(),
                taken: Vec::new(),
                taken_ever: BTreeSet::new(),
                backoff: BTreeMap::new(),
                dropped: Vec::new(),
            }
        }

        fn pool_names(&self) -> Vec<String> {
            let configured = (0..self.setup.configured.len()).map(|i| format!("c{i}"));
            configured.chain(TOOL_IMAGES.iter().map(|i| tool_pool(i))).collect()
        }

        fn tool_key(image: usize, profile: usize) -> PoolKey {
            key(Kind::Tool, TOOL_IMAGES[image], TOOL_MIB[profile])
        }

        fn run(&mut self, event: Event) {
            match event {
                Event::Refill => {
                    let actions = self.state.refill(self.now);
                    self.handle(actions, None, true);
                }
                Event::Take { pool, fits } => {
                    let names = self.pool_names();
                    let name = names[pool % names.len()].clone();
                    let mut key = match self.known.get(&name) {
                        Some(known) => known.key.clone(),
                        None => Self::tool_key(0, 0),
                    };
                    if !fits {
                        key.memory = ByteSize(key.memory.bytes() + 1);
                    }
                    let taken = self.state.take(&name, &key, self.now);
                    self.handle(taken.actions, None, true);
                    if let Some(member) = taken.member {
                        let (pool, _, expires_at) = self.ready.remove(&member).expect("a ready member is taken");
                        assert_eq!(pool, name, "a member serves runs of its own pool");
                        assert!(fits, "a run that does not fit its pool takes no member");
                        assert!(expires_at > self.now.wall, "an expired member is never handed out");
                        assert!(self.taken_ever.insert(member), "a member is handed out once");
                        self.taken.push((member, pool));
                    }
                }
                Event::Release { taken, served } => {
                    if self.taken.is_empty() {
                        return;
                    }
                    let (_, pool) = self.taken.remove(taken % self.taken.len());
                    let actions = self.state.released(&pool, served, self.now);
                    self.handle(actions, None, true);
                }
                Event::Lost { taken } => {
                    if self.taken.is_empty() {
                        return;
                    }
                    let (_, pool) = self.taken.remove(taken % self.taken.len());
                    let actions = self.state.lost(&pool, self.now);
                    self.handle(actions, None, true);
                }
                Event::Made { making } => self.made(making),
                Event::Failed { making, not_ready } => {
                    if self.making.is_empty() {
                        return;
                    }
                    let (member, pool, opening, _) = self.making.remove(making % self.making.len());
                    let failure = if not_ready { Failure::NotReady } else { Failure::Other };
                    let actions = self.state.not_made(member, failure, self.now);
                    let current = self.known.get(&pool).is_some_and(|k| k.opening == opening);
                    if current && !(not_ready && self.known[&pool].demand) {
                        // A failing pool backs off, longer each time, up to five minutes.
                        let at = actions.iter().find_map(|a| match a {
                            Action::RetryAt { pool: p, at } if *p == pool => Some(*at),
                            _ => None,
                        });
                        let at = at.expect("a failure puts the next try off");
                        let wait = at - self.now.instant;
                        let (failures, last, _) =
                            self.backoff.get(&pool).copied().unwrap_or((0, Duration::ZERO, self.now.instant));
                        assert!(wait >= last, "the backoff of {pool} shrank from {last:?} to {wait:?}");
                        assert!(wait <= MAX_BACKOFF, "{pool} waits {wait:?}");
                        // From one second after a member was made, doubling.
                        let doubled = Duration::from_secs(1 << failures.min(9)).min(MAX_BACKOFF);
                        assert_eq!(wait, doubled, "{pool} after {} failures in a row", failures + 1);
                        self.backoff.insert(pool.clone(), (failures + 1, wait, at));
                    }
                    self.handle(actions, None, false);
                }
                Event::Abandoned { making } => {
                    if self.making.is_empty() {
                        return;
                    }
                    let (member, ..) = self.making.remove(making % self.making.len());
                    self.state.abandoned(member);
                }
                Event::NoteRun { image, profile, accept } => {
                    let actions = self.state.note_run(&Self::tool_key(image, profile), self.now);
                    self.handle(actions, None, accept);
                }
                Event::Upkeep { margin } => {
                    let actions = self.state.upkeep(margin, self.now);
                    self.handle(actions, None, true);
                }
                Event::Advance { by } => {
                    self.now.instant += by;
                    self.now.wall += chrono::Duration::from_std(by).expect("a short time");
                }
            }
            self.check();
        }

        fn made(&mut self, making: usize) {
            if self.making.is_empty() {
                return;
            }
            let (member, pool, opening, memory) = self.making.remove(making % self.making.len());
            let expires_at = self.now.wall + chrono::Duration::from_std(self.setup.lifetime).expect("a lifetime");
            let actions = self.state.made(member, expires_at, 5);
            let current = self.known.get(&pool).is_some_and(|k| k.opening == opening);
            let removed = actions.contains(&Action::RemoveMember { member });
            assert_eq!(removed, !current, "a member is kept exactly when its pool is still there");
            if current {
                self.ready.insert(member, (pool.clone(), memory, expires_at));
                // Made: the pool's failures are over.
                self.backoff.remove(&pool);
            }
            self.handle(actions, Some(member), true);
        }

        /// Carries out `actions` in the model, checking each; `accept`
        /// answers a pool to open.
        fn handle(&mut self, actions: Vec<Action>, just_made: Option<MemberId>, accept: bool) {
            let mut queue = VecDeque::from(actions);
            while let Some(action) = queue.pop_front() {
                match action {
                    Action::MakeMember { pool, member } => {
                        let known = self.known.get(&pool).expect("members are made for pools that are there");
                        if let Some((_, _, until)) = self.backoff.get(&pool) {
                            assert!(self.now.instant >= *until, "{pool} made a member while backing off");
                        }
                        let memory = known.key.memory.bytes();
                        self.making.push((member, pool, known.opening, memory));
                    }
                    Action::RemoveMember { member } => {
                        assert!(!self.taken_ever.contains(&member), "a taken member is never the pools' to remove");
                        let ready = self.ready.remove(&member).is_some();
                        assert!(ready || just_made == Some(member), "only ready members are removed");
                    }
                    Action::OpenPool { pool, key } => {
                        assert!(!self.known.contains_key(&pool), "{pool} is opened once");
                        if !accept {
                            self.state.decline(&pool);
                            continue;
                        }
                        let opened = self.state.open(&pool, &key, self.now);
                        if self.state.min(&pool).is_some() {
                            let max = self.setup.demand.as_ref().map_or(0, |d| d.max);
                            self.openings += 1;
                            self.known.insert(pool, Known { key, max, demand: true, opening: self.openings });
                        }
                        queue.extend(opened);
                    }
                    Action::DropPool { pool, why } => {
                        let known = self.known.remove(&pool).expect("a pool that is there goes");
                        assert!(known.demand, "configured pools stay");
                        assert!(self.ready.values().all(|(p, ..)| *p != pool), "{pool} went with members ready");
                        self.backoff.remove(&pool);
                        self.dropped.push((pool, why));
                    }
                    Action::RetryAt { pool, at } => {
                        assert!(at > self.now.instant, "a retry lies ahead");
                        let (_, _, until) = self.backoff.get(&pool).expect("only a pool that failed backs off");
                        assert_eq!(at, *until, "{pool} retries when its backoff ends");
                    }
                }
            }
        }

        /// What holds after every event.
        fn check(&self) {
            let budget = ByteSize::mib(self.setup.budget_mib).bytes();
            let ready: u64 = self.ready.values().map(|(_, memory, _)| memory).sum();
            let making: u64 = self.making.iter().map(|(_, _, _, memory)| memory).sum();
            assert!(ready + making <= budget, "{ready} + {making} bytes are over the budget of {budget}");
            let demand = self.setup.demand.as_ref();
            for (name, known) in &self.known {
                let ready = self.ready.values().filter(|(p, ..)| p == name).count();
                let making = self.making.iter().filter(|(_, p, o, _)| p == name && *o == known.opening).count();
                assert!(
                    ready + making <= known.max,
                    "{name}: {ready} ready and {making} being made, max {}",
                    known.max
                );
                if known.demand {
                    let cap = demand.map_or(0, |d| d.max);
                    assert!(ready + making <= cap, "demand pool {name} above its cap {cap}");
                }
                let stats = self.state.stats(self.now);
                let stats = stats.iter().find(|s| s.name == *name).expect("a known pool has numbers");
                assert_eq!(stats.creating, making, "{name}: members being made");
                assert_eq!(self.state.pools[name].idle.len(), ready, "{name}: members ready");
            }
            let demand_pools = self.known.values().filter(|k| k.demand).count();
            assert!(demand_pools <= demand.map_or(0, |d| d.pools), "{demand_pools} demand pools");
            assert_eq!(self.state.pools.len(), self.known.len(), "the pools are the ones the actions said");
        }

        /// Time passes without runs: every member being made is made, and
        /// upkeep runs. No demand pool is left.
        fn quiet_window(&mut self) {
            let window = self.setup.demand.as_ref().map_or(Duration::ZERO, |d| d.window);
            self.run(Event::Advance { by: window + Duration::from_secs(1) });
            while !self.making.is_empty() {
                self.made(0);
            }
            self.check();
            self.run(Event::Upkeep { margin: Duration::ZERO });
            let left: Vec<&String> = self.known.iter().filter(|(_, k)| k.demand).map(|(n, _)| n).collect();
            assert!(left.is_empty(), "demand pools left after an idle window: {left:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever happens, the pools stay within their bounds, back off
        /// as they should, never touch a member taken, and demand pools go
        /// after a window without runs.
        #[test]
        fn the_pools_decisions_keep_their_bounds_whatever_happens(
            setup in setup(),
            events in proptest::collection::vec(event(), 0..200),
        ) {
            let mut harness = Harness::new(setup);
            let actions = harness.state.refill(harness.now);
            harness.handle(actions, None, true);
            harness.check();
            for event in events {
                harness.run(event);
            }
            harness.quiet_window();
        }

        /// A pool whose members keep failing waits 1 s, 2 s, 4 s, … and
        /// never more than five minutes between tries, and makes nothing
        /// before its wait is over.
        #[test]
        fn a_failing_pools_retries_back_off_to_five_minutes(
            early in proptest::collection::vec(0u64..400_000, 1..30),
        ) {
            let spec = PoolSpec { image: "img".into(), min: 1, max: 1 };
            let mut state = PoolsState::new(u64::MAX, None, [("p".to_owned(), spec, key(Kind::Code, "img", 64))]);
            let wall = DateTime::from_timestamp(1_700_000_000, 0).expect("a time");
            let mut now = Now { instant: Instant::now(), wall };
            let mut member = match state.refill(now).as_slice() {
                [Action::MakeMember { member, .. }] => *member,
                other => panic!("{other:?}"),
            };
            for (failures, early_ms) in (1u32..).zip(early) {
                let actions = state.not_made(member, Failure::Other, now);
                let expected = Duration::from_secs(1 << (failures - 1).min(9)).min(MAX_BACKOFF);
                let retry = vec![Action::RetryAt { pool: "p".into(), at: now.instant + expected }];
                prop_assert_eq!(&actions, &retry);
                // Too early: nothing is made, the retry is asked for again.
                let early = Duration::from_millis(early_ms).min(expected - Duration::from_millis(1));
                let too_early = Now { instant: now.instant + early, wall };
                prop_assert_eq!(&state.refill(too_early), &retry);
                now.instant += expected;
                member = match state.refill(now).as_slice() {
                    [Action::MakeMember { member, .. }] => *member,
                    other => panic!("after {failures} failures: {other:?}"),
                };
            }
        }
    }

    #[test]
    fn backoff_doubles_from_one_second_to_five_minutes() {
        let waits: Vec<u64> = (1..=11).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_member_made_for_a_pool_that_went_is_removed() {
        let demand = DemandConfig { after: 1, window: Duration::from_secs(10), max: 1, pools: 1 };
        let mut state = PoolsState::new(u64::MAX, Some(demand), []);
        let wall = DateTime::from_timestamp(1_700_000_000, 0).expect("a time");
        let now = Now { instant: Instant::now(), wall };
        let tool = key(Kind::Tool, "tool-a", 128);
        let name = tool_pool("tool-a");
        assert_eq!(state.note_run(&tool, now), vec![Action::OpenPool { pool: name.clone(), key: tool.clone() }]);
        let member = match state.open(&name, &tool, now).as_slice() {
            [Action::MakeMember { member, .. }] => *member,
            other => panic!("{other:?}"),
        };
        let later = Now { instant: now.instant + Duration::from_secs(11), wall };
        assert_eq!(state.upkeep(Duration::ZERO, later), vec![], "a member is still being made");
        state.abandoned(member);
        assert_eq!(
            state.upkeep(Duration::ZERO, later),
            vec![Action::DropPool { pool: name.clone(), why: DropReason::Unused }]
        );
        assert_eq!(state.made(member, wall, 1), vec![Action::RemoveMember { member }]);
    }
}
