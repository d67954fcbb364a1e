//! The `oci` backend when things break: a runtime that hangs, a runtime
//! killed mid-run, an image cache on a full disk. Each run ends with a
//! record that says why, and nothing is left under the runtime. Each test
//! has a backend of its own (its own state root, bundles, cgroup parent and
//! cache), so what it breaks stays its own.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::context::Context;
use berth_core::engine::Engine;
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::policy::{Policy, PolicyConfig};
use berth_core::runs::{RunRecord, RunRequest, RunStatus, Runs, Workload};
use berth_core::store::Store;
use berth_docker::DockerBackend;
use berth_oci::cache::ImageCache;
use berth_oci::runtime::binary::Binary;
use berth_oci::runtime::{OciRuntime, RuntimeConfig};

struct Rig {
    dir: tempfile::TempDir,
    oci: Arc<OciRuntime>,
    runs: Arc<Runs>,
    store: Arc<Store>,
}

impl Rig {
    /// A backend whose runtime is `runtime` (runc, or a script in front of
    /// it) and whose cache lives at `cache` (default: inside the rig).
    fn new(runtime: impl FnOnce(&Path) -> PathBuf, cache: Option<PathBuf>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let path = runtime(dir.path());
        let cache_dir = cache.unwrap_or_else(|| dir.path().join("images"));
        let (cache, _) = ImageCache::open(&cache_dir, 4 << 30).unwrap();
        let tag = dir.path().file_name().unwrap().to_string_lossy().replace('.', "");
        let config = RuntimeConfig {
            binary: Binary::runc(path, dir.path().join("state")),
            bundles: dir.path().join("bundles"),
            init: "/usr/bin/tini-static".into(),
            output_cap: PolicyConfig::default().output_cap + 1,
            cgroup_parent: format!("/berth-oci/faults{tag}"),
            overlay_bytes: 16 << 20,
        };
        let docker: Arc<dyn Engine> = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));
        let oci = OciRuntime::new(config, docker.clone(), cache);
        let store = Arc::new(Store::in_memory().unwrap());
        let ctx = Context::new(docker, Policy::default(), store.clone(), Arc::new(RandomIds), Arc::new(SystemClock))
            .with_sealed(oci.clone());
        Rig { dir, oci, runs: Arc::new(Runs::new(&ctx, 8)), store }
    }

    /// What is left under the runtime: its containers and its bundles.
    fn leftovers(&self) -> (String, usize) {
        let out = std::process::Command::new("runc")
            .arg("--root")
            .arg(self.dir.path().join("state"))
            .args(["list", "--quiet"])
            .output()
            .unwrap();
        let bundles = std::fs::read_dir(self.dir.path().join("bundles")).map(|d| d.count()).unwrap_or(0);
        (String::from_utf8_lossy(&out.stdout).trim().to_owned(), bundles)
    }

    async fn running(&self, tenant: &str) -> RunRecord {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(r) =
                self.store.list_runs(tenant, 1).unwrap().into_iter().find(|r| r.status == RunStatus::Running)
            {
                return r;
            }
            assert!(Instant::now() < deadline, "the run never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Rig {
    /// The rig's cgroup parent, empty once its runs are gone.
    fn drop(&mut self) {
        let parent = self.oci.config().cgroup_parent.clone();
        for dir in berth_oci::runtime::cgroup::Layout::detect().dirs(&parent) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A script in front of runc that answers every call but `verb` by runc.
fn runc_except(dir: &Path, verb: &str, instead: &str) -> PathBuf {
    let path = dir.join("runtime");
    let script =
        format!("#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = {verb} ] && {{ {instead}; }}; done\nexec runc \"$@\"\n");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn sh(tenant: &str, code: &str, timeout: u64) -> RunRequest {
    let mut req = RunRequest::new(tenant, Workload::Code { language: "sh".into(), code: code.into() });
    req.timeout = Some(Duration::from_secs(timeout));
    req
}

#[tokio::test]
async fn a_runtime_that_hangs_on_the_kill_is_cut_off_and_the_run_still_times_out_leaving_nothing() {
    let rig = Rig::new(|d| runc_except(d, "kill", "sleep 60; exit 1"), None);
    let started = Instant::now();
    let run = rig.runs.execute(sh("t-hang", "echo started; sleep 60", 1)).await.unwrap();
    assert_eq!(run.status, RunStatus::TimedOut, "{run:?}");
    assert_eq!(run.stdout, "started\n");
    assert!(started.elapsed() < Duration::from_secs(30), "cut off at the call's bound: {:?}", started.elapsed());
    assert!(run.container_removed, "{run:?}");
    assert_eq!(rig.leftovers(), (String::new(), 0), "nothing left");
    assert_eq!(rig.oci.sweep_leftovers().await.unwrap(), 0);
}

#[tokio::test]
async fn a_runtime_killed_mid_run_fails_the_run_with_why_and_leaves_nothing() {
    let rig = Rig::new(|_| "runc".into(), None);
    let exec = {
        let runs = rig.runs.clone();
        tokio::spawn(async move { runs.execute(sh("t-killed", "echo started; sleep 60", 60)).await })
    };
    let running = rig.running("t-killed").await;
    let cid = running.container_id.unwrap();
    // The `runc run` of this container, and nothing else.
    let pgrep =
        std::process::Command::new("pgrep").args(["-f", &format!("run --keep --bundle .* {cid}$")]).output().unwrap();
    let pid = String::from_utf8_lossy(&pgrep.stdout).trim().to_owned();
    assert!(!pid.is_empty() && !pid.contains('\n'), "one runtime process: {pid:?}");
    assert!(std::process::Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    let run = exec.await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.clone().unwrap_or_default();
    assert!(error.contains("the runtime was killed by signal 9"), "{error}");
    assert!(run.container_removed);
    assert_eq!(rig.leftovers(), (String::new(), 0), "the container the runtime left is gone too");
}

#[tokio::test]
async fn an_image_cache_on_a_full_disk_fails_the_run_with_why_and_leaves_nothing() {
    let small = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(small.path())
        .status()
        .unwrap();
    assert!(mounted.success(), "a 2 MiB tmpfs for the cache");
    let rig = Rig::new(|_| "runc".into(), Some(small.path().join("images")));
    let req = RunRequest::new("t-full", Workload::Code { language: "python".into(), code: "print(1)".into() });
    let run = rig.runs.execute(req).await.unwrap();
    let _ = std::process::Command::new("umount").arg(small.path()).status();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.clone().unwrap_or_default();
    assert!(error.contains("python:3.11-slim") && error.to_lowercase().contains("space"), "{error}");
    assert_eq!(rig.leftovers(), (String::new(), 0));
}

#[tokio::test]
async fn a_name_in_use_is_refused_before_anything_is_written() {
    let rig = Rig::new(|_| "runc".into(), None);
    let mut req =
        berth_core::policy::ContainerRequest::new(berth_core::spec::Kind::Code, "berth-faults-twice", "busybox:1.35");
    req.cmd = Some(vec!["true".into()]);
    let spec = Policy::default().admit(req).unwrap();
    let first = rig.oci.create(&spec).await.unwrap();
    let second = rig.oci.create(&spec).await;
    assert!(second.is_err_and(|e| e.kind() == berth_core::engine::EngineErrorKind::Conflict));
    assert_eq!(rig.leftovers(), (String::new(), 1), "the first one's bundle only");
    // The sweep keeps what a live container owns.
    assert_eq!(rig.oci.sweep_leftovers().await.unwrap(), 0);
    rig.oci.remove(&first, true).await.unwrap();
    assert_eq!(rig.leftovers(), (String::new(), 0));
}

/// A cgroup write the kernel refuses: the rig's parent holds a CPU quota of
/// a hundredth of a CPU, and cgroup v1 refuses a child's quota above its
/// parent's, so the runtime's write of the run's quota fails. The run ends
/// `failed` saying so, and no container, bundle or cgroup is left.
#[tokio::test]
async fn a_cgroup_write_the_kernel_refuses_fails_the_run_with_why_and_leaves_nothing() {
    let rig = Rig::new(|_| "runc".into(), None);
    let layout = berth_oci::runtime::cgroup::Layout::detect();
    assert_eq!(layout.version(), 1, "this machine boots cgroup v1; v2's files are unit-tested");
    let parent = rig.oci.config().cgroup_parent.clone();
    let cpu = layout
        .dirs(&parent)
        .into_iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/cpu,cpuacct") || d.starts_with("/sys/fs/cgroup/cpu/"))
        .expect("a cpu hierarchy");
    std::fs::create_dir_all(&cpu).unwrap();
    std::fs::write(cpu.join("cpu.cfs_period_us"), "100000").unwrap();
    std::fs::write(cpu.join("cpu.cfs_quota_us"), "1000").unwrap();
    let run = rig.runs.execute(sh("t-cgroup", "echo never", 10)).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("the runtime could not run") && error.contains("cpu.cfs_quota_us"),
        "the record says why: {run:?}"
    );
    assert_eq!(run.exit_code, None, "no exit code of the container's: {run:?}");
    assert!(run.stderr.is_empty(), "the runtime's error is not the run's stderr: {run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(rig.leftovers(), (String::new(), 0), "nothing left under the runtime");
    let children = std::fs::read_dir(&cpu).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
    assert_eq!(children, 0, "no cgroup left under the parent");
    assert_eq!(rig.oci.sweep_leftovers().await.unwrap(), 0);
}
