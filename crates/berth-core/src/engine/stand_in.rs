//! A stand-in engine for the core's own tests: it makes nothing, answers
//! at once, and its containers do what a test says (a creation that never
//! answers or is refused, an exit sent when the test wants it, a member
//! that says it is ready).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::oneshot;

use super::{
    ByteStream, Capabilities, Engine, EngineError, ExecRequest, ExecSession, ExitWatch, Handle, ImageCommand,
    Isolation, LogChunk, LogRequest, LogStream, Phase, ProcessId, Selector, StdioSession, Stream, TtySize, UsageStream,
    WorkloadEvent, WorkloadInfo, WorkloadIo, WorkloadState,
};
use crate::spec::ContainerSpec;

/// An engine that makes nothing, whose containers do what a test says.
#[derive(Default)]
pub struct StandIn {
    /// Creations wait forever.
    pub hold_create: bool,
    /// Creations to refuse before any succeeds.
    pub failing_creates: AtomicUsize,
    /// Creations asked for.
    pub creates: AtomicUsize,
    /// The exit code of the container started watched; without one it exits with 0 at once.
    pub exit: Mutex<Option<oneshot::Receiver<i64>>>,
    /// Creations wait for this to be sent (or dropped) first.
    pub create_gate: Mutex<Option<oneshot::Receiver<()>>>,
    /// The started container is lost with its machine: its watch says so,
    /// and nothing of it answers any more.
    pub lose: bool,
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
        Capabilities { attach_before_start: true, ..Capabilities::default() }
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
        self.creates.fetch_add(1, Ordering::SeqCst);
        if self.hold_create {
            std::future::pending::<()>().await;
        }
        let gate = self.create_gate.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(gate) = gate {
            let _ = gate.await;
        }
        let refuse = self.failing_creates.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if refuse.is_ok() {
            return Err(EngineError::unavailable("the stand-in refuses"));
        }
        Ok(Handle::local(format!("id-{}", spec.name)))
    }

    async fn start(&self, _: &Handle) -> Result<(), EngineError> {
        Ok(())
    }

    async fn start_watched(&self, _: &Handle) -> Result<ExitWatch, EngineError> {
        let exit = self.exit.lock().unwrap_or_else(|p| p.into_inner()).take();
        if self.lose {
            return Ok(Box::pin(async { Err(EngineError::lost("node n2 was marked down")) }));
        }
        Ok(Box::pin(async move {
            match exit {
                Some(exit) => exit.await.map_err(|_| EngineError::failed("the test sent no exit")),
                None => Ok(0),
            }
        }))
    }

    /// A member's session: it says it is ready, then waits.
    async fn start_attached(&self, _: &Handle) -> Result<StdioSession, EngineError> {
        let ready = LogChunk { stream: Stream::Stdout, data: crate::pool::launch::READY.into() };
        Ok(StdioSession {
            output: stream::iter([Ok(ready)]).chain(stream::pending()).boxed(),
            stdin: Box::pin(tokio::io::sink()),
            exit: Box::pin(std::future::pending()),
        })
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
        if self.lose {
            return Err(EngineError::unavailable("the node does not answer"));
        }
        Ok(WorkloadState {
            phase: Phase::Exited,
            health: None,
            exit_code: Some(0),
            oom_killed: false,
            health_log: Vec::new(),
            labels: Default::default(),
            annotations: Default::default(),
            name: String::new(),
            placement: None,
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
