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
    /// Whether the runtime writes its own errors as JSON lines to a log
    /// file (`--log FILE --log-format json`, runc): what sets them apart
    /// from the container's stderr, which they would otherwise join.
    pub json_log: bool,
}

/// The file in a bundle's folder that the runtime logs a run's errors to.
pub const RUN_LOG: &str = "runtime.log";

/// The most of a run's runtime log that is read.
pub const RUN_LOG_BOUND: u64 = 64 * 1024;

/// The runtime's own error in its JSON log (the last line at level
/// `error` or `fatal`): why it could not run the container, when it could
/// not.
pub fn runtime_error(log: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Line {
        level: String,
        #[serde(default)]
        msg: String,
    }
    log.lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .rfind(|l| matches!(l.level.as_str(), "error" | "fatal") && !l.msg.is_empty())
        .map(|l| l.msg)
}

impl Binary {
    /// runc at `path` with its state in `state`.
    pub fn runc(path: impl Into<PathBuf>, state: impl Into<PathBuf>) -> Binary {
        Binary { name: "runc", path: path.into(), state: state.into(), flags: Vec::new(), keep: true, json_log: true }
    }

    /// gVisor's runsc at `path` with its state in `state`: the ptrace
    /// platform (no nested KVM here), no network of its own (the bundle's
    /// namespace has only loopback), and the bundle's seccomp filter
    /// applied inside the sandbox (`--oci-seccomp`; without it runsc
    /// ignores the filter and `/proc/self/status` says `Seccomp: 0`).
    pub fn runsc(path: impl Into<PathBuf>, state: impl Into<PathBuf>) -> Binary {
        let flags = ["--platform=ptrace", "--network=none", "--oci-seccomp"].map(str::to_owned).to_vec();
        Binary { name: "runsc", path: path.into(), state: state.into(), flags, keep: false, json_log: false }
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
        if self.json_log {
            c.arg("--log").arg(bundle.join(RUN_LOG)).args(["--log-format", "json"]);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtimes_last_error_line_is_why_it_could_not_run_and_other_lines_are_not() {
        let log = concat!(
            r#"{"level":"warning","msg":"a warning","time":"t"}"#,
            "\n",
            "not json\n",
            r#"{"level":"error","msg":"runc run failed: invalid rootfs","time":"t"}"#,
            "\n"
        );
        assert_eq!(runtime_error(log).as_deref(), Some("runc run failed: invalid rootfs"));
        assert_eq!(runtime_error(r#"{"level":"info","msg":"fine"}"#), None);
        assert_eq!(runtime_error(""), None);
    }
}
