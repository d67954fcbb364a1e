//! Workspace sandboxes on the real engine: made from the `base` template
//! with berth's helper copied in, commands foreground and background,
//! files, pause and resume, timeouts and ends, over the core and over the
//! native API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_core::context::Context;
use berth_core::engine::Selector;
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::model::sandbox::{EndReason, SandboxState, StartPath};
use berth_core::policy::Policy;
use berth_core::sandboxes::link::ProcessEvent;
use berth_core::sandboxes::{SandboxRequest, Spawn};
use berth_core::spec::labels;
use berth_core::store::Store;
use berth_core::{Core, ErrorKind, Options};
use serde_json::json;
use test_support::api::{engine, sandbox_helper, send};

fn core() -> Arc<Core> {
    Arc::new(core_with(with_helper()))
}

fn with_helper() -> Options {
    let mut options = Options::default();
    options.sandboxes.helper = Some(sandbox_helper());
    options
}

fn core_on(store: Arc<Store>, options: Options) -> Core {
    Core::new(Context::new(engine(), Policy::default(), store, Arc::new(RandomIds), Arc::new(SystemClock)), options)
}

fn core_with(options: Options) -> Core {
    core_on(Arc::new(Store::in_memory().unwrap()), options)
}

/// A berth over the store at `path`, as one started again would be.
fn berth_at(path: &std::path::Path) -> Core {
    core_on(Arc::new(Store::open(path).unwrap()), with_helper())
}

fn base(tenant: &str) -> SandboxRequest {
    SandboxRequest {
        tenant: tenant.into(),
        template: "base".into(),
        timeout: Some(Duration::from_secs(120)),
        metadata: BTreeMap::from([("test".to_owned(), "sandboxes".to_owned())]),
        ..Default::default()
    }
}

fn shell(line: &str) -> Spawn {
    Spawn {
        argv: vec!["/bin/bash".into(), "-l".into(), "-c".into(), line.into()],
        env: BTreeMap::new(),
        cwd: None,
        pty: None,
        stdin: false,
        tag: None,
    }
}

const A_WHILE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_sandbox_runs_commands_as_its_user_in_its_home_and_keeps_files_between_them() {
    let core = core();
    let sbx = core.create_sandbox(base("sbx-t1")).await.unwrap();
    assert_eq!((sbx.state, sbx.path), (SandboxState::Running, StartPath::Cold));

    let who = core.run_command("sbx-t1", &sbx.id, shell("id -u; pwd; python3 -c 'print(6*7)'"), A_WHILE).await.unwrap();
    assert_eq!((who.exit_code, who.stdout.as_str()), (Some(0), "1000\n/home/user\n42\n"), "{who:?}");
    let failed = core.run_command("sbx-t1", &sbx.id, shell("echo oops >&2; exit 3"), A_WHILE).await.unwrap();
    assert_eq!((failed.exit_code, failed.stderr.as_str()), (Some(3), "oops\n"));

    let entry = core.write_file("sbx-t1", &sbx.id, "notes/today.txt", b"hello from berth\n").await.unwrap();
    assert_eq!(entry.path, "/home/user/notes/today.txt");
    let cat = core.run_command("sbx-t1", &sbx.id, shell("cat ~/notes/today.txt"), A_WHILE).await.unwrap();
    assert_eq!(cat.stdout, "hello from berth\n");
    assert_eq!(core.read_file("sbx-t1", &sbx.id, "/home/user/notes/today.txt").await.unwrap(), b"hello from berth\n");
    let listed = core.list_dir("sbx-t1", &sbx.id, "/home/user", 2).await.unwrap();
    assert!(listed.iter().any(|e| e.path == "/home/user/notes/today.txt"), "{listed:?}");
    core.move_path("sbx-t1", &sbx.id, "notes/today.txt", "notes/kept.txt").await.unwrap();
    let gone = core.stat_path("sbx-t1", &sbx.id, "notes/today.txt").await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound);
    let missing = core.read_file("sbx-t1", &sbx.id, "/no/such/file").await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);

    let other = core.sandbox("sbx-t2", &sbx.id).await.unwrap_err();
    assert_eq!(other.kind(), ErrorKind::NotFound, "another tenant does not see it");

    let killed = core.kill_sandbox("sbx-t1", &sbx.id).await.unwrap();
    assert_eq!((killed.state, killed.ended), (SandboxState::Ended, Some(EndReason::Killed)));
    let after = core.run_command("sbx-t1", &sbx.id, shell("true"), A_WHILE).await.unwrap_err();
    assert_eq!(after.kind(), ErrorKind::Conflict);
}

#[tokio::test]
async fn a_background_process_is_followed_again_by_pid_and_takes_stdin_and_signals() {
    let core = core();
    let sbx = core.create_sandbox(base("sbx-t3")).await.unwrap();
    let mut cat = shell("cat");
    cat.stdin = true;
    let pid = core.start_process("sbx-t3", &sbx.id, cat).await.unwrap();
    core.process_input("sbx-t3", &sbx.id, pid, b"first line\n").await.unwrap();
    let mut first = core.follow_process("sbx-t3", &sbx.id, pid).await.unwrap();
    let echoed = tokio::time::timeout(A_WHILE, async {
        let mut seen: Vec<u8> = first
            .earlier
            .iter()
            .filter_map(|e| match e {
                ProcessEvent::Output { data, .. } => Some(data.to_vec()),
                ProcessEvent::Exited { .. } => None,
            })
            .flatten()
            .collect();
        while !seen.ends_with(b"first line\n") {
            if let Ok(ProcessEvent::Output { data, .. }) = first.later.recv().await {
                seen.extend_from_slice(&data);
            }
        }
        seen
    })
    .await
    .expect("the background process echoes its stdin");
    assert_eq!(echoed, b"first line\n");
    drop(first);

    // A second follower (a client that came back) sees what is kept, then the exit.
    let listed = core.processes("sbx-t3", &sbx.id).await.unwrap();
    assert!(listed.iter().any(|p| p.pid == pid), "{listed:?}");
    let mut again = core.follow_process("sbx-t3", &sbx.id, pid).await.unwrap();
    assert!(again
        .earlier
        .iter()
        .any(|e| matches!(e, ProcessEvent::Output { data, .. } if &data[..] == b"first line\n")));
    core.signal_process("sbx-t3", &sbx.id, pid, 9).await.unwrap();
    let exit = tokio::time::timeout(A_WHILE, async {
        loop {
            if let Ok(e @ ProcessEvent::Exited { .. }) = again.later.recv().await {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(exit, ProcessEvent::Exited { code: None, signal: Some(9) });
    let late = core.signal_process("sbx-t3", &sbx.id, pid, 9).await.unwrap_err();
    assert_eq!(late.kind(), ErrorKind::Conflict, "a signal to an ended process: {late}");
    assert_eq!(core.process_input("sbx-t3", &sbx.id, 999_999, b"x").await.unwrap_err().kind(), ErrorKind::Conflict);
    core.kill_sandbox("sbx-t3", &sbx.id).await.unwrap();
}

#[tokio::test]
async fn a_paused_sandbox_refuses_commands_and_resumes_with_its_process_and_files() {
    let core = core();
    let sbx = core.create_sandbox(base("sbx-t4")).await.unwrap();
    core.write_file("sbx-t4", &sbx.id, "kept.txt", b"still here").await.unwrap();
    let ticker = core.start_process("sbx-t4", &sbx.id, shell("while true; do sleep 0.2; done")).await.unwrap();
    let paused = core.pause_sandbox("sbx-t4", &sbx.id).await.unwrap();
    assert_eq!(paused.state, SandboxState::Paused);
    let refused = core.run_command("sbx-t4", &sbx.id, shell("true"), A_WHILE).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict, "{refused}");
    assert_eq!(core.pause_sandbox("sbx-t4", &sbx.id).await.unwrap_err().kind(), ErrorKind::Conflict);

    let resumed = core.resume_sandbox("sbx-t4", &sbx.id).await.unwrap();
    assert_eq!(resumed.state, SandboxState::Running);
    assert!(resumed.expires_at > paused.paused_at.unwrap(), "the timeout goes on from where it stopped");
    assert!(core.processes("sbx-t4", &sbx.id).await.unwrap().iter().any(|p| p.pid == ticker));
    assert_eq!(core.read_file("sbx-t4", &sbx.id, "kept.txt").await.unwrap(), b"still here");
    core.kill_sandbox("sbx-t4", &sbx.id).await.unwrap();
}

#[tokio::test]
async fn a_write_past_the_sandbox_space_is_refused_and_leaves_no_file() {
    let mut small = base("sbx-t5");
    small.template = "small".into();
    let mut options = with_helper();
    let mut template = berth_core::sandboxes::Template::base();
    template.disk = berth_core::model::units::ByteSize::mib(1);
    options.sandboxes.templates.insert("small".into(), template);
    let small_core = core_with(options);
    let sbx = small_core.create_sandbox(small).await.unwrap();
    let big = vec![b'x'; 2 * 1024 * 1024];
    let e = small_core.write_file("sbx-t5", &sbx.id, "big.bin", &big).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    let left = small_core.list_dir("sbx-t5", &sbx.id, "/home/user", 1).await.unwrap();
    assert!(left.iter().all(|entry| !entry.name.contains("big")), "no half-written file: {left:?}");
    small_core.kill_sandbox("sbx-t5", &sbx.id).await.unwrap();
}

#[tokio::test]
async fn the_per_tenant_cap_counts_live_sandboxes_not_records_the_reaper_left_behind() {
    let mut options = with_helper();
    options.sandboxes.max_per_tenant = 1;
    let core = core_with(options);
    let first = core.create_sandbox(base("sbx-t10")).await.unwrap();
    let refused = core.create_sandbox(base("sbx-t10")).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Policy, "{refused}");
    // Removed behind the core's back, as the reaper does.
    engine().remove(&first.handle().unwrap(), true).await.unwrap();
    let second = core.create_sandbox(base("sbx-t10")).await.unwrap();
    core.kill_sandbox("sbx-t10", &second.id).await.unwrap();
}

#[tokio::test]
async fn a_sandbox_whose_container_the_engine_lost_ends_with_that_reason() {
    let core = core();
    let sbx = core.create_sandbox(base("sbx-t6")).await.unwrap();
    engine().remove(&sbx.handle().unwrap(), true).await.unwrap();
    let seen = core.sandbox("sbx-t6", &sbx.id).await.unwrap();
    assert_eq!((seen.state, seen.ended), (SandboxState::Ended, Some(EndReason::EngineLost)));
}

#[tokio::test]
async fn a_sandbox_left_by_a_berth_that_stopped_is_reaped_by_the_next_one_and_reads_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store_at = dir.path().join("berth.db");
    let first = berth_at(&store_at);
    let mut short = base("sbx-t8");
    short.timeout = Some(Duration::from_secs(1));
    let sbx = first.create_sandbox(short).await.unwrap();
    let h = sbx.handle().unwrap();
    drop(first);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let next = berth_at(&store_at);
    // The reaper of this berth, or of another test's running beside it
    // (each sweeps every managed container), removes it.
    next.reap().await.unwrap();
    assert!(engine().inspect(&h).await.is_err(), "its container is gone");
    let seen = next.sandbox("sbx-t8", &sbx.id).await.unwrap();
    assert_eq!((seen.state, seen.ended), (SandboxState::Ended, Some(EndReason::Expired)));
}

#[tokio::test]
async fn a_running_sandbox_is_attached_again_by_a_new_berth_with_its_processes() {
    let dir = tempfile::tempdir().unwrap();
    let store_at = dir.path().join("berth.db");
    let first = berth_at(&store_at);
    let sbx = first.create_sandbox(base("sbx-t9")).await.unwrap();
    let mut cat = shell("cat");
    cat.stdin = true;
    let pid = first.start_process("sbx-t9", &sbx.id, cat).await.unwrap();
    drop(first);

    let next = berth_at(&store_at);
    assert!(next.processes("sbx-t9", &sbx.id).await.unwrap().iter().any(|p| p.pid == pid));
    let mut following = next.follow_process("sbx-t9", &sbx.id, pid).await.unwrap();
    next.process_input("sbx-t9", &sbx.id, pid, b"after the restart\n").await.unwrap();
    let echoed = tokio::time::timeout(A_WHILE, async {
        loop {
            if let Ok(ProcessEvent::Output { data, .. }) = following.later.recv().await {
                return data;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&echoed[..], b"after the restart\n");
    next.kill_sandbox("sbx-t9", &sbx.id).await.unwrap();
}

#[tokio::test]
async fn a_tenants_processes_and_watches_are_capped_over_all_its_sandboxes() {
    let mut options = with_helper();
    options.sandboxes.max_processes_per_tenant = 2;
    options.sandboxes.max_watchers_per_tenant = 1;
    let core = core_with(options);
    let (one, two) =
        (core.create_sandbox(base("sbx-t14")).await.unwrap(), core.create_sandbox(base("sbx-t14")).await.unwrap());
    let first = core.start_process("sbx-t14", &one.id, shell("sleep 60")).await.unwrap();
    core.start_process("sbx-t14", &two.id, shell("sleep 60")).await.unwrap();
    let refused = core.start_process("sbx-t14", &one.id, shell("sleep 60")).await.unwrap_err();
    assert_eq!((refused.kind(), refused.code()), (ErrorKind::Policy, "too_many_processes"), "{refused}");

    let mut following = core.follow_process("sbx-t14", &one.id, first).await.unwrap();
    core.signal_process("sbx-t14", &one.id, first, 9).await.unwrap();
    tokio::time::timeout(A_WHILE, async {
        while !matches!(following.later.recv().await, Ok(ProcessEvent::Exited { .. })) {}
    })
    .await
    .unwrap();
    let again = core.run_command("sbx-t14", &one.id, shell("echo room again"), A_WHILE).await.unwrap();
    assert_eq!(again.stdout, "room again\n", "an ended process frees its place");

    let wid = core.watch_dir("sbx-t14", &one.id, "/home/user", false).await.unwrap();
    let refused = core.watch_dir("sbx-t14", &two.id, "/home/user", false).await.unwrap_err();
    assert_eq!(refused.code(), "too_many_watchers", "{refused}");
    core.unwatch("sbx-t14", &one.id, wid).await.unwrap();
    core.watch_dir("sbx-t14", &two.id, "/home/user", false).await.unwrap();
    for sbx in [one, two] {
        core.kill_sandbox("sbx-t14", &sbx.id).await.unwrap();
    }
}

/// Options keeping one spare of `base`.
fn with_a_spare() -> Options {
    let mut options = with_helper();
    options.sandboxes.spares = BTreeMap::from([("base".to_owned(), 1)]);
    options
}

/// The names of the spare containers the berth over `store` made.
async fn spares_of(store: &Store) -> Vec<String> {
    let instance = store.instance_id(|| unreachable!("the berth has made its instance")).unwrap();
    let mine = Selector::managed().has(labels::SPARE).instance(&instance);
    engine().list(&mine).await.unwrap().into_iter().map(|c| c.name).collect()
}

#[tokio::test]
async fn a_sandbox_from_a_spare_has_its_own_env_tenant_and_cap_and_the_spare_is_replaced() {
    let store = Arc::new(Store::in_memory().unwrap());
    let mut options = with_a_spare();
    options.sandboxes.max_per_tenant = 1;
    let core = core_on(store.clone(), options);
    core.fill_spares().await;
    let spare = spares_of(&store).await;
    assert_eq!(spare.len(), 1, "one spare is ready: {spare:?}");

    let mut req = base("sbx-t11");
    req.env = BTreeMap::from([("GREETING".to_owned(), "from the request".to_owned())]);
    let sbx = core.create_sandbox(req).await.unwrap();
    assert_eq!(sbx.container_name, spare[0], "the sandbox is the spare");
    assert_eq!((core.spare_stats()[0].hits, sbx.path), (1, StartPath::Pooled));
    let out = core.run_command("sbx-t11", &sbx.id, shell("echo $GREETING; id -u; pwd"), A_WHILE).await.unwrap();
    assert_eq!(out.stdout, "from the request\n1000\n/home/user\n", "{out:?}");
    assert_eq!(core.sandbox("sbx-t12", &sbx.id).await.unwrap_err().kind(), ErrorKind::NotFound);

    core.fill_spares().await;
    let refilled = spares_of(&store).await;
    assert_eq!(refilled.len(), 2, "a new spare beside the adopted one: {refilled:?}");
    let refused = core.create_sandbox(base("sbx-t11")).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Policy, "a pooled sandbox counts toward the cap: {refused}");
    let stats = &core.pool_stats()[0];
    assert_eq!((stats.name.as_str(), stats.idle), ("sandbox:base", 1), "a refused creation takes no spare");

    core.kill_sandbox("sbx-t11", &sbx.id).await.unwrap();
    core.shutdown().await;
    assert!(spares_of(&store).await.is_empty(), "the kill and the shutdown removed both");
}

#[tokio::test]
async fn a_restarted_berth_removes_its_idle_spares_and_reaps_an_adopted_one_at_its_sandboxs_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let store_at = dir.path().join("berth.db");
    let first = core_on(Arc::new(Store::open(&store_at).unwrap()), with_a_spare());
    first.fill_spares().await;
    let mut short = base("sbx-t13");
    short.timeout = Some(Duration::from_secs(2));
    let sbx = first.create_sandbox(short).await.unwrap();
    first.fill_spares().await;
    drop(first);

    let store = Arc::new(Store::open(&store_at).unwrap());
    let left = spares_of(&store).await;
    assert_eq!(left.len(), 2, "{left:?}");
    let ids: Arc<dyn berth_core::model::ids::IdSource> = Arc::new(RandomIds);
    let clock: Arc<dyn berth_core::model::ids::Clock> = Arc::new(SystemClock);
    let report =
        berth_core::lifetime::recovery::recover(&engine(), &store, &ids, &clock, Default::default()).await.unwrap();
    let idle: Vec<_> = left.iter().filter(|n| **n != sbx.container_name).cloned().collect();
    assert_eq!(report.spares_removed, idle, "the idle spare goes, the adopted one stays");
    assert_eq!(spares_of(&store).await, std::slice::from_ref(&sbx.container_name));

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let next = core_on(store.clone(), with_helper());
    next.reap().await.unwrap();
    assert!(engine().inspect(&sbx.handle().unwrap()).await.is_err(), "reaped at the sandbox's own expiry");
    let seen = next.sandbox("sbx-t13", &sbx.id).await.unwrap();
    assert_eq!((seen.state, seen.ended), (SandboxState::Ended, Some(EndReason::Expired)));
}

#[tokio::test]
async fn the_native_api_makes_runs_in_and_kills_a_sandbox() {
    let state = berth_api::native::AppState::new(
        core(),
        berth_api::native::Tokens([("sbx-token".to_owned(), "sbx-t7".to_owned())].into()),
    );
    let app = berth_api::native::app(state);
    let tok = Some("sbx-token");
    let made =
        send(&app, "POST", "/v1/sandboxes", tok, Some(json!({"timeout_seconds": 60, "metadata": {"app": "x"}}))).await;
    assert_eq!(made.status, 201, "{}", made.text);
    let id = made.json["sandbox_id"].as_str().unwrap().to_owned();
    let ran =
        send(&app, "POST", &format!("/v1/sandboxes/{id}/commands"), tok, Some(json!({"cmd": "echo hi; exit 4"}))).await;
    assert_eq!((ran.status.as_u16(), &ran.json["stdout"], &ran.json["exit_code"]), (200, &json!("hi\n"), &json!(4)));
    let listed = send(&app, "GET", "/v1/sandboxes?metadata=app%3Dx", tok, None).await;
    assert_eq!(listed.json.as_array().unwrap().len(), 1, "{}", listed.text);
    let none = send(&app, "GET", "/v1/sandboxes?metadata=app%3Dy", tok, None).await;
    assert_eq!(none.json, json!([]));
    let bad = send(&app, "POST", &format!("/v1/sandboxes/{id}/commands"), tok, Some(json!({}))).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let missing = send(&app, "GET", &format!("/v1/sandboxes/{id}/files?path=/nope"), tok, None).await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    let unknown = send(&app, "POST", "/v1/sandboxes", tok, Some(json!({"template": "no-such"}))).await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    let started = send(
        &app,
        "POST",
        &format!("/v1/sandboxes/{id}/commands"),
        tok,
        Some(json!({"cmd": "echo one; sleep 0.3; echo two", "background": true})),
    )
    .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let pid = started.json["pid"].as_u64().unwrap();
    let output = send(&app, "GET", &format!("/v1/sandboxes/{id}/processes/{pid}/output"), tok, None).await;
    let events: Vec<serde_json::Value> = output
        .text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] != "keepalive")
        .collect();
    let text: String = events.iter().filter(|e| e["event"] == "log").map(|e| e["data"].as_str().unwrap()).collect();
    assert_eq!(text, "one\ntwo\n", "{}", output.text);
    assert_eq!(events.last().unwrap()["exit_code"], json!(0), "{}", output.text);
    let killed = send(&app, "DELETE", &format!("/v1/sandboxes/{id}"), tok, None).await;
    assert_eq!((killed.status.as_u16(), &killed.json["ended"]), (200, &json!("killed")));
}
