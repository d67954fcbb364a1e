//! An engine whose every call is counted and timed ([`crate::metrics`]):
//! the core wraps each engine it is given in one, so every backend's calls
//! are measured the same way, by the seam's operation names. A call that
//! opens a stream (logs, events, attach, exec) is timed until the stream is
//! open, not while it flows.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use super::io::{
    ByteStream, ExecOutput, ExecRequest, ExecSession, LogRequest, LogStream, ProcessId, PullStream, Signal,
    StdioSession, TtySize, Usage, UsageStream,
};
use super::{
    Capabilities, Engine, EngineError, ExitWatch, Handle, ImageCommand, ImageInfo, Isolation, NetworkInfo, NodeStatus,
    Selector, WorkloadEvent, WorkloadInfo, WorkloadIo, WorkloadState,
};
use crate::metrics::Metrics;
use crate::spec::ContainerSpec;

/// `inner`, measured into `metrics`.
pub struct Metered {
    inner: Arc<dyn Engine>,
    metrics: Arc<Metrics>,
}

impl Metered {
    pub fn new(inner: Arc<dyn Engine>, metrics: Arc<Metrics>) -> Metered {
        Metered { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let started = Instant::now();
        let out = call.await;
        self.note(operation, started.elapsed(), out.as_ref().err());
        out
    }

    fn note(&self, operation: &'static str, took: Duration, error: Option<&EngineError>) {
        self.metrics.engine_call(self.inner.name(), operation, took, error.map(EngineError::kind));
    }
}

#[async_trait]
impl Engine for Metered {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn runtime(&self) -> &str {
        self.inner.runtime()
    }

    fn asked_as(&self) -> &str {
        self.inner.asked_as()
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.timed("ping", self.inner.ping()).await
    }

    async fn ensure_image(&self, image: &str) -> Result<(), EngineError> {
        self.timed("ensure_image", self.inner.ensure_image(image)).await
    }

    async fn pull_image(&self, image: &str, refresh: bool) -> Result<PullStream, EngineError> {
        self.timed("pull_image", self.inner.pull_image(image, refresh)).await
    }

    async fn image_command(&self, image: &str) -> Result<ImageCommand, EngineError> {
        self.timed("image_command", self.inner.image_command(image)).await
    }

    async fn image_info(&self, image: &str) -> Result<ImageInfo, EngineError> {
        self.timed("image_info", self.inner.image_info(image)).await
    }

    async fn image_archive(&self, image: &str) -> Result<ByteStream, EngineError> {
        self.timed("image_archive", self.inner.image_archive(image)).await
    }

    async fn sweep_leftovers(&self) -> Result<usize, EngineError> {
        self.timed("sweep_leftovers", self.inner.sweep_leftovers()).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Handle, EngineError> {
        self.timed("create", self.inner.create(spec)).await
    }

    async fn start(&self, h: &Handle) -> Result<(), EngineError> {
        self.timed("start", self.inner.start(h)).await
    }

    async fn start_watched(&self, h: &Handle) -> Result<ExitWatch, EngineError> {
        self.timed("start_watched", self.inner.start_watched(h)).await
    }

    async fn start_attached(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        self.timed("start_attached", self.inner.start_attached(h)).await
    }

    async fn stop(&self, h: &Handle, grace: Duration) -> Result<(), EngineError> {
        self.timed("stop", self.inner.stop(h, grace)).await
    }

    async fn kill(&self, h: &Handle) -> Result<(), EngineError> {
        self.timed("kill", self.inner.kill(h)).await
    }

    async fn pause(&self, h: &Handle) -> Result<(), EngineError> {
        self.timed("pause", self.inner.pause(h)).await
    }

    async fn unpause(&self, h: &Handle) -> Result<(), EngineError> {
        self.timed("unpause", self.inner.unpause(h)).await
    }

    async fn remove(&self, h: &Handle, force: bool) -> Result<(), EngineError> {
        self.timed("remove", self.inner.remove(h, force)).await
    }

    async fn inspect(&self, h: &Handle) -> Result<WorkloadState, EngineError> {
        self.timed("inspect", self.inner.inspect(h)).await
    }

    async fn list(&self, selector: &Selector) -> Result<Vec<WorkloadInfo>, EngineError> {
        self.timed("list", self.inner.list(selector)).await
    }

    async fn events(
        &self,
        selector: &Selector,
    ) -> Result<BoxStream<'static, Result<WorkloadEvent, EngineError>>, EngineError> {
        self.timed("events", self.inner.events(selector)).await
    }

    /// The data plane, measured too, when the engine has one for `h`.
    fn io(&self, h: &Handle) -> Result<&dyn WorkloadIo, EngineError> {
        self.inner.io(h)?;
        Ok(self)
    }

    fn isolation(&self) -> Option<&dyn Isolation> {
        self.inner.isolation().map(|_| self as &dyn Isolation)
    }

    async fn plan(&self, h: &Handle) -> Result<Option<serde_json::Value>, EngineError> {
        self.timed("plan", self.inner.plan(h)).await
    }

    async fn nodes(&self) -> Result<Vec<NodeStatus>, EngineError> {
        self.timed("nodes", self.inner.nodes()).await
    }
}

#[async_trait]
impl WorkloadIo for Metered {
    async fn logs(&self, h: &Handle, request: &LogRequest) -> Result<LogStream, EngineError> {
        self.timed("logs", async { self.inner.io(h)?.logs(h, request).await }).await
    }

    async fn usage_stream(&self, h: &Handle) -> Result<UsageStream, EngineError> {
        self.timed("usage_stream", async { self.inner.io(h)?.usage_stream(h).await }).await
    }

    async fn usage(&self, h: &Handle) -> Result<Usage, EngineError> {
        self.timed("usage", async { self.inner.io(h)?.usage(h).await }).await
    }

    async fn exec(&self, h: &Handle, request: &ExecRequest) -> Result<ExecSession, EngineError> {
        self.timed("exec", async { self.inner.io(h)?.exec(h, request).await }).await
    }

    async fn resize(&self, h: &Handle, process: &ProcessId, size: TtySize) -> Result<(), EngineError> {
        self.timed("resize", async { self.inner.io(h)?.resize(h, process, size).await }).await
    }

    async fn attach(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        self.timed("attach", async { self.inner.io(h)?.attach(h).await }).await
    }

    async fn put_files(&self, h: &Handle, dir: &str, tar: ByteStream) -> Result<(), EngineError> {
        self.timed("put_files", async { self.inner.io(h)?.put_files(h, dir, tar).await }).await
    }

    async fn get_files(&self, h: &Handle, path: &str) -> Result<ByteStream, EngineError> {
        self.timed("get_files", async { self.inner.io(h)?.get_files(h, path).await }).await
    }

    async fn signal(&self, h: &Handle, pid: u32, signal: Signal) -> Result<(), EngineError> {
        self.timed("signal", async { self.inner.io(h)?.signal(h, pid, signal).await }).await
    }

    async fn exec_to_end(&self, h: &Handle, request: &ExecRequest, cap: usize) -> Result<ExecOutput, EngineError> {
        self.timed("exec_to_end", async { self.inner.io(h)?.exec_to_end(h, request, cap).await }).await
    }
}

#[async_trait]
impl Isolation for Metered {
    async fn create_network(
        &self,
        name: &str,
        internal: bool,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        self.timed("create_network", async { self.isolated()?.create_network(name, internal, labels).await }).await
    }

    async fn remove_network(&self, id_or_name: &str) -> Result<(), EngineError> {
        self.timed("remove_network", async { self.isolated()?.remove_network(id_or_name).await }).await
    }

    async fn list_networks(&self, selector: &Selector) -> Result<Vec<NetworkInfo>, EngineError> {
        self.timed("list_networks", async { self.isolated()?.list_networks(selector).await }).await
    }
}

impl Metered {
    /// The inner engine's isolation ([`Engine::isolation`] hands out this
    /// wrapper only when there is one).
    fn isolated(&self) -> Result<&dyn Isolation, EngineError> {
        self.inner
            .isolation()
            .ok_or_else(|| EngineError::invalid(format!("the {} backend has no session isolation", self.inner.name())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{FakeEngine, Op};

    #[tokio::test]
    async fn every_call_through_the_wrapper_is_counted_with_its_outcome_and_reaches_the_engine() {
        let fake = Arc::new(FakeEngine::new());
        let metrics = Arc::new(Metrics::default());
        let metered = Metered::new(fake.clone(), metrics.clone());
        metered.ping().await.unwrap();
        let missing = Handle::local("nope");
        assert!(metered.inspect(&missing).await.is_err());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, metrics.registry()).unwrap();
        assert!(out.contains("operation=\"ping\",outcome=\"ok\"} 1\n"), "{out}");
        assert!(out.contains("operation=\"inspect\",outcome=\"not_found\"} 1\n"), "{out}");
        assert_eq!(fake.calls_of(Op::Inspect), ["nope"]);
    }
}
