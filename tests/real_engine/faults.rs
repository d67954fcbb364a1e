//! Faults at the transport seam, under berth, against the real engine: a
//! run whose exchange with the engine breaks (an answer lost, a connection
//! dropped or cut mid-frame, garbage in a stream) ends with a failed record
//! that says why, never one left running, and leaves no container behind.

use std::sync::Arc;
use std::time::Duration;

use berth_core::context::Context;
use berth_core::engine::{Engine, Selector};
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::policy::{Policy, PolicyConfig};
use berth_core::runs::{RunRecord, RunRequest, RunStatus, Runs, Workload};
use berth_core::spec::labels;
use berth_core::store::Store;
use berth_docker::DockerBackend;
use bytes::Bytes;
use engine_api::transport::{Fault, FaultyTransport, SocketTransport};
use engine_api::Endpoint;

/// Runs over the real engine through a transport that breaks what it is told to.
struct Faulty {
    runs: Runs,
    backend: Arc<DockerBackend>,
    store: Arc<Store>,
    faults: FaultyTransport,
}

fn faulty() -> Faulty {
    let endpoint = Endpoint::from_env().expect("DOCKER_HOST");
    let faults = FaultyTransport::new(SocketTransport::new(endpoint));
    let backend = Arc::new(DockerBackend::over(faults.clone()));
    let store = Arc::new(Store::in_memory().unwrap());
    let policy = Policy::new(PolicyConfig::default());
    let runs =
        Runs::new(&Context::new(backend.clone(), policy, store.clone(), Arc::new(RandomIds), Arc::new(SystemClock)), 8);
    Faulty { runs, backend, store, faults }
}

impl Faulty {
    /// Runs `script` as tenant `tenant` (one per test, so that the containers
    /// of the tests beside it do not count) and checks what it left: the
    /// record ended and stored as returned, no container of the tenant's.
    async fn run(&self, tenant: &str, script: &str) -> RunRecord {
        let req = RunRequest::new(tenant, Workload::Code { language: "sh".into(), code: script.into() });
        let run = tokio::time::timeout(Duration::from_secs(60), self.runs.execute(req))
            .await
            .expect("nothing hangs")
            .expect("a broken exchange is the run's failure, not the caller's error");
        assert_ne!(run.status, RunStatus::Running);
        assert_ne!(run.status, RunStatus::Pending);
        assert!(run.finished_at.is_some());
        assert_eq!(
            self.store.get_run(tenant, &run.id).unwrap().as_ref(),
            Some(&run),
            "the stored record is the ended one"
        );
        let mine = Selector::all().tenant(tenant);
        assert_eq!(self.backend.list(&mine).await.unwrap(), vec![], "no container is left behind");
        run
    }
}

fn failed_with(run: &RunRecord, words: &str) {
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.as_deref().unwrap_or_default();
    assert!(error.contains(words), "the error says what broke: {error:?}");
}

#[tokio::test]
async fn a_run_whose_create_went_unanswered_fails_and_the_container_the_engine_made_is_removed() {
    let f = faulty();
    f.faults.inject("/containers/create", Fault::LoseAnswer);
    let run = f.run("t-fault-create", "echo hi").await;
    failed_with(&run, "connection dropped");
    assert_eq!(run.container_id, None, "its id never came back");
    let again = f.run("t-fault-create", "echo hi").await;
    assert_eq!(again.status, RunStatus::Succeeded, "the next run on the same client is whole: {again:?}");
}

#[tokio::test]
async fn a_run_whose_start_is_dropped_fails_and_its_container_is_removed() {
    let f = faulty();
    f.faults.inject("/start", Fault::Drop);
    let run = f.run("t-fault-start", "echo hi").await;
    failed_with(&run, "connection dropped");
    assert!(run.container_id.is_some() && run.container_removed, "{run:?}");
}

#[tokio::test]
async fn a_run_whose_log_stream_is_cut_mid_frame_fails_and_its_container_is_removed() {
    let f = faulty();
    // "hello\n" comes as one 14-byte frame: the connection breaks inside it.
    f.faults.inject("/logs", Fault::Cut { after: 10 });
    let run = f.run("t-fault-logs", "echo hello").await;
    failed_with(&run, "connection dropped");
    assert!(run.container_removed);
    assert_eq!(run.stdout, "", "no half-read output is passed off as the run's");
}

#[tokio::test]
async fn garbage_in_a_runs_log_stream_fails_the_run_instead_of_becoming_its_output() {
    let f = faulty();
    f.faults.inject("/logs", Fault::Garbage { at: 0, bytes: Bytes::from_static(b"\x07\x00\x00\x00not a frame") });
    let run = f.run("t-fault-garbage", "echo hello").await;
    failed_with(&run, "cannot decode");
    assert!(!run.stdout.contains("not a frame"));
    assert!(run.container_removed);
}

#[tokio::test]
async fn a_run_whose_exit_wait_breaks_is_failed_not_left_running() {
    let f = faulty();
    f.faults.inject("/wait", Fault::Cut { after: 0 });
    let run = f.run("t-fault-wait", "sleep 1; echo done").await;
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert!(run.error.is_some());
    assert!(run.container_removed);
}

#[tokio::test]
async fn a_broken_stats_stream_costs_a_run_only_its_usage_numbers() {
    let f = faulty();
    f.faults.inject("/stats", Fault::Cut { after: 0 });
    let run = f.run("t-fault-stats", "echo fine").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.stdout, "fine\n");
}

/// A tool container spec named `name`, labelled as tenant `tenant`'s.
fn spec_named(name: &str, tenant: &str) -> berth_core::spec::ContainerSpec {
    let mut req = berth_core::policy::ContainerRequest::new(berth_core::spec::Kind::Tool, name, "busybox:1.35");
    req.cmd = Some(vec!["sleep".into(), "30".into()]);
    let mut spec = Policy::default().admit(req).unwrap();
    spec.labels.insert(labels::TENANT.into(), tenant.into());
    spec
}

#[tokio::test]
async fn a_create_that_never_reached_the_engine_leaves_a_container_of_that_name_that_is_not_ours_alone() {
    let f = faulty();
    let name = format!("berth-fault-foreign-{}", std::process::id());
    // Someone else's container already has the name: had the create arrived, it would have been refused.
    let foreign = f.backend.create(&spec_named(&name, "t-fault-someone-else")).await.unwrap();
    f.faults.inject("/containers/create", Fault::Drop);
    let ours = spec_named(&name, "t-fault-foreign");
    assert!(f.backend.create(&ours).await.is_err());
    assert!(f.backend.inspect(&foreign).await.is_ok(), "the other container is still there");
    f.backend.remove(&foreign, true).await.unwrap();
}
