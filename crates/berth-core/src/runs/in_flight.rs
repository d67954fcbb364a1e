//! The runs in flight: what a run in progress is reached by (its
//! cancellation, its tenant and session, the marker of a live view of its
//! member's output, a watch of its record) for as long as its future
//! lives, and no longer.
//!
//! A run enters with [`InFlight::enter`] and holds the [`Flight`] it gets
//! back; dropping that removes the entry, however the run's future ends: it
//! returned, an early `?` left it, or whoever polled it dropped it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::RunPhase;
use crate::model::run::{RunId, RunRecord, RunStatus};

/// The runs in progress, by id.
#[derive(Default)]
pub(super) struct InFlight {
    runs: Mutex<HashMap<RunId, Entry>>,
}

/// One run in progress.
struct Entry {
    tenant: String,
    session: Option<String>,
    /// How to stop it, until its race is over.
    token: Option<CancellationToken>,
    /// The end marker of a run handed to a member, for a live view of its
    /// output, until its race is over.
    marker: Option<String>,
    /// Its record as last stored.
    record: watch::Receiver<RunRecord>,
}

/// A run's place among the runs in flight; its entry goes when this is dropped.
pub(super) struct Flight<'a> {
    in_flight: &'a InFlight,
    id: RunId,
    token: CancellationToken,
    updates: watch::Sender<RunRecord>,
    clock: PhaseClock,
}

/// When a run reached each of its phases' ends ([`RunPhase`]), on a
/// monotonic clock.
struct PhaseClock {
    begun: Instant,
    admitted: OnceLock<Instant>,
    running: OnceLock<Instant>,
}

impl PhaseClock {
    /// How long each phase the run went through took, ending at `ended`.
    fn phases(&self, ended: Instant) -> Vec<(RunPhase, Duration)> {
        let mut out = vec![(RunPhase::Total, ended - self.begun)];
        if let Some(&admitted) = self.admitted.get() {
            out.push((RunPhase::Admission, admitted - self.begun));
            if let Some(&running) = self.running.get() {
                out.push((RunPhase::Start, running.saturating_duration_since(admitted)));
                out.push((RunPhase::Execution, ended.saturating_duration_since(running)));
            }
        }
        out
    }
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashMap<RunId, Entry>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts the run of `record` in flight until the returned [`Flight`] is
    /// dropped; its watch starts at `record`.
    pub fn enter(&self, record: &RunRecord) -> Flight<'_> {
        let token = CancellationToken::new();
        let (updates, watched) = watch::channel(record.clone());
        let entry = Entry {
            tenant: record.tenant.clone(),
            session: record.session.clone(),
            token: Some(token.clone()),
            marker: None,
            record: watched,
        };
        let id = record.id.clone();
        self.lock().insert(id.clone(), entry);
        let clock = PhaseClock { begun: Instant::now(), admitted: OnceLock::new(), running: OnceLock::new() };
        Flight { in_flight: self, id, token, updates, clock }
    }

    /// A watch of the record of run `id` of `tenant`, while it is in flight.
    /// It ends (its sender gone) when the run's future does.
    pub fn watch(&self, tenant: &str, id: &RunId) -> Option<watch::Receiver<RunRecord>> {
        self.lock().get(id).filter(|e| e.tenant == tenant).map(|e| e.record.clone())
    }

    /// Cancels run `id`; false when it is not in flight or its race is over.
    pub fn cancel(&self, id: &RunId) -> bool {
        self.lock().get(id).and_then(|e| e.token.as_ref()).map(CancellationToken::cancel).is_some()
    }

    /// The end marker of run `id`, while it is handed to a member.
    pub fn marker(&self, id: &RunId) -> Option<String> {
        self.lock().get(id).and_then(|e| e.marker.clone())
    }

    /// Runs of `tenant` in `session` whose race is not over (queued or running).
    pub fn in_session(&self, tenant: &str, session: &str) -> Vec<RunId> {
        let runs = self.lock();
        let mine = runs.iter().filter(|(_, e)| e.token.is_some() && e.is_in(tenant, session));
        mine.map(|(id, _)| id.clone()).collect()
    }

    /// Cancels every run of `tenant` in `session` whose race is not over; how many.
    pub fn cancel_session(&self, tenant: &str, session: &str) -> usize {
        let runs = self.lock();
        let mine = runs.values().filter(|e| e.is_in(tenant, session)).filter_map(|e| e.token.as_ref());
        mine.map(CancellationToken::cancel).count()
    }

    /// How many runs are in flight.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Entry {
    fn is_in(&self, tenant: &str, session: &str) -> bool {
        self.tenant == tenant && self.session.as_deref() == Some(session)
    }
}

impl Flight<'_> {
    /// What cancels the run.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Shows `record`, just stored, to whoever watches the run.
    /// Publishes `record`; true when it is the first to say the run runs.
    pub fn publish(&self, record: &RunRecord) -> bool {
        self.updates.send_replace(record.clone());
        record.status == RunStatus::Running && self.clock.running.set(Instant::now()).is_ok()
    }

    /// Notes that the run has its slot: its admission is over.
    pub fn admitted(&self) {
        let _ = self.clock.admitted.set(Instant::now());
    }

    /// How long each phase the run went through took, until now.
    pub fn phases(&self) -> Vec<(RunPhase, Duration)> {
        self.clock.phases(Instant::now())
    }

    /// Notes the end marker of the run's hand-off to a member.
    pub fn set_marker(&self, marker: &str) {
        if let Some(e) = self.in_flight.lock().get_mut(&self.id) {
            e.marker = Some(marker.to_owned());
        }
    }

    /// The run's race is over: it can no longer be cancelled, counts as
    /// running no more, and has no live view; its record is being finished.
    pub fn race_over(&self) {
        if let Some(e) = self.in_flight.lock().get_mut(&self.id) {
            e.token = None;
            e.marker = None;
        }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.in_flight.lock().remove(&self.id);
    }
}
