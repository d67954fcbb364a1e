//! Warm pools against the real engine: one member serves one run, pooled
//! runs end like cold ones, pools refill, restarts leak nothing.
//! Every test has its own store, so its own instance label to check leaks by.

use test_support as support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::context::Context;
use berth_core::engine::{Engine, Handle, Selector};
use berth_core::model::ids::{IdSource, RandomIds, SystemClock};
use berth_core::model::units::ByteSize;
use berth_core::policy::Policy;
use berth_core::pool::{DemandConfig, PoolConfig, PoolSpec, PoolStats, Pools};
use berth_core::runs::{RunRequest, RunStatus, Runs, Workload};
use berth_core::spec::{annotations, labels};
use berth_core::store::Store;
use berth_docker::DockerBackend;

struct Fixture {
    runs: Arc<Runs>,
    pools: Arc<Pools>,
    backend: Arc<dyn Engine>,
    store: Arc<Store>,
    instance: String,
}

fn config(pools: &[(&str, &str, usize)]) -> PoolConfig {
    let pools: BTreeMap<String, PoolSpec> = pools
        .iter()
        .map(|(name, image, min)| (name.to_string(), PoolSpec { image: image.to_string(), min: *min, max: min + 2 }))
        .collect();
    PoolConfig { pools, ..Default::default() }
}

fn fixture(config: PoolConfig) -> Fixture {
    let backend: Arc<dyn Engine> = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));
    let store = Arc::new(Store::in_memory().unwrap());
    let ids: Arc<dyn IdSource> = Arc::new(RandomIds);
    let instance = store.instance_id(|| ids.next_hex()).unwrap();
    let policy = Policy::default();
    let pools = Pools::new(
        &Context::new(backend.clone(), policy.clone(), store.clone(), ids.clone(), Arc::new(SystemClock)),
        config,
    )
    .unwrap();
    let runs = Runs::new(&Context::new(backend.clone(), policy, store.clone(), ids, Arc::new(SystemClock)), 8)
        .with_pools(pools.clone());
    pools.refill();
    Fixture { runs: Arc::new(runs), pools, backend, store, instance }
}

fn stats(pools: &Pools, name: &str) -> PoolStats {
    pools.stats().into_iter().find(|s| s.name == name).unwrap()
}

/// Waits until pool `name` has `n` members ready.
async fn ready(pools: &Pools, name: &str, n: usize) {
    ready_by(|| pools.stats(), name, n).await
}

/// Waits until pool `name` of the whole core has `n` members ready.
async fn ready_in(core: &berth_core::Core, name: &str, n: usize) {
    ready_by(|| core.pool_stats(), name, n).await
}

async fn ready_by(stats: impl Fn() -> Vec<PoolStats>, name: &str, n: usize) {
    let of = |name: &str| stats().into_iter().find(|s| s.name == name).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while of(name).idle < n {
        assert!(Instant::now() < deadline, "pool {name} never reached {n}: {:?}", of(name));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Shuts the pools down and checks that nothing of this instance is left.
async fn no_leak(f: &Fixture) {
    f.pools.shutdown().await;
    let mine = Selector::all().instance(&f.instance);
    let left = f.backend.list(&mine).await.unwrap();
    assert!(left.is_empty(), "leaked: {:?}", left.iter().map(|c| &c.name).collect::<Vec<_>>());
}

/// The whole core, with one `sh` pool of one member, over the real engine.
fn orchestrator_with_sh_pool() -> (Arc<berth_core::Core>, Arc<dyn Engine>, Arc<Store>) {
    let backend: Arc<dyn Engine> = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));
    let store = Arc::new(Store::in_memory().unwrap());
    let options = berth_core::Options { pools: Some(config(&[("sh", "busybox:1.35", 1)])), ..Default::default() };
    let core = Arc::new(berth_core::Core::new(
        Context::new(backend.clone(), Policy::default(), store.clone(), Arc::new(RandomIds), Arc::new(SystemClock)),
        options,
    ));
    (core, backend, store)
}

fn code(language: &str, code: &str) -> RunRequest {
    RunRequest::new("t1", Workload::Code { language: language.into(), code: code.into() })
}

#[tokio::test]
async fn a_file_or_process_left_by_a_pooled_run_is_not_seen_by_the_next_one() {
    let f = fixture(config(&[("sh", "busybox:1.35", 1)]));
    ready(&f.pools, "sh", 1).await;
    let first = f
        .runs
        .execute(code("sh", "echo secret > /tmp/left; nohup sleep 300 >/dev/null 2>&1 & echo planted; id -u"))
        .await
        .unwrap();
    assert_eq!((first.status, first.path.as_str()), (RunStatus::Succeeded, "pooled"), "{first:?}");
    assert_eq!(first.stdout, "planted\n65534\n", "the member runs as the sandbox user");
    assert!(first.container_removed);

    ready(&f.pools, "sh", 1).await;
    let second = f
        .runs
        .execute(code(
            "sh",
            "test -e /tmp/left && echo file-seen; ps | grep -q '[s]leep 300' && echo process-seen; \
             touch /not-tmp 2>/dev/null && echo root-writable; echo clean",
        ))
        .await
        .unwrap();
    assert_eq!((second.status, second.path.as_str()), (RunStatus::Succeeded, "pooled"), "{second:?}");
    assert_eq!(second.stdout, "clean\n");
    assert_ne!(first.container_id, second.container_id, "one member serves one run");
    let stored = f.store.get_run("t1", &second.id).unwrap().unwrap();
    assert_eq!(stored.path, "pooled");
    assert_eq!(stats(&f.pools, "sh").hits, 2);
    no_leak(&f).await;
}

#[tokio::test]
async fn parameters_and_environment_reach_a_pooled_run_and_json_output_is_its_result() {
    let f = fixture(config(&[("python", "python:3.11-slim", 1)]));
    ready(&f.pools, "python", 1).await;
    let mut req = code(
        "python",
        "import json, os; print(json.dumps({'p': os.environ['PARAM_FILE'], 'all': json.loads(os.environ['BERTH_PARAMETERS']), 'e': os.environ['MODE']}))",
    );
    req.parameters = serde_json::json!({"file": "doc.pdf"}).as_object().unwrap().clone();
    req.env.insert("MODE".into(), "fast".into());
    let run = f.runs.execute(req).await.unwrap();
    assert_eq!((run.status, run.path.as_str()), (RunStatus::Succeeded, "pooled"), "{run:?}");
    assert_eq!(run.result, Some(serde_json::json!({"p": "doc.pdf", "all": {"file": "doc.pdf"}, "e": "fast"})));
    no_leak(&f).await;
}

/// A run of `code` on the pooled path and on the cold one (a kept container
/// is the run's own), each as the run saw itself.
async fn both_paths(f: &Fixture, language: &str, code_text: &str) -> (String, String) {
    let pooled = f.runs.execute(code(language, code_text)).await.unwrap();
    assert_eq!((pooled.status, pooled.path.as_str()), (RunStatus::Succeeded, "pooled"), "{pooled:?}");
    let mut keep = code(language, code_text);
    keep.cleanup = false;
    let cold = f.runs.execute(keep).await.unwrap();
    assert_eq!((cold.status, cold.path.as_str()), (RunStatus::Succeeded, "cold"), "{cold:?}");
    f.backend.remove(&Handle::local(cold.container_id.unwrap()), true).await.unwrap();
    (pooled.stdout, cold.stdout)
}

#[tokio::test]
async fn a_pooled_run_sees_the_same_process_environment_as_a_cold_run() {
    let f = fixture(config(&[("sh", "busybox:1.35", 1), ("python", "python:3.11-slim", 1)]));
    ready(&f.pools, "sh", 1).await;
    ready(&f.pools, "python", 1).await;
    // Everything but the host name, which is each container's own.
    let (pooled, cold) =
        both_paths(&f, "sh", r#"env | grep -v ^HOSTNAME= | sort; id; pwd; echo "$0" "$#"; cat; echo stdin-ended"#)
            .await;
    assert_eq!(pooled, cold);
    assert!(
        pooled.contains(
            "BERTH_PARAMETERS={}
"
        ) && pooled.contains("stdin-ended"),
        "{pooled}"
    );
    let (pooled, cold) = both_paths(
        &f,
        "python",
        "import os, sys; print(sys.argv, sys.path[0], os.getcwd(), os.getuid(),          sorted(k for k in os.environ if k != 'HOSTNAME'), sys.stdin.read() == '')",
    )
    .await;
    assert_eq!(pooled, cold);
    assert!(pooled.starts_with("['-c'] "), "{pooled}");
    no_leak(&f).await;
}

#[tokio::test]
async fn a_pooled_run_killed_by_a_signal_ends_like_a_cold_one_with_nothing_from_the_shell() {
    let f = fixture(config(&[("sh", "busybox:1.35", 1)]));
    ready(&f.pools, "sh", 1).await;
    let text = "echo out; echo dying >&2; kill -9 $$";
    let pooled = f.runs.execute(code("sh", text)).await.unwrap();
    let mut keep = code("sh", text);
    keep.cleanup = false;
    let cold = f.runs.execute(keep).await.unwrap();
    f.backend.remove(&Handle::local(cold.container_id.clone().unwrap()), true).await.unwrap();
    assert_eq!(pooled.path, "pooled");
    let ending = |r: &berth_core::runs::RunRecord| (r.status, r.exit_code, r.stdout.clone(), r.stderr.clone());
    assert_eq!(ending(&pooled), (RunStatus::Failed, Some(137), "out\n".into(), "dying\n".into()));
    assert_eq!(ending(&pooled), ending(&cold));
    no_leak(&f).await;
}

#[tokio::test]
async fn ending_a_session_cancels_its_pooled_run_and_without_force_counts_it_as_running() {
    let (core, backend, store) = orchestrator_with_sh_pool();
    ready_in(&core, "sh", 1).await;
    let session = format!("pool-s-{}", std::process::id());
    let mut req = code("sh", "sleep 30");
    req.session = Some(session.clone());
    let exec = {
        let core = core.clone();
        tokio::spawn(async move { core.run(req, None).await })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !store.list_runs("t1", 1).unwrap().iter().any(|r| r.status == RunStatus::Running) {
        assert!(Instant::now() < deadline, "the run never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = core.end_session("t1", &session, false).await.unwrap_err();
    assert!(refused.to_string().contains("running"), "{refused}");
    core.end_session("t1", &session, true).await.unwrap();
    let run = tokio::time::timeout(Duration::from_secs(20), exec).await.unwrap().unwrap().unwrap();
    assert_eq!((run.status, run.path.as_str()), (RunStatus::Cancelled, "pooled"), "{run:?}");
    core.shutdown().await;
    let instance = store.instance_id(|| unreachable!("the pools made it")).unwrap();
    let left = backend.list(&Selector::all().instance(&instance)).await.unwrap();
    assert!(left.is_empty(), "leaked: {left:?}");
}

#[tokio::test]
async fn following_a_live_pooled_runs_logs_shows_what_the_run_wrote_and_nothing_of_the_member() {
    let (core, backend, store) = orchestrator_with_sh_pool();
    ready_in(&core, "sh", 1).await;
    let api =
        berth_api::native::app(berth_api::native::AppState::new(core.clone(), berth_api::native::Tokens::default()));
    let submit = {
        let api = api.clone();
        let body = serde_json::json!({"language": "sh", "code": "echo start; echo warn >&2; sleep 1; echo done"});
        tokio::spawn(async move { support::api::send(&api, "POST", "/v1/runs", None, Some(body)).await })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let running = store.list_runs("default", 1).unwrap().into_iter().find(|r| r.status == RunStatus::Running);
        if let Some(r) = running {
            break r.id.0;
        }
        assert!(Instant::now() < deadline, "the run never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let followed = support::api::send(&api, "GET", &format!("/v1/runs/{id}/logs?follow=true"), None, None).await;
    let run = submit.await.unwrap();
    assert_eq!(run.json["path"].as_str(), Some("pooled"), "{}", run.text);
    let events: Vec<serde_json::Value> = followed.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let said = |stream: &str| -> String {
        events.iter().filter(|e| e["stream"] == stream).filter_map(|e| e["data"].as_str()).collect()
    };
    assert_eq!(said("stdout"), "start\ndone\n", "{}", followed.text);
    // Live, not replayed from the record afterwards: the two lines came a second apart.
    assert!(events.iter().filter(|e| e["stream"] == "stdout").count() >= 2, "{}", followed.text);
    assert_eq!(said("stderr"), "warn\n", "{}", followed.text);
    assert!(!followed.text.contains("berth-"), "{}", followed.text);
    assert_eq!(events.last().unwrap()["status"], "succeeded", "{}", followed.text);
    core.shutdown().await;
    let instance = store.instance_id(|| unreachable!("the pools made it")).unwrap();
    let left = backend.list(&Selector::all().instance(&instance)).await.unwrap();
    assert!(left.is_empty(), "leaked: {left:?}");
}

#[tokio::test]
async fn a_member_gone_before_its_run_is_counted_lost_and_the_run_still_succeeds() {
    let f = fixture(config(&[("sh", "busybox:1.35", 1)]));
    ready(&f.pools, "sh", 1).await;
    let of_pool = Selector::all().label(labels::POOL, "sh").instance(&f.instance);
    let member = f.backend.list(&of_pool).await.unwrap().pop().expect("one member");
    f.backend.remove(&member.handle, true).await.unwrap();
    // The member's awaited exit comes back from the engine.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let run = f.runs.execute(code("sh", "echo hi")).await.unwrap();
    assert_eq!((run.status, run.stdout.as_str()), (RunStatus::Succeeded, "hi\n"), "{run:?}");
    assert_ne!(run.container_id.as_deref(), Some(member.handle.id.0.as_str()));
    assert_eq!(stats(&f.pools, "sh").lost, 1);
    no_leak(&f).await;
}

#[tokio::test]
async fn a_pooled_run_past_its_deadline_is_killed_and_timed_out_with_its_output_so_far() {
    let f = fixture(config(&[("sh", "busybox:1.35", 1)]));
    ready(&f.pools, "sh", 1).await;
    let mut req = code("sh", "echo started; sleep 30");
    req.timeout = Some(Duration::from_secs(1));
    let t = Instant::now();
    let run = f.runs.execute(req).await.unwrap();
    assert_eq!((run.status, run.path.as_str()), (RunStatus::TimedOut, "pooled"), "{run:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(run.stdout, "started\n");
    no_leak(&f).await;
}

#[tokio::test]
async fn a_pooled_memory_hog_ends_oom_killed() {
    let f = fixture(config(&[("python", "python:3.11-slim", 1)]));
    ready(&f.pools, "python", 1).await;
    // The pool's members have the code kind's default limit (256 MiB).
    let run = f.runs.execute(code("python", "x = bytearray(400 * 1024 * 1024)\nprint('survived')")).await.unwrap();
    assert_eq!((run.status, run.path.as_str()), (RunStatus::OomKilled, "pooled"), "{run:?}");
    assert_eq!(run.exit_code, Some(137));
    // A 137 the engine does not attribute to the OOM killer is a plain failure.
    ready(&f.pools, "python", 1).await;
    let run = f.runs.execute(code("python", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")).await.unwrap();
    assert_eq!((run.status, run.exit_code, run.path.as_str()), (RunStatus::Failed, Some(137), "pooled"), "{run:?}");
    no_leak(&f).await;
}

#[tokio::test]
async fn a_cancelled_pooled_run_ends_cancelled() {
    let f = fixture(config(&[("sh", "busybox:1.35", 1)]));
    ready(&f.pools, "sh", 1).await;
    let exec = {
        let runs = f.runs.clone();
        tokio::spawn(async move { runs.execute(code("sh", "sleep 30")).await })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let running = f.store.list_runs("t1", 1).unwrap().into_iter().find(|r| r.status == RunStatus::Running);
        if let Some(r) = running {
            break r.id;
        }
        assert!(Instant::now() < deadline, "the run never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(f.runs.cancel("t1", &id).unwrap());
    let run = exec.await.unwrap().unwrap();
    assert_eq!((run.status, run.path.as_str()), (RunStatus::Cancelled, "pooled"), "{run:?}");
    no_leak(&f).await;
}

#[tokio::test]
async fn a_request_that_does_not_fit_the_pool_takes_the_cold_path_and_says_so() {
    let f = fixture(config(&[("sh", "busybox:1.35", 1)]));
    ready(&f.pools, "sh", 1).await;
    let mut req = code("sh", "echo hi");
    req.memory = Some(ByteSize::mib(64));
    let run = f.runs.execute(req).await.unwrap();
    assert_eq!((run.status, run.path.as_str()), (RunStatus::Succeeded, "cold"), "{run:?}");
    assert!(run.container_name.starts_with("berth-run-"));
    let mut keep = code("sh", "echo hi");
    keep.cleanup = false; // a container kept for inspection is its own
    let kept = f.runs.execute(keep).await.unwrap();
    assert_eq!(kept.path, "cold");
    f.backend.remove(&Handle::local(kept.container_id.unwrap()), true).await.unwrap();
    let s = stats(&f.pools, "sh");
    assert_eq!((s.hits, s.misses, s.idle), (0, 1, 1), "{s:?}");
    no_leak(&f).await;
}

#[tokio::test]
async fn after_a_burst_every_run_succeeds_and_the_pool_is_back_to_its_minimum() {
    let f = fixture(config(&[("sh", "busybox:1.35", 2)]));
    ready(&f.pools, "sh", 2).await;
    let burst = (0..6).map(|i| {
        let runs = f.runs.clone();
        tokio::spawn(async move { runs.execute(code("sh", &format!("echo run {i}"))).await.unwrap() })
    });
    let done = futures_util::future::join_all(burst).await;
    for (i, run) in done.into_iter().enumerate() {
        let run = run.unwrap();
        assert_eq!((run.status, run.stdout.clone()), (RunStatus::Succeeded, format!("run {i}\n")), "{run:?}");
    }
    f.pools.settle().await;
    let s = stats(&f.pools, "sh");
    assert_eq!(s.hits + s.misses, 6, "{s:?}");
    assert!(s.hits >= 2 && s.misses >= 1, "{s:?}");
    assert_eq!((s.idle, s.creating), (2, 0), "{s:?}");
    assert!(s.refills >= 4 && s.last_refill_ms.is_some(), "{s:?}");
    no_leak(&f).await;
}

#[tokio::test]
async fn members_left_by_an_earlier_process_are_removed_by_recovery() {
    let f = fixture(config(&[("sh", "busybox:1.35", 2)]));
    ready(&f.pools, "sh", 2).await;
    // The process "dies": its pools are never shut down.
    let mine = Selector::all().has(labels::POOL).instance(&f.instance);
    assert_eq!(f.backend.list(&mine).await.unwrap().len(), 2);
    let ids: Arc<dyn IdSource> = Arc::new(RandomIds);
    let clock: Arc<dyn berth_core::model::ids::Clock> = Arc::new(SystemClock);
    let report = berth_core::lifetime::recovery::recover(
        &f.backend,
        &f.store,
        &ids,
        &clock,
        berth_core::lifetime::recovery::Orphans::Remove,
    )
    .await
    .unwrap();
    assert_eq!(report.pool_members_removed.len(), 2, "{report:?}");
    assert!(report.pool_members_removed.iter().all(|n| n.starts_with("berth-pool-")));
    assert!(f.backend.list(&mine).await.unwrap().is_empty());
    no_leak(&f).await;
}

#[tokio::test]
async fn an_expired_member_is_never_handed_out_and_its_label_outlives_the_longest_run() {
    let mut c = config(&[("sh", "busybox:1.35", 1)]);
    c.idle_lifetime = Duration::from_secs(2);
    let f = fixture(c);
    ready(&f.pools, "sh", 1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(stats(&f.pools, "sh").idle, 0, "an expired member is not counted as ready");
    // The reaper's label lies past the idle deadline by the longest run, so
    // it never removes a member under a run taken just before the deadline.
    let mine = Selector::all().has(labels::POOL).instance(&f.instance);
    let members = f.backend.list(&mine).await.unwrap();
    assert_eq!(members.len(), 1);
    let expiry = chrono::DateTime::parse_from_rfc3339(&members[0].annotations[annotations::EXPIRES_AT]).unwrap();
    let longest = chrono::Duration::from_std(Policy::default().config.max_timeout).unwrap();
    assert!(expiry > chrono::Utc::now() + longest, "{expiry}");
    let run = f.runs.execute(code("sh", "echo hi")).await.unwrap();
    assert_eq!((run.status, run.path.as_str()), (RunStatus::Succeeded, "cold"), "{run:?}");
    no_leak(&f).await;
}

#[tokio::test]
async fn the_orchestrator_serves_configured_pools_and_the_api_shows_their_counters() {
    let (core, backend, store) = orchestrator_with_sh_pool();
    ready_in(&core, "sh", 1).await;
    let instance = store.instance_id(|| unreachable!("the pools made it")).unwrap();
    let api =
        berth_api::native::app(berth_api::native::AppState::new(core.clone(), berth_api::native::Tokens::default()));
    let body = serde_json::json!({"language": "sh", "code": "echo hi"});
    let run = support::api::send(&api, "POST", "/v1/runs", None, Some(body)).await;
    assert_eq!(
        (run.json["status"].as_str(), run.json["path"].as_str()),
        (Some("succeeded"), Some("pooled")),
        "{}",
        run.text
    );
    let listed = support::api::send(&api, "GET", "/v1/pools", None, None).await;
    assert_eq!(listed.status, axum::http::StatusCode::OK);
    let sh = &listed.json[0];
    assert_eq!((sh["name"].as_str(), sh["image"].as_str()), (Some("sh"), Some("busybox:1.35")), "{}", listed.text);
    assert_eq!((sh["hits"].as_u64(), sh["misses"].as_u64(), sh["min"].as_u64()), (Some(1), Some(0), Some(1)));
    assert_eq!(sh["origin"].as_str(), Some("configured"));
    let metrics = support::api::send(&api, "GET", "/v1/metrics", None, None).await;
    assert_eq!(metrics.status, axum::http::StatusCode::OK);
    assert_eq!(metrics.headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(metrics.text.contains("berth_pool_hits_total{pool=\"sh\",origin=\"configured\"} 1\n"), "{}", metrics.text);
    assert!(metrics.text.ends_with("# EOF\n"), "{}", metrics.text);
    core.shutdown().await;
    let left = backend.list(&Selector::all().instance(&instance)).await.unwrap();
    assert!(left.is_empty(), "leaked: {left:?}");
}

fn tool(image: &str, command: &[&str]) -> RunRequest {
    let command = Some(command.iter().map(|s| s.to_string()).collect());
    RunRequest::new("t1", Workload::Tool { image: image.into(), command })
}

#[tokio::test]
async fn a_tool_image_run_often_gets_a_pool_that_serves_its_runs_and_goes_when_they_stop() {
    let mut config = config(&[]);
    config.demand = Some(DemandConfig { after: 2, window: Duration::from_secs(4), max: 1, pools: 2 });
    let f = fixture(config);
    let name = berth_core::pool::tool_pool("busybox:1.35");
    for _ in 0..2 {
        let run = f.runs.execute(tool("busybox:1.35", &["echo", "hi"])).await.unwrap();
        assert_eq!((run.status, run.path.as_str()), (RunStatus::Succeeded, "cold"), "{run:?}");
    }
    ready(&f.pools, &name, 1).await;
    assert_eq!(stats(&f.pools, &name).origin, berth_core::pool::PoolOrigin::Demand);
    let mut req = tool("busybox:1.35", &["sh", "-c", "echo \"$PARAM_FILE\"; id -u"]);
    req.parameters = serde_json::json!({"file": "doc.pdf"}).as_object().unwrap().clone();
    let run = f.runs.execute(req).await.unwrap();
    assert_eq!((run.status, run.path.as_str()), (RunStatus::Succeeded, "pooled"), "{run:?}");
    // The tool kind's policy, not the code sandbox's: the image's own user.
    assert_eq!(run.stdout, "doc.pdf\n0\n");
    // No run within the window: the pool shrinks to nothing and goes.
    f.pools.settle().await;
    tokio::time::sleep(Duration::from_millis(4100)).await;
    f.pools.upkeep(Duration::ZERO);
    f.pools.settle().await;
    assert!(f.pools.stats().iter().all(|s| s.name != name), "{:?}", f.pools.stats());
    no_leak(&f).await;
}

#[tokio::test]
async fn a_member_near_its_expiry_is_replaced_by_upkeep_before_any_run_meets_it() {
    let f = fixture(config(&[("sh", "busybox:1.35", 1)]));
    ready(&f.pools, "sh", 1).await;
    let of_pool = Selector::all().label(labels::POOL, "sh").instance(&f.instance);
    let before = f.backend.list(&of_pool).await.unwrap();
    // Members live 10 minutes: with a margin of 11, this one is stale.
    f.pools.upkeep(Duration::from_secs(660));
    ready(&f.pools, "sh", 1).await;
    f.pools.settle().await;
    let after = f.backend.list(&of_pool).await.unwrap();
    assert_eq!((before.len(), after.len()), (1, 1));
    assert_ne!(before[0].handle, after[0].handle);
    assert_eq!(stats(&f.pools, "sh").refills, 2);
    let run = f.runs.execute(code("sh", "echo hi")).await.unwrap();
    assert_eq!((run.status, run.path.as_str()), (RunStatus::Succeeded, "pooled"), "{run:?}");
    no_leak(&f).await;
}
