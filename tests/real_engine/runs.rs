//! Runs against the real engine: outcomes, limits, and the sandbox policy
//! checked from inside the container.

use std::sync::Arc;
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

fn runs_with(config: PolicyConfig) -> (Arc<Runs>, Arc<DockerBackend>, Arc<Store>) {
    let docker = engine_api::Docker::from_env().expect("DOCKER_HOST");
    let backend = Arc::new(DockerBackend::new(docker));
    let store = Arc::new(Store::in_memory().unwrap());
    let runs = Runs::new(
        &Context::new(backend.clone(), Policy::new(config), store.clone(), Arc::new(RandomIds), Arc::new(SystemClock)),
        8,
    );
    (Arc::new(runs), backend, store)
}

fn runs() -> (Arc<Runs>, Arc<DockerBackend>, Arc<Store>) {
    runs_with(PolicyConfig::default())
}

fn sh(script: &str) -> RunRequest {
    RunRequest::new("t1", Workload::Code { language: "sh".into(), code: script.into() })
}

fn tool(script: &str) -> RunRequest {
    let command = Some(vec!["sh".into(), "-c".into(), script.into()]);
    RunRequest::new("t1", Workload::Tool { image: "busybox:1.35".into(), command })
}

#[tokio::test]
async fn a_run_that_exits_zero_succeeds_and_its_record_outlives_the_container() {
    let (runs, backend, store) = runs();
    let run = runs.execute(sh("echo hi; echo oops >&2")).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(run.stdout, "hi\n");
    assert_eq!(run.stderr, "oops\n");
    assert!(run.container_removed);
    let cid = Handle::local(run.container_id.clone().unwrap());
    assert!(backend.inspect(&cid).await.is_err_and(|e| e.is_not_found()));
    assert_eq!(store.get_run("t1", &run.id).unwrap().unwrap(), run);
    assert!(store.get_run("t2", &run.id).unwrap().is_none(), "another tenant sees nothing");
    assert_eq!(store.audit_trail("t1", 10).unwrap()[0].outcome, "succeeded");
}

#[tokio::test]
async fn a_non_zero_exit_fails_with_its_exit_code() {
    let (runs, ..) = runs();
    let run = runs.execute(tool("exit 3")).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.exit_code, Some(3));
}

#[tokio::test]
async fn parameters_arrive_as_variables_and_as_one_json_document_and_json_output_is_the_result() {
    let (runs, ..) = runs();
    let mut req = tool(r#"echo "{\"file\":\"$PARAM_FILE\",\"pages\":$PARAM_MAX_PAGES,\"all\":$BERTH_PARAMETERS}""#);
    req.parameters = serde_json::json!({"file": "doc.pdf", "max-pages": 3}).as_object().unwrap().clone();
    let run = runs.execute(req).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        run.result,
        Some(serde_json::json!({"file": "doc.pdf", "pages": 3, "all": {"file": "doc.pdf", "max-pages": 3}}))
    );
}

#[tokio::test]
async fn python_code_runs_in_the_default_python_image() {
    let (runs, ..) = runs();
    let req = RunRequest::new("t1", Workload::Code { language: "python".into(), code: "print(6 * 7)".into() });
    let run = runs.execute(req).await.unwrap();
    assert_eq!((run.status, run.stdout.as_str()), (RunStatus::Succeeded, "42\n"));
    assert_eq!(run.image, "python:3.11-slim");
}

#[tokio::test]
async fn a_run_past_its_deadline_is_killed_and_timed_out() {
    let (runs, ..) = runs();
    let mut req = sh("echo started; sleep 30");
    req.timeout = Some(Duration::from_secs(1));
    let started = std::time::Instant::now();
    let run = runs.execute(req).await.unwrap();
    assert_eq!(run.status, RunStatus::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(run.stdout, "started\n");
    assert!(run.container_removed);
}

#[tokio::test]
async fn a_memory_hog_ends_oom_killed() {
    let (runs, ..) = runs();
    let mut req = RunRequest::new(
        "t1",
        Workload::Code {
            language: "python".into(),
            code: "x = bytearray(200 * 1024 * 1024)\nprint('survived')".into(),
        },
    );
    req.memory = Some(ByteSize::mib(32));
    let run = runs.execute(req).await.unwrap();
    assert_eq!(run.status, RunStatus::OomKilled, "{run:?}");
    assert_eq!(run.exit_code, Some(137));
}

#[tokio::test]
async fn a_cancelled_run_ends_cancelled() {
    let (runs, _, store) = runs();
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

#[tokio::test]
async fn output_beyond_the_cap_is_truncated_with_a_marker_and_no_result() {
    let (runs, ..) = runs_with(PolicyConfig { output_cap: 1000, ..Default::default() });
    let run = runs.execute(sh("yes 0123456789 | head -c 100000")).await.unwrap();
    assert!(run.stdout_truncated);
    assert!(run.stdout.ends_with("[berth: output truncated, 99000 more bytes dropped]\n"), "{}", &run.stdout[900..]);
    assert_eq!(run.result, None);
}

#[tokio::test]
async fn a_refused_request_creates_nothing() {
    let (runs, backend, store) = runs();
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
#[tokio::test]
async fn a_code_sandbox_has_no_capabilities_no_privileges_no_network_a_read_only_root_and_no_root_user() {
    let (runs, ..) = runs();
    let script = r#"
grep -E '^(CapEff|NoNewPrivs):' /proc/self/status
echo "uid=$(id -u)"
touch /root-write-test 2>/dev/null && echo root-writable || echo root-read-only
touch /tmp/ok && echo tmp-writable
ls /sys/class/net | tr '\n' ' '; echo
"#;
    let run = runs.execute(sh(script)).await.unwrap();
    let out = run.stdout;
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("uid=65534"), "{out}");
    assert!(out.contains("root-read-only") && out.contains("tmp-writable"), "{out}");
    assert!(out.contains("\nlo \n"), "only loopback: {out}");
}

#[tokio::test]
async fn a_fork_bomb_stops_at_the_pids_limit() {
    let (runs, ..) = runs_with(PolicyConfig {
        code: berth_core::policy::KindDefaults { pids: 32, ..PolicyConfig::default().code },
        ..Default::default()
    });
    let code = "import os, time\nn = 0\ntry:\n    for _ in range(200):\n        if os.fork() == 0:\n            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('fork refused', e.errno)\nprint('forked', n)\n";
    let mut req = RunRequest::new("t1", Workload::Code { language: "python".into(), code: code.into() });
    req.timeout = Some(Duration::from_secs(20));
    let run = runs.execute(req).await.unwrap();
    assert!(run.stdout.contains("fork refused 11"), "{run:?}");
    let forked: u32 =
        run.stdout.trim().lines().last().and_then(|l| l.strip_prefix("forked ")).unwrap().parse().unwrap();
    assert!(forked > 0 && forked < 32, "forked {forked}");
}

#[tokio::test]
async fn a_tenant_never_has_more_runs_in_flight_than_its_bound() {
    let docker = engine_api::Docker::from_env().expect("DOCKER_HOST");
    let backend = Arc::new(DockerBackend::new(docker));
    let store = Arc::new(Store::in_memory().unwrap());
    let runs = Runs::new(
        &Context::new(backend, Policy::default(), store.clone(), Arc::new(RandomIds), Arc::new(SystemClock)),
        8,
    )
    .with_per_tenant_limit(1);
    let runs = Arc::new(runs);
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

#[tokio::test]
async fn a_run_container_carries_an_expiry_past_its_deadline_unless_it_is_kept() {
    let (runs, backend, _) = runs();
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
