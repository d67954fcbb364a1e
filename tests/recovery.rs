//! Restart safety: `kill -9` the berth process in the middle of runs, then
//! recover: no container is leaked and every run ends in a terminal status.
//! Alone in its binary, since recovery removes this instance's orphans.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::engine::{Engine, Selector};
use berth_core::runs::RunStatus;
use berth_core::spec::labels;
use berth_core::store::Store;
use berth_docker::DockerBackend;

#[tokio::test]
async fn runs_interrupted_by_a_killed_berth_end_failed_and_leave_no_container() {
    let data = tempfile::tempdir().unwrap();
    let mut children: Vec<_> = (0..3)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_berth"))
                .args(["local-run", "--language", "sh", "--code", &format!("echo started {i}; sleep 60")])
                .arg("--data")
                .arg(data.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let store = Store::open(&data.path().join("berth.db")).unwrap();
    let backend: Arc<dyn Engine> = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));

    // Wait until all three run, then kill -9 every berth process.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running = store.unfinished_runs().unwrap().iter().filter(|r| r.status == RunStatus::Running).count();
        if running == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "runs never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for child in &mut children {
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let instance = store.instance_id(|| panic!("the runs made the instance id")).unwrap();
    let mine = Selector::all().instance(&instance);
    assert_eq!(backend.list(&mine).await.unwrap().len(), 3, "the killed runs left their containers");

    let out = Command::new(env!("CARGO_BIN_EXE_berth")).arg("recover").arg("--data").arg(data.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["runs_failed"].as_array().unwrap().len(), 3, "{report}");

    assert!(backend.list(&mine).await.unwrap().is_empty(), "no container leaked");
    let runs = store.list_runs("cli", 10).unwrap();
    assert_eq!(runs.len(), 3);
    for run in runs {
        assert_eq!(run.status, RunStatus::Failed);
        assert!(run.error.unwrap().contains("berth restarted during the run"));
    }
}

#[tokio::test]
async fn an_orphan_run_container_is_kept_when_configured_and_removed_by_default() {
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(&data.path().join("berth.db")).unwrap();
    let instance = store.instance_id(|| format!("{:012x}", std::process::id())).unwrap();
    let backend: Arc<dyn Engine> = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));
    let name = format!("berth-orphan-{instance}");
    let mut req = berth_core::policy::ContainerRequest::new(berth_core::spec::Kind::Code, name.clone(), "busybox:1.35");
    req.cmd = Some(vec!["sleep".into(), "60".into()]);
    let mut spec = berth_core::policy::Policy::default().admit(req).unwrap();
    spec.labels.insert(labels::INSTANCE.into(), instance.clone());
    spec.labels.insert(labels::OBJECT.into(), "run_unknown00000".into());
    spec.labels.insert(labels::TENANT.into(), "cli".into());
    let id = backend.create(&spec).await.unwrap();
    backend.start(&id).await.unwrap();
    let recover = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("recover")
            .arg("--data")
            .arg(data.path())
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let kept = recover(&["--orphans", "keep"]);
    assert_eq!(kept["orphans_kept"], serde_json::json!([name]), "{kept}");
    assert!(backend.inspect(&id).await.unwrap().running(), "left running");
    let removed = recover(&[]);
    assert_eq!(removed["containers_removed"], serde_json::json!([name]), "{removed}");
    assert!(backend.inspect(&id).await.is_err(), "removed");
}

/// `runc --root STATE list --quiet`: the runtime containers under a berth's state root.
fn runc_containers(state: &std::path::Path) -> Vec<String> {
    let out = Command::new("runc").arg("--root").arg(state).args(["list", "--quiet"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

/// `berth serve` on `port` over `data`, pools off (so every run is its own
/// runc container), its stderr to `log`.
fn serve(data: &std::path::Path, port: u16, log: &std::path::Path) -> std::process::Child {
    let config = data.join("berth.toml");
    std::fs::write(&config, "pools = false\noci = \"required\"\n").unwrap();
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("BERTH_SPARES", "")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-s", "--max-time", "20"]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn answering(port: u16, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !curl(&[&format!("http://127.0.0.1:{port}/v1/health")]).contains("\"ok\"") {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        assert!(Instant::now() < deadline, "berth serve never answered: {said}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn runs_on_runc_interrupted_by_a_killed_berth_leave_no_runtime_container_cgroup_or_bundle() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = data.path().join("serve.log");
    let mut server = serve(data.path(), port, &log);
    answering(port, &log).await;
    let url = format!("http://127.0.0.1:{port}/v1/runs");
    for i in 0..3 {
        let body = format!(r#"{{"language":"sh","code":"echo started {i}; sleep 60","wait":false}}"#);
        let answer = curl(&["-X", "POST", &url, "-H", "content-type: application/json", "-d", &body]);
        assert!(answer.contains("\"run_"), "{answer}");
    }
    let state = data.path().join("oci/runc/state");
    let deadline = Instant::now() + Duration::from_secs(30);
    while runc_containers(&state).len() < 3 {
        assert!(Instant::now() < deadline, "the runs never reached runc: {:?}", runc_containers(&state));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill().unwrap(); // SIGKILL, mid-burst
    server.wait().unwrap();
    assert_eq!(runc_containers(&state).len(), 3, "the killed berth left its runtime containers");
    let store = Store::open(&data.path().join("berth.db")).unwrap();
    let instance = store.instance_id(|| panic!("the server made the instance id")).unwrap();
    let short: String = instance.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
    let cgroups = std::path::PathBuf::from(format!("/sys/fs/cgroup/memory/berth-oci/{short}/runc"));
    let children = |dir: &std::path::Path| {
        std::fs::read_dir(dir).map(|d| d.flatten().filter(|e| e.path().is_dir()).count()).unwrap_or(0)
    };
    assert_eq!(children(&cgroups), 3, "their cgroups are there");

    let mut again = serve(data.path(), port, &log);
    answering(port, &log).await;
    assert!(runc_containers(&state).is_empty(), "no runtime container left: {:?}", runc_containers(&state));
    assert_eq!(children(&cgroups), 0, "no cgroup left");
    assert_eq!(std::fs::read_dir(data.path().join("oci/runc/bundles")).unwrap().count(), 0, "no bundle left");
    let runs = store.list_runs("default", 10).unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    for run in runs {
        assert_eq!(run.status, RunStatus::Failed);
        let error = run.error.unwrap_or_default();
        assert!(error.contains("berth restarted during the run; its runtime container is removed"), "{error}");
    }
    let _ = Command::new("kill").arg(again.id().to_string()).status();
    again.wait().unwrap();
}
