//! Every orchestration flow end to end on the `oci-dry-run` backend: no
//! daemon, nothing runs, each container's OCI bundle is rendered and written,
//! and the lifecycle follows a daemon's state machine.

use test_support as support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_core::agents::{AgentError, Agents, PortRange};
use berth_core::context::Context;
use berth_core::engine::{Engine, ExecRequest, LogRequest};
use berth_core::engine::{Handle, Isolation, Phase, Selector};
use berth_core::model::ids::{Clock, FixedClock, IdSource, RandomIds, SequentialIds, SystemClock};
use berth_core::model::units::{ByteSize, CpuLimit};
use berth_core::policy::{Policy, PolicyConfig};
use berth_core::relics::{RelicRequest, RelicStatus, Relics};
use berth_core::runs::{RunError, RunRequest, RunStatus, Runs, Workload};
use berth_core::sessions::{SessionError, Sessions};
use berth_core::spec::{labels, ContainerId};
use berth_core::store::Store;
use berth_oci::{bundle::NOTE_FILE, OciDryRun, NOTHING_RAN};
use futures_util::StreamExt;

struct DryRun {
    backend: Arc<OciDryRun>,
    store: Arc<Store>,
    policy: Policy,
    _root: tempfile::TempDir,
}

fn dry_run() -> DryRun {
    let root = tempfile::tempdir().unwrap();
    let backend = Arc::new(OciDryRun::new(root.path().join("bundles")));
    let policy = Policy::new(PolicyConfig { bind_roots: vec![root.path().to_owned()], ..Default::default() });
    DryRun { backend, store: Arc::new(Store::in_memory().unwrap()), policy, _root: root }
}

impl DryRun {
    fn ctx(&self) -> Context {
        let (ids, clock) = (Arc::new(RandomIds), Arc::new(SystemClock));
        Context::new(self.backend.clone(), self.policy.clone(), self.store.clone(), ids, clock)
    }

    fn runs(&self) -> Runs {
        Runs::new(&self.ctx(), 4)
    }

    fn agents(&self) -> Agents {
        Agents::new(&self.ctx(), PortRange { first: 19600, last: 19609 })
    }

    fn relics(&self) -> Relics {
        Relics::new(&self.ctx())
    }

    fn bundles(&self) -> usize {
        std::fs::read_dir(self.backend.root()).map(|d| d.count()).unwrap_or(0)
    }
}

fn sh(script: &str) -> RunRequest {
    RunRequest::new("t1", Workload::Code { language: "sh".into(), code: script.into() })
}

#[tokio::test]
async fn a_run_ends_dry_run_with_its_plan_and_says_plainly_that_nothing_ran() {
    let d = dry_run();
    let mut req = sh("echo hi");
    req.cpu = Some(CpuLimit::from_cores(0.5).unwrap());
    req.memory = Some(ByteSize::mib(64));
    let run = d.runs().execute(req).await.unwrap();
    assert_eq!(run.status, RunStatus::DryRun);
    assert_eq!(run.status.as_str(), "dry_run");
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(run.stdout, NOTHING_RAN);
    // Sampled (if at all before the instant exit) as zeros.
    assert_eq!((run.usage.cpu_ms.unwrap_or(0), run.usage.peak_memory_bytes.unwrap_or(0)), (0, 0));
    assert!(run.container_removed);
    assert_eq!(d.bundles(), 0, "the bundle went with its container");

    let plan = run.plan.clone().expect("a dry run carries its plan");
    let config = &plan["config"];
    assert_eq!(config["process"]["args"], serde_json::json!(["sh", "-c", "echo hi"]));
    assert_eq!(config["process"]["user"]["uid"], 65534);
    assert_eq!(config["process"]["noNewPrivileges"], true);
    assert_eq!(config["root"], serde_json::json!({"path": "rootfs", "readonly": true}));
    assert_eq!(config["linux"]["resources"]["cpu"], serde_json::json!({"quota": 50000, "period": 100000}));
    assert_eq!(config["linux"]["resources"]["memory"]["limit"], 64 << 20);
    assert_eq!(config["annotations"][labels::OBJECT], run.id.0);
    assert_eq!(config["annotations"][labels::TENANT], "t1");
    assert_eq!(plan["note"]["image"], "busybox:1.35");
    assert_eq!(plan["note"]["network"], "none");

    let stored = d.store.get_run("t1", &run.id).unwrap().unwrap();
    assert_eq!(stored, run, "the record and its plan round-trip through the store");
    assert_eq!(d.store.audit_trail("t1", 1).unwrap()[0].outcome, "dry_run");
}

#[tokio::test]
async fn a_run_kept_after_it_ends_leaves_its_bundle_on_disk() {
    let d = dry_run();
    let mut req = RunRequest::new(
        "t1",
        Workload::Tool { image: "busybox:1.35".into(), command: Some(vec!["echo".into(), "tool".into()]) },
    );
    req.cleanup = false;
    let run = d.runs().execute(req).await.unwrap();
    assert_eq!(run.status, RunStatus::DryRun);
    let cid = ContainerId(run.container_id.clone().unwrap());
    let dir = d.backend.bundle_dir(&cid);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config, run.plan.unwrap()["config"]);
    assert!(std::fs::read_to_string(dir.join(NOTE_FILE)).unwrap().contains("busybox:1.35"));
    assert_eq!(
        d.backend.inspect(&Handle { id: cid.clone(), placement: Default::default() }).await.unwrap().phase,
        Phase::Exited
    );
}

#[tokio::test]
async fn a_refused_run_creates_nothing_on_the_dry_run_either() {
    let d = dry_run();
    let mut req = sh("true");
    req.memory = Some(ByteSize::mib(1 << 20));
    assert!(matches!(d.runs().execute(req).await, Err(RunError::Policy(v)) if v.field == "memory"));
    assert!(d.backend.list(&Selector::all()).await.unwrap().is_empty());
    assert_eq!(d.bundles(), 0);
    assert!(d.store.list_runs("t1", 10).unwrap().is_empty());
}

#[tokio::test]
async fn the_spec_a_request_would_run_as_renders_without_anything_created() {
    let d = dry_run();
    let runs = d.runs();
    let spec = runs.container_spec(&sh("echo planned")).unwrap();
    let bundle = berth_oci::plan(&spec, None).unwrap();
    assert_eq!(bundle.config.process.args, ["sh", "-c", "echo planned"]);
    assert!(bundle.config.root.readonly);
    assert!(d.backend.list(&Selector::all()).await.unwrap().is_empty());
    assert!(d.store.list_runs("t1", 10).unwrap().is_empty());
}

#[tokio::test]
async fn an_agent_is_defined_started_stopped_started_again_and_removed() {
    let d = dry_run();
    let agents = d.agents();
    let code = d._root.path().join("agent-code");
    std::fs::create_dir_all(&code).unwrap();
    let mut def = support::sleeping_agent("dry-agent");
    def.code_dir = Some(code.display().to_string());
    def.ports = vec![8080];
    agents.define(def.clone()).unwrap();
    assert!(matches!(agents.define(def), Err(AgentError::Exists(_))));

    let started = agents.start("t1", "dry-agent").await.unwrap();
    assert_eq!(started.published[0].host, 19600);
    let cid = ContainerId(started.container_id.clone().unwrap());
    assert!(agents.state("t1", "dry-agent").await.unwrap().running());
    let plan = d.backend.plan(&Handle { id: cid.clone(), placement: Default::default() }).await.unwrap().unwrap();
    let code_mount = plan["config"]["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/app/agent");
    assert_eq!(code_mount.unwrap()["options"], serde_json::json!(["rbind", "ro", "rprivate"]));
    assert_eq!(plan["note"]["ports"], serde_json::json!([{"container": 8080, "host": 19600}]));

    let exec = ExecRequest { cmd: vec!["true".into()], ..Default::default() };
    let out = agents.exec("t1", "dry-agent", &exec).await.unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, NOTHING_RAN));
    let mut logs = agents.logs("t1", "dry-agent", &LogRequest::default()).await.unwrap();
    assert_eq!(&logs.next().await.unwrap().unwrap().data[..], NOTHING_RAN.as_bytes());
    assert!(logs.next().await.is_none());
    let usage = agents.stats("t1", "dry-agent").await.unwrap();
    assert_eq!((usage.cpu_time_ns, usage.memory_used, usage.memory_limit), (0, Some(0), Some(512 << 20)));

    agents.stop("t1", "dry-agent", Duration::from_secs(1)).await.unwrap();
    let stopped = agents.state("t1", "dry-agent").await.unwrap();
    assert!(!stopped.running());
    assert_eq!(stopped.exit_code, Some(143));
    assert!(
        matches!(agents.exec("t1", "dry-agent", &exec).await, Err(AgentError::Engine(e)) if e.kind() == berth_core::engine::EngineErrorKind::Conflict)
    );
    let again = agents.start("t1", "dry-agent").await.unwrap();
    assert_eq!(again.container_id, started.container_id, "the same container, started again");

    agents.remove("t1", "dry-agent").await.unwrap();
    assert!(d
        .backend
        .inspect(&Handle { id: cid.clone(), placement: Default::default() })
        .await
        .is_err_and(|e| e.is_not_found()));
    assert_eq!(d.bundles(), 0);
    assert_eq!(d.store.allocate_ports("probe", 10, 19600, 19609).unwrap().len(), 10, "every port came back");
}

#[tokio::test]
async fn a_container_left_behind_under_an_agents_name_is_replaced_on_start() {
    let d = dry_run();
    let agents = d.agents();
    agents.define(support::sleeping_agent("dry-leftover")).unwrap();
    let first = agents.start("t1", "dry-leftover").await.unwrap();
    // The record forgets its container, as after a crash between create and save.
    let mut record = first.clone();
    record.container_id = None;
    d.store.put_object("dry-leftover", "agent", "t1", None, &record).unwrap();
    let second = agents.start("t1", "dry-leftover").await.unwrap();
    assert_ne!(second.container_id, first.container_id);
    assert_eq!(d.backend.list(&Selector::all().label(labels::OBJECT, "dry-leftover")).await.unwrap().len(), 1);
}

fn relic(session: &str, name: &str) -> RelicRequest {
    RelicRequest {
        tenant: "t1".into(),
        relic_name: name.into(),
        session_id: session.into(),
        image: "busybox:1.35".into(),
        cmd: Some(vec!["httpd".into(), "-f".into(), "-p".into(), "8000".into()]),
        memory: None,
        cpu: None,
        create_private_network: true,
        health_check_endpoint: None,
        health_check_timeout: Duration::from_secs(20),
        port: 8000,
        env: BTreeMap::new(),
        expires_at: None,
    }
}

#[tokio::test]
async fn a_relic_starts_on_its_session_network_stops_and_the_session_ends() {
    let d = dry_run();
    let relics = d.relics();
    let r = relics.start(relic("dry-s1", "cache")).await.unwrap();
    assert_eq!((r.status, r.healthy), (RelicStatus::Running, true), "no check asked, none failed");
    let cid = ContainerId(r.container_id.clone().unwrap());
    let plan = d.backend.plan(&Handle { id: cid.clone(), placement: Default::default() }).await.unwrap().unwrap();
    assert_eq!(plan["note"]["network"]["named"]["name"], berth_core::sessions::network_name("t1", "dry-s1"));
    // Known on its network by Cortex's name for it and by its relic name.
    assert_eq!(plan["note"]["network"]["named"]["aliases"], serde_json::json!([r.container_name, "cache"]));
    let nets = d.backend.list_networks(&Selector::all().session("dry-s1")).await.unwrap();
    assert_eq!((nets.len(), nets[0].internal, nets[0].containers), (1, true, 1));

    let other = relics.start(relic("dry-s1", "db")).await.unwrap();
    assert_eq!(other.network_id, r.network_id, "one network per session");
    let stopped = relics.stop("t1", &r.relic_id).await.unwrap();
    assert_eq!(stopped.status, RelicStatus::Stopped);
    assert!(!d.backend.inspect(&Handle { id: cid.clone(), placement: Default::default() }).await.unwrap().running());

    let refused = relics.end_session("t1", "dry-s1", false).await.unwrap_err();
    assert!(
        matches!(refused, berth_core::relics::RelicError::Session(SessionError::Running { running: 1, .. })),
        "{refused:?}"
    );
    let cleanup = relics.end_session("t1", "dry-s1", true).await.unwrap();
    assert_eq!(cleanup.containers_removed.len(), 2);
    assert_eq!(cleanup.networks_removed, [berth_core::sessions::network_name("t1", "dry-s1")]);
    assert!(d.backend.list(&Selector::all().session("dry-s1")).await.unwrap().is_empty());
    assert_eq!(relics.get("t1", &other.relic_id).unwrap().status, RelicStatus::Stopped);
    assert_eq!(d.bundles(), 0);
}

#[tokio::test]
async fn a_relic_with_a_health_check_fails_plainly_since_no_check_ran() {
    let d = dry_run();
    let relics = d.relics();
    let mut req = relic("dry-s2", "web");
    req.health_check_endpoint = Some("/health".into());
    let r = relics.start(req).await.unwrap();
    assert_eq!((r.status, r.healthy), (RelicStatus::Failed, false));
    assert!(r.error.as_deref().unwrap().contains("dry run, nothing ran"), "{:?}", r.error);
    assert!(d.backend.list(&Selector::all().session("dry-s2")).await.unwrap().is_empty(), "removed");
}

#[tokio::test]
async fn the_sweep_removes_idle_berth_networks_and_leaves_used_ones() {
    let d = dry_run();
    let relics = d.relics();
    relics.start(relic("dry-busy", "cache")).await.unwrap();
    let sessions = Sessions::new(d.backend.clone(), Arc::new(berth_core::model::ids::SystemClock));
    sessions.ensure_network("t1", "dry-idle").await.unwrap();
    let removed = sessions.sweep_networks(Duration::ZERO).await.unwrap();
    assert_eq!(removed, [berth_core::sessions::network_name("t1", "dry-idle")]);
    assert_eq!(d.backend.list_networks(&Selector::managed()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn recovery_removes_orphan_run_containers_on_the_dry_run() {
    let d = dry_run();
    let backend: Arc<dyn Engine> = d.backend.clone();
    let ids: Arc<dyn IdSource> = Arc::new(SequentialIds::default());
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::at("2026-01-01T00:00:00Z".parse().unwrap()));
    // A run container of this instance the store never heard of: an orphan.
    let runs =
        Runs::new(&Context::new(backend.clone(), d.policy.clone(), d.store.clone(), ids.clone(), clock.clone()), 1);
    let spec = runs.container_spec(&sh("sleep 60")).unwrap();
    let orphan = backend.create(&spec).await.unwrap();
    backend.start(&orphan).await.unwrap();
    let report = berth_core::lifetime::recovery::recover(
        &backend,
        &d.store,
        &ids,
        &clock,
        berth_core::lifetime::recovery::Orphans::Remove,
    )
    .await
    .unwrap();
    assert_eq!(report.containers_removed, std::slice::from_ref(&spec.name));
    assert!(backend.inspect(&orphan).await.is_err_and(|e| e.is_not_found()));
}

#[tokio::test]
async fn the_reaper_removes_expired_agents_on_the_dry_run() {
    let d = dry_run();
    let agents = d.agents();
    let mut def = support::sleeping_agent("dry-expiring");
    def.expires_at = Some(chrono::Utc::now() + chrono::Duration::seconds(60));
    let engine_name = agents.define(def).unwrap().container_name;
    agents.start("t1", "dry-expiring").await.unwrap();
    let later = Arc::new(FixedClock::at(chrono::Utc::now() + chrono::Duration::seconds(120)));
    let reaper = berth_core::lifetime::reaper::Reaper::new(
        &Context::new(d.backend.clone(), Policy::default(), d.store.clone(), std::sync::Arc::new(RandomIds), later),
        Duration::from_secs(3600),
    );
    assert_eq!(reaper.sweep().await.unwrap(), [engine_name]);
    assert!(d.backend.list(&Selector::managed()).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_dry_run_is_always_reachable_and_says_what_it_is() {
    let d = dry_run();
    assert_eq!(d.backend.name(), "oci-dry-run");
    d.backend.ping().await.unwrap();
    d.backend.ensure_image("never-pulled:latest").await.unwrap();
}

fn berth() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
}

#[test]
fn berth_plan_prints_the_config_json_a_run_would_render_and_can_write_the_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let out = berth()
        .args(["plan", "--language", "sh", "--code", "echo planned", "--bundle"])
        .arg(&dir)
        .env("DOCKER_HOST", "unix:///nonexistent/berth-no-daemon.sock")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["ociVersion"], "1.0.2");
    assert_eq!(config["process"]["args"], serde_json::json!(["sh", "-c", "echo planned"]));
    assert_eq!(config["annotations"][labels::KIND], "code");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(written, config);
    assert!(dir.join(NOTE_FILE).is_file() && dir.join("rootfs").is_dir());

    let refused = berth().args(["plan", "--language", "cobol", "--code", "x"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown language"));
}

#[test]
fn berth_serve_with_no_reachable_engine_comes_up_on_the_dry_run_and_says_so() {
    use std::io::{BufRead, BufReader, Read, Write};
    let data = tempfile::tempdir().unwrap();
    /// Ends the server however the test ends.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Server(
        berth()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .env("DOCKER_HOST", "unix:///nonexistent/berth-no-daemon.sock")
            .env_remove("BERTH_BACKEND")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(server.0.stderr.take().unwrap());
    let (mut said, mut addr) = (String::new(), None);
    for _ in 0..10 {
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        said.push_str(&line);
        if let Some(a) = line.trim().strip_prefix("berth: listening on http://") {
            addr = Some(a.to_owned());
            break;
        }
    }
    assert!(said.contains("oci-dry-run backend (no engine reachable)"), "{said}");
    let addr = addr.expect("berth says where it listens");
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /v1/ready HTTP/1.1\r\nhost: berth\r\nconnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    std::process::Command::new("kill").arg("-TERM").arg(server.0.id().to_string()).status().unwrap();
    assert!(server.0.wait().unwrap().success());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""backend":"oci-dry-run""#), "{answer}");
}
