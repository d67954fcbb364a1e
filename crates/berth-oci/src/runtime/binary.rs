//! The OCI runtime binary (`runc`, `runsc`) as berth calls it: each call a
//! process with its own state root, bounded in time, its error text kept.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_core::engine::EngineError;

/// How long a control call (`kill`, `delete`, `list`) may take before the
/// runtime counts as hung.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A runtime binary with berth's state root for it.
#[derive(Debug, Clone)]
pub struct Binary {
    /// `runc` or `runsc`: what run records name.
    pub name: &'static str,
    pub path: PathBuf,
    /// The runtime's `--root`: its containers' state, berth's alone.
    pub state: PathBuf,
    /// Extra global flags (`runsc`'s platform).
    pub flags: Vec<String>,
    /// Whether `run --keep` exists (runc): the stopped container, and its
    /// cgroup, outlive the exit for berth to read. Without it (runsc) the
    /// runtime removes them as the container ends, and berth keeps a
    /// cgroup of its own around the runtime's, holding the memory limit.
    pub keep: bool,
}

impl Binary {
    /// runc at `path` with its state in `state`.
    pub fn runc(path: impl Into<PathBuf>, state: impl Into<PathBuf>) -> Binary {
        Binary { name: "runc", path: path.into(), state: state.into(), flags: Vec::new(), keep: true }
    }

    /// gVisor's runsc at `path` with its state in `state`: the ptrace
    /// platform (no nested KVM here), no network of its own (the bundle's
    /// namespace has only loopback), and the bundle's seccomp filter
    /// applied inside the sandbox (`--oci-seccomp`; without it runsc
    /// ignores the filter and `/proc/self/status` says `Seccomp: 0`).
    pub fn runsc(path: impl Into<PathBuf>, state: impl Into<PathBuf>) -> Binary {
        let flags = ["--platform=ptrace", "--network=none", "--oci-seccomp"].map(str::to_owned).to_vec();
        Binary { name: "runsc", path: path.into(), state: state.into(), flags, keep: false }
    }

    /// A command of the runtime with its global flags.
    pub fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.path);
        c.arg("--root").arg(&self.state).args(&self.flags);
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    /// The foreground run of a bundle: its exit status is the container's.
    /// `--keep` (where there is one) leaves the stopped container and its
    /// cgroup for berth to read before it deletes it.
    pub fn run(&self, bundle: &Path, id: &str) -> tokio::process::Command {
        let mut c = self.command();
        c.arg("run");
        if self.keep {
            c.arg("--keep");
        }
        c.arg("--bundle").arg(bundle).arg(id);
        c.kill_on_drop(false);
        c
    }

    /// Runs one control call to its end within [`CALL_TIMEOUT`].
    pub async fn call(&self, args: &[&str]) -> Result<String, EngineError> {
        let mut c = self.command();
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let what = format!("{} {}", self.name, args.join(" "));
        let out = tokio::time::timeout(CALL_TIMEOUT, c.output())
            .await
            .map_err(|_| EngineError::unavailable(format!("{what}: no answer in {CALL_TIMEOUT:?} (the runtime hung)")))?
            .map_err(|e| EngineError::unavailable(format!("{what}: {e}")).with_source(e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let said = String::from_utf8_lossy(&out.stderr);
            let said = said.trim();
            if said.contains("does not exist") || said.contains("not found") {
                Err(EngineError::not_found(format!("{what}: {said}")))
            } else if said.contains("not running") || said.contains("container not running") {
                Err(EngineError::conflict(format!("{what}: {said}")))
            } else {
                Err(EngineError::failed(format!("{what}: {said}")))
            }
        }
    }

    /// Sends `signal` to the container's process 1.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), EngineError> {
        self.call(&["kill", id, signal]).await.map(drop)
    }

    /// Deletes the container, killing it first if it runs.
    pub async fn delete(&self, id: &str) -> Result<(), EngineError> {
        self.call(&["delete", "--force", id]).await.map(drop)
    }

    /// The ids of the containers in berth's state root.
    pub async fn list(&self) -> Result<Vec<String>, EngineError> {
        if !self.state.exists() {
            return Ok(Vec::new());
        }
        let text = self.call(&["list", "--quiet"]).await?;
        Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
    }

    /// `runc --version`'s first line, when the binary answers.
    pub async fn version(&self) -> Result<String, EngineError> {
        let text = self.call(&["--version"]).await?;
        Ok(text.lines().next().unwrap_or_default().to_owned())
    }
}
