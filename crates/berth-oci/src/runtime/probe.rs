//! Whether the `oci` backend works on this machine: root, the runtime
//! binary, the init, writable cgroups, and one real run of the init itself
//! in a bundle rendered as every run's is (namespaces, seccomp, cgroup
//! limits), in a scratch root. Its answer decides at start-up whether
//! sealed runs go to the runtime or stay on the engine.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::binary::Binary;
use super::cgroup::Layout;
use super::INIT_PATH;
use crate::runtime_spec::Mount;
use berth_core::policy::{ContainerRequest, Policy};
use berth_core::spec::Kind;

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    pub runtime: String,
    /// `runc version 1.1.5`, when the binary answered.
    pub version: Option<String>,
    pub cgroup_version: u8,
    /// Whether a probe run passed: sealed runs go to the runtime.
    pub ok: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// How long the probe run took, start to exit.
    pub run_ms: Option<u64>,
}

/// Probes `binary` with `init` as process 1, its scratch under `scratch`
/// and its cgroup under `cgroup_parent`.
pub async fn probe(binary: &Binary, init: &Path, scratch: &Path, cgroup_parent: &str) -> ProbeReport {
    let layout = Layout::detect();
    let mut report = ProbeReport {
        runtime: binary.name.to_owned(),
        version: None,
        cgroup_version: layout.version(),
        ok: false,
        reason: None,
        run_ms: None,
    };
    match check(binary, init, scratch, cgroup_parent, &layout, &mut report).await {
        Ok(()) => report.ok = true,
        Err(why) => report.reason = Some(why),
    }
    report
}

async fn check(
    binary: &Binary,
    init: &Path,
    scratch: &Path,
    cgroup_parent: &str,
    layout: &Layout,
    report: &mut ProbeReport,
) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("berth is not root: an OCI runtime needs root to make namespaces and cgroups".into());
    }
    report.version = Some(binary.version().await.map_err(|e| format!("the runtime binary did not answer: {e}"))?);
    if !init.is_file() {
        return Err(format!("the init {} is missing (Debian's tini package has tini-static)", init.display()));
    }
    for dir in layout.dirs(cgroup_parent) {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cgroup {} is not writable: {e}", dir.display()))?;
    }
    let id = format!("berth-probe-{}", uuid::Uuid::new_v4().simple());
    let dir = scratch.join(&id);
    let outcome = run_once(binary, init, &dir, &id, cgroup_parent, report).await;
    let _ = binary.delete(&id).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn run_once(
    binary: &Binary,
    init: &Path,
    dir: &Path,
    id: &str,
    cgroup_parent: &str,
    report: &mut ProbeReport,
) -> Result<(), String> {
    let mut req = ContainerRequest::new(Kind::Code, id, "berth-probe");
    req.cmd = Some(vec!["--version".into()]);
    let spec = Policy::default().admit(req).map_err(|e| e.to_string())?;
    let mut bundle = crate::render::render(&spec, id, None).map_err(|e| e.to_string())?;
    bundle.config.linux.cgroups_path = format!("{}/{id}", cgroup_parent.trim_end_matches('/'));
    bundle.config.mounts.push(Mount {
        destination: INIT_PATH.into(),
        kind: "bind".into(),
        source: init.display().to_string(),
        options: vec!["bind".into(), "ro".into()],
    });
    bundle.config.process.args = vec![INIT_PATH.into(), "--version".into()];
    // An empty root with the mount points the bundle needs.
    let root = dir.join(&bundle.note.rootfs);
    for sub in ["dev", "proc", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(sub)).map_err(|e| format!("probe root: {e}"))?;
    }
    for file in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        std::fs::write(root.join(file), "").map_err(|e| format!("probe root: {e}"))?;
    }
    crate::bundle::write(dir, &bundle).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut run = binary.run(dir, id);
    run.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), run.output())
        .await
        .map_err(|_| "the probe run did not end in 20 s".to_owned())?
        .map_err(|e| format!("the probe run did not start: {e}"))?;
    report.run_ms = Some(started.elapsed().as_millis() as u64);
    let said = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && said.contains("tini version") {
        Ok(())
    } else {
        Err(format!(
            "the probe run failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim().chars().take(400).collect::<String>()
        ))
    }
}
