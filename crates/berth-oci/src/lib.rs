//! The `oci-dry-run` backend: no daemon. Every create renders the OCI
//! runtime-spec bundle that would run the container ([`render`]) and writes
//! it under the backend's root ([`bundle`]); the lifecycle is kept in memory
//! with a daemon's state machine ([`state`]), so every orchestration flow
//! runs end to end on it.
//!
//! Nothing runs. A container started with its exit awaited (a run) exits at
//! once with code 0; one started plainly (an agent, a relic) stays running
//! until stopped, killed or removed. Logs and exec output are one line,
//! `[berth: dry run, nothing ran]`; usage is zeros beside the memory limit
//! asked for; a health check never ran, so a container with one is
//! unhealthy. [`Backend::plan`] hands out the rendered bundle, which is how
//! a run on this backend ends `dry_run` with its plan.
//!
//! The dry run must not run, pull or unpack anything: that is a runtime's
//! job. Beside it, [`runtime`] is the `oci` backend, which runs sealed runs
//! on runc over the same bundles, their roots from [`cache`] ([`saved`] and
//! [`layers`] unpack an image the engine saved, whiteouts applied; [`image`]
//! reads one from an OCI layout or a registry when there is no engine); the
//! dry run calls none of them.

pub mod bundle;
pub mod cache;
pub mod image;
pub mod layers;
pub mod render;
pub mod runtime;
pub mod runtime_spec;
pub mod saved;
pub mod seccomp;
pub mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::broadcast;

use self::render::{Bundle, ImageConfig, RenderError};
use self::state::{Net, Phase, State, KILLED, STOPPED};
use berth_core::engine::{
    ByteStream, Capabilities, Engine, EngineError, ExecRequest, ExecSession, ExitWatch, Handle, Health, ImageCommand,
    Isolation, LogChunk, LogRequest, LogStream, NetworkInfo, Placement, ProcessId, Selector, StdioSession, Stream,
    TtySize, Usage, UsageStream, WorkloadEvent, WorkloadInfo, WorkloadIo, WorkloadState,
};
use berth_core::spec::{ContainerId, ContainerSpec};

/// What logs, exec output and health say: nothing ran.
pub const NOTHING_RAN: &str = "[berth: dry run, nothing ran]\n";

/// The backend's name.
pub const NAME: &str = "oci-dry-run";

/// A fresh engine-style id: 64 lower-case hex characters.
pub(crate) fn fresh_id() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Renders the bundle that would run `spec` as a new container (a fresh id),
/// without writing or running anything: what `berth plan` prints.
pub fn plan(spec: &ContainerSpec, image: Option<&ImageConfig>) -> Result<Bundle, RenderError> {
    render::render(spec, &fresh_id(), image)
}

struct Inner {
    state: State,
    bundles: BTreeMap<ContainerId, Bundle>,
}

/// The dry-run backend.
pub struct OciDryRun {
    root: PathBuf,
    images: BTreeMap<String, ImageConfig>,
    inner: Mutex<Inner>,
    events: broadcast::Sender<WorkloadEvent>,
}

impl OciDryRun {
    /// A dry run writing one bundle folder per container under `root`
    /// (created when first needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        OciDryRun {
            root: root.into(),
            images: BTreeMap::new(),
            inner: Mutex::new(Inner { state: State::default(), bundles: BTreeMap::new() }),
            events: broadcast::channel(256).0,
        }
    }

    /// Makes an image's config known, so its command, environment, working
    /// folder and user are merged as an engine would merge them.
    pub fn with_image(mut self, image: impl Into<String>, config: ImageConfig) -> Self {
        self.images.insert(image.into(), config);
        self
    }

    /// Where container `id`'s bundle is written.
    pub fn bundle_dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(&id.0)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, id: &ContainerId, spec: &ContainerSpec, action: &str, exit: Option<i64>) {
        let mut attributes = spec.labels.clone();
        attributes.insert("name".into(), spec.name.clone());
        attributes.insert("image".into(), spec.image.clone());
        if let Some(code) = exit {
            attributes.insert("exitCode".into(), code.to_string());
        }
        // No subscriber is not an error.
        let _ = self.events.send(WorkloadEvent {
            handle: Handle { id: id.clone(), placement: Placement::Local },
            action: action.into(),
            attributes,
        });
    }

    /// Ends a running container with `code`, telling subscribers.
    fn end(&self, id: &ContainerId, code: i64) -> Result<(), EngineError> {
        let ended = {
            let mut inner = self.inner();
            let c = inner.state.container(&id.0)?;
            let (cid, spec) = (c.id.clone(), c.spec.clone());
            inner.state.exit(&id.0, code)?.then_some((cid, spec))
        };
        if let Some((cid, spec)) = ended {
            self.emit(&cid, &spec, "die", Some(code));
        }
        Ok(())
    }

    fn running(&self, id: &ContainerId) -> Result<(), EngineError> {
        let inner = self.inner();
        let c = inner.state.container(&id.0)?;
        if c.phase != Phase::Running {
            return Err(EngineError::conflict(format!("container {} is not running", c.id)));
        }
        Ok(())
    }

    fn nothing_ran() -> LogStream {
        let chunk = LogChunk { stream: Stream::Stdout, data: bytes::Bytes::from_static(NOTHING_RAN.as_bytes()) };
        futures_util::stream::iter([Ok(chunk)]).boxed()
    }

    fn zero_usage(&self, id: &ContainerId) -> Result<Usage, EngineError> {
        let inner = self.inner();
        let c = inner.state.container(&id.0)?;
        Ok(Usage {
            cpu_percent: Some(0.0),
            cpu_time_ns: 0,
            memory_used: Some(0),
            memory_peak: Some(0),
            memory_limit: Some(c.spec.limits.memory.bytes()),
            net_rx: 0,
            net_tx: 0,
            block_read: 0,
            block_write: 0,
            pids: Some(0),
        })
    }
}

#[async_trait]
impl Engine for OciDryRun {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Nothing runs: no attach, no processes, no pause; networks and plans.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            attach_before_start: false,
            attach_replays: false,
            follow_logs: false,
            interactive_exec: false,
            tty: false,
            pause: false,
            host_ports: true,
            plans: true,
            isolation: true,
        }
    }

    async fn ping(&self) -> Result<(), EngineError> {
        Ok(())
    }

    /// Nothing is pulled: the image is named in each bundle's note.
    async fn ensure_image(&self, image: &str) -> Result<(), EngineError> {
        if image.trim().is_empty() {
            return Err(EngineError::invalid("an image reference is needed"));
        }
        Ok(())
    }

    async fn image_command(&self, image: &str) -> Result<ImageCommand, EngineError> {
        // An image the dry run was not told of runs what its spec says.
        let config = self.images.get(image).cloned().unwrap_or_default();
        Ok(ImageCommand { entrypoint: config.entrypoint, cmd: config.cmd })
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Handle, EngineError> {
        let id = ContainerId(fresh_id());
        let bundle = render::render(spec, &id.0, self.images.get(&spec.image))
            .map_err(|e| EngineError::invalid(format!("{}: {e}", spec.name)))?;
        let dir = self.bundle_dir(&id);
        {
            let mut inner = self.inner();
            inner.state.create(id.clone(), spec.clone())?;
            if let Err(e) = bundle::write(&dir, &bundle) {
                // Best effort: the error below is the one that matters.
                let _ = bundle::remove(&dir);
                inner.state.remove(&id.0, true)?;
                return Err(EngineError::failed(e.to_string()).with_source(e));
            }
            inner.bundles.insert(id.clone(), bundle);
        }
        self.emit(&id, spec, "create", None);
        Ok(Handle { id, placement: Placement::Local })
    }

    async fn start(&self, h: &Handle) -> Result<(), EngineError> {
        let (cid, spec) = {
            let mut inner = self.inner();
            let c = inner.state.start(&h.id.0)?;
            (c.id.clone(), c.spec.clone())
        };
        self.emit(&cid, &spec, "start", None);
        Ok(())
    }

    /// Starts and, since nothing runs, ends at once with code 0.
    async fn start_watched(&self, h: &Handle) -> Result<ExitWatch, EngineError> {
        self.start(h).await?;
        self.end(&h.id, 0)?;
        Ok(Box::pin(std::future::ready(Ok(0))))
    }

    async fn stop(&self, h: &Handle, _grace: Duration) -> Result<(), EngineError> {
        self.end(&h.id, STOPPED)
    }

    async fn kill(&self, h: &Handle) -> Result<(), EngineError> {
        self.end(&h.id, KILLED)
    }

    async fn pause(&self, h: &Handle) -> Result<(), EngineError> {
        Err(EngineError::invalid(format!("{h}: nothing runs in the dry run, so nothing pauses")))
    }

    async fn unpause(&self, h: &Handle) -> Result<(), EngineError> {
        Err(EngineError::invalid(format!("{h}: nothing runs in the dry run, so nothing pauses")))
    }

    async fn remove(&self, h: &Handle, force: bool) -> Result<(), EngineError> {
        let (removed, was_running) = {
            let mut inner = self.inner();
            let was_running = inner.state.container(&h.id.0)?.phase == Phase::Running;
            let removed = inner.state.remove(&h.id.0, force)?;
            inner.bundles.remove(&removed.id);
            (removed, was_running)
        };
        if was_running {
            self.emit(&removed.id, &removed.spec, "die", Some(KILLED));
        }
        bundle::remove(&self.bundle_dir(&removed.id)).map_err(|e| EngineError::failed(e.to_string()).with_source(e))?;
        self.emit(&removed.id, &removed.spec, "destroy", None);
        Ok(())
    }

    async fn inspect(&self, h: &Handle) -> Result<WorkloadState, EngineError> {
        let inner = self.inner();
        let c = inner.state.container(&h.id.0)?;
        let started = c.phase != Phase::Created;
        let checked = c.spec.health.is_some() && started;
        Ok(WorkloadState {
            phase: c.phase.engine_phase(),
            health: checked.then_some(Health::Unhealthy),
            exit_code: Some(match c.phase {
                Phase::Exited { code } => code,
                Phase::Created | Phase::Running => 0,
            }),
            oom_killed: false,
            health_log: if checked { vec![NOTHING_RAN.trim_end().to_owned()] } else { vec![] },
            labels: c.spec.labels.clone(),
            annotations: c.spec.annotations.clone(),
            name: c.spec.name.clone(),
            placement: None,
        })
    }

    async fn list(&self, selector: &Selector) -> Result<Vec<WorkloadInfo>, EngineError> {
        Ok(self.inner().state.list(selector))
    }

    async fn events(
        &self,
        selector: &Selector,
    ) -> Result<BoxStream<'static, Result<WorkloadEvent, EngineError>>, EngineError> {
        Ok(berth_core::engine::events::matching(self.events.subscribe(), selector.clone()))
    }

    fn io(&self, _h: &Handle) -> Result<&dyn WorkloadIo, EngineError> {
        Ok(self)
    }

    fn isolation(&self) -> Option<&dyn Isolation> {
        Some(self)
    }

    async fn plan(&self, h: &Handle) -> Result<Option<serde_json::Value>, EngineError> {
        let inner = self.inner();
        let cid = inner.state.container(&h.id.0)?.id.clone();
        let bundle = inner.bundles.get(&cid).ok_or_else(|| EngineError::not_found(cid.0.clone()))?;
        serde_json::to_value(bundle).map(Some).map_err(|e| EngineError::failed(e.to_string()).with_source(e))
    }
}

/// The dry run's data plane: one line that says nothing ran, zeros for
/// usage, and no files.
#[async_trait]
impl WorkloadIo for OciDryRun {
    async fn logs(&self, h: &Handle, request: &LogRequest) -> Result<LogStream, EngineError> {
        self.inner().state.container(&h.id.0)?;
        if request.tail == Some(0) {
            return Ok(futures_util::stream::empty().boxed());
        }
        Ok(Self::nothing_ran())
    }

    async fn usage(&self, h: &Handle) -> Result<Usage, EngineError> {
        self.zero_usage(&h.id)
    }

    /// One sample of zeros, then the end (nothing is running to sample).
    async fn usage_stream(&self, h: &Handle) -> Result<UsageStream, EngineError> {
        let usage = self.zero_usage(&h.id)?;
        Ok(futures_util::stream::iter([usage]).boxed())
    }

    async fn exec(&self, h: &Handle, _request: &ExecRequest) -> Result<ExecSession, EngineError> {
        self.running(&h.id)?;
        let stdio = StdioSession {
            output: Self::nothing_ran(),
            stdin: Box::pin(tokio::io::sink()),
            exit: Box::pin(std::future::ready(Ok(0))),
        };
        Ok(ExecSession { process: ProcessId(fresh_id()), stdio })
    }

    async fn resize(&self, h: &Handle, _process: &ProcessId, _size: TtySize) -> Result<(), EngineError> {
        self.running(&h.id)
    }

    async fn attach(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        self.running(&h.id)?;
        Ok(StdioSession {
            output: Self::nothing_ran(),
            stdin: Box::pin(tokio::io::sink()),
            exit: Box::pin(std::future::ready(Ok(0))),
        })
    }

    async fn put_files(&self, h: &Handle, _dir: &str, _tar: ByteStream) -> Result<(), EngineError> {
        Err(EngineError::invalid(format!("{h}: the dry run has no files")))
    }

    async fn get_files(&self, h: &Handle, _path: &str) -> Result<ByteStream, EngineError> {
        Err(EngineError::invalid(format!("{h}: the dry run has no files")))
    }
}

#[async_trait]
impl Isolation for OciDryRun {
    async fn create_network(
        &self,
        name: &str,
        internal: bool,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        let net = Net {
            id: fresh_id(),
            name: name.to_owned(),
            internal,
            labels: labels.clone(),
            created: chrono::Utc::now(),
        };
        self.inner().state.create_network(net)
    }

    async fn remove_network(&self, id_or_name: &str) -> Result<(), EngineError> {
        self.inner().state.remove_network(id_or_name)
    }

    async fn list_networks(&self, selector: &Selector) -> Result<Vec<NetworkInfo>, EngineError> {
        Ok(self.inner().state.list_networks(selector))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::policy::{ContainerRequest, Policy};
    use berth_core::spec::Kind;

    fn spec(name: &str) -> ContainerSpec {
        let mut req = ContainerRequest::new(Kind::Tool, name, "busybox:1.35");
        req.cmd = Some(vec!["true".into()]);
        Policy::default().admit(req).unwrap()
    }

    #[tokio::test]
    async fn a_created_container_has_its_bundle_on_disk_until_it_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = OciDryRun::new(tmp.path());
        let id = backend.create(&spec("berth-a")).await.unwrap();
        let dir = backend.bundle_dir(&id.id);
        assert!(dir.join("config.json").is_file() && dir.join(bundle::NOTE_FILE).is_file());
        let plan = backend.plan(&id).await.unwrap().unwrap();
        assert_eq!(plan["config"]["process"]["args"], serde_json::json!(["true"]));
        assert_eq!(plan["note"]["image"], "busybox:1.35");
        let exit = backend.start_watched(&id).await.unwrap().await.unwrap();
        assert_eq!(exit, 0);
        let state = backend.inspect(&id).await.unwrap();
        assert_eq!(
            (state.phase, state.running(), state.exit_code),
            (berth_core::engine::Phase::Exited, false, Some(0))
        );
        backend.remove(&id, false).await.unwrap();
        assert!(!dir.exists());
        assert!(matches!(backend.plan(&id).await, Err(e) if e.is_not_found()));
    }

    #[tokio::test]
    async fn a_spec_that_cannot_be_rendered_is_refused_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = OciDryRun::new(tmp.path());
        let mut bad = spec("berth-b");
        bad.user = Some("nobody".into());
        assert!(
            matches!(backend.create(&bad).await, Err(e) if e.kind() == berth_core::engine::EngineErrorKind::Invalid)
        );
        assert!(backend.list(&Selector::all()).await.unwrap().is_empty());
        assert!(!tmp.path().exists() || std::fs::read_dir(tmp.path()).unwrap().count() == 0);
    }

    #[tokio::test]
    async fn events_follow_the_lifecycle_of_labelled_containers() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = OciDryRun::new(tmp.path());
        let mut events = backend.events(&Selector::all().kind(Kind::Tool)).await.unwrap();
        let id = backend.create(&spec("berth-c")).await.unwrap();
        backend.start(&id).await.unwrap();
        backend.remove(&id, true).await.unwrap();
        let mut actions = vec![];
        for _ in 0..4 {
            let e = events.next().await.unwrap().unwrap();
            assert_eq!(e.handle, id);
            actions.push(e.action);
        }
        assert_eq!(actions, ["create", "start", "die", "destroy"]);
    }
}
