//! The real-engine tier of the `oci-dry-run` backend: its bundles, rendered
//! for busybox specs, run under runc with the busybox:1.35 rootfs exported
//! through engine-api, and hold from inside what the spec asked; and the
//! rendered bundle set beside the OCI spec dockerd generates for the same
//! container spec, field by field.
//!
//! Needs root, dockerd and runc: a missing one fails these tests, never
//! skips them. runc runs with its own state root and each container has a
//! unique id; everything made here is removed at the end.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use berth_core::engine::Engine;
use berth_core::model::units::{ByteSize, CpuLimit};
use berth_core::policy::{ContainerRequest, Policy, PolicyConfig};
use berth_core::spec::{Bind, ContainerSpec, Kind};
use berth_docker::DockerBackend;
use berth_oci::bundle;
use berth_oci::render::{render, Bundle, ImageConfig};
use engine_api::models::ContainerConfig;
use engine_api::{Docker, RemoveOptions};
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const IMAGE: &str = "busybox:1.35";

fn docker() -> Docker {
    Docker::from_env().expect("DOCKER_HOST names the engine of the real-engine tier")
}

/// `runc`, checked once: the real-engine tier needs it (it comes with docker.io).
fn runc() -> &'static str {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        let out = std::process::Command::new("runc").arg("--version").output();
        match out {
            Ok(o) if o.status.success() => {}
            other => panic!("runc is needed by the real-engine tier and did not answer: {other:?}"),
        }
    });
    "runc"
}

/// A unique name for everything one test makes.
fn unique(what: &str) -> String {
    format!("berth-oci-{what}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// busybox:1.35's config as the engine reports it.
async fn image_config() -> ImageConfig {
    let docker = docker();
    docker.ping().await.expect("the real-engine tier needs dockerd");
    let image = docker.inspect_image(IMAGE).await.expect("busybox:1.35 is provisioned");
    let c = image.config.unwrap_or_default();
    ImageConfig {
        entrypoint: c.entrypoint,
        cmd: c.cmd,
        env: c.env,
        working_dir: c.working_dir.filter(|w| !w.is_empty()),
        user: c.user.filter(|u| !u.is_empty()),
    }
}

/// Unpacks busybox:1.35's root filesystem into `dir`, exported through
/// engine-api: the archive of `/` of a container created (never started) for it.
async fn export_rootfs(dir: &Path) {
    let docker = docker();
    let create = ContainerConfig {
        image: Some(IMAGE.into()),
        cmd: Some(vec!["true".into()]),
        labels: Some([("berth-oci-test".to_owned(), "1".to_owned())].into()),
        ..Default::default()
    };
    let created = docker.create_container(Some(&unique("export")), &create).await.unwrap();
    let unpacked = async {
        let (_, mut body) = docker.get_archive(&created.id, "/").await.unwrap();
        let mut tar = tokio::process::Command::new("tar")
            .args(["-x", "-C"])
            .arg(dir)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tar unpacks the exported rootfs");
        let mut stdin = tar.stdin.take().unwrap();
        while let Some(chunk) = body.next().await {
            stdin.write_all(&chunk.unwrap()).await.unwrap();
        }
        drop(stdin);
        tar.wait().await.unwrap().success()
    }
    .await;
    docker.remove_container(&created.id, RemoveOptions { force: true, volumes: true }).await.unwrap();
    assert!(unpacked && dir.join("bin/busybox").is_file(), "the exported rootfs has busybox");
}

/// One runc container at a time, so the cgroup parent the bundles name
/// (`/berth`) can be removed after each without racing the next one's start.
static RUNC_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A bundle folder with busybox's rootfs, run with `runc run`; everything
/// (runc's state, the cgroups, the folder) is removed after.
struct Runc {
    id: String,
    dir: tempfile::TempDir,
}

impl Runc {
    async fn prepare(spec: &ContainerSpec) -> (Runc, Bundle) {
        runc();
        let id = unique("runc");
        let bundle = render(spec, &id, Some(&image_config().await)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        bundle::write(dir.path(), &bundle).unwrap();
        export_rootfs(&dir.path().join(&bundle.note.rootfs)).await;
        (Runc { id, dir }, bundle)
    }

    fn runc(&self) -> std::process::Command {
        let mut c = std::process::Command::new(runc());
        c.arg("--root").arg(self.dir.path().join("runc-state"));
        c
    }

    /// `runc run` in the foreground (its exit code is the container's), then `runc delete -f`.
    async fn run(&self) -> Output {
        let _one_at_a_time = RUNC_LOCK.lock().await;
        let mut run = tokio::process::Command::from(self.runc());
        run.args(["run", "--bundle"]).arg(self.dir.path()).arg(&self.id).stdin(std::process::Stdio::null());
        let out = tokio::time::timeout(Duration::from_secs(60), run.output()).await.expect("runc run ends").unwrap();
        self.delete();
        // The bundle's cgroup parent, per controller; busy ones stay.
        for controller in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let _ = std::fs::remove_dir(controller.path().join("berth"));
        }
        out
    }

    fn delete(&self) {
        let deleted = self.runc().args(["delete", "-f", &self.id]).output();
        // Gone already (it ran to its end) is the usual answer.
        if let Ok(o) = deleted {
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success() || stderr.contains("does not exist"), "runc delete: {stderr}");
        }
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        // After a panic mid-run; a no-op otherwise.
        let _ = self.runc().args(["delete", "-f", &self.id]).output();
    }
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn policy(bind_root: &Path) -> Policy {
    Policy::new(PolicyConfig { bind_roots: vec![bind_root.to_owned()], ..Default::default() })
}

fn sandbox(script: &str) -> ContainerSpec {
    let mut req = ContainerRequest::new(Kind::Code, unique("sandbox"), IMAGE);
    req.cmd = Some(vec!["sh".into(), "-c".into(), script.into()]);
    req.memory = Some(ByteSize::mib(48));
    req.cpu = Some(CpuLimit::from_cores(0.5).unwrap());
    req.pids = Some(24);
    Policy::default().admit(req).unwrap()
}

#[tokio::test]
async fn a_rendered_bundle_runs_under_runc_with_its_output_and_exit_code() {
    let mut req = ContainerRequest::new(Kind::Tool, unique("tool"), IMAGE);
    req.cmd = Some(vec!["sh".into(), "-c".into(), "echo \"hello $GREETING\"; echo oops >&2; exit 3".into()]);
    req.env.insert("GREETING".into(), "from runc".into());
    let spec = Policy::default().admit(req).unwrap();
    let (runc, _) = Runc::prepare(&spec).await;
    let out = runc.run().await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert_eq!(stdout, "hello from runc\n");
    assert_eq!(stderr, "oops\n");
}

/// The sandbox, seen from inside: what the spec asked holds under a real runtime.
#[tokio::test]
async fn a_sandbox_bundle_holds_its_limits_under_runc() {
    let script = r#"
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status
if command -v unshare >/dev/null; then unshare -r true 2>/dev/null && echo unshare-allowed || echo unshare-refused; else echo no-unshare; fi
echo "uid=$(id -u) gid=$(id -g)"
echo "memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
echo "pids=$(cat /sys/fs/cgroup/pids/pids.max)"
echo "quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) period=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
touch /root-write-test 2>/dev/null && echo root-writable || echo root-read-only
touch /tmp/ok && echo tmp-writable
echo "net=$(ls /sys/class/net | tr '\n' ' ')"
echo "hostname=$(hostname)"
cat /proc/kcore 2>/dev/null | head -c 1 | wc -c | sed 's/^/kcore-bytes=/'
"#;
    let spec = sandbox(script);
    let (runc, bundle) = Runc::prepare(&spec).await;
    let out = runc.run().await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("CapEff:\t0000000000000000"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");
    assert!(stdout.contains("Seccomp:\t2"), "the engine's seccomp filter is loaded: {stdout}");
    assert!(stdout.contains("unshare-refused"), "{stdout}");
    assert!(stdout.contains("uid=65534 gid=65534"), "{stdout}");
    assert!(stdout.contains(&format!("memory={}\n", 48 << 20)), "{stdout}");
    assert!(stdout.contains("pids=24\n"), "{stdout}");
    assert!(stdout.contains("quota=50000 period=100000"), "{stdout}");
    assert!(stdout.contains("root-read-only") && stdout.contains("tmp-writable"), "{stdout}");
    assert!(stdout.contains("net=lo \n"), "a sandbox has no interface but loopback: {stdout}");
    assert!(stdout.contains(&format!("hostname={}\n", bundle.config.hostname)), "{stdout}");
    assert!(stdout.contains("kcore-bytes=0"), "masked: {stdout}");
}

#[tokio::test]
async fn the_pids_limit_stops_a_fork_bomb_under_runc() {
    // busybox's sh gives up at the first refused fork, so a child shell forks
    // and the first one reads the cgroup with builtins only.
    let spec = sandbox(
        "sh -c 'for i in $(seq 40); do sleep 3 & done' 2>/dev/null; \
         read c < /sys/fs/cgroup/pids/pids.current; read e < /sys/fs/cgroup/pids/pids.events; echo \"current=$c $e\"",
    );
    let (runc, _) = Runc::prepare(&spec).await;
    let out = runc.run().await;
    let (stdout, stderr) = text(&out);
    let (current, refused) = stdout
        .trim()
        .strip_prefix("current=")
        .and_then(|rest| rest.split_once(" max "))
        .and_then(|(c, m)| Some((c.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
        .unwrap_or_else(|| panic!("{stdout}{stderr}"));
    assert!(current <= 24 && current > 1, "at most the pids limit: {stdout}");
    assert!(refused > 0, "forks past the limit were refused: {stdout}");
}

#[tokio::test]
async fn an_agent_bundle_binds_its_code_read_only_and_keeps_an_added_capability_under_runc() {
    let root = tempfile::tempdir().unwrap();
    let code = root.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.sh"), "echo agent-code-ran\n").unwrap();
    let mut req = ContainerRequest::new(Kind::Agent, unique("agent"), IMAGE);
    req.cmd = Some(vec![
        "sh".into(),
        "-c".into(),
        "sh /app/agent/main.sh; touch /app/agent/x 2>/dev/null && echo code-writable || echo code-read-only; \
         grep CapEff /proc/self/status"
            .into(),
    ]);
    req.binds = vec![Bind { host: code.display().to_string(), container: "/app/agent".into(), read_only: true }];
    req.cap_add = vec!["NET_BIND_SERVICE".into()];
    let spec = policy(root.path()).admit(req).unwrap();
    let (runc, _) = Runc::prepare(&spec).await;
    let out = runc.run().await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("agent-code-ran\ncode-read-only\n"), "{stdout}");
    // CAP_NET_BIND_SERVICE is bit 10, and nothing else.
    assert!(stdout.contains("CapEff:\t0000000000000400"), "{stdout}");
    assert!(!code.join("x").exists());
}

/// dockerd's OCI spec of a running container (containerd's task bundle).
fn dockerd_spec(full_id: &str) -> Value {
    let candidates = [
        format!("/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/{full_id}/config.json"),
        format!("/run/containerd/io.containerd.runtime.v2.task/moby/{full_id}/config.json"),
    ];
    for path in &candidates {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).unwrap();
        }
    }
    panic!("dockerd's generated spec of {full_id} is in none of {candidates:?}")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap_or_default().to_owned()).collect()).unwrap_or_default()
}

/// Where the bundle and dockerd's spec differ on the fields that matter.
/// Mount sources are not compared (dockerd's are its own files); the rest is.
fn differences(docker: &Value, ours: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut same = |field: &str, d: &Value, o: &Value| {
        if d != o {
            diffs.push(format!("{field}: dockerd {d} / bundle {o}"));
        }
    };
    for set in ["bounding", "effective", "inheritable", "permitted", "ambient"] {
        let norm = |v: &Value| json!(strings(&v["process"]["capabilities"][set]));
        same(&format!("process.capabilities.{set}"), &norm(docker), &norm(ours));
    }
    // An absent flag is false, as the runtime reads it.
    let flag = |v: &Value| json!(v.as_bool().unwrap_or(false));
    for field in ["noNewPrivileges", "terminal"] {
        same(&format!("process.{field}"), &flag(&docker["process"][field]), &flag(&ours["process"][field]));
    }
    for field in ["user", "env", "cwd", "oomScoreAdj"] {
        same(&format!("process.{field}"), &docker["process"][field], &ours["process"][field]);
    }
    same("root.readonly", &flag(&docker["root"]["readonly"]), &flag(&ours["root"]["readonly"]));
    let (dr, or) = (&docker["linux"]["resources"], &ours["linux"]["resources"]);
    for (field, d, o) in [
        ("memory.limit", &dr["memory"]["limit"], &or["memory"]["limit"]),
        ("memory.swap", &dr["memory"]["swap"], &or["memory"]["swap"]),
        ("cpu.quota", &dr["cpu"]["quota"], &or["cpu"]["quota"]),
        ("cpu.period", &dr["cpu"]["period"], &or["cpu"]["period"]),
        ("pids.limit", &dr["pids"]["limit"], &or["pids"]["limit"]),
        ("devices", &dr["devices"], &or["devices"]),
    ] {
        same(&format!("linux.resources.{field}"), d, o);
    }
    for field in ["namespaces", "maskedPaths", "readonlyPaths", "sysctl"] {
        same(&format!("linux.{field}"), &docker["linux"][field], &ours["linux"][field]);
    }
    // Mounts: by destination, type and options, in order.
    let mounts = |v: &Value| -> Vec<(String, String, Vec<String>)> {
        v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["destination"].as_str().unwrap().to_owned(),
                    m["type"].as_str().unwrap().to_owned(),
                    strings(&m["options"]),
                )
            })
            .collect()
    };
    let (dm, om) = (mounts(docker), mounts(ours));
    for m in &dm {
        match om.iter().find(|o| o.0 == m.0) {
            None => diffs.push(format!("mounts: {} only in dockerd's spec", m.0)),
            Some(o) if o != m => diffs.push(format!("mounts: {} dockerd {m:?} / bundle {o:?}", m.0)),
            Some(_) => {}
        }
    }
    for o in om.iter().filter(|o| !dm.iter().any(|m| m.0 == o.0)) {
        diffs.push(format!("mounts: {} only in the bundle", o.0));
    }
    let order = |ms: &[(String, String, Vec<String>)], other: &[(String, String, Vec<String>)]| -> Vec<String> {
        ms.iter().filter(|m| other.iter().any(|o| o.0 == m.0)).map(|m| m.0.clone()).collect()
    };
    if order(&dm, &om) != order(&om, &dm) {
        diffs.push(format!("mounts: order dockerd {:?} / bundle {:?}", order(&dm, &om), order(&om, &dm)));
    }
    // The command: dockerd runs its init first.
    let (da, oa) = (strings(&docker["process"]["args"]), strings(&ours["process"]["args"]));
    if da != oa {
        let init = ["/sbin/docker-init".to_owned(), "--".to_owned()];
        if da.len() == oa.len() + 2 && da[..2] == init && da[2..] == oa[..] {
            diffs.push("process.args: dockerd's start with /sbin/docker-init --".to_owned());
        } else {
            diffs.push(format!("process.args: dockerd {da:?} / bundle {oa:?}"));
        }
    }
    let present = |v: &Value, p: &str| !v.pointer(p).unwrap_or(&Value::Null).is_null();
    if let (Some(theirs), Some(mine)) = (docker.pointer("/linux/seccomp"), ours.pointer("/linux/seccomp")) {
        if theirs != mine {
            diffs.push("linux.seccomp: the bundle's filter is not dockerd's (record it again)".to_owned());
        }
    }
    for pointer in ["/linux/seccomp", "/hooks/prestart", "/process/apparmorProfile", "/process/rlimits"] {
        match (present(docker, pointer), present(ours, pointer)) {
            (true, false) => diffs.push(format!("{pointer}: only in dockerd's spec")),
            (false, true) => diffs.push(format!("{pointer}: only in the bundle")),
            _ => {}
        }
    }
    let cgroup =
        |v: &Value| v["linux"]["cgroupsPath"].as_str().unwrap_or_default().rsplit('/').nth(1).map(str::to_owned);
    if cgroup(docker) != cgroup(ours) {
        diffs.push(format!("linux.cgroupsPath: parent dockerd {:?} / bundle {:?}", cgroup(docker), cgroup(ours)));
    }
    diffs
}

/// The differences that remain, each with its reason in README.md ("oci-dry-run backend").
const KNOWN: &[&str] = &[
    "mounts: /sbin/docker-init only in dockerd's spec",
    "process.args: dockerd's start with /sbin/docker-init --",
    "/hooks/prestart: only in dockerd's spec",
    "/process/rlimits: only in the bundle",
    "linux.cgroupsPath: parent dockerd Some(\"docker\") / bundle Some(\"berth\")",
];

/// Creates and starts `spec` through the docker backend, reads dockerd's
/// spec, renders the bundle for the same container id, and compares.
async fn compare_with_dockerd(spec: &ContainerSpec) -> Vec<String> {
    let image = image_config().await;
    let backend = DockerBackend::new(docker());
    let id = backend.create(spec).await.unwrap();
    // The container is removed even when the comparison panics.
    let compared = std::panic::AssertUnwindSafe(async {
        backend.start(&id).await.unwrap();
        let full = docker().inspect_container(&id.id.0).await.unwrap().id;
        let theirs = dockerd_spec(&full);
        let ours = serde_json::to_value(render(spec, &full, Some(&image)).unwrap().config).unwrap();
        differences(&theirs, &ours)
    })
    .catch_unwind()
    .await;
    backend.remove(&id, true).await.unwrap();
    compared.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn assert_only_known(diffs: &[String]) {
    let unknown: Vec<&String> = diffs.iter().filter(|d| !KNOWN.contains(&d.as_str())).collect();
    assert!(unknown.is_empty(), "differences from dockerd not fixed nor listed in README.md: {unknown:#?}");
    for known in KNOWN {
        assert!(diffs.iter().any(|d| d == known), "{known:?} no longer differs: take it off the list and README.md");
    }
}

/// The seccomp filter dockerd compiles for a berth sandbox is the one
/// bundles carry; `BERTH_RECORD_SECCOMP=1` records it again into
/// `crates/berth-oci/seccomp/default.json` (then build again and rerun).
#[tokio::test]
async fn the_bundles_seccomp_filter_is_the_one_dockerd_compiles_for_a_sandbox() {
    let spec = sandbox("sleep 30");
    let backend = DockerBackend::new(docker());
    let id = backend.create(&spec).await.unwrap();
    backend.start(&id).await.unwrap();
    let full = docker().inspect_container(&id.id.0).await.unwrap().id;
    let theirs = dockerd_spec(&full)["linux"]["seccomp"].clone();
    backend.remove(&id, true).await.unwrap();
    assert!(theirs.is_object(), "dockerd gives a sandbox a seccomp filter");
    if std::env::var("BERTH_RECORD_SECCOMP").is_ok_and(|v| v == "1") {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/berth-oci").join(berth_oci::seccomp::RECORDED_PATH);
        std::fs::write(&path, serde_json::to_string_pretty(&theirs).unwrap() + "\n").unwrap();
        eprintln!("recorded dockerd's seccomp filter into {}", path.display());
        return;
    }
    assert_eq!(theirs, serde_json::to_value(berth_oci::seccomp::recorded()).unwrap());
}

#[tokio::test]
async fn a_sandbox_bundle_differs_from_dockerds_spec_only_where_readme_says() {
    let spec = sandbox("sleep 30");
    let diffs = compare_with_dockerd(&spec).await;
    assert_only_known(&diffs);
}

#[tokio::test]
async fn an_agent_bundle_differs_from_dockerds_spec_only_where_readme_says() {
    let root = tempfile::tempdir().unwrap();
    let (code, work) = (root.path().join("code"), root.path().join("work"));
    std::fs::create_dir_all(&code).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let mut req = ContainerRequest::new(Kind::Agent, unique("agent-diff"), IMAGE);
    req.cmd = Some(vec!["sleep".into(), "30".into()]);
    req.env.insert("ROLE".into(), "agent".into());
    req.cap_add = vec!["NET_BIND_SERVICE".into(), "CHOWN".into()];
    req.binds = vec![
        Bind { host: code.display().to_string(), container: "/app/agent".into(), read_only: true },
        Bind { host: work.display().to_string(), container: "/workspace".into(), read_only: false },
    ];
    req.working_dir = Some("/workspace".into());
    req.tty = true;
    let spec = policy(root.path()).admit(req).unwrap();
    let diffs = compare_with_dockerd(&spec).await;
    assert_only_known(&diffs);
    // And as a worktree user: the added capabilities stay in the bounding set only.
    let mut as_user = spec.clone();
    as_user.name = unique("agent-user");
    as_user.user = Some("1000:1000".into());
    assert_only_known(&compare_with_dockerd(&as_user).await);
}
