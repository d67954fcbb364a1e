//! A recording, failing engine in memory, for tests of the core and of
//! the front ends over it (youki's fake syscalls are the model: the seam's
//! traits, and an implementation that records each call).
//!
//! [`FakeEngine`] is the control plane ([`Engine`]), the data plane
//! ([`WorkloadIo`]) and the isolation ([`Isolation`]) of a daemon that runs
//! nothing. Containers and networks live in memory and move as a daemon
//! moves them, with its typed errors, as the docker backend reports them:
//!
//! - a container name is taken once (`Conflict`); a container is found by
//!   its id, its name or a unique prefix of its id; a missing one is
//!   `NotFound`;
//! - `start` makes a created or exited container running (a running one
//!   stays as it is, a paused one is a `Conflict`) and ends it as the
//!   [`Exit`] set for it or its image says; without one it runs until
//!   stopped, killed, removed or ended by [`FakeEngine::exit_now`];
//! - `start_watched` does the same, but a container with no [`Exit`] set
//!   ends at once with code 0 (a run to completion);
//! - `stop` ends a live container with 143, `kill` with 137; either is a
//!   no-op on one that is not live;
//! - `pause` freezes a running container, `unpause` thaws a paused one
//!   (`Conflict` otherwise);
//! - `remove` takes a live container only with `force` (`Conflict`
//!   otherwise);
//! - a container joins only a network that exists (`NotFound`); network
//!   names are taken once (`Conflict`), and a network with live containers
//!   on it is not removed (`Conflict`).
//!
//! Every call is recorded ([`FakeEngine::calls`]) with its operation and
//! target, failed or not; [`FakeEngine::fail_next`] queues errors for the
//! next calls of an operation, which then change nothing. What a workload
//! would say (its logs, health, exit, exec output) is set by the test.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};

use super::{
    ByteStream, Capabilities, Engine, EngineError, ExecOutput, ExecRequest, ExecSession, ExitFuture, ExitWatch, Handle,
    Health, ImageCommand, Isolation, LogChunk, LogRequest, LogStream, NetworkInfo, Phase, ProcessId, Selector, Signal,
    StdioSession, Stream, TtySize, Usage, UsageStream, WorkloadEvent, WorkloadInfo, WorkloadIo, WorkloadState,
};
use crate::model::handle::Placement;
use crate::model::ids::{Clock, SystemClock};
use crate::spec::{ContainerSpec, Network};

/// Exit code of a container stopped with SIGTERM.
pub const STOPPED: i64 = 128 + 15;
/// Exit code of a container killed with SIGKILL (and of one killed for
/// going over its memory limit).
pub const KILLED: i64 = 128 + 9;

/// The one usage sample the fake reports for a live container (its
/// memory limit is the container's own).
pub const SAMPLE: Usage = Usage {
    cpu_percent: Some(1.5),
    cpu_time_ns: 250_000_000,
    memory_used: Some(8 * 1024 * 1024),
    memory_peak: Some(12 * 1024 * 1024),
    memory_limit: None,
    net_rx: 1024,
    net_tx: 512,
    block_read: 4096,
    block_write: 0,
    pids: Some(3),
};

/// An operation of the seam, as the call log and the failure queues name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Ping,
    EnsureImage,
    ImageCommand,
    Create,
    Start,
    StartWatched,
    StartAttached,
    Stop,
    Kill,
    Pause,
    Unpause,
    Remove,
    Inspect,
    List,
    Events,
    Plan,
    Logs,
    UsageStream,
    Usage,
    Exec,
    Resize,
    Attach,
    PutFiles,
    GetFiles,
    Signal,
    CreateNetwork,
    RemoveNetwork,
    ListNetworks,
}

/// One call made to the fake: the operation and what it was made on (a
/// container's id or name as the caller gave it, the spec's name for a
/// create, an image, a network's name or id, a selector's label filters
/// joined by commas, or nothing for a ping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    pub target: String,
}

/// How a started workload ends (set per container or per image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// At once, with this code.
    Code(i64),
    /// At once, killed for going over its memory limit (code 137).
    OutOfMemory,
    /// Not by itself: it runs until stopped, killed or removed.
    WhenStopped,
}

/// What a workload would say, set for one container or for an image.
#[derive(Debug, Clone, Default)]
struct Said {
    exit: Option<Exit>,
    health: Option<Health>,
    logs: Option<Vec<LogChunk>>,
    exec: Option<ExecOutput>,
}

struct Container {
    id: String,
    spec: ContainerSpec,
    phase: Phase,
    exit_code: Option<i64>,
    oom_killed: bool,
    /// The exit code once it has exited, for those awaiting it.
    exited: watch::Sender<Option<i64>>,
    /// Tar archives put into it, by folder.
    files: BTreeMap<String, Vec<u8>>,
    /// Where the engine moved it, as a cluster moves a workload.
    moved_to: Option<Placement>,
}

struct Net {
    id: String,
    name: String,
    internal: bool,
    labels: BTreeMap<String, String>,
    created: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct Inner {
    capabilities: Capabilities,
    serial: u64,
    containers: BTreeMap<String, Container>,
    networks: BTreeMap<String, Net>,
    calls: Vec<Call>,
    failures: HashMap<Op, VecDeque<EngineError>>,
    /// Set for one container, by its id (or by a name no container had yet).
    by_container: HashMap<String, Said>,
    by_image: HashMap<String, Said>,
    commands: HashMap<String, ImageCommand>,
}

impl Inner {
    fn next(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// The id of a container by id, name, or unique id prefix.
    fn find(&self, id_or_name: &str) -> Result<String, EngineError> {
        let missing = || EngineError::not_found(format!("No such container: {id_or_name}"));
        if id_or_name.is_empty() {
            return Err(missing());
        }
        if self.containers.contains_key(id_or_name) {
            return Ok(id_or_name.to_owned());
        }
        if let Some(c) = self.containers.values().find(|c| c.spec.name == id_or_name) {
            return Ok(c.id.clone());
        }
        let mut prefixed = self.containers.keys().filter(|id| id.starts_with(id_or_name));
        match (prefixed.next(), prefixed.next()) {
            (Some(id), None) => Ok(id.clone()),
            (Some(_), Some(_)) => Err(EngineError::not_found(format!("{id_or_name} is ambiguous"))),
            _ => Err(missing()),
        }
    }

    fn container(&self, h: &Handle) -> Result<&Container, EngineError> {
        let id = self.find(&h.id.0)?;
        self.containers.get(&id).ok_or_else(|| EngineError::not_found(format!("No such container: {id}")))
    }

    fn container_mut(&mut self, h: &Handle) -> Result<&mut Container, EngineError> {
        let id = self.find(&h.id.0)?;
        self.containers.get_mut(&id).ok_or_else(|| EngineError::not_found(format!("No such container: {id}")))
    }

    fn live(&self, h: &Handle) -> Result<&Container, EngineError> {
        let c = self.container(h)?;
        if c.phase != Phase::Running {
            return Err(EngineError::conflict(format!("container {} is not running", c.id)));
        }
        Ok(c)
    }

    /// What was set for container `c`: its own, else its image's.
    fn said<T>(&self, c: &Container, pick: impl Fn(&Said) -> Option<T>) -> Option<T> {
        [c.id.as_str(), c.spec.name.as_str()]
            .iter()
            .find_map(|key| self.by_container.get(*key).and_then(&pick))
            .or_else(|| self.by_image.get(&c.spec.image).and_then(&pick))
    }

    /// The key a setting for `h` is kept under: the id of the container it
    /// names, or the name a container is yet to have.
    fn key(&self, h: &Handle) -> String {
        self.find(&h.id.0).unwrap_or_else(|_| h.id.0.clone())
    }

    fn attached(&self, net: &Net) -> usize {
        self.containers
            .values()
            .filter(|c| c.phase.is_live())
            .filter(|c| matches!(&c.spec.network, Network::Named { name, .. } if *name == net.name || *name == net.id))
            .count()
    }

    fn network_id(&self, id_or_name: &str) -> Option<String> {
        if self.networks.contains_key(id_or_name) {
            return Some(id_or_name.to_owned());
        }
        self.networks.values().find(|n| n.name == id_or_name).map(|n| n.id.clone())
    }
}

impl Container {
    fn info(&self) -> WorkloadInfo {
        WorkloadInfo {
            handle: Handle::at(self.id.clone(), self.moved_to.clone().unwrap_or(Placement::Local)),
            name: self.spec.name.clone(),
            phase: self.phase,
            labels: self.spec.labels.clone(),
            annotations: self.spec.annotations.clone(),
        }
    }

    fn run(&mut self) {
        self.phase = Phase::Running;
        self.exit_code = None;
        self.oom_killed = false;
        self.exited.send_replace(None);
    }

    fn end(&mut self, code: i64, oom_killed: bool) {
        self.phase = Phase::Exited;
        self.exit_code = Some(code);
        self.oom_killed = oom_killed;
        self.exited.send_replace(Some(code));
    }

    /// Awaits its next exit code.
    fn exit(&self) -> ExitFuture {
        let mut exited = self.exited.subscribe();
        let id = self.id.clone();
        Box::pin(async move {
            match exited.wait_for(Option::is_some).await {
                Ok(code) => (*code).ok_or_else(|| EngineError::failed(format!("{id} has no exit code"))),
                Err(_) => Err(EngineError::not_found(format!("{id} was removed before it exited"))),
            }
        })
    }

    fn usage(&self) -> Usage {
        Usage { memory_limit: Some(self.spec.limits.memory.bytes()), ..SAMPLE }
    }
}

/// An engine in memory that records its calls and fails on request.
pub struct FakeEngine {
    inner: Mutex<Inner>,
    events: broadcast::Sender<WorkloadEvent>,
    clock: Arc<dyn Clock>,
    /// The runtime it says it is (`fake` unless told).
    runtime: &'static str,
    /// The runtime's name as runs ask for it (the runtime's unless told).
    asked_as: Option<&'static str>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        FakeEngine::new()
    }
}

/// Output on stdout, for [`FakeEngine::set_logs`].
pub fn stdout(text: &str) -> LogChunk {
    LogChunk { stream: Stream::Stdout, data: Bytes::copy_from_slice(text.as_bytes()) }
}

/// Output on stderr, for [`FakeEngine::set_logs`].
pub fn stderr(text: &str) -> LogChunk {
    LogChunk { stream: Stream::Stderr, data: Bytes::copy_from_slice(text.as_bytes()) }
}

/// The capabilities of the docker backend, which the fake has unless told
/// otherwise: everything but plans.
pub fn docker_capabilities() -> Capabilities {
    Capabilities::CONTAINER_ENGINE
}

impl FakeEngine {
    /// An empty engine with the docker backend's capabilities, whose
    /// networks are made at the system clock's time.
    pub fn new() -> FakeEngine {
        FakeEngine::with_clock(Arc::new(SystemClock))
    }

    /// The same engine saying it is runtime `name` (a sealed engine's stand-in).
    pub fn with_runtime(mut self, name: &'static str) -> FakeEngine {
        self.runtime = name;
        self
    }

    /// The same engine answering runs that ask for runtime `name` (an
    /// engine under one of its own runtimes' stand-in).
    pub fn asked_as(mut self, name: &'static str) -> FakeEngine {
        self.asked_as = Some(name);
        self
    }

    /// An empty engine whose networks are made at `clock`'s time (so a
    /// sweep measured by the same clock sees their age).
    pub fn with_clock(clock: Arc<dyn Clock>) -> FakeEngine {
        let inner = Inner { capabilities: docker_capabilities(), ..Inner::default() };
        FakeEngine {
            inner: Mutex::new(inner),
            events: broadcast::channel(256).0,
            clock,
            runtime: "fake",
            asked_as: None,
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a call and hands out the failure queued for its operation.
    fn enter(&self, op: Op, target: impl Into<String>) -> Result<MutexGuard<'_, Inner>, EngineError> {
        let mut inner = self.inner();
        inner.calls.push(Call { op, target: target.into() });
        match inner.failures.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(inner),
        }
    }

    fn emit(&self, c: &Container, action: &str) {
        let mut attributes = c.spec.labels.clone();
        attributes.insert("name".into(), c.spec.name.clone());
        attributes.insert("image".into(), c.spec.image.clone());
        if let (Some(code), "die") = (c.exit_code, action) {
            attributes.insert("exitCode".into(), code.to_string());
        }
        // Nobody listening is not a failure.
        let _ =
            self.events.send(WorkloadEvent { handle: Handle::local(c.id.clone()), action: action.into(), attributes });
    }

    // ----- what the test sets ---------------------------------------------

    /// What the engine says it can do from now on.
    pub fn set_capabilities(&self, capabilities: Capabilities) {
        self.inner().capabilities = capabilities;
    }

    /// Makes the next call of `op` fail with `error` (after those queued
    /// before it), changing nothing.
    pub fn fail_next(&self, op: Op, error: EngineError) {
        self.inner().failures.entry(op).or_default().push_back(error);
    }

    /// How the container `h` (or the one to be named so) ends when started.
    pub fn set_exit(&self, h: &Handle, exit: Exit) {
        let mut inner = self.inner();
        let key = inner.key(h);
        inner.by_container.entry(key).or_default().exit = Some(exit);
    }

    /// How containers of `image` end when started, unless set for the
    /// container.
    pub fn set_image_exit(&self, image: &str, exit: Exit) {
        self.inner().by_image.entry(image.to_owned()).or_default().exit = Some(exit);
    }

    /// What the health check of container `h` says from now on (a started
    /// container with a check says `Starting` until told; an unhealthy
    /// one's check log says that the check failed).
    /// Moves container `h` to `to`, as a cluster makes a workload again on
    /// another node: inspects and lists say it runs there from now on.
    pub fn move_to(&self, h: &Handle, to: Placement) {
        let mut inner = self.inner();
        if let Ok(id) = inner.find(&h.id.0) {
            if let Some(c) = inner.containers.get_mut(&id) {
                c.moved_to = Some(to);
            }
        }
    }

    pub fn set_health(&self, h: &Handle, health: Health) {
        let mut inner = self.inner();
        let key = inner.key(h);
        inner.by_container.entry(key).or_default().health = Some(health);
    }

    /// What the health checks of containers of `image` say, unless set for
    /// the container.
    pub fn set_image_health(&self, image: &str, health: Health) {
        self.inner().by_image.entry(image.to_owned()).or_default().health = Some(health);
    }

    /// What container `h` has written (each chunk stands for a line when a
    /// log is read with a tail).
    pub fn set_logs(&self, h: &Handle, chunks: Vec<LogChunk>) {
        let mut inner = self.inner();
        let key = inner.key(h);
        inner.by_container.entry(key).or_default().logs = Some(chunks);
    }

    /// What containers of `image` have written, unless set for the container.
    pub fn set_image_logs(&self, image: &str, chunks: Vec<LogChunk>) {
        self.inner().by_image.entry(image.to_owned()).or_default().logs = Some(chunks);
    }

    /// What a command run in container `h` writes and exits with (nothing
    /// and 0 unless told).
    pub fn set_exec(&self, h: &Handle, exit_code: i64, stdout: &str, stderr: &str) {
        let out = ExecOutput {
            exit_code,
            stdout: stdout.into(),
            stderr: stderr.into(),
            stdout_truncated: false,
            stderr_truncated: false,
        };
        let mut inner = self.inner();
        let key = inner.key(h);
        inner.by_container.entry(key).or_default().exec = Some(out);
    }

    /// The entrypoint and command of `image`.
    pub fn set_image_command(&self, image: &str, command: ImageCommand) {
        self.inner().commands.insert(image.to_owned(), command);
    }

    /// Ends the process of a live container by itself (a crash, or its
    /// command returning); false when there was no live container.
    pub fn exit_now(&self, h: &Handle, code: i64) -> bool {
        let mut inner = self.inner();
        let Ok(c) = inner.container_mut(h) else { return false };
        if !c.phase.is_live() {
            return false;
        }
        c.end(code, false);
        self.emit(c, "die");
        true
    }

    /// Takes a container away without a call (removed behind berth's back,
    /// or lost by the daemon); false when there was none.
    pub fn vanish(&self, h: &Handle) -> bool {
        let mut inner = self.inner();
        match inner.find(&h.id.0) {
            Ok(id) => inner.containers.remove(&id).is_some(),
            Err(_) => false,
        }
    }

    /// Starts container `h` and ends it as set for it or its image, or as
    /// `unset` says; hands out the wait for its exit.
    fn launch(&self, inner: &mut Inner, h: &Handle, unset: Exit) -> Result<ExitFuture, EngineError> {
        let exit = {
            let c = inner.container(h)?;
            inner.said(c, |s| s.exit).unwrap_or(unset)
        };
        let c = inner.container_mut(h)?;
        if c.phase == Phase::Paused {
            return Err(EngineError::conflict(format!("cannot start a paused container {}", c.id)));
        }
        if c.phase != Phase::Running {
            c.run();
            self.emit(c, "start");
        }
        let watch = c.exit();
        match exit {
            Exit::Code(code) => c.end(code, false),
            Exit::OutOfMemory => {
                c.end(KILLED, true);
                self.emit(c, "oom");
            }
            Exit::WhenStopped => return Ok(watch),
        }
        self.emit(c, "die");
        Ok(watch)
    }

    // ----- what the test reads --------------------------------------------

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner().calls.clone()
    }

    /// The targets of the calls of `op` so far, in order.
    pub fn calls_of(&self, op: Op) -> Vec<String> {
        self.inner().calls.iter().filter(|c| c.op == op).map(|c| c.target.clone()).collect()
    }

    /// Forgets the calls so far (after a test's set-up).
    pub fn clear_calls(&self) {
        self.inner().calls.clear();
    }

    /// Every container, in the order they were made, without a call.
    pub fn containers(&self) -> Vec<WorkloadInfo> {
        self.inner().containers.values().map(Container::info).collect()
    }

    /// The container of that name, without a call.
    pub fn container_named(&self, name: &str) -> Option<WorkloadInfo> {
        self.inner().containers.values().find(|c| c.spec.name == name).map(Container::info)
    }

    /// The spec container `h` was made with, without a call.
    pub fn spec_of(&self, h: &Handle) -> Option<ContainerSpec> {
        self.inner().container(h).ok().map(|c| c.spec.clone())
    }

    /// Every network, without a call.
    pub fn networks(&self) -> Vec<NetworkInfo> {
        let inner = self.inner();
        inner.networks.values().map(|n| network_info(&inner, n)).collect()
    }

    fn state(inner: &Inner, c: &Container) -> WorkloadState {
        let checked = c.spec.health.is_some() && c.phase != Phase::Created;
        let health = checked.then(|| inner.said(c, |s| s.health).unwrap_or(Health::Starting));
        WorkloadState {
            phase: c.phase,
            health,
            exit_code: c.exit_code,
            oom_killed: c.oom_killed,
            health_log: match health {
                Some(Health::Unhealthy) => vec!["the fake engine's check failed".into()],
                _ => vec![],
            },
            labels: c.spec.labels.clone(),
            annotations: c.spec.annotations.clone(),
            name: c.spec.name.clone(),
            placement: c.moved_to.clone(),
        }
    }

    fn logs_of(inner: &Inner, c: &Container, request: &LogRequest) -> Vec<LogChunk> {
        let mut chunks = inner.said(c, |s| s.logs.clone()).unwrap_or_default();
        if let Some(tail) = request.tail {
            let keep = usize::try_from(tail).unwrap_or(usize::MAX).min(chunks.len());
            chunks.drain(..chunks.len() - keep);
        }
        chunks
    }
}

fn network_info(inner: &Inner, n: &Net) -> NetworkInfo {
    NetworkInfo {
        id: n.id.clone(),
        name: n.name.clone(),
        internal: n.internal,
        labels: n.labels.clone(),
        containers: inner.attached(n),
        created: Some(n.created),
    }
}

fn chunks(chunks: Vec<LogChunk>) -> LogStream {
    futures_util::stream::iter(chunks.into_iter().map(Ok)).boxed()
}

fn filters(selector: &Selector) -> String {
    selector.label_filters().join(",")
}

#[async_trait]
impl Engine for FakeEngine {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn runtime(&self) -> &str {
        self.runtime
    }

    fn asked_as(&self) -> &str {
        self.asked_as.unwrap_or(self.runtime)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner().capabilities
    }

    async fn ping(&self) -> Result<(), EngineError> {
        drop(self.enter(Op::Ping, "")?);
        Ok(())
    }

    async fn ensure_image(&self, image: &str) -> Result<(), EngineError> {
        drop(self.enter(Op::EnsureImage, image)?);
        if image.trim().is_empty() {
            return Err(EngineError::invalid("an image reference is needed"));
        }
        Ok(())
    }

    async fn image_command(&self, image: &str) -> Result<ImageCommand, EngineError> {
        let inner = self.enter(Op::ImageCommand, image)?;
        Ok(inner.commands.get(image).cloned().unwrap_or_default())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Handle, EngineError> {
        let mut inner = self.enter(Op::Create, spec.name.clone())?;
        if inner.containers.values().any(|c| c.spec.name == spec.name) {
            return Err(EngineError::conflict(format!(
                "the container name \"/{}\" is already in use by another container",
                spec.name
            )));
        }
        if spec.image.trim().is_empty() {
            return Err(EngineError::invalid("an image reference is needed"));
        }
        if let Network::Named { name, .. } = &spec.network {
            if inner.network_id(name).is_none() {
                return Err(EngineError::not_found(format!("network {name} not found")));
            }
        }
        let id = format!("fake{:08}", inner.next());
        let c = Container {
            id: id.clone(),
            spec: spec.clone(),
            phase: Phase::Created,
            exit_code: None,
            oom_killed: false,
            exited: watch::channel(None).0,
            files: BTreeMap::new(),
            moved_to: None,
        };
        self.emit(&c, "create");
        inner.containers.insert(id.clone(), c);
        Ok(Handle::local(id))
    }

    async fn start(&self, h: &Handle) -> Result<(), EngineError> {
        let mut inner = self.enter(Op::Start, h.id.0.clone())?;
        if inner.container(h)?.phase == Phase::Running {
            return Ok(());
        }
        self.launch(&mut inner, h, Exit::WhenStopped).map(|_| ())
    }

    async fn start_watched(&self, h: &Handle) -> Result<ExitWatch, EngineError> {
        let mut inner = self.enter(Op::StartWatched, h.id.0.clone())?;
        self.launch(&mut inner, h, Exit::Code(0))
    }

    async fn start_attached(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        let mut inner = self.enter(Op::StartAttached, h.id.0.clone())?;
        if !inner.capabilities.attach_before_start {
            return Err(EngineError::invalid("the fake backend cannot attach to a workload (as set)"));
        }
        let output = {
            let c = inner.container(h)?;
            FakeEngine::logs_of(&inner, c, &LogRequest::default())
        };
        let c = inner.container_mut(h)?;
        if c.phase != Phase::Running {
            c.run();
        }
        self.emit(c, "start");
        Ok(StdioSession { output: chunks(output), stdin: Box::pin(tokio::io::sink()), exit: c.exit() })
    }

    async fn stop(&self, h: &Handle, _grace: Duration) -> Result<(), EngineError> {
        let mut inner = self.enter(Op::Stop, h.id.0.clone())?;
        let c = inner.container_mut(h)?;
        if c.phase.is_live() {
            c.end(STOPPED, false);
            self.emit(c, "die");
        }
        Ok(())
    }

    async fn kill(&self, h: &Handle) -> Result<(), EngineError> {
        let mut inner = self.enter(Op::Kill, h.id.0.clone())?;
        let c = inner.container_mut(h)?;
        if c.phase.is_live() {
            c.end(KILLED, false);
            self.emit(c, "die");
        }
        Ok(())
    }

    async fn pause(&self, h: &Handle) -> Result<(), EngineError> {
        let mut inner = self.enter(Op::Pause, h.id.0.clone())?;
        if !inner.capabilities.pause {
            return Err(EngineError::invalid("the fake backend cannot pause (as set)"));
        }
        let c = inner.container_mut(h)?;
        if c.phase != Phase::Running {
            return Err(EngineError::conflict(format!("container {} is not running", c.id)));
        }
        c.phase = Phase::Paused;
        self.emit(c, "pause");
        Ok(())
    }

    async fn unpause(&self, h: &Handle) -> Result<(), EngineError> {
        let mut inner = self.enter(Op::Unpause, h.id.0.clone())?;
        let c = inner.container_mut(h)?;
        if c.phase != Phase::Paused {
            return Err(EngineError::conflict(format!("container {} is not paused", c.id)));
        }
        c.phase = Phase::Running;
        self.emit(c, "unpause");
        Ok(())
    }

    async fn remove(&self, h: &Handle, force: bool) -> Result<(), EngineError> {
        let mut inner = self.enter(Op::Remove, h.id.0.clone())?;
        let c = inner.container_mut(h)?;
        if c.phase.is_live() {
            if !force {
                return Err(EngineError::conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            c.end(KILLED, false);
            self.emit(c, "die");
        }
        let id = c.id.clone();
        if let Some(c) = inner.containers.remove(&id) {
            self.emit(&c, "destroy");
        }
        Ok(())
    }

    async fn inspect(&self, h: &Handle) -> Result<WorkloadState, EngineError> {
        let inner = self.enter(Op::Inspect, h.id.0.clone())?;
        let c = inner.container(h)?;
        Ok(FakeEngine::state(&inner, c))
    }

    async fn list(&self, selector: &Selector) -> Result<Vec<WorkloadInfo>, EngineError> {
        let inner = self.enter(Op::List, filters(selector))?;
        Ok(inner.containers.values().filter(|c| selector.matches(&c.spec.labels)).map(Container::info).collect())
    }

    async fn events(
        &self,
        selector: &Selector,
    ) -> Result<BoxStream<'static, Result<WorkloadEvent, EngineError>>, EngineError> {
        drop(self.enter(Op::Events, filters(selector))?);
        Ok(super::events::matching(self.events.subscribe(), selector.clone()))
    }

    fn io(&self, _h: &Handle) -> Result<&dyn WorkloadIo, EngineError> {
        Ok(self)
    }

    fn isolation(&self) -> Option<&dyn Isolation> {
        if self.inner().capabilities.isolation {
            Some(self)
        } else {
            None
        }
    }

    /// The spec a container was made with, as JSON, when plans are among
    /// the capabilities set; `None` otherwise.
    async fn plan(&self, h: &Handle) -> Result<Option<serde_json::Value>, EngineError> {
        let inner = self.enter(Op::Plan, h.id.0.clone())?;
        let c = inner.container(h)?;
        if !inner.capabilities.plans {
            return Ok(None);
        }
        serde_json::to_value(&c.spec).map(Some).map_err(|e| EngineError::failed(e.to_string()).with_source(e))
    }
}

#[async_trait]
impl WorkloadIo for FakeEngine {
    /// What was set for the container, whether followed or not (nothing more
    /// is ever written).
    async fn logs(&self, h: &Handle, request: &LogRequest) -> Result<LogStream, EngineError> {
        let inner = self.enter(Op::Logs, h.id.0.clone())?;
        let c = inner.container(h)?;
        Ok(chunks(FakeEngine::logs_of(&inner, c, request)))
    }

    /// One [`SAMPLE`] for a live container, none for another.
    async fn usage_stream(&self, h: &Handle) -> Result<UsageStream, EngineError> {
        let inner = self.enter(Op::UsageStream, h.id.0.clone())?;
        let c = inner.container(h)?;
        let samples = if c.phase.is_live() { vec![c.usage()] } else { vec![] };
        Ok(futures_util::stream::iter(samples).boxed())
    }

    async fn usage(&self, h: &Handle) -> Result<Usage, EngineError> {
        let inner = self.enter(Op::Usage, h.id.0.clone())?;
        let c = inner.container(h)?;
        if !c.phase.is_live() {
            return Err(EngineError::conflict(format!("{h} is not running: no usage to sample")));
        }
        Ok(c.usage())
    }

    async fn exec(&self, h: &Handle, request: &ExecRequest) -> Result<ExecSession, EngineError> {
        let mut inner = self.enter(Op::Exec, h.id.0.clone())?;
        if request.stdin && !inner.capabilities.interactive_exec {
            return Err(EngineError::invalid("the fake backend has no interactive exec (as set)"));
        }
        if request.tty.is_some() && !inner.capabilities.tty {
            return Err(EngineError::invalid("the fake backend has no TTY (as set)"));
        }
        let out = {
            let c = inner.live(h)?;
            inner.said(c, |s| s.exec.clone()).unwrap_or(ExecOutput {
                exit_code: 0,
                stdout: String::new(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: false,
            })
        };
        let process = ProcessId(format!("exec{:08}", inner.next()));
        let mut output = Vec::new();
        if !out.stdout.is_empty() {
            let stream = if request.tty.is_some() { Stream::Console } else { Stream::Stdout };
            output.push(LogChunk { stream, data: out.stdout.into() });
        }
        if !out.stderr.is_empty() {
            output.push(LogChunk { stream: Stream::Stderr, data: out.stderr.into() });
        }
        let code = out.exit_code;
        let stdio = StdioSession {
            output: chunks(output),
            stdin: Box::pin(tokio::io::sink()),
            exit: Box::pin(std::future::ready(Ok(code))),
        };
        Ok(ExecSession { process, stdio })
    }

    async fn resize(&self, h: &Handle, _process: &ProcessId, _size: TtySize) -> Result<(), EngineError> {
        let inner = self.enter(Op::Resize, h.id.0.clone())?;
        inner.live(h)?;
        Ok(())
    }

    async fn attach(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        let inner = self.enter(Op::Attach, h.id.0.clone())?;
        let c = inner.live(h)?;
        let output = FakeEngine::logs_of(&inner, c, &LogRequest::default());
        Ok(StdioSession { output: chunks(output), stdin: Box::pin(tokio::io::sink()), exit: c.exit() })
    }

    /// Keeps the archive's bytes under `dir`, for `get_files` of the same path.
    async fn put_files(&self, h: &Handle, dir: &str, mut tar: ByteStream) -> Result<(), EngineError> {
        {
            let inner = self.enter(Op::PutFiles, h.id.0.clone())?;
            inner.container(h)?;
        }
        let mut bytes = Vec::new();
        while let Some(piece) = tar.next().await {
            bytes.extend_from_slice(&piece?);
        }
        let mut inner = self.inner();
        inner.container_mut(h)?.files.insert(dir.to_owned(), bytes);
        Ok(())
    }

    /// The archive put under `path`; `NotFound` when none was.
    async fn get_files(&self, h: &Handle, path: &str) -> Result<ByteStream, EngineError> {
        let inner = self.enter(Op::GetFiles, h.id.0.clone())?;
        let c = inner.container(h)?;
        let bytes =
            c.files.get(path).cloned().ok_or_else(|| {
                EngineError::not_found(format!("Could not find the file {path} in container {}", c.id))
            })?;
        Ok(futures_util::stream::iter([Ok(Bytes::from(bytes))]).boxed())
    }

    async fn signal(&self, h: &Handle, _pid: u32, _signal: Signal) -> Result<(), EngineError> {
        let inner = self.enter(Op::Signal, h.id.0.clone())?;
        inner.live(h)?;
        Ok(())
    }
}

#[async_trait]
impl Isolation for FakeEngine {
    async fn create_network(
        &self,
        name: &str,
        internal: bool,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        let mut inner = self.enter(Op::CreateNetwork, name)?;
        if inner.network_id(name).is_some() {
            return Err(EngineError::conflict(format!("network with name {name} already exists")));
        }
        let id = format!("net{:08}", inner.next());
        let net =
            Net { id: id.clone(), name: name.to_owned(), internal, labels: labels.clone(), created: self.clock.now() };
        inner.networks.insert(id.clone(), net);
        Ok(id)
    }

    async fn remove_network(&self, id_or_name: &str) -> Result<(), EngineError> {
        let mut inner = self.enter(Op::RemoveNetwork, id_or_name)?;
        let id = inner
            .network_id(id_or_name)
            .ok_or_else(|| EngineError::not_found(format!("network {id_or_name} not found")))?;
        let net = inner.networks.get(&id).ok_or_else(|| EngineError::not_found(format!("network {id} not found")))?;
        if inner.attached(net) > 0 {
            return Err(EngineError::conflict(format!(
                "error while removing network: network {} has active endpoints",
                net.name
            )));
        }
        inner.networks.remove(&id);
        Ok(())
    }

    async fn list_networks(&self, selector: &Selector) -> Result<Vec<NetworkInfo>, EngineError> {
        let inner = self.enter(Op::ListNetworks, filters(selector))?;
        Ok(inner.networks.values().filter(|n| selector.matches(&n.labels)).map(|n| network_info(&inner, n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineErrorKind;
    use crate::policy::{ContainerRequest, Policy};
    use crate::spec::{annotations, labels, HealthCheck, Kind};

    fn spec(name: &str, image: &str) -> ContainerSpec {
        let mut req = ContainerRequest::new(Kind::Agent, name, image);
        req.labels.insert("team".into(), "a".into());
        Policy::default().admit(req).expect("a plain request is admitted")
    }

    fn checked(name: &str) -> ContainerSpec {
        let mut s = spec(name, "svc:1");
        s.health = Some(HealthCheck {
            command: "true".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries: 1,
            start_period: Duration::from_secs(1),
        });
        s
    }

    fn kind<T>(r: Result<T, EngineError>) -> EngineErrorKind {
        match r {
            Ok(_) => panic!("the call succeeded"),
            Err(e) => e.kind(),
        }
    }

    async fn phase(f: &FakeEngine, h: &Handle) -> (Phase, Option<i64>) {
        let s = f.inspect(h).await.expect("the container is there");
        (s.phase, s.exit_code)
    }

    #[tokio::test]
    async fn a_name_is_taken_once_and_a_missing_container_is_not_found() {
        let f = FakeEngine::new();
        let h = f.create(&spec("berth-a", "busybox:1.35")).await.unwrap();
        assert_eq!(kind(f.create(&spec("berth-a", "busybox:1.35")).await), EngineErrorKind::Conflict);
        assert_eq!(f.containers().len(), 1, "the refused create made nothing");
        assert_eq!(kind(f.start(&Handle::local("berth-b")).await), EngineErrorKind::NotFound);
        assert_eq!(kind(f.remove(&Handle::local("nope"), true).await), EngineErrorKind::NotFound);
        assert_eq!(f.inspect(&Handle::local("berth-a")).await.unwrap().name, "berth-a", "found by name");
        assert_eq!(f.inspect(&Handle::local(&h.id.0[..6])).await.unwrap().name, "berth-a", "found by id prefix");
    }

    #[tokio::test]
    async fn a_container_moves_through_start_pause_and_stop_as_a_daemon_moves_it() {
        let f = FakeEngine::new();
        let h = f.create(&spec("berth-a", "busybox:1.35")).await.unwrap();
        assert_eq!(phase(&f, &h).await, (Phase::Created, None));
        f.start(&h).await.unwrap();
        f.start(&h).await.expect("starting a running container is a no-op");
        assert_eq!(phase(&f, &h).await, (Phase::Running, None));
        f.pause(&h).await.unwrap();
        assert_eq!(phase(&f, &h).await, (Phase::Paused, None));
        assert_eq!(kind(f.start(&h).await), EngineErrorKind::Conflict, "a paused container is not started");
        assert_eq!(kind(f.pause(&h).await), EngineErrorKind::Conflict);
        f.unpause(&h).await.unwrap();
        assert_eq!(kind(f.unpause(&h).await), EngineErrorKind::Conflict);
        f.stop(&h, Duration::from_secs(1)).await.unwrap();
        assert_eq!(phase(&f, &h).await, (Phase::Exited, Some(STOPPED)));
        f.stop(&h, Duration::from_secs(1)).await.expect("stopping a stopped container is a no-op");
        f.start(&h).await.unwrap();
        assert_eq!(phase(&f, &h).await, (Phase::Running, None));
        f.kill(&h).await.unwrap();
        assert_eq!(phase(&f, &h).await, (Phase::Exited, Some(KILLED)));
    }

    #[tokio::test]
    async fn a_live_container_is_removed_only_with_force() {
        let f = FakeEngine::new();
        let h = f.create(&spec("berth-a", "busybox:1.35")).await.unwrap();
        f.start(&h).await.unwrap();
        assert_eq!(kind(f.remove(&h, false).await), EngineErrorKind::Conflict);
        assert_eq!(f.containers().len(), 1);
        f.remove(&h, true).await.unwrap();
        assert!(f.containers().is_empty());
        let stopped = f.create(&spec("berth-b", "busybox:1.35")).await.unwrap();
        f.remove(&stopped, false).await.expect("a container that is not live goes without force");
    }

    #[tokio::test]
    async fn a_watched_start_exits_with_the_containers_code_over_its_images_and_zero_otherwise() {
        let f = FakeEngine::new();
        f.set_image_exit("tool:1", Exit::Code(3));
        let plain = f.create(&spec("plain", "busybox:1.35")).await.unwrap();
        let by_image = f.create(&spec("by-image", "tool:1")).await.unwrap();
        let own = f.create(&spec("own", "tool:1")).await.unwrap();
        f.set_exit(&own, Exit::Code(7));
        assert_eq!(f.start_watched(&plain).await.unwrap().await.unwrap(), 0);
        assert_eq!(f.start_watched(&by_image).await.unwrap().await.unwrap(), 3);
        assert_eq!(f.start_watched(&own).await.unwrap().await.unwrap(), 7);
        assert_eq!(phase(&f, &own).await, (Phase::Exited, Some(7)));
    }

    #[tokio::test]
    async fn a_plain_start_runs_until_stopped_unless_an_exit_was_set() {
        let f = FakeEngine::new();
        let runs = f.create(&spec("runs", "busybox:1.35")).await.unwrap();
        let crashes = f.create(&spec("crashes", "busybox:1.35")).await.unwrap();
        f.set_exit(&crashes, Exit::Code(1));
        f.start(&runs).await.unwrap();
        f.start(&crashes).await.unwrap();
        assert_eq!(phase(&f, &runs).await, (Phase::Running, None));
        assert_eq!(phase(&f, &crashes).await, (Phase::Exited, Some(1)));
    }

    #[tokio::test]
    async fn an_exit_set_by_name_before_the_container_exists_applies_to_the_one_made_so() {
        let f = FakeEngine::new();
        f.set_exit(&Handle::local("later"), Exit::Code(9));
        let h = f.create(&spec("later", "busybox:1.35")).await.unwrap();
        assert_eq!(f.start_watched(&h).await.unwrap().await.unwrap(), 9);
    }

    #[tokio::test]
    async fn a_workload_that_runs_until_stopped_is_seen_to_exit_when_it_is_killed() {
        let f = FakeEngine::new();
        let h = f.create(&spec("long", "busybox:1.35")).await.unwrap();
        f.set_exit(&h, Exit::WhenStopped);
        let mut exit = f.start_watched(&h).await.unwrap();
        assert!(futures_util::FutureExt::now_or_never(&mut exit).is_none(), "it has not exited");
        assert_eq!(phase(&f, &h).await, (Phase::Running, None));
        f.kill(&h).await.unwrap();
        assert_eq!(exit.await.unwrap(), KILLED);
    }

    #[tokio::test]
    async fn a_workload_over_its_memory_is_killed_and_reported_so() {
        let f = FakeEngine::new();
        f.set_image_exit("hog:1", Exit::OutOfMemory);
        let h = f.create(&spec("hog", "hog:1")).await.unwrap();
        assert_eq!(f.start_watched(&h).await.unwrap().await.unwrap(), KILLED);
        let s = f.inspect(&h).await.unwrap();
        assert!(s.oom_killed);
        f.set_exit(&h, Exit::WhenStopped);
        f.start(&h).await.unwrap();
        assert!(!f.inspect(&h).await.unwrap().oom_killed, "a new start forgets the old end");
    }

    #[tokio::test]
    async fn a_list_keeps_the_containers_whose_labels_match_with_their_annotations() {
        let f = FakeEngine::new();
        let mut expiring = spec("a", "busybox:1.35");
        expiring.labels.insert(labels::TENANT.into(), "t1".into());
        expiring.annotations.insert(annotations::EXPIRES_AT.into(), "2026-01-01T00:00:00+00:00".into());
        f.create(&expiring).await.unwrap();
        let mut other = spec("b", "busybox:1.35");
        other.labels.insert(labels::TENANT.into(), "t2".into());
        f.create(&other).await.unwrap();
        let mine = f.list(&Selector::managed().tenant("t1")).await.unwrap();
        assert_eq!(mine.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(mine[0].annotations[annotations::EXPIRES_AT], "2026-01-01T00:00:00+00:00");
        assert_eq!(mine[0].phase, Phase::Created);
        assert_eq!(f.list(&Selector::managed()).await.unwrap().len(), 2);
        assert!(f.list(&Selector::all().has("nobody")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_health_check_says_starting_until_told_and_a_container_without_one_has_none() {
        let f = FakeEngine::new();
        let h = f.create(&checked("svc")).await.unwrap();
        assert_eq!(f.inspect(&h).await.unwrap().health, None, "not started, not checked");
        f.start(&h).await.unwrap();
        assert_eq!(f.inspect(&h).await.unwrap().health, Some(Health::Starting));
        f.set_image_health("svc:1", Health::Healthy);
        assert_eq!(f.inspect(&h).await.unwrap().health, Some(Health::Healthy));
        f.set_health(&h, Health::Unhealthy);
        let s = f.inspect(&h).await.unwrap();
        assert_eq!(s.health, Some(Health::Unhealthy), "the container's own over its image's");
        assert!(!s.health_log.is_empty());
        let plain = f.create(&spec("plain", "svc:1")).await.unwrap();
        f.start(&plain).await.unwrap();
        assert_eq!(f.inspect(&plain).await.unwrap().health, None);
    }

    async fn read(stream: LogStream) -> Vec<LogChunk> {
        stream.map(|c| c.expect("a chunk")).collect().await
    }

    #[tokio::test]
    async fn logs_are_what_was_set_for_the_container_and_a_tail_keeps_the_last_lines() {
        let f = FakeEngine::new();
        f.set_image_logs("busybox:1.35", vec![stdout("image\n")]);
        let h = f.create(&spec("a", "busybox:1.35")).await.unwrap();
        let other = f.create(&spec("b", "busybox:1.35")).await.unwrap();
        f.set_logs(&h, vec![stdout("one\n"), stderr("two\n"), stdout("three\n")]);
        let all = read(f.logs(&h, &LogRequest::default()).await.unwrap()).await;
        assert_eq!(all, vec![stdout("one\n"), stderr("two\n"), stdout("three\n")]);
        let tail = LogRequest { tail: Some(2), ..Default::default() };
        assert_eq!(read(f.logs(&h, &tail).await.unwrap()).await, vec![stderr("two\n"), stdout("three\n")]);
        assert_eq!(read(f.logs(&other, &LogRequest::default()).await.unwrap()).await, vec![stdout("image\n")]);
        assert_eq!(kind(f.logs(&Handle::local("gone"), &LogRequest::default()).await), EngineErrorKind::NotFound);
    }

    #[tokio::test]
    async fn an_exec_returns_the_output_and_code_set_and_needs_a_running_container() {
        let f = FakeEngine::new();
        let h = f.create(&spec("a", "busybox:1.35")).await.unwrap();
        let req = ExecRequest { cmd: vec!["ls".into()], ..Default::default() };
        assert_eq!(kind(f.exec_to_end(&h, &req, 1024).await), EngineErrorKind::Conflict);
        f.start(&h).await.unwrap();
        assert_eq!(f.exec_to_end(&h, &req, 1024).await.unwrap().exit_code, 0);
        f.set_exec(&h, 2, "out\n", "err\n");
        let out = f.exec_to_end(&h, &req, 1024).await.unwrap();
        assert_eq!((out.exit_code, out.stdout.as_str(), out.stderr.as_str()), (2, "out\n", "err\n"));
    }

    #[tokio::test]
    async fn usage_is_the_fixed_sample_with_the_containers_limit_while_it_is_live() {
        let f = FakeEngine::new();
        let h = f.create(&spec("a", "busybox:1.35")).await.unwrap();
        assert_eq!(kind(f.usage(&h).await), EngineErrorKind::Conflict);
        assert_eq!(f.usage_stream(&h).await.unwrap().count().await, 0);
        f.start(&h).await.unwrap();
        let u = f.usage(&h).await.unwrap();
        assert_eq!(u.cpu_time_ns, SAMPLE.cpu_time_ns);
        assert_eq!(u.memory_limit, Some(512 * 1024 * 1024));
        assert_eq!(f.usage_stream(&h).await.unwrap().collect::<Vec<_>>().await, vec![u]);
    }

    #[tokio::test]
    async fn a_queued_failure_fails_the_next_calls_of_its_operation_in_order_and_changes_nothing() {
        let f = FakeEngine::new();
        f.fail_next(Op::Create, EngineError::unavailable("first"));
        f.fail_next(Op::Create, EngineError::failed("second"));
        let first = f.create(&spec("a", "busybox:1.35")).await.expect_err("the first create fails");
        assert_eq!(first, EngineError::unavailable("first"));
        let h = f.create(&spec("b", "busybox:1.35")).await.unwrap_err();
        assert_eq!(h, EngineError::failed("second"));
        assert!(f.containers().is_empty(), "failed creates made nothing");
        let h = f.create(&spec("c", "busybox:1.35")).await.expect("the queue is empty");
        f.fail_next(Op::Remove, EngineError::conflict("busy"));
        assert_eq!(kind(f.remove(&h, true).await), EngineErrorKind::Conflict);
        assert_eq!(f.containers().len(), 1, "the failed removal left it");
        f.inspect(&h).await.expect("other operations are not failed");
        assert_eq!(f.calls_of(Op::Create), ["a", "b", "c"], "failed calls are recorded too");
    }

    #[tokio::test]
    async fn every_call_is_recorded_with_its_operation_and_target() {
        let f = FakeEngine::new();
        f.ensure_image("busybox:1.35").await.unwrap();
        let h = f.create(&spec("a", "busybox:1.35")).await.unwrap();
        f.start(&Handle::local("a")).await.unwrap();
        f.list(&Selector::managed().tenant("t1")).await.unwrap();
        f.remove(&h, true).await.unwrap();
        let call = |op, target: &str| Call { op, target: target.into() };
        assert_eq!(
            f.calls(),
            vec![
                call(Op::EnsureImage, "busybox:1.35"),
                call(Op::Create, "a"),
                call(Op::Start, "a"),
                call(Op::List, "io.berth.managed,io.berth.tenant=t1"),
                call(Op::Remove, &h.id.0),
            ]
        );
        f.clear_calls();
        assert!(f.calls().is_empty());
    }

    fn session_labels(tenant: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(labels::MANAGED.into(), "true".into()), (labels::TENANT.into(), tenant.into())])
    }

    #[tokio::test]
    async fn a_network_name_is_taken_once_and_one_with_live_members_stays() {
        let f = FakeEngine::new();
        let mut member = spec("m", "busybox:1.35");
        member.network = Network::Named { name: "net-a".into(), aliases: vec![] };
        assert_eq!(kind(f.create(&member).await), EngineErrorKind::NotFound, "a missing network is not joined");
        let id = f.create_network("net-a", true, &session_labels("t1")).await.unwrap();
        assert_eq!(kind(f.create_network("net-a", false, &BTreeMap::new()).await), EngineErrorKind::Conflict);
        let h = f.create(&member).await.unwrap();
        f.start(&h).await.unwrap();
        let nets = f.list_networks(&Selector::managed().tenant("t1")).await.unwrap();
        assert_eq!((nets.len(), nets[0].containers, nets[0].internal), (1, 1, true));
        assert!(f.list_networks(&Selector::managed().tenant("t2")).await.unwrap().is_empty());
        assert_eq!(kind(f.remove_network("net-a").await), EngineErrorKind::Conflict);
        f.stop(&h, Duration::ZERO).await.unwrap();
        f.remove_network(&id).await.unwrap();
        assert!(f.networks().is_empty());
        assert_eq!(kind(f.remove_network("net-a").await), EngineErrorKind::NotFound);
    }

    #[tokio::test]
    async fn networks_are_made_at_the_clocks_time() {
        let t: chrono::DateTime<chrono::Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
        let f = FakeEngine::with_clock(Arc::new(crate::model::ids::FixedClock::at(t)));
        f.create_network("n", true, &BTreeMap::new()).await.unwrap();
        assert_eq!(f.networks()[0].created, Some(t));
    }

    #[tokio::test]
    async fn capabilities_are_the_docker_backends_until_set_and_what_is_set_holds() {
        let f = FakeEngine::new();
        assert_eq!(f.capabilities(), docker_capabilities());
        assert!(!f.capabilities().plans && f.isolation().is_some());
        let h = f.create(&spec("a", "busybox:1.35")).await.unwrap();
        assert_eq!(f.plan(&h).await.unwrap(), None);
        f.set_capabilities(Capabilities { plans: true, ..Capabilities::default() });
        assert!(f.isolation().is_none(), "no isolation when it is not among them");
        assert_eq!(f.plan(&h).await.unwrap().expect("a plan")["name"], "a");
        f.start(&h).await.unwrap();
        assert_eq!(kind(f.pause(&h).await), EngineErrorKind::Invalid);
        assert_eq!(kind(f.start_attached(&h).await), EngineErrorKind::Invalid);
        let interactive = ExecRequest { cmd: vec!["sh".into()], stdin: true, ..Default::default() };
        assert_eq!(kind(f.exec(&h, &interactive).await), EngineErrorKind::Invalid);
    }

    #[tokio::test]
    async fn events_follow_what_happens_to_the_selected_containers() {
        let f = FakeEngine::new();
        let mut events = f.events(&Selector::all().label("team", "a")).await.unwrap();
        let mut other = spec("other", "busybox:1.35");
        other.labels.remove("team");
        f.create(&other).await.unwrap();
        let h = f.create(&spec("a", "busybox:1.35")).await.unwrap();
        f.start_watched(&h).await.unwrap().await.unwrap();
        f.remove(&h, false).await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let e = events.next().await.expect("an event").expect("not an error");
            assert_eq!(e.handle, h, "only the selected container's");
            seen.push(e.action);
        }
        assert_eq!(seen, ["create", "start", "die", "destroy"]);
    }

    #[tokio::test]
    async fn a_vanished_container_is_gone_without_a_call_and_a_crashed_one_has_exited() {
        let f = FakeEngine::new();
        let a = f.create(&spec("a", "busybox:1.35")).await.unwrap();
        let b = f.create(&spec("b", "busybox:1.35")).await.unwrap();
        f.start(&b).await.unwrap();
        f.clear_calls();
        assert!(f.vanish(&a));
        assert!(f.exit_now(&b, 1));
        assert!(!f.exit_now(&b, 1), "an exited container does not exit again");
        assert!(f.calls().is_empty());
        assert_eq!(kind(f.inspect(&a).await), EngineErrorKind::NotFound);
        assert_eq!(phase(&f, &b).await, (Phase::Exited, Some(1)));
    }

    #[tokio::test]
    async fn files_put_into_a_container_come_back_from_the_same_path() {
        let f = FakeEngine::new();
        let h = f.create(&spec("a", "busybox:1.35")).await.unwrap();
        let tar = futures_util::stream::iter([Ok(Bytes::from_static(b"ab")), Ok(Bytes::from_static(b"c"))]).boxed();
        f.put_files(&h, "/work", tar).await.unwrap();
        let back: Vec<Bytes> = f.get_files(&h, "/work").await.unwrap().map(|b| b.unwrap()).collect().await;
        assert_eq!(back.concat(), b"abc");
        assert_eq!(kind(f.get_files(&h, "/else").await), EngineErrorKind::NotFound);
    }
}
