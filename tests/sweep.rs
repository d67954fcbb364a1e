//! The network sweep, alone in its binary: it removes every idle berth
//! network, so it must not run beside tests that create them.

use std::sync::Arc;

use berth_core::engine::Isolation;
use berth_core::sessions::Sessions;
use berth_docker::DockerBackend;

#[tokio::test]
async fn the_sweep_removes_berth_networks_no_longer_in_use() {
    let backend = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));
    let sessions = Sessions::new(backend.clone(), Arc::new(berth_core::model::ids::SystemClock));
    let session = format!("sess-sweep-{}", std::process::id());
    let net = sessions.ensure_network("t1", &session).await.unwrap();
    assert_eq!(sessions.ensure_network("t1", &session).await.unwrap(), net, "created once");
    let kept = sessions.sweep_networks(std::time::Duration::from_secs(600)).await.unwrap();
    assert!(!kept.contains(&net.name), "a network just made is left alone: {kept:?}");
    let removed = sessions.sweep_networks(std::time::Duration::ZERO).await.unwrap();
    assert!(removed.contains(&net.name), "{removed:?}");
    assert!(backend.list_networks(&berth_core::engine::Selector::all().session(&session)).await.unwrap().is_empty());
}
