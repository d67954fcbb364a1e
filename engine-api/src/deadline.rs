//! Per-call deadlines kept by one watchdog thread, instead of a runtime
//! timer for every call.
//!
//! Every call to the daemon is bounded (two minutes by default), and almost
//! none comes near its bound. A tokio timer per call costs on every one:
//! its entry goes in and out of the runtime's timer wheel, and while it is
//! there the runtime parks with a timeout, which arms a kernel timer each
//! time (about 4% of a ping on this machine). Here a call writes its deadline
//! and waker into a shared table when it first waits, and takes them out
//! when it ends; one thread, asleep until the earliest deadline it knows of,
//! wakes the calls whose time is up. It is woken itself only when a call
//! comes with a deadline earlier than the one it sleeps towards, which for
//! calls of one timeout is about once per timeout, not once per call.
//!
//! It is runtime-agnostic (a client may serve calls from several runtimes)
//! and knows nothing of what the calls are.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The table the watchdog keeps.
#[derive(Default)]
struct Table {
    next_id: u64,
    calls: HashMap<u64, (Instant, Waker)>,
    /// When the watchdog will next look, if it is asleep towards a time.
    next_look: Option<Instant>,
}

struct Watchdog {
    table: Mutex<Table>,
    wake: Condvar,
    /// Whether the thread runs; without it, calls fall back to a runtime timer.
    alive: std::sync::atomic::AtomicBool,
}

fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<&'static Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let dog: &'static Watchdog = Box::leak(Box::new(Watchdog {
            table: Mutex::default(),
            wake: Condvar::new(),
            alive: std::sync::atomic::AtomicBool::new(true),
        }));
        let started = std::thread::Builder::new().name("engine-api-deadlines".into()).spawn(move || dog.watch());
        if let Err(e) = started {
            tracing::error!(%e, "the deadline watchdog did not start: calls fall back to runtime timers");
            dog.alive.store(false, std::sync::atomic::Ordering::Release);
        }
        dog
    })
}

fn lock(m: &Mutex<Table>) -> MutexGuard<'_, Table> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Watchdog {
    fn watch(&self) {
        let mut table = lock(&self.table);
        loop {
            let now = Instant::now();
            let due: Vec<u64> = table.calls.iter().filter(|(_, (at, _))| *at <= now).map(|(id, _)| *id).collect();
            let wakers: Vec<Waker> = due.iter().filter_map(|id| table.calls.remove(id)).map(|(_, w)| w).collect();
            if !wakers.is_empty() {
                // Woken outside the lock: a wake may run executor code that
                // ends a call, which takes the lock to leave the table.
                drop(table);
                for waker in wakers {
                    // A panicking waker must not take every deadline with it.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake())).is_err() {
                        tracing::error!("a waker panicked in the deadline watchdog");
                    }
                }
                table = lock(&self.table);
                continue;
            }
            table.next_look = table.calls.values().map(|(at, _)| *at).min();
            table = match table.next_look {
                Some(at) => match self.wake.wait_timeout(table, at.saturating_duration_since(now)) {
                    Ok((t, _)) => t,
                    Err(p) => p.into_inner().0,
                },
                None => self.wake.wait(table).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    fn register(&self, id: Option<u64>, at: Instant, waker: &Waker) -> u64 {
        let mut table = lock(&self.table);
        let id = id.unwrap_or_else(|| {
            table.next_id += 1;
            table.next_id
        });
        table.calls.insert(id, (at, waker.clone()));
        // Wake the watchdog only if it would otherwise look too late.
        if table.next_look.is_none_or(|look| at < look) {
            table.next_look = Some(at);
            self.wake.notify_one();
        }
        id
    }

    fn forget(&self, id: u64) {
        lock(&self.table).calls.remove(&id);
    }
}

/// `work`, or `Err(Elapsed)` once `limit` has passed.
pub(crate) async fn within<F: Future>(limit: Duration, work: F) -> Result<F::Output, Elapsed> {
    if !watchdog().alive.load(std::sync::atomic::Ordering::Acquire) {
        return tokio::time::timeout(limit, work).await.map_err(|_| Elapsed);
    }
    let at = Instant::now().checked_add(limit);
    Within { work, at, id: None, waker: None }.await
}

/// The deadline passed before the work was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

pin_project_lite::pin_project! {
    pub(crate) struct Within<F> {
        #[pin]
        work: F,
        // `None`: so far off that it never comes.
        at: Option<Instant>,
        id: Option<u64>,
        waker: Option<Waker>,
    }

    impl<F> PinnedDrop for Within<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(id) = *this.project().id {
                watchdog().forget(id);
            }
        }
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.work.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let Some(at) = *this.at else { return Poll::Pending };
        if Instant::now() >= at {
            return Poll::Ready(Err(Elapsed));
        }
        if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *this.id = Some(watchdog().register(*this.id, at, cx.waker()));
            *this.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn work_that_never_ends_is_cut_off_at_its_deadline() {
        let start = Instant::now();
        let out = within(Duration::from_millis(100), std::future::pending::<()>()).await;
        assert_eq!(out, Err(Elapsed));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(2), "{took:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn work_done_in_time_is_its_own_answer_and_leaves_nothing_in_the_table() {
        // An hour: no other call in this binary waits that long.
        let hour = Duration::from_secs(3600);
        let far = || Instant::now() + Duration::from_secs(3000);
        let registered = || lock(&watchdog().table).calls.values().filter(|(at, _)| *at > far()).count();
        let work = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            registered()
        };
        let out = within(hour, work).await;
        assert_eq!(out, Ok(1), "registered while it waited");
        assert_eq!(registered(), 0, "gone once it ended");
    }

    #[test]
    fn deadlines_are_kept_in_their_order_across_runtimes() {
        // Two runtimes on two threads, deadlines interleaved: each fires at its own time.
        let run = |first: u64, second: u64| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    let start = Instant::now();
                    let a = within(Duration::from_millis(first), std::future::pending::<()>());
                    let b = within(Duration::from_millis(second), std::future::pending::<()>());
                    let (a, b) =
                        tokio::join!(async { (a.await, start.elapsed()) }, async { (b.await, start.elapsed()) });
                    (a, b)
                })
            })
        };
        let (one, two) = (run(300, 80), run(150, 450));
        for (((a, at_a), (b, at_b)), (want_a, want_b)) in
            [(one.join().unwrap(), (300, 80)), (two.join().unwrap(), (150, 450))]
        {
            assert_eq!((a, b), (Err(Elapsed), Err(Elapsed)));
            assert!(at_a >= Duration::from_millis(want_a) && at_a < Duration::from_millis(want_a + 500), "{at_a:?}");
            assert!(at_b >= Duration::from_millis(want_b) && at_b < Duration::from_millis(want_b + 500), "{at_b:?}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unreachable_deadline_never_fires_and_registers_nothing() {
        let before = lock(&watchdog().table).next_id;
        let work = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            3
        };
        assert_eq!(within(Duration::MAX, work).await, Ok(3));
        // Ids are taken by other tests' calls too; none may be this one's,
        // which has no deadline to keep: its entries would be far off.
        let table = lock(&watchdog().table);
        assert!(table.next_id >= before);
        assert!(table.calls.values().all(|(at, _)| *at < Instant::now() + Duration::from_secs(3000)));
    }
}
