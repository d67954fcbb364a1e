//! The backend trait: the operations orchestration needs from an engine,
//! in berth's own terms (not the Engine API one to one).
//!
//! Implementations live in crates of their own: `berth-docker` over
//! engine-api (which is also the fixture backend when its client runs over
//! a replay), and `berth-oci`, whose dry run runs nothing and renders the
//! OCI bundle each container would run as. Orchestration holds an
//! `Arc<dyn Backend>` and never sees an engine type.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::spec::{ContainerId, ContainerSpec};

/// Why a backend operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The engine refused the request as invalid.
    #[error("refused by the engine: {0}")]
    Invalid(String),
    /// The engine could not be reached or did not answer in time.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    #[error("engine error: {0}")]
    Engine(String),
}

/// What a container is doing, as orchestration needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// `created`, `running`, `exited`, … as the engine says.
    pub status: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// `starting`, `healthy`, `unhealthy`, or `None` without a health check.
    pub health: Option<String>,
    /// The last health-check outputs, newest last.
    pub health_log: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub name: String,
}

/// A container berth manages, as listed by labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: ContainerId,
    pub name: String,
    pub status: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A network berth manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub internal: bool,
    pub labels: std::collections::BTreeMap<String, String>,
    /// Containers attached now.
    pub containers: usize,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
}

/// Resource use of a container, in numbers a person reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Percent of one CPU; `None` when there was no pair of samples to compare.
    pub cpu_percent: Option<f64>,
    /// CPU time used so far.
    pub cpu_time_ns: u64,
    pub memory_used: Option<u64>,
    /// Highest memory use the engine reports (cgroup v1), or the highest seen.
    pub memory_peak: Option<u64>,
    pub memory_limit: Option<u64>,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: Option<u64>,
}

impl Usage {
    /// Memory used as a percent of the limit, when both are known.
    pub fn memory_percent(&self) -> Option<f64> {
        match (self.memory_used, self.memory_limit) {
            (Some(used), Some(limit)) if limit > 0 => Some(used as f64 / limit as f64 * 100.0),
            _ => None,
        }
    }
}

/// Which stream a line of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
    /// Output of a container with a TTY.
    Console,
}

/// A piece of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stream: Stream,
    pub data: bytes::Bytes,
}

/// Which logs to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub follow: bool,
    pub tail: Option<u64>,
    /// Unix seconds.
    pub since: Option<i64>,
    pub timestamps: bool,
}

pub type LogStream = BoxStream<'static, Result<LogChunk, BackendError>>;

/// The exit of a started container, awaited from before it started.
pub type ExitWatch = BoxFuture<'static, Result<i64, BackendError>>;

/// A command to run in a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// The buffered outcome of an exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
    /// Output beyond the cap was dropped (the text ends with a marker line).
    #[serde(default)]
    pub stdout_truncated: bool,
    #[serde(default)]
    pub stderr_truncated: bool,
}

/// A process with its stdin open, an interactive exec or an attached
/// container: write its stdin (end it with `shutdown`), read its output to
/// the end, then await its exit code.
pub struct StdioSession {
    pub output: LogStream,
    pub stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    pub exit: BoxFuture<'static, Result<i64, BackendError>>,
}

/// What an image runs when a container does not say: its entrypoint, and
/// the command that follows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageCommand {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

/// Something that happened to a container berth manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerEvent {
    pub id: ContainerId,
    /// `create`, `start`, `die`, `oom`, `destroy`, `health_status: healthy`, …
    pub action: String,
    /// The container's labels (and the engine's attributes, such as `exitCode`).
    pub attributes: std::collections::BTreeMap<String, String>,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// `docker`, `oci-dry-run`, …
    fn name(&self) -> &'static str;

    async fn ping(&self) -> Result<(), BackendError>;

    /// Makes sure `image` is there, pulling it when it is not.
    async fn ensure_image(&self, image: &str) -> Result<(), BackendError>;

    /// Creates a container named `spec.name`. An error leaves no container
    /// behind: when the engine's answer (not the request) was lost, the
    /// container it may have made is looked up by name and removed if it is
    /// the one asked for (one still being made then can appear later).
    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerId, BackendError>;

    /// The entrypoint and command of an image that is there.
    async fn image_command(&self, image: &str) -> Result<ImageCommand, BackendError>;

    /// Starts a created container.
    async fn start(&self, id: &ContainerId) -> Result<(), BackendError>;

    /// Starts a created container with its exit already awaited, so even an
    /// instant exit is seen.
    async fn start_watched(&self, id: &ContainerId) -> Result<ExitWatch, BackendError>;

    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), BackendError>;

    async fn kill(&self, id: &ContainerId) -> Result<(), BackendError>;

    /// Removes a container (by id, or by name); `force` kills a running one first.
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), BackendError>;

    async fn state(&self, id: &ContainerId) -> Result<ContainerState, BackendError>;

    async fn logs(&self, id: &ContainerId, request: &LogRequest) -> Result<LogStream, BackendError>;

    /// One sample of resource use, with CPU percent.
    async fn usage(&self, id: &ContainerId) -> Result<Usage, BackendError>;

    /// Samples about once a second until the container ends or the stream is dropped.
    async fn usage_stream(&self, id: &ContainerId) -> Result<BoxStream<'static, Usage>, BackendError>;

    /// Runs a command to completion, keeping at most `cap` bytes of each output.
    async fn exec(&self, id: &ContainerId, request: &ExecRequest, cap: usize) -> Result<ExecOutput, BackendError>;

    /// Starts a command with its stdin open over an upgraded connection.
    async fn exec_interactive(&self, id: &ContainerId, request: &ExecRequest) -> Result<StdioSession, BackendError>;

    /// Attaches to a created container's stdio (its stdin open, so the spec's
    /// [`crate::spec::Stdin`] must not be `Closed`), awaits its exit and
    /// starts it: nothing it writes is missed, and its exit code is known
    /// without another round trip. A backend whose containers run nothing
    /// cannot attach.
    async fn start_attached(&self, id: &ContainerId) -> Result<StdioSession, BackendError> {
        let _ = id;
        Err(BackendError::Invalid(format!("the {} backend cannot attach to a container", self.name())))
    }

    /// Follows events of containers carrying all of `labels`, from now on.
    async fn events(
        &self,
        labels: &[String],
    ) -> Result<BoxStream<'static, Result<ContainerEvent, BackendError>>, BackendError>;

    /// Containers carrying all of `labels` (`key=value`, or `key` for any value).
    async fn list(&self, labels: &[String]) -> Result<Vec<ContainerInfo>, BackendError>;

    async fn create_network(
        &self,
        name: &str,
        internal: bool,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, BackendError>;

    async fn remove_network(&self, id_or_name: &str) -> Result<(), BackendError>;

    async fn list_networks(&self, labels: &[String]) -> Result<Vec<NetworkInfo>, BackendError>;

    /// The rendered plan of a container that nothing runs (the dry run): the
    /// bundle it would run as. `None` from a backend whose containers run.
    async fn plan(&self, id: &ContainerId) -> Result<Option<serde_json::Value>, BackendError> {
        let _ = id;
        Ok(None)
    }
}
