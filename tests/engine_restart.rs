//! dockerd restarts under idle agents: berth's services stay usable, the
//! engine reads as down and then up again, and no record is lost. Alone in
//! its binary: it stops the daemon every other test needs (and starts it again
//! with the provisioning script).

use test_support as support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::agents::{AgentError, Agents, PortRange};
use berth_core::context::Context;
use berth_core::engine::{Engine, EngineErrorKind};
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::policy::Policy;
use berth_core::store::Store;
use berth_docker::DockerBackend;

fn dockerd_pid() -> Option<i32> {
    std::fs::read_to_string("/var/run/docker.pid").ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn idle_agents_and_their_records_survive_a_daemon_restart() {
    let backend = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("berth.db")).unwrap());
    let agents = Agents::new(
        &Context::new(backend.clone(), Policy::default(), store, Arc::new(RandomIds), Arc::new(SystemClock)),
        PortRange::default(),
    );
    let ids: Vec<String> = (0..2).map(|i| format!("restart-{}-{i}", std::process::id())).collect();
    for id in &ids {
        agents.define(support::sleeping_agent(id)).unwrap();
        agents.start("t1", id).await.unwrap();
    }

    // Stop the daemon.
    let pid = dockerd_pid().expect("provisioning wrote dockerd's pid");
    assert_eq!(send_sigterm(pid), 0, "SIGTERM to dockerd");
    let deadline = Instant::now() + Duration::from_secs(90);
    while alive(pid) {
        assert!(Instant::now() < deadline, "dockerd did not stop");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The engine reads as down; berth's records are all there.
    assert!(backend.ping().await.is_err_and(|e| e.kind() == EngineErrorKind::Unavailable));
    assert!(
        matches!(agents.state("t1", &ids[0]).await, Err(AgentError::Engine(e)) if e.kind() == EngineErrorKind::Unavailable)
    );
    assert_eq!(agents.list("t1").unwrap().len(), 2);

    // Start it again, as CI does.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/provision.sh");
    let status = tokio::process::Command::new("bash").arg(script).status().await.unwrap();
    assert!(status.success(), "provisioning restarted dockerd");
    backend.ping().await.expect("the engine is up again, on the same client");

    // The agents come back on start; nothing was lost.
    for id in &ids {
        agents.start("t1", id).await.unwrap();
        assert!(agents.state("t1", id).await.unwrap().running());
        agents.remove("t1", id).await.unwrap();
    }
    assert!(agents.list("t1").unwrap().is_empty());
}

fn send_sigterm(pid: i32) -> i32 {
    // SIGTERM through the kill(1) command: no unsafe code, no extra crate.
    let status = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
    if status.success() {
        0
    } else {
        1
    }
}
