//! The engine seam: what orchestration needs from an engine, in berth's own
//! terms, split by plane.
//!
//! - The control plane ([`Engine`]) makes, starts, stops, pauses, removes,
//!   inspects and lists workloads, and knows images. On a cluster it is the
//!   manager.
//! - The data plane ([`WorkloadIo`], in [`io`]) is logs, usage, processes,
//!   stdio and files of one workload. The control plane hands it out per
//!   workload ([`Engine::io`]), since on a cluster it is the engine of the
//!   node that runs the workload.
//! - Isolation ([`Isolation`], in [`isolation`]) keeps a session's
//!   workloads apart; engines that cannot do it have none.
//!
//! A workload is addressed by a [`Handle`] (its id and placement), its state
//! is typed ([`Phase`], [`Health`]), lists take a typed [`Selector`], and
//! what an engine can do is asked up front ([`Capabilities`]) instead of
//! found out from a failing call. Implementations live in crates of their
//! own (`berth-docker`, `berth-oci`); orchestration holds an
//! `Arc<dyn Engine>` and never sees an engine type.

pub mod backends;
pub mod error;
pub mod events;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod io;
pub mod isolation;
pub mod metered;
pub mod node;
pub mod select;
#[cfg(test)]
pub(crate) mod stand_in;
pub mod state;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

pub use self::backends::{Backends, RouteError};
pub use self::error::{EngineError, EngineErrorKind, GoneIsDone};
pub use self::io::{
    ByteStream, ExecOutput, ExecRequest, ExecSession, ExitFuture, LogChunk, LogRequest, LogStream, ProcessId,
    PullProgress, PullStream, Signal, StdioSession, Stream, TtySize, Usage, UsageStream, WorkloadIo,
};
pub use self::isolation::{Isolation, NetworkInfo};
pub use self::node::{Availability, NodeState, NodeStatus};
pub use self::select::Selector;
pub use self::state::{Health, Phase, WorkloadInfo, WorkloadState};
pub use crate::model::handle::{ContainerId, Handle, Placement};
use crate::spec::ContainerSpec;

/// The exit of a started workload, awaited from before it started.
pub type ExitWatch = BoxFuture<'static, Result<i64, EngineError>>;

/// What an engine can do, asked before anything is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Attach to a made workload's stdio before starting it
    /// ([`Engine::start_attached`]): what a sandbox's helper needs.
    pub attach_before_start: bool,
    /// [`Engine::start_attached`] attaches once the workload runs (it was
    /// started as it was placed), with what it wrote until then replayed
    /// from its logs: enough for a warm pool member, whose only early
    /// output is its ready line, not for a helper's binary frames.
    #[serde(default)]
    pub attach_replays: bool,
    /// [`WorkloadIo::logs`] with `follow` streams what the workload writes
    /// until it ends (an engine without it gives what it kept so far).
    #[serde(default)]
    pub follow_logs: bool,
    /// Processes with stdin started in a running workload.
    pub interactive_exec: bool,
    /// Processes with a terminal.
    pub tty: bool,
    /// Freezing and thawing a workload.
    pub pause: bool,
    /// Workload ports published on the host.
    pub host_ports: bool,
    /// Plans of workloads that nothing runs ([`Engine::plan`]).
    pub plans: bool,
    /// Isolated session networks ([`Engine::isolation`]).
    pub isolation: bool,
}

impl Capabilities {
    /// What a container engine that runs its workloads does (the Docker
    /// Engine): everything but plans, which only engines that run nothing have.
    pub const CONTAINER_ENGINE: Capabilities = Capabilities {
        attach_before_start: true,
        attach_replays: false,
        follow_logs: true,
        interactive_exec: true,
        tty: true,
        pause: true,
        host_ports: true,
        plans: false,
        isolation: true,
    };

    /// Whether [`Engine::start_attached`] misses nothing a warm pool
    /// member says before it is handed a run.
    pub fn pools(&self) -> bool {
        self.attach_before_start || self.attach_replays
    }

    /// Whether a sandbox's helper can be reached from its first word: by
    /// attaching before the start, or, on an engine that starts workloads
    /// as it places them, by attaching to the running workload before the
    /// helper is copied in (its first process waits for it, see
    /// [`crate::sandboxes`]).
    pub fn sandboxes(&self) -> bool {
        self.attach_before_start || self.attach_replays
    }
}

/// What an image runs when a workload does not say: its entrypoint, and
/// the command that follows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageCommand {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

/// What an image is, as the engine's image store knows it: its id (the
/// digest of its config, which locally built images have where they have no
/// repo digest) and what it gives a container that does not say otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub id: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// Something that happened to a workload berth manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadEvent {
    pub handle: Handle,
    /// `create`, `start`, `die`, `oom`, `destroy`, `health_status: healthy`, …
    pub action: String,
    /// The workload's labels (and the engine's attributes, such as `exitCode`).
    pub attributes: BTreeMap<String, String>,
}

/// The control plane of an engine.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// `docker`, `oci-dry-run`, …
    fn name(&self) -> &'static str;

    fn capabilities(&self) -> Capabilities;

    /// What runs the workloads, as a run's record names it: `docker` for
    /// the engine's own runtime, `runc` or `runsc` for a runtime berth
    /// drives itself. The backend's name unless it says otherwise.
    fn runtime(&self) -> &str {
        self.name()
    }

    /// The runtime's name as a run asks for it: [`Engine::runtime`] but
    /// for an engine under one of its own runtimes, whose record says
    /// `docker-runsc` where the run asked for `runsc`.
    fn asked_as(&self) -> &str {
        self.runtime()
    }

    async fn ping(&self) -> Result<(), EngineError>;

    /// Makes sure `image` is there, pulling it when it is not.
    async fn ensure_image(&self, image: &str) -> Result<(), EngineError>;

    /// Pulls `image` (again, with `refresh`; else only when it is not
    /// there) and reports how the pull goes, for a client to show while it
    /// waits; the image is there when the stream ends without an error. A
    /// backend that cannot report progress makes sure of the image and
    /// reports nothing.
    async fn pull_image(&self, image: &str, refresh: bool) -> Result<PullStream, EngineError> {
        let _ = refresh;
        self.ensure_image(image).await?;
        Ok(Box::pin(futures_util::stream::empty()))
    }

    /// The entrypoint and command of an image that is there.
    async fn image_command(&self, image: &str) -> Result<ImageCommand, EngineError>;

    /// The id and config of an image that is there: what a backend that
    /// unpacks images itself asks of the engine that stores them.
    async fn image_info(&self, image: &str) -> Result<ImageInfo, EngineError> {
        let _ = image;
        Err(EngineError::invalid(format!("the {} backend keeps no image store", self.name())))
    }

    /// An image saved as the engine saves it (`docker save`'s archive).
    async fn image_archive(&self, image: &str) -> Result<ByteStream, EngineError> {
        let _ = image;
        Err(EngineError::invalid(format!("the {} backend keeps no image store", self.name())))
    }

    /// Removes what the backend keeps beside its workloads that no
    /// workload it knows owns any more (a runtime's containers and cgroups
    /// left by a berth that died): the reaper calls it every round, the
    /// binary once at start-up. How many it removed.
    async fn sweep_leftovers(&self) -> Result<usize, EngineError> {
        Ok(0)
    }

    /// Makes a workload named `spec.name`. An error leaves no workload
    /// behind: when the engine's answer (not the request) was lost, the
    /// workload it may have made is looked up by name and removed if it is
    /// the one asked for (one still being made then can appear later).
    async fn create(&self, spec: &ContainerSpec) -> Result<Handle, EngineError>;

    async fn start(&self, h: &Handle) -> Result<(), EngineError>;

    /// Starts a made workload with its exit already awaited, so even an
    /// instant exit is seen.
    async fn start_watched(&self, h: &Handle) -> Result<ExitWatch, EngineError>;

    /// Attaches to a made workload's stdio (its stdin open, so the spec's
    /// [`crate::spec::Stdin`] must not be `Closed`), awaits its exit and
    /// starts it: nothing it writes is missed, and its exit code is known
    /// without another round trip. Only where
    /// [`Capabilities::attach_before_start`] says so.
    async fn start_attached(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        let _ = h;
        Err(EngineError::invalid(format!("the {} backend cannot attach to a workload", self.name())))
    }

    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop(&self, h: &Handle, grace: Duration) -> Result<(), EngineError>;

    async fn kill(&self, h: &Handle) -> Result<(), EngineError>;

    /// Freezes a running workload. Only where [`Capabilities::pause`] says so.
    async fn pause(&self, h: &Handle) -> Result<(), EngineError>;

    async fn unpause(&self, h: &Handle) -> Result<(), EngineError>;

    /// Removes a workload; `force` kills a running one first.
    async fn remove(&self, h: &Handle, force: bool) -> Result<(), EngineError>;

    async fn inspect(&self, h: &Handle) -> Result<WorkloadState, EngineError>;

    /// Workloads whose labels match `selector`.
    async fn list(&self, selector: &Selector) -> Result<Vec<WorkloadInfo>, EngineError>;

    /// Follows events of workloads matching `selector`, from now on.
    async fn events(
        &self,
        selector: &Selector,
    ) -> Result<BoxStream<'static, Result<WorkloadEvent, EngineError>>, EngineError>;

    /// The data plane of workload `h`.
    fn io(&self, h: &Handle) -> Result<&dyn WorkloadIo, EngineError>;

    /// Session isolation, where the engine has it.
    fn isolation(&self) -> Option<&dyn Isolation>;

    /// The rendered plan of a workload that nothing runs (the dry run): the
    /// bundle it would run as. `None` from an engine whose workloads run.
    async fn plan(&self, h: &Handle) -> Result<Option<serde_json::Value>, EngineError> {
        let _ = h;
        Ok(None)
    }

    /// The machines of a cluster and their states, for readiness; empty
    /// from an engine of one machine.
    async fn nodes(&self) -> Result<Vec<NodeStatus>, EngineError> {
        Ok(Vec::new())
    }
}
