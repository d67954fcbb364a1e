//! Runs over a stand-in engine whose containers do what a test says, for
//! what the real-engine tier cannot stage: a run's future dropped half-way,
//! a run held running while it is followed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::*;
use crate::engine::stand_in::StandIn;
use crate::model::ids::{SequentialIds, SystemClock};

fn runs_over(engine: StandIn) -> (Arc<Runs>, Arc<Store>) {
    let store = Arc::new(Store::in_memory().expect("an in-memory store"));
    let runs = Runs::new(
        &crate::context::Context::new(
            Arc::new(engine),
            Policy::default(),
            store.clone(),
            Arc::new(SequentialIds::default()),
            Arc::new(SystemClock),
        ),
        4,
    );
    (Arc::new(runs), store)
}

fn tool_run() -> RunRequest {
    RunRequest::new("t1", Workload::Tool { image: "busybox:1.35".into(), command: Some(vec!["true".into()]) })
}

/// A tool run executing in a task of its own, and its id once recorded.
async fn spawned(runs: &Arc<Runs>, store: &Store) -> (tokio::task::JoinHandle<Result<RunRecord, RunError>>, RunId) {
    let run = tokio::spawn({
        let runs = runs.clone();
        async move { runs.execute(tool_run()).await }
    });
    loop {
        if let Some(r) = store.list_runs("t1", 1).expect("the runs").pop() {
            return (run, r.id);
        }
        tokio::task::yield_now().await;
    }
}

/// Yields until `done` holds.
async fn until(done: impl Fn() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_dropped_run_future_leaves_nothing_in_flight() {
    let (runs, store) = runs_over(StandIn { hold_create: true, ..Default::default() });
    let mut run = Box::pin(runs.execute(tool_run()));
    tokio::select! {
        ended = &mut run => panic!("the run ended: {ended:?}"),
        () = until(|| runs.in_flight.len() == 1) => {}
    }
    let id = store.list_runs("t1", 1).expect("the runs").pop().expect("its record").id;
    assert!(runs.cancel("t1", &id).expect("its record"), "a run waiting on the engine is in flight");
    drop(run);
    assert_eq!(runs.in_flight.len(), 0, "the dropped run left its entry");
    assert!(!runs.cancel("t1", &id).expect("its record"));
}

#[tokio::test]
async fn a_follower_waits_on_the_runs_watch_for_its_final_record_within_a_bound() {
    let (exit, exited) = oneshot::channel();
    let (runs, store) = runs_over(StandIn { exit: Mutex::new(Some(exited)), ..Default::default() });
    let (run, id) = spawned(&runs, &store).await;
    let mut watched = runs.in_flight.watch("t1", &id).expect("a run in flight is watched");
    let started = tokio::time::timeout(Duration::from_secs(10), watched.wait_for(|r| r.status == RunStatus::Running));
    started.await.expect("its start is published in time").expect("while it is in flight");
    assert!(runs.in_flight.watch("t2", &id).is_none(), "another tenant's run is not theirs to watch");

    // Not final within the bound: the latest record.
    let latest = runs.final_record("t1", &id, Duration::from_millis(50)).await.expect("its record");
    assert_eq!(latest.status, RunStatus::Running);
    assert_eq!(Some(&latest), store.get_run("t1", &id).expect("the store").as_ref());

    let mut follower = Box::pin(runs.final_record("t1", &id, Duration::from_secs(30)));
    tokio::select! {
        biased;
        early = &mut follower => panic!("final before its exit: {early:?}"),
        () = std::future::ready(()) => {}
    }
    exit.send(0).expect("the run awaits its exit");
    let followed = follower.await.expect("its final record");
    let ran = run.await.expect("the run's task").expect("the run");
    assert_eq!((followed.status, followed.stdout.as_str()), (RunStatus::Succeeded, "hi\n"));
    assert_eq!(followed, ran);

    // Out of flight, the store answers.
    assert!(runs.in_flight.watch("t1", &id).is_none());
    assert_eq!(runs.final_record("t1", &id, Duration::from_secs(30)).await.expect("its record"), ran);
}

#[tokio::test]
async fn a_run_lost_with_its_machine_fails_with_why_without_asking_the_machine_more() {
    let (runs, store) = runs_over(StandIn { lose: true, ..Default::default() });
    let run = runs.execute(tool_run()).await.expect("a record");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("workload lost: node n2 was marked down"));
    assert_eq!(run.exit_code, None);
    assert_eq!(store.get_run("t1", &run.id).expect("the store").expect("its record").status, RunStatus::Failed);
}

#[tokio::test]
async fn a_follower_of_a_run_still_being_made_waits_until_it_runs() {
    let (made, gate) = oneshot::channel();
    let (runs, store) = runs_over(StandIn { create_gate: Mutex::new(Some(gate)), ..Default::default() });
    let (run, id) = spawned(&runs, &store).await;
    let early = runs.running_record("t1", &id, Duration::from_millis(50)).await.expect("its record");
    assert_eq!(early.container_id, None, "no container while its creation waits");
    let mut follower = Box::pin(runs.running_record("t1", &id, Duration::from_secs(30)));
    tokio::select! {
        r = &mut follower => panic!("the follower did not wait: {r:?}"),
        () = tokio::task::yield_now() => {}
    }
    made.send(()).expect("the creation waits");
    let placed = follower.await.expect("its record");
    assert!(placed.status == RunStatus::Running || placed.status.is_terminal(), "{placed:?}");
    run.await.expect("the run's task").expect("the run");
}
