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
                .args(["run", "--language", "sh", "--code", &format!("echo started {i}; sleep 60")])
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
