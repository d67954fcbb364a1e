//! Orchestration flows over recorded fixtures: the fixture backend is the
//! docker backend over a replay of a named scenario, with sequential ids
//! and a fixed clock so every scenario sends the same bytes each time.
//! `scripts/record-fixtures.sh` records them (suite `berth`).

use std::path::PathBuf;
use std::sync::Arc;

use berth::backend::docker::DockerBackend;
use berth::ids::{FixedClock, SequentialIds};
use berth::policy::Policy;
use berth::runs::{RunRequest, RunStatus, Runs, Workload};
use berth::store::Store;
use berth::units::ByteSize;
use engine_api::transport::scenario::Scenario;

struct Flow {
    runs: Runs,
    scenario: Scenario,
}

/// The runs service over scenario `name`, recorded or replayed.
fn flow(name: &str) -> Flow {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"));
    let scenario = Scenario::open(&root, "berth", name)
        .unwrap_or_else(|e| panic!("{e}\n(recordings are made by scripts/record-fixtures.sh)"));
    let backend = Arc::new(DockerBackend::over(scenario.transport()));
    let clock = Arc::new(FixedClock::at("2026-01-01T00:00:00Z".parse().unwrap()));
    let store = Arc::new(Store::in_memory().unwrap());
    let runs = Runs::new(backend, Policy::default(), store, Arc::new(SequentialIds::default()), clock, 4);
    Flow { runs, scenario }
}

impl Flow {
    fn finish(self) {
        if let Err(e) = self.scenario.finish() {
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
