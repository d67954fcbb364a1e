//! The data plane: what passes between berth and a running workload (its
//! logs, its usage, processes started in it, its stdio, files in and out).
//! On one engine this is the engine itself; on a cluster it is the engine
//! of the node that runs the workload, which the control plane hands out
//! ([`super::Engine::io`]).

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::error::EngineError;
use crate::model::handle::Handle;
use crate::output::CappedStreams;

/// Resource use of a workload, in numbers a person reads.
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

/// Which stream a piece of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
    /// Output of a process with a TTY.
    Console,
}

/// A piece of a workload's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stream: Stream,
    pub data: Bytes,
}

/// One step of an image pull, as the engine reports it: a layer's status
/// (`Downloading`, `Extracting`, `Pull complete`, …) and, while its bytes
/// move, how many of how many; or a line about the whole image (no layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    pub layer: Option<String>,
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// An image pull's progress, ending when the pull has; an error ends it.
pub type PullStream = BoxStream<'static, Result<PullProgress, EngineError>>;

/// Which logs to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub follow: bool,
    pub tail: Option<u64>,
    /// Unix seconds.
    pub since: Option<i64>,
    pub timestamps: bool,
}

pub type LogStream = BoxStream<'static, Result<LogChunk, EngineError>>;

/// Samples about once a second until the workload ends or the stream is dropped.
pub type UsageStream = BoxStream<'static, Usage>;

/// A stream of bytes (a tar archive of files, in or out).
pub type ByteStream = BoxStream<'static, Result<Bytes, EngineError>>;

/// The exit code of a process, once it has exited.
pub type ExitFuture = BoxFuture<'static, Result<i64, EngineError>>;

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

/// A command to run in a running workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// Whether its stdin is open to berth (otherwise it reads end-of-file).
    #[serde(default)]
    pub stdin: bool,
    /// A terminal of this size: its output is one `Console` stream.
    #[serde(default)]
    pub tty: Option<TtySize>,
}

/// A process with its stdin open (or closed at once), an exec or an
/// attached workload: write its stdin (end it with `shutdown`), read its
/// output to the end, then await its exit code.
pub struct StdioSession {
    pub output: LogStream,
    pub stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    pub exit: ExitFuture,
}

/// The engine's name for a process started in a workload, for resizing
/// its terminal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProcessId(pub String);

/// A process started in a workload.
pub struct ExecSession {
    pub process: ProcessId,
    pub stdio: StdioSession,
}

/// The buffered outcome of a command run to its end.
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

/// A signal to send to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Signal {
    Term,
    Kill,
    Int,
    Hup,
    Quit,
    Usr1,
    Usr2,
}

impl Signal {
    /// Its name without the `SIG` prefix, as `kill -s` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Int => "INT",
            Signal::Hup => "HUP",
            Signal::Quit => "QUIT",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
        }
    }
}

/// The data plane of workloads on one engine.
#[async_trait]
pub trait WorkloadIo: Send + Sync {
    async fn logs(&self, h: &Handle, request: &LogRequest) -> Result<LogStream, EngineError>;

    /// Samples about once a second until the workload ends or the stream is dropped.
    async fn usage_stream(&self, h: &Handle) -> Result<UsageStream, EngineError>;

    /// One sample of resource use: the first of [`WorkloadIo::usage_stream`]
    /// unless the engine has a cheaper way.
    async fn usage(&self, h: &Handle) -> Result<Usage, EngineError> {
        let mut samples = self.usage_stream(h).await?;
        samples.next().await.ok_or_else(|| EngineError::conflict(format!("{h} is not running: no usage to sample")))
    }

    /// Starts a command in a running workload.
    async fn exec(&self, h: &Handle, request: &ExecRequest) -> Result<ExecSession, EngineError>;

    /// Resizes the terminal of a process started with one.
    async fn resize(&self, h: &Handle, process: &ProcessId, size: TtySize) -> Result<(), EngineError>;

    /// Attaches to a running workload's stdio.
    async fn attach(&self, h: &Handle) -> Result<StdioSession, EngineError>;

    /// Unpacks a tar archive into the folder `dir` of the workload.
    async fn put_files(&self, h: &Handle, dir: &str, tar: ByteStream) -> Result<(), EngineError>;

    /// A tar archive of `path` (a file or a folder) of the workload.
    async fn get_files(&self, h: &Handle, path: &str) -> Result<ByteStream, EngineError>;

    /// Sends `signal` to process `pid` of the workload (its pid inside it).
    async fn signal(&self, h: &Handle, pid: u32, signal: Signal) -> Result<(), EngineError> {
        let request = ExecRequest {
            cmd: vec!["kill".into(), "-s".into(), signal.name().into(), pid.to_string()],
            ..Default::default()
        };
        let out = self.exec_to_end(h, &request, 4096).await?;
        match out.exit_code {
            0 => Ok(()),
            _ => Err(EngineError::not_found(format!("no process {pid} to signal in {h}: {}", out.stderr.trim()))),
        }
    }

    /// Runs a command to its end, keeping at most `cap` bytes of each
    /// output: the core's buffered exec, over [`WorkloadIo::exec`].
    async fn exec_to_end(&self, h: &Handle, request: &ExecRequest, cap: usize) -> Result<ExecOutput, EngineError> {
        let request = ExecRequest { stdin: false, ..request.clone() };
        let session = self.exec(h, &request).await?.stdio;
        let CappedStreams { stdout: out, stderr: err } = CappedStreams::new(cap).collect(session.output).await?;
        let exit_code = session.exit.await?;
        let (stdout_truncated, stderr_truncated) = (out.truncated(), err.truncated());
        Ok(ExecOutput {
            exit_code,
            stdout: out.into_text(),
            stderr: err.into_text(),
            stdout_truncated,
            stderr_truncated,
        })
    }
}
