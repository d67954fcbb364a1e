//! The spares' decisions, sans IO (as [`crate::pool::state`] is the runs').
//!
//! [`SpareState`] decides how many spares to make for each template, which
//! one a creation takes, which to replace before they expire and when a
//! failing template tries again; [`super`] carries that out against the
//! engine and feeds back what happened. Time comes in as an argument
//! ([`Now`]); nothing here touches an engine, a clock, a lock or a task.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::pool::state::backoff;
pub use crate::pool::state::Now;
use crate::pool::{PoolOrigin, PoolStats};

/// The most spares one template may keep.
pub const MAX_SPARES: usize = 16;

/// A spare, as the decisions know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpareId(pub u64);

/// What the driver is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpareAction {
    /// Make `spare` for `template`; answer with [`SpareState::made`] or
    /// [`SpareState::not_made`].
    Make { template: String, spare: SpareId },
    /// Remove `spare` (about to expire, or no longer kept).
    Remove { spare: SpareId },
}

/// The name a template's spares go by among the warm pools.
pub fn pool_name(template: &str) -> String {
    format!("sandbox:{template}")
}

#[derive(Debug)]
struct Template {
    size: usize,
    ready: VecDeque<(SpareId, DateTime<Utc>)>,
    making: usize,
    hits: u64,
    misses: u64,
    refills: u64,
    refill_failures: u64,
    lost: u64,
    last_refill_ms: Option<u64>,
    /// Failures in a row since the last spare made.
    failures: u32,
    retry_at: Option<Instant>,
}

/// The spares of every template.
#[derive(Debug)]
pub struct SpareState {
    templates: BTreeMap<String, Template>,
    making: BTreeMap<SpareId, String>,
    next: u64,
    closed: bool,
}

impl SpareState {
    /// `sizes`: template → spares kept (at most [`MAX_SPARES`] each).
    pub fn new(sizes: &BTreeMap<String, usize>) -> SpareState {
        let templates = sizes
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(name, n)| {
                let t = Template {
                    size: (*n).min(MAX_SPARES),
                    ready: VecDeque::new(),
                    making: 0,
                    hits: 0,
                    misses: 0,
                    refills: 0,
                    refill_failures: 0,
                    lost: 0,
                    last_refill_ms: None,
                    failures: 0,
                    retry_at: None,
                };
                (name.clone(), t)
            })
            .collect();
        SpareState { templates, making: BTreeMap::new(), next: 1, closed: false }
    }

    /// Whether any template keeps spares.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// The spares to make now, one template's at a time until it is full
    /// (a failing template waits out its backoff).
    pub fn refill(&mut self, now: Now) -> Vec<SpareAction> {
        if self.closed {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (name, t) in &mut self.templates {
            if t.retry_at.is_some_and(|at| at > now.instant) {
                continue;
            }
            while t.ready.len() + t.making < t.size {
                let spare = SpareId(self.next);
                self.next += 1;
                t.making += 1;
                self.making.insert(spare, name.clone());
                out.push(SpareAction::Make { template: name.clone(), spare });
            }
        }
        out
    }

    /// A spare was made (in `elapsed_ms`); it expires at `expires_at` unless taken.
    pub fn made(&mut self, spare: SpareId, expires_at: DateTime<Utc>, elapsed_ms: u64) -> Vec<SpareAction> {
        let Some(name) = self.making.remove(&spare) else { return vec![SpareAction::Remove { spare }] };
        let Some(t) = self.templates.get_mut(&name) else { return vec![SpareAction::Remove { spare }] };
        t.making = t.making.saturating_sub(1);
        t.failures = 0;
        t.retry_at = None;
        t.refills += 1;
        t.last_refill_ms = Some(elapsed_ms);
        if self.closed {
            return vec![SpareAction::Remove { spare }];
        }
        t.ready.push_back((spare, expires_at));
        Vec::new()
    }

    /// A spare could not be made: its template backs off.
    pub fn not_made(&mut self, spare: SpareId, now: Now) {
        let Some(name) = self.making.remove(&spare) else { return };
        if let Some(t) = self.templates.get_mut(&name) {
            t.making = t.making.saturating_sub(1);
            t.failures = t.failures.saturating_add(1);
            t.refill_failures += 1;
            t.retry_at = Some(now.instant + backoff(t.failures));
        }
    }

    /// Spares being made now, over all templates.
    pub fn making(&self) -> usize {
        self.making.len()
    }

    /// When the earliest failing template may try again.
    pub fn retry_at(&self) -> Option<Instant> {
        self.templates.values().filter_map(|t| t.retry_at).min()
    }

    /// A ready spare of `template` that lives past `now` + `margin`, oldest
    /// first; spares too close to their expiry go out to be removed.
    pub fn take(&mut self, template: &str, margin: Duration, now: Now) -> (Option<SpareId>, Vec<SpareAction>) {
        let Some(t) = self.templates.get_mut(template) else { return (None, Vec::new()) };
        let mut removed = Vec::new();
        let mut taken = None;
        while let Some((spare, expires_at)) = t.ready.pop_front() {
            if expires_at > now.wall + margin {
                taken = Some(spare);
                break;
            }
            removed.push(SpareAction::Remove { spare });
        }
        match taken {
            Some(_) => t.hits += 1,
            None => t.misses += 1,
        }
        (taken, removed)
    }

    /// A spare taken turned out dead (its container gone): it counts as a
    /// miss, not a hit.
    pub fn lost(&mut self, template: &str) {
        if let Some(t) = self.templates.get_mut(template) {
            t.hits = t.hits.saturating_sub(1);
            t.misses += 1;
            t.lost += 1;
        }
    }

    /// Spares that expire within `margin` of `now`, to be removed (the
    /// next refill replaces them).
    pub fn upkeep(&mut self, margin: Duration, now: Now) -> Vec<SpareAction> {
        let mut out = Vec::new();
        for t in self.templates.values_mut() {
            t.ready.retain(|(spare, expires_at)| {
                let keep = *expires_at > now.wall + margin;
                if !keep {
                    out.push(SpareAction::Remove { spare: *spare });
                }
                keep
            });
        }
        out
    }

    /// No spare is made or handed out any more; the ready ones go out.
    pub fn close(&mut self) -> Vec<SpareId> {
        self.closed = true;
        self.templates.values_mut().flat_map(|t| t.ready.drain(..).map(|(s, _)| s)).collect()
    }

    /// Each template's numbers as a warm pool's (`min` and `max` are its
    /// size), its image told by `image_of`.
    pub fn stats(&self, image_of: impl Fn(&str) -> String) -> Vec<PoolStats> {
        self.templates
            .iter()
            .map(|(name, t)| PoolStats {
                name: pool_name(name),
                image: image_of(name),
                origin: PoolOrigin::Spares,
                idle: t.ready.len(),
                creating: t.making,
                min: t.size,
                max: t.size,
                hits: t.hits,
                misses: t.misses,
                refills: t.refills,
                refill_failures: t.refill_failures,
                lost: t.lost,
                last_refill_ms: t.last_refill_ms,
            })
            .collect()
    }

    /// Failures in a row of `template` since its last spare made.
    pub fn failures(&self, template: &str) -> u32 {
        self.templates.get(template).map_or(0, |t| t.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Now {
        Now { instant: Instant::now(), wall: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().into() }
    }

    fn later(now: Now, secs: u64) -> Now {
        Now { instant: now.instant + Duration::from_secs(secs), wall: now.wall + Duration::from_secs(secs) }
    }

    fn state(base: usize) -> SpareState {
        SpareState::new(&BTreeMap::from([("base".to_owned(), base), ("none".to_owned(), 0)]))
    }

    fn makes(actions: &[SpareAction]) -> Vec<SpareId> {
        actions
            .iter()
            .filter_map(|a| match a {
                SpareAction::Make { spare, .. } => Some(*spare),
                SpareAction::Remove { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_refill_makes_each_template_up_to_its_size_and_no_more_while_they_are_made() {
        let mut s = state(2);
        let n = now();
        let first = s.refill(n);
        assert_eq!(makes(&first).len(), 2);
        assert!(first.iter().all(|a| matches!(a, SpareAction::Make { template, .. } if template == "base")));
        assert!(s.refill(n).is_empty());
    }

    #[test]
    fn a_template_of_size_zero_keeps_no_spares() {
        let s = SpareState::new(&BTreeMap::from([("base".to_owned(), 0)]));
        assert!(s.is_empty());
    }

    #[test]
    fn a_made_spare_is_taken_once_and_the_refill_replaces_it() {
        let mut s = state(1);
        let n = now();
        let spare = makes(&s.refill(n))[0];
        assert!(s.made(spare, n.wall + Duration::from_secs(600), 400).is_empty());
        assert_eq!(s.take("base", Duration::from_secs(30), n), (Some(spare), vec![]));
        assert_eq!(s.take("base", Duration::from_secs(30), n), (None, vec![]));
        assert_eq!(makes(&s.refill(n)).len(), 1);
        let stats = &s.stats(|_| String::new())[0];
        assert_eq!((stats.name.as_str(), stats.hits, stats.misses, stats.creating), ("sandbox:base", 1, 1, 1));
        assert_eq!((stats.refills, stats.last_refill_ms), (1, Some(400)));
    }

    #[test]
    fn a_spare_about_to_expire_is_removed_instead_of_taken() {
        let mut s = state(2);
        let n = now();
        let spares = makes(&s.refill(n));
        s.made(spares[0], n.wall + Duration::from_secs(10), 400);
        s.made(spares[1], n.wall + Duration::from_secs(600), 400);
        let (taken, removed) = s.take("base", Duration::from_secs(30), n);
        assert_eq!(taken, Some(spares[1]));
        assert_eq!(removed, vec![SpareAction::Remove { spare: spares[0] }]);
    }

    #[test]
    fn upkeep_removes_the_spares_that_expire_within_the_margin() {
        let mut s = state(2);
        let n = now();
        let spares = makes(&s.refill(n));
        s.made(spares[0], n.wall + Duration::from_secs(100), 400);
        s.made(spares[1], n.wall + Duration::from_secs(600), 400);
        assert!(s.upkeep(Duration::from_secs(30), n).is_empty());
        assert_eq!(s.upkeep(Duration::from_secs(30), later(n, 80)), vec![SpareAction::Remove { spare: spares[0] }]);
        assert_eq!(makes(&s.refill(later(n, 80))).len(), 1);
    }

    #[test]
    fn a_failing_template_backs_off_before_it_tries_again() {
        let mut s = state(1);
        let n = now();
        let spare = makes(&s.refill(n))[0];
        s.not_made(spare, n);
        assert!(s.refill(n).is_empty());
        assert_eq!(s.retry_at(), Some(n.instant + backoff(1)));
        let again = makes(&s.refill(later(n, 2)));
        assert_eq!(again.len(), 1);
        s.not_made(again[0], later(n, 2));
        assert_eq!((s.failures("base"), s.stats(|_| String::new())[0].refill_failures), (2, 2));
        assert!(s.refill(later(n, 3)).is_empty());
    }

    #[test]
    fn a_taken_spare_found_dead_counts_as_a_miss() {
        let mut s = state(1);
        let n = now();
        let spare = makes(&s.refill(n))[0];
        s.made(spare, n.wall + Duration::from_secs(600), 400);
        s.take("base", Duration::ZERO, n);
        s.lost("base");
        let stats = &s.stats(|_| String::new())[0];
        assert_eq!((stats.hits, stats.misses, stats.lost), (0, 1, 1));
    }

    #[test]
    fn once_closed_nothing_is_made_and_a_spare_made_late_is_removed() {
        let mut s = state(2);
        let n = now();
        let spares = makes(&s.refill(n));
        s.made(spares[0], n.wall + Duration::from_secs(600), 400);
        assert_eq!(s.close(), vec![spares[0]]);
        assert!(s.refill(n).is_empty());
        assert_eq!(
            s.made(spares[1], n.wall + Duration::from_secs(600), 400),
            vec![SpareAction::Remove { spare: spares[1] }]
        );
        assert_eq!(s.take("base", Duration::ZERO, n).0, None);
    }

    #[test]
    fn a_template_asking_for_more_than_the_maximum_keeps_the_maximum() {
        let mut s = SpareState::new(&BTreeMap::from([("base".to_owned(), 100)]));
        assert_eq!(makes(&s.refill(now())).len(), MAX_SPARES);
    }
}
