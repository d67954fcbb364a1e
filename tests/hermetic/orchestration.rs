//! Orchestration flows over recorded fixtures: the fixture backend is the
//! docker backend over a replay of a named scenario, with sequential ids
//! and a fixed clock so every scenario sends the same bytes each time.
//! `scripts/record-fixtures.sh` records them (suite `berth`).

use std::sync::Arc;

use berth_core::agents::{AgentDefinition, Agents, PortRange};
use berth_core::context::Context;
use berth_core::engine::ExecRequest;
use berth_core::model::ids::Clock;
use berth_core::model::units::ByteSize;
use berth_core::policy::{Policy, PolicyConfig};
use berth_core::relics::{RelicRequest, RelicStatus, Relics};
use berth_core::runs::{RunRequest, RunStatus, Runs, Workload};
use berth_core::store::Store;
use berth_docker::fixture::Fixture;

struct Flow {
    runs: Runs,
    agents: Agents,
    relics: Relics,
    fixture: Fixture,
}

/// The orchestration services over scenario `name`, recorded or replayed.
fn flow(name: &str) -> Flow {
    let fixture = Fixture::open("berth", name)
        .unwrap_or_else(|e| panic!("{e}\n(recordings are made by scripts/record-fixtures.sh)"));
    let (backend, ids, clock): (_, _, Arc<dyn Clock>) = (fixture.backend(), fixture.ids(), fixture.clock.clone());
    let store = Arc::new(Store::in_memory().unwrap());
    let policy = Policy::new(PolicyConfig { bind_roots: vec!["/tmp".into()], ..Default::default() });
    let runs = Runs::new(&Context::new(backend.clone(), policy.clone(), store.clone(), ids.clone(), clock.clone()), 4);
    let agents = Agents::new(
        &Context::new(backend.clone(), policy.clone(), store.clone(), ids.clone(), clock.clone()),
        PortRange { first: 19500, last: 19509 },
    );
    let relics = Relics::new(&Context::new(backend, policy, store, ids, clock));
    Flow { runs, agents, relics, fixture }
}

impl Flow {
    fn finish(self) {
        if let Err(e) = self.fixture.finish() {
            panic!("{e}")
        }
    }
}

#[tokio::test]
async fn a_tool_run_with_parameters_succeeds_with_its_json_result() {
    let f = flow("run_succeeds");
    let command = Some(vec!["sh".into(), "-c".into(), r#"echo "{\"got\":\"$PARAM_FILE\"}""#.into()]);
    let mut req = RunRequest::new("tenant-a", Workload::Tool { image: "busybox:1.35".into(), command });
    req.parameters = serde_json::json!({"file": "doc.pdf"}).as_object().unwrap().clone();
    let run = f.runs.execute(req).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.id.0, "run_000000000002", "after the instance id");
    assert_eq!(run.result, Some(serde_json::json!({"got": "doc.pdf"})));
    assert!(run.container_removed);
    f.finish();
}

#[tokio::test]
async fn a_code_run_that_fails_keeps_its_exit_code_and_stderr() {
    let f = flow("run_fails");
    let req =
        RunRequest::new("tenant-a", Workload::Code { language: "sh".into(), code: "echo bad >&2; exit 3".into() });
    let run = f.runs.execute(req).await.unwrap();
    assert_eq!((run.status, run.exit_code), (RunStatus::Failed, Some(3)));
    assert_eq!(run.stderr, "bad\n");
    f.finish();
}

#[tokio::test]
async fn a_python_memory_hog_is_oom_killed() {
    let f = flow("run_oom");
    let code = "x = bytearray(200 * 1024 * 1024)\nprint('survived')";
    let mut req = RunRequest::new("tenant-a", Workload::Code { language: "python".into(), code: code.into() });
    req.memory = Some(ByteSize::mib(32));
    let run = f.runs.execute(req).await.unwrap();
    assert_eq!(run.status, RunStatus::OomKilled);
    f.finish();
}

#[tokio::test]
async fn an_agent_is_created_on_start_exec_stopped_restarted_and_removed() {
    let f = flow("agent_lifecycle");
    let def = AgentDefinition {
        cmd: Some(vec!["sh".into(), "-c".into(), "echo up; exec sleep 600".into()]),
        env: [("ROLE".to_owned(), "fixture".to_owned())].into(),
        ports: vec![8080],
        ..AgentDefinition::new("tenant-a", "fx-agent", "busybox:1.35")
    };
    f.agents.define(def).unwrap();
    let started = f.agents.start("tenant-a", "fx-agent").await.unwrap();
    assert_eq!(started.published[0].host, 19500);
    assert!(f.agents.state("tenant-a", "fx-agent").await.unwrap().running());
    let exec = ExecRequest { cmd: vec!["sh".into(), "-c".into(), "echo $ROLE; exit 4".into()], ..Default::default() };
    let out = f.agents.exec("tenant-a", "fx-agent", &exec).await.unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str()), (4, "fixture\n"));
    f.agents.stop("tenant-a", "fx-agent", std::time::Duration::from_secs(1)).await.unwrap();
    assert!(!f.agents.state("tenant-a", "fx-agent").await.unwrap().running());
    let again = f.agents.start("tenant-a", "fx-agent").await.unwrap();
    assert_eq!(again.container_id, started.container_id, "the same container, started again");
    f.agents.remove("tenant-a", "fx-agent").await.unwrap();
    f.finish();
}

#[tokio::test]
async fn a_relic_turns_healthy_on_its_session_network_and_the_session_ends() {
    let f = flow("relic_session");
    let req = RelicRequest {
        tenant: "tenant-a".into(),
        relic_name: "cache".into(),
        session_id: "fx-session".into(),
        image: "busybox:1.35".into(),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "mkdir -p /tmp/www && echo ok > /tmp/www/health && exec httpd -f -p 8000 -h /tmp/www".into(),
        ]),
        memory: None,
        cpu: None,
        create_private_network: true,
        health_check_endpoint: Some("/health".into()),
        health_check_timeout: std::time::Duration::from_secs(20),
        port: 8000,
        env: Default::default(),
        expires_at: None,
    };
    let relic = f.relics.start(req).await.unwrap();
    assert_eq!((relic.status, relic.healthy), (RelicStatus::Running, true));
    assert_eq!(relic.internal_url, "http://relic_cache_fx-session_00000000:8000");
    let cleanup = f.relics.end_session("tenant-a", "fx-session", true).await.unwrap();
    assert_eq!(cleanup.networks_removed, vec![berth_core::sessions::network_name("tenant-a", "fx-session")]);
    assert_eq!(f.relics.get("tenant-a", &relic.relic_id).unwrap().status, RelicStatus::Stopped);
    f.finish();
}
