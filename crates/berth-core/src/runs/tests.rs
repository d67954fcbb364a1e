//! Runs over a stand-in engine whose containers do what a test says, for
//! what the real-engine tier cannot stage: a run's future dropped half-way,
//! a run held running while it is followed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::oneshot;

use super::*;
use crate::engine::{
    ByteStream, Capabilities, ExecRequest, ExecSession, ExitWatch, Handle, ImageCommand, Isolation, LogChunk,
    LogRequest, LogStream, Phase, ProcessId, Selector, StdioSession, Stream, TtySize, UsageStream, WorkloadEvent,
    WorkloadInfo, WorkloadIo, WorkloadState,
};
use crate::ids::{SequentialIds, SystemClock};

/// An engine whose creations wait forever when `hold_create`, and whose
/// started container exits with the code the test sends on `exit`.
#[derive(Default)]
struct StandIn {
    hold_create: bool,
    exit: Mutex<Option<oneshot::Receiver<i64>>>,
}

fn unsupported<T>() -> Result<T, EngineError> {
    Err(EngineError::invalid("not staged"))
}

#[async_trait]
impl Engine for StandIn {
    fn name(&self) -> &'static str {
        "stand-in"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    async fn ping(&self) -> Result<(), EngineError> {
        Ok(())
    }

    async fn ensure_image(&self, _: &str) -> Result<(), EngineError> {
        Ok(())
    }

    async fn image_command(&self, _: &str) -> Result<ImageCommand, EngineError> {
        Ok(ImageCommand::default())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Handle, EngineError> {
        if self.hold_create {
            std::future::pending::<()>().await;
        }
        Ok(Handle::local(format!("id-{}", spec.name)))
    }

    async fn start(&self, _: &Handle) -> Result<(), EngineError> {
        Ok(())
    }

    async fn start_watched(&self, _: &Handle) -> Result<ExitWatch, EngineError> {
        let exit = self.exit.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(Box::pin(async move {
            match exit {
                Some(exit) => exit.await.map_err(|_| EngineError::failed("the test sent no exit")),
                None => Ok(0),
            }
        }))
    }

    async fn start_attached(&self, _: &Handle) -> Result<StdioSession, EngineError> {
        unsupported()
    }

    async fn stop(&self, _: &Handle, _: std::time::Duration) -> Result<(), EngineError> {
        Ok(())
    }

    async fn kill(&self, _: &Handle) -> Result<(), EngineError> {
        Ok(())
    }

    async fn pause(&self, _: &Handle) -> Result<(), EngineError> {
        unsupported()
    }

    async fn unpause(&self, _: &Handle) -> Result<(), EngineError> {
        unsupported()
    }

    async fn remove(&self, _: &Handle, _: bool) -> Result<(), EngineError> {
        Ok(())
    }

    async fn inspect(&self, _: &Handle) -> Result<WorkloadState, EngineError> {
        Ok(WorkloadState {
            phase: Phase::Exited,
            health: None,
            exit_code: Some(0),
            oom_killed: false,
            health_log: Vec::new(),
            labels: Default::default(),
            annotations: Default::default(),
            name: String::new(),
        })
    }

    async fn list(&self, _: &Selector) -> Result<Vec<WorkloadInfo>, EngineError> {
        Ok(Vec::new())
    }

    async fn events(
        &self,
        _: &Selector,
    ) -> Result<BoxStream<'static, Result<WorkloadEvent, EngineError>>, EngineError> {
        unsupported()
    }

    fn io(&self, _: &Handle) -> Result<&dyn WorkloadIo, EngineError> {
        Ok(self)
    }

    fn isolation(&self) -> Option<&dyn Isolation> {
        None
    }
}

#[async_trait]
impl WorkloadIo for StandIn {
    async fn logs(&self, _: &Handle, _: &LogRequest) -> Result<LogStream, EngineError> {
        let said = LogChunk { stream: Stream::Stdout, data: "hi\n".into() };
        Ok(stream::iter([Ok(said)]).boxed())
    }

    async fn usage_stream(&self, _: &Handle) -> Result<UsageStream, EngineError> {
        Ok(stream::empty().boxed())
    }

    async fn exec(&self, _: &Handle, _: &ExecRequest) -> Result<ExecSession, EngineError> {
        unsupported()
    }

    async fn resize(&self, _: &Handle, _: &ProcessId, _: TtySize) -> Result<(), EngineError> {
        unsupported()
    }

    async fn attach(&self, _: &Handle) -> Result<StdioSession, EngineError> {
        unsupported()
    }

    async fn put_files(&self, _: &Handle, _: &str, _: ByteStream) -> Result<(), EngineError> {
        unsupported()
    }

    async fn get_files(&self, _: &Handle, _: &str) -> Result<ByteStream, EngineError> {
        unsupported()
    }
}

fn runs_over(engine: StandIn) -> (Arc<Runs>, Arc<Store>) {
    let store = Arc::new(Store::in_memory().expect("an in-memory store"));
    let runs = Runs::new(
        Arc::new(engine),
        Policy::default(),
        store.clone(),
        Arc::new(SequentialIds::default()),
        Arc::new(SystemClock),
        4,
    );
    (Arc::new(runs), store)
}

fn tool_run() -> RunRequest {
    RunRequest::new("t1", Workload::Tool { image: "busybox:1.35".into(), command: Some(vec!["true".into()]) })
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
    let run = tokio::spawn({
        let runs = runs.clone();
        async move { runs.execute(tool_run()).await }
    });
    let id = loop {
        if let Some(r) = store.list_runs("t1", 1).expect("the runs").pop() {
            break r.id;
        }
        tokio::task::yield_now().await;
    };
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
