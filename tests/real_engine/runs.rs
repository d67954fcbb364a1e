//! Runs against the real engine, on both backends that run them: the
//! docker backend, and the `oci` backend (runc straight over bundles, its
//! roots from the engine's image store), which sealed runs take by
//! default. Each flow is one function run once per tier: outcomes, limits,
//! and the sandbox policy checked from inside the container.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use berth_core::context::Context;
use berth_core::engine::Engine;
use berth_core::engine::{Handle, Selector};
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::model::units::ByteSize;
use berth_core::policy::{Policy, PolicyConfig};
use berth_core::runs::{RunError, RunRequest, RunStatus, Runs, Workload};
use berth_core::spec::{annotations, labels};
use berth_core::store::Store;
use berth_docker::DockerBackend;
use berth_oci::cache::ImageCache;
use berth_oci::runtime::binary::Binary;
use berth_oci::runtime::{probe, OciRuntime, RuntimeConfig};

/// Which backend runs the tier's runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Docker,
    Oci,
    /// The `oci` backend on gVisor's runsc.
    Runsc,
}

fn docker() -> Arc<DockerBackend> {
    Arc::new(DockerBackend::new(engine_api::Docker::from_env().expect("DOCKER_HOST")))
}

/// The folder of this test process's `oci` backends.
pub fn oci_dir() -> PathBuf {
    std::env::temp_dir().join(format!("berth-oci-tier-{}", std::process::id()))
}

/// The cgroup parent of this test process's `oci` backend of `runtime`.
pub fn oci_cgroup_parent(runtime: &str) -> String {
    format!("/berth-oci/tier{}/{runtime}", std::process::id())
}

pub fn runc_binary() -> Binary {
    Binary::runc("runc", oci_dir().join("runc"))
}

fn image_cache() -> Arc<ImageCache> {
    static CACHE: OnceLock<Arc<ImageCache>> = OnceLock::new();
    CACHE.get_or_init(|| ImageCache::open(&oci_dir().join("images"), 4 << 30).expect("the image cache opens").0).clone()
}

/// The cgroup parents earlier test processes left (`/berth-oci/tier<pid>`
/// of a pid gone), removed where empty: a test binary has no end of its own
/// to remove its parent at.
fn remove_dead_tiers_cgroups() {
    let layout = berth_oci::runtime::cgroup::Layout::detect();
    let dirs = layout.dirs("/berth-oci");
    let names = dirs.iter().filter_map(|d| std::fs::read_dir(d).ok()).flatten().flatten().map(|e| e.file_name());
    let dead: std::collections::BTreeSet<String> = names
        .filter_map(|n| n.to_str()?.strip_prefix("tier").map(str::to_owned))
        .filter(|pid| pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists())
        .collect();
    for pid in dead {
        layout.remove_empty(&format!("/berth-oci/tier{pid}"));
    }
}

fn backend_of(binary: Binary) -> Arc<OciRuntime> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(remove_dead_tiers_cgroups);
    let config = RuntimeConfig {
        bundles: oci_dir().join(format!("bundles-{}", binary.name)),
        init: "/usr/bin/tini-static".into(),
        output_cap: PolicyConfig::default().output_cap + 1,
        cgroup_parent: oci_cgroup_parent(binary.name),
        overlay_bytes: 64 << 20,
        binary,
    };
    let images: Arc<dyn Engine> = docker();
    OciRuntime::new(config, images, image_cache())
}

/// One `oci` backend on runc for the whole process (as one server has
/// one): the image cache, shared with runsc's, unpacks each image once.
pub fn oci() -> Arc<OciRuntime> {
    static OCI: OnceLock<Arc<OciRuntime>> = OnceLock::new();
    OCI.get_or_init(|| backend_of(runc_binary())).clone()
}

/// The `oci` backend on runsc, one for the process.
pub fn runsc() -> Arc<OciRuntime> {
    static RUNSC: OnceLock<Arc<OciRuntime>> = OnceLock::new();
    RUNSC.get_or_init(|| backend_of(Binary::runsc("runsc", oci_dir().join("runsc")))).clone()
}

/// Runs under `config` on `tier`, with the engine the tier's sealed runs go to.
fn runs_on(tier: Tier, config: PolicyConfig) -> (Arc<Runs>, Arc<dyn Engine>, Arc<Store>) {
    let store = Arc::new(Store::in_memory().unwrap());
    let mut ctx =
        Context::new(docker(), Policy::new(config), store.clone(), Arc::new(RandomIds), Arc::new(SystemClock));
    let engine: Arc<dyn Engine> = match tier {
        Tier::Docker => ctx.engine(berth_core::spec::Kind::Code),
        Tier::Oci | Tier::Runsc => {
            let oci: Arc<dyn Engine> = if tier == Tier::Oci { oci() } else { runsc() };
            ctx = ctx.with_sealed(oci.clone());
            oci
        }
    };
    (Arc::new(Runs::new(&ctx, 8)), engine, store)
}

fn runs(tier: Tier) -> (Arc<Runs>, Arc<dyn Engine>, Arc<Store>) {
    runs_on(tier, PolicyConfig::default())
}

/// What ran a run on `tier`.
fn runtime(tier: Tier) -> &'static str {
    match tier {
        Tier::Docker => "docker",
        Tier::Oci => "runc",
        Tier::Runsc => "runsc",
    }
}

/// `flow!(name)`: the async fn `name(tier)` as the tests `name::on_docker`,
/// `name::on_oci` and `name::on_runsc`.
macro_rules! flow {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn on_docker() {
                super::$name(super::Tier::Docker).await
            }
            #[tokio::test]
            async fn on_oci() {
                super::$name(super::Tier::Oci).await
            }
            #[tokio::test]
            async fn on_runsc() {
                super::$name(super::Tier::Runsc).await
            }
        }
    )*};
}

fn sh(script: &str) -> RunRequest {
    RunRequest::new("t1", Workload::Code { language: "sh".into(), code: script.into() })
}

/// A tool run with no network: sealed, so the `oci` tier takes it too
/// (its root writable, an overlay over the shared one).
fn tool(script: &str) -> RunRequest {
    let command = Some(vec!["sh".into(), "-c".into(), script.into()]);
    let mut req = RunRequest::new("t1", Workload::Tool { image: "busybox:1.35".into(), command });
    req.network = false;
    req
}

async fn a_run_that_exits_zero_succeeds_and_its_record_outlives_the_container(tier: Tier) {
    let (runs, backend, store) = runs(tier);
    let run = runs.execute(sh("echo hi; echo oops >&2")).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(run.stdout, "hi\n");
    assert_eq!(run.stderr, "oops\n");
    assert_eq!(run.runtime.as_deref(), Some(runtime(tier)));
    assert!(run.container_removed);
    let cid = Handle::local(run.container_id.clone().unwrap());
    assert!(backend.inspect(&cid).await.is_err_and(|e| e.is_not_found()));
    assert_eq!(store.get_run("t1", &run.id).unwrap().unwrap(), run);
    assert!(store.get_run("t2", &run.id).unwrap().is_none(), "another tenant sees nothing");
    assert_eq!(store.audit_trail("t1", 10).unwrap()[0].outcome, "succeeded");
}

async fn a_non_zero_exit_fails_with_its_exit_code(tier: Tier) {
    let (runs, ..) = runs(tier);
    let run = runs.execute(tool("exit 3")).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.exit_code, Some(3));
}

async fn parameters_arrive_as_variables_and_as_one_json_document_and_json_output_is_the_result(tier: Tier) {
    let (runs, ..) = runs(tier);
    let mut req = tool(r#"echo "{\"file\":\"$PARAM_FILE\",\"pages\":$PARAM_MAX_PAGES,\"all\":$BERTH_PARAMETERS}""#);
    req.parameters = serde_json::json!({"file": "doc.pdf", "max-pages": 3}).as_object().unwrap().clone();
    let run = runs.execute(req).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        run.result,
        Some(serde_json::json!({"file": "doc.pdf", "pages": 3, "all": {"file": "doc.pdf", "max-pages": 3}}))
    );
}

async fn python_code_runs_in_the_default_python_image(tier: Tier) {
    let (runs, ..) = runs(tier);
    let req = RunRequest::new("t1", Workload::Code { language: "python".into(), code: "print(6 * 7)".into() });
    let run = runs.execute(req).await.unwrap();
    assert_eq!((run.status, run.stdout.as_str()), (RunStatus::Succeeded, "42\n"));
    assert_eq!(run.image, "python:3.11-slim");
}

async fn a_run_past_its_deadline_is_killed_and_timed_out(tier: Tier) {
    let (runs, ..) = runs(tier);
    let mut req = sh("echo started; sleep 30");
    req.timeout = Some(Duration::from_secs(1));
    let started = std::time::Instant::now();
    let run = runs.execute(req).await.unwrap();
    assert_eq!(run.status, RunStatus::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(run.stdout, "started\n");
    assert!(run.container_removed);
}

async fn a_memory_hog_ends_oom_killed(tier: Tier) {
    let (runs, ..) = runs(tier);
    let mut req = RunRequest::new(
        "t1",
        Workload::Code {
            language: "python".into(),
            code: "x = bytearray(200 * 1024 * 1024)\nprint('survived')".into(),
        },
    );
    req.memory = Some(ByteSize::mib(32));
    let run = runs.execute(req).await.unwrap();
    assert_eq!(run.exit_code, Some(137));
    if tier == Tier::Runsc {
        // Listed difference: gVisor's whole sandbox is the victim, its OOM
        // kill counted in the runtime's own cgroup (gone as it ends) on
        // cgroup v1; berth sees a kill at the memory limit.
        assert_eq!(run.status, RunStatus::Failed, "{run:?}");
        assert!(run.usage.peak_memory_bytes.unwrap_or(0) >= 30 << 20, "at the limit: {:?}", run.usage);
    } else {
        assert_eq!(run.status, RunStatus::OomKilled, "{run:?}");
    }
}

async fn a_cancelled_run_ends_cancelled(tier: Tier) {
    let (runs, _, store) = runs(tier);
    let exec = {
        let runs = runs.clone();
        let mut req = sh("sleep 30");
        req.tenant = "t-cancel".into();
        tokio::spawn(async move { runs.execute(req).await })
    };
    // Cancel it once its container runs.
    let store_run = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let list = store.list_runs("t-cancel", 1).unwrap();
        if let Some(run) = list.into_iter().find(|r| r.status == RunStatus::Running) {
            break run.id;
        }
    };
    assert!(runs.cancel("t-cancel", &store_run).unwrap());
    let run = exec.await.unwrap().unwrap();
    assert_eq!(run.id, store_run);
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(!runs.cancel("t-cancel", &store_run).unwrap(), "a finished run cannot be cancelled");
}

async fn output_beyond_the_cap_is_truncated_with_a_marker_and_no_result(tier: Tier) {
    let (runs, ..) = runs_on(tier, PolicyConfig { output_cap: 1000, ..Default::default() });
    let run = runs.execute(sh("yes 0123456789 | head -c 100000")).await.unwrap();
    assert!(run.stdout_truncated);
    assert!(run.stdout.ends_with("[berth: output truncated, 99000 more bytes dropped]\n"), "{}", &run.stdout[900..]);
    assert_eq!(run.result, None);
}

async fn a_refused_request_creates_nothing(tier: Tier) {
    let (runs, backend, store) = runs(tier);
    // A tenant of its own, so runs of the tests beside this one do not count.
    let mut req = RunRequest::new("t-refused", Workload::Code { language: "sh".into(), code: "true".into() });
    req.memory = Some(ByteSize::mib(1 << 20));
    let mine = Selector::all().tenant("t-refused");
    match runs.execute(req).await {
        Err(RunError::Policy(v)) => assert_eq!(v.field, "memory"),
        other => panic!("expected a policy refusal, got {other:?}"),
    }
    assert!(backend.list(&mine).await.unwrap().is_empty());
    assert!(store.list_runs("t-refused", 10).unwrap().is_empty());
    let unknown = RunRequest::new("t1", Workload::Code { language: "cobol".into(), code: "x".into() });
    assert!(matches!(runs.execute(unknown).await, Err(RunError::UnknownLanguage(..))));
}

/// The sandbox, seen from inside: what policy promised holds.
async fn a_code_sandbox_has_no_capabilities_no_privileges_no_network_a_read_only_root_and_no_root_user(tier: Tier) {
    let (runs, ..) = runs(tier);
    let script = r#"
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status
echo "pid1=$(cat /proc/1/comm)"
echo "uid=$(id -u)"
touch /root-write-test 2>/dev/null && echo root-writable || echo root-read-only
touch /tmp/ok && echo tmp-writable
ls /sys/class/net | tr '\n' ' '; echo
"#;
    let run = runs.execute(sh(script)).await.unwrap();
    let out = run.stdout;
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    if tier == Tier::Runsc {
        // Listed difference: gVisor's /proc/self/status has no NoNewPrivs
        // line (a_runsc_sandbox_has_no_new_privileges asks the kernel).
        assert!(!out.contains("NoNewPrivs"), "{out}");
    } else {
        assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    }
    assert!(out.contains("Seccomp:\t2"), "the engine's seccomp filter: {out}");
    // An init as process 1: the engine's docker-init, the runtime's tini.
    assert!(out.contains("pid1=docker-init") || out.contains("pid1=init"), "{out}");
    assert!(out.contains("uid=65534"), "{out}");
    assert!(out.contains("root-read-only") && out.contains("tmp-writable"), "{out}");
    assert!(out.contains("\nlo \n"), "only loopback: {out}");
}

async fn a_fork_bomb_stops_at_the_pids_limit(tier: Tier) {
    let (runs, ..) = runs_on(
        tier,
        PolicyConfig {
            code: berth_core::policy::KindDefaults { pids: 32, ..PolicyConfig::default().code },
            ..Default::default()
        },
    );
    let code = "import os, time\nn = 0\ntry:\n    for _ in range(200):\n        if os.fork() == 0:\n            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('fork refused', e.errno)\nprint('forked', n)\n";
    let mut req = RunRequest::new("t1", Workload::Code { language: "python".into(), code: code.into() });
    req.timeout = Some(Duration::from_secs(20));
    let run = runs.execute(req).await.unwrap();
    if tier == Tier::Runsc {
        // Listed difference: gVisor's sandbox crashes at its pids limit
        // (raised to a floor of 64) and its output is lost; the run fails.
        assert_eq!(run.status, RunStatus::Failed, "{run:?}");
        assert!(run.exit_code.is_some_and(|c| c != 0) && !run.stdout.contains("forked 200"), "{run:?}");
        return;
    }
    assert!(run.stdout.contains("fork refused 11"), "{run:?}");
    let forked: u32 =
        run.stdout.trim().lines().last().and_then(|l| l.strip_prefix("forked ")).unwrap().parse().unwrap();
    assert!(forked > 0 && forked < 32, "forked {forked}");
}

async fn a_tenant_never_has_more_runs_in_flight_than_its_bound(tier: Tier) {
    let store = Arc::new(Store::in_memory().unwrap());
    let mut ctx = Context::new(docker(), Policy::default(), store.clone(), Arc::new(RandomIds), Arc::new(SystemClock));
    match tier {
        Tier::Docker => {}
        Tier::Oci => ctx = ctx.with_sealed(oci()),
        Tier::Runsc => ctx = ctx.with_sealed(runsc()),
    }
    let runs = Arc::new(Runs::new(&ctx, 8).with_per_tenant_limit(1));
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let runs = runs.clone();
            let mut req = sh("sleep 0.5");
            req.tenant = "t-bound".into();
            tokio::spawn(async move { runs.execute(req).await })
        })
        .collect();
    let mut most = 0;
    while !tasks.iter().all(|t| t.is_finished()) {
        let running = store.list_runs("t-bound", 10).unwrap().iter().filter(|r| r.status == RunStatus::Running).count();
        most = most.max(running);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status, RunStatus::Succeeded);
    }
    assert_eq!(most, 1, "one run at a time for this tenant");
}

async fn a_run_container_carries_an_expiry_past_its_deadline_unless_it_is_kept(tier: Tier) {
    let (runs, backend, _) = runs(tier);
    let tenant = "t-expiry";
    let mine = Selector::all().tenant(tenant);
    let mut req = RunRequest::new(tenant, Workload::Code { language: "sh".into(), code: "sleep 2".into() });
    req.timeout = Some(Duration::from_secs(30));
    let started = chrono::Utc::now();
    let running = tokio::spawn({
        let runs = runs.clone();
        async move { runs.execute(req).await }
    });
    let mut label = None;
    for _ in 0..100 {
        if let Some(c) = backend.list(&mine).await.unwrap().into_iter().next() {
            label = c.annotations.get(annotations::EXPIRES_AT).cloned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expiry: chrono::DateTime<chrono::Utc> = label.expect("the container, labelled").parse().unwrap();
    let after = expiry - started;
    assert!(after >= chrono::Duration::seconds(89) && after <= chrono::Duration::seconds(100), "{after}");
    assert_eq!(running.await.unwrap().unwrap().status, RunStatus::Succeeded);

    let mut kept = RunRequest::new(tenant, Workload::Code { language: "sh".into(), code: "true".into() });
    kept.cleanup = false;
    let run = runs.execute(kept).await.unwrap();
    let cid = Handle::local(run.container_id.unwrap());
    let listed = backend.list(&mine).await.unwrap();
    let c = listed.iter().find(|c| c.handle == cid).expect("kept");
    assert!(
        !c.annotations.contains_key(annotations::EXPIRES_AT),
        "a kept container is the caller's: {:?}",
        c.annotations
    );
    assert!(!c.labels.contains_key(labels::EXPIRES_AT), "nor the label of before: {:?}", c.labels);
    backend.remove(&cid, true).await.unwrap();
}

/// A tool run on the `oci` tier writes its root (an overlay over the
/// shared one, its upper layer a bounded tmpfs) and leaves the shared
/// root as it was.
async fn a_tool_run_writes_its_own_root_and_not_the_images(tier: Tier) {
    let (runs, ..) = runs(tier);
    let run = runs.execute(tool("echo mine > /etc/berth-mark && cat /etc/berth-mark")).await.unwrap();
    assert_eq!((run.status, run.stdout.as_str()), (RunStatus::Succeeded, "mine\n"), "{run:?}");
    let again = runs.execute(tool("cat /etc/berth-mark 2>/dev/null || echo absent")).await.unwrap();
    assert_eq!(again.stdout, "absent\n", "the next run sees the image's root");
    assert_eq!(again.runtime.as_deref(), Some(runtime(tier)));
}

/// On the `oci` tier, usage comes from the container's cgroup as it
/// ended, however short the run (the engine's stats stream often has no
/// sample of a run this short, so the docker tier is not held to it).
#[tokio::test]
async fn a_finished_oci_run_reports_its_cpu_time_and_peak_memory() {
    let (runs, ..) = runs(Tier::Oci);
    // (Under runsc the same holds: its berth-held cgroup is read.)
    let req = RunRequest::new(
        "t1",
        Workload::Code {
            language: "python".into(),
            code: "x = bytearray(20 * 1024 * 1024)\nsum(range(3 * 10**6))".into(),
        },
    );
    let run = runs.execute(req).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let peak = run.usage.peak_memory_bytes.expect("a peak memory");
    assert!(peak >= 20 << 20, "peak {peak}");
    assert!(run.usage.cpu_ms.expect("a CPU time") > 0, "{:?}", run.usage);
}

flow!(
    a_run_that_exits_zero_succeeds_and_its_record_outlives_the_container,
    a_non_zero_exit_fails_with_its_exit_code,
    parameters_arrive_as_variables_and_as_one_json_document_and_json_output_is_the_result,
    python_code_runs_in_the_default_python_image,
    a_run_past_its_deadline_is_killed_and_timed_out,
    a_memory_hog_ends_oom_killed,
    a_cancelled_run_ends_cancelled,
    output_beyond_the_cap_is_truncated_with_a_marker_and_no_result,
    a_refused_request_creates_nothing,
    a_code_sandbox_has_no_capabilities_no_privileges_no_network_a_read_only_root_and_no_root_user,
    a_fork_bomb_stops_at_the_pids_limit,
    a_tenant_never_has_more_runs_in_flight_than_its_bound,
    a_run_container_carries_an_expiry_past_its_deadline_unless_it_is_kept,
    a_tool_run_writes_its_own_root_and_not_the_images,
);

/// The probe berth runs at start-up passes on this machine: the `oci`
/// tier above is not the engine in disguise.
#[tokio::test]
async fn the_runc_and_runsc_probes_pass_here() {
    let scratch = oci_dir().join("probe");
    let tini = std::path::Path::new("/usr/bin/tini-static");
    let report = probe::probe(&runc_binary(), tini, &scratch, &oci_cgroup_parent("runc")).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.cgroup_version, 1);
    let runsc = Binary::runsc("runsc", oci_dir().join("runsc-probe"));
    let report = probe::probe(&runsc, tini, &scratch, &oci_cgroup_parent("runsc")).await;
    assert!(report.ok, "runsc too: {report:?}");
}

/// Under runsc the no-new-privileges bit is asked of the (gVisor) kernel:
/// `prctl(PR_GET_NO_NEW_PRIVS)` says 1.
#[tokio::test]
async fn a_runsc_sandbox_has_no_new_privileges() {
    let (runs, ..) = runs(Tier::Runsc);
    let code = "import ctypes\nprint(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))";
    let req = RunRequest::new("t1", Workload::Code { language: "python".into(), code: code.into() });
    let run = runs.execute(req).await.unwrap();
    assert_eq!((run.status, run.stdout.as_str()), (RunStatus::Succeeded, "1\n"), "{run:?}");
    assert_eq!(run.runtime.as_deref(), Some("runsc"));
}

/// A run with a network that asks for runsc goes to the engine under its
/// registered runsc (`scripts/provision.sh` registers it), since berth's
/// own runtimes run only sealed runs; a sealed one asking the same still
/// goes to berth's runsc. Inside, gVisor's kernel answers (`uname -r` is
/// its 4.4.0), with the engine's network and the same hardening.
#[tokio::test]
async fn a_networked_run_asking_for_runsc_runs_under_the_engines_runsc_and_a_sealed_one_under_berths() {
    let docker = DockerBackend::new(engine_api::Docker::from_env().expect("DOCKER_HOST"));
    let registered = docker.engine_runtimes().await.unwrap();
    assert!(registered.iter().any(|r| r == "runsc"), "the engine lists runsc: {registered:?}");
    let store = Arc::new(Store::in_memory().unwrap());
    let ctx = Context::new(
        Arc::new(docker.clone()),
        Policy::new(PolicyConfig::default()),
        store,
        Arc::new(RandomIds),
        Arc::new(SystemClock),
    )
    .with_sealed(oci())
    .with_sealed(runsc())
    .with_engine_runtime(Arc::new(docker.clone().with_runtime("runsc")));
    let runs = Runs::new(&ctx, 8);
    let script = "uname -r; grep -E '^(CapEff|Seccomp):' /proc/self/status; ip -4 addr | grep -c 'inet 172\\.'";
    let mut networked = tool(script);
    networked.network = true;
    networked.runtime = Some("runsc".into());
    let run = runs.execute(networked).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.runtime.as_deref(), Some("docker-runsc"));
    assert_eq!(run.stdout, "4.4.0\nCapEff:\t0000000000000000\nSeccomp:\t2\n1\n", "{run:?}");
    let gone = docker.inspect(&Handle::local(run.container_id.clone().unwrap())).await;
    assert!(gone.is_err_and(|e| e.is_not_found()), "the container is removed");

    let mut sealed = tool("uname -r");
    sealed.runtime = Some("runsc".into());
    let run = runs.execute(sealed).await.unwrap();
    assert_eq!((run.status, run.stdout.as_str()), (RunStatus::Succeeded, "4.4.0\n"), "{run:?}");
    assert_eq!(run.runtime.as_deref(), Some("runsc"));
}
