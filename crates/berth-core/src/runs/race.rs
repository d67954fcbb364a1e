//! The race every run is in, on either path: its work (the exit of its
//! container, or the hand-off to its member) against its deadline and its
//! cancellation. When the deadline or the cancellation comes first, the
//! workload is killed and its work is given a bounded time to end, so the
//! exit code of a killed run is known when the engine tells it in time.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::conclude::Ending;
use crate::engine::EngineError;

/// How long the work of a killed workload is waited for.
const AFTER_KILL: Duration = Duration::from_secs(10);

/// Why a run was stopped before its work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Its deadline came.
    TimedOut,
    /// Someone cancelled it.
    Cancelled,
}

impl From<Stop> for Ending {
    fn from(stop: Stop) -> Ending {
        match stop {
            Stop::TimedOut => Ending::TimedOut,
            Stop::Cancelled => Ending::Cancelled,
        }
    }
}

/// How a race was decided.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Raced<T> {
    /// The work ended first, with this.
    Finished(T),
    /// The deadline or the cancellation came first and the workload was
    /// killed; `then` is what the work ended with after the kill, when it
    /// ended within [`AFTER_KILL`].
    Stopped { why: Stop, then: Option<T> },
}

/// A race's decision and how long after `started` it came (a run's wall time).
#[derive(Debug)]
pub(super) struct Race<T> {
    pub raced: Raced<T>,
    pub wall: Duration,
}

/// Races `work` against `timeout` and `token`. When either comes first,
/// `kill` is called and `work` is awaited for at most [`AFTER_KILL`] more;
/// a kill that fails is the race's error.
pub(super) async fn race<T, K>(
    work: impl Future<Output = T>,
    timeout: Duration,
    token: &CancellationToken,
    started: Instant,
    kill: impl FnOnce() -> K,
) -> Result<Race<T>, EngineError>
where
    K: Future<Output = Result<(), EngineError>>,
{
    tokio::pin!(work);
    let why = tokio::select! {
        done = &mut work => return Ok(Race { raced: Raced::Finished(done), wall: started.elapsed() }),
        _ = tokio::time::sleep(timeout) => Stop::TimedOut,
        _ = token.cancelled() => Stop::Cancelled,
    };
    let wall = started.elapsed();
    kill().await?;
    let then = tokio::time::timeout(AFTER_KILL, work).await.ok();
    Ok(Race { raced: Raced::Stopped { why, then }, wall })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A kill that notes it was called and lets the work end.
    fn killer(killed: &Arc<AtomicBool>) -> impl FnOnce() -> std::future::Ready<Result<(), EngineError>> {
        let killed = killed.clone();
        move || {
            killed.store(true, Ordering::SeqCst);
            std::future::ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_ends_first_is_not_killed() {
        let killed = Arc::new(AtomicBool::new(false));
        let token = CancellationToken::new();
        let work = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            7
        };
        let race = race(work, Duration::from_secs(5), &token, Instant::now(), killer(&killed)).await.unwrap();
        assert_eq!(race.raced, Raced::Finished(7));
        assert!(!killed.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_deadline_the_workload_is_killed_and_its_end_awaited() {
        let killed = Arc::new(AtomicBool::new(false));
        let token = CancellationToken::new();
        let seen = killed.clone();
        let work = async move {
            while !seen.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            137
        };
        let race = race(work, Duration::from_secs(5), &token, Instant::now(), killer(&killed)).await.unwrap();
        assert_eq!(race.raced, Raced::Stopped { why: Stop::TimedOut, then: Some(137) });
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_run_whose_work_never_ends_is_waited_for_a_bounded_time() {
        let killed = Arc::new(AtomicBool::new(false));
        let token = CancellationToken::new();
        token.cancel();
        let work = std::future::pending::<i64>();
        let race = race(work, Duration::from_secs(5), &token, Instant::now(), killer(&killed)).await.unwrap();
        assert_eq!(race.raced, Raced::Stopped { why: Stop::Cancelled, then: None });
        assert!(killed.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kill_that_fails_is_the_races_error() {
        let token = CancellationToken::new();
        let work = std::future::pending::<i64>();
        let kill = || std::future::ready(Err(EngineError::failed("no")));
        let raced = race(work, Duration::from_secs(1), &token, Instant::now(), kill).await;
        assert!(raced.is_err());
    }
}
