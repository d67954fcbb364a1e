//! Relics and sessions against the real engine: a private network per
//! session, health from the engine's own check, failure with last logs, and
//! ending a session.

use std::sync::Arc;
use std::time::Duration;

use berth_core::context::Context;
use berth_core::engine::{Engine, ExecRequest};
use berth_core::engine::{Handle, WorkloadIo};
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::policy::Policy;
use berth_core::relics::{RelicError, RelicRequest, RelicStatus, Relics};
use berth_core::sessions::SessionError;
use berth_core::store::Store;
use berth_docker::DockerBackend;

fn relics() -> (Relics, Arc<DockerBackend>) {
    let backend = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));
    let store = Arc::new(Store::in_memory().unwrap());
    let relics = Relics::new(&Context::new(
        backend.clone(),
        Policy::default(),
        store,
        Arc::new(RandomIds),
        Arc::new(SystemClock),
    ));
    (relics, backend)
}

fn web(session: &str, name: &str, endpoint: &str) -> RelicRequest {
    RelicRequest {
        tenant: "t1".into(),
        relic_name: name.into(),
        session_id: session.into(),
        image: "python:3.11-slim".into(),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "mkdir -p /tmp/www && echo ok > /tmp/www/health && echo serving && exec python3 -m http.server 8000 --directory /tmp/www".into(),
        ]),
        memory: None,
        cpu: None,
        create_private_network: true,
        health_check_endpoint: Some(endpoint.into()),
        health_check_timeout: Duration::from_secs(20),
        port: 8000,
        env: Default::default(),
        expires_at: None,
    }
}

#[tokio::test]
async fn a_relic_is_healthy_on_its_session_network_and_ending_the_session_removes_everything() {
    let (relics, backend) = relics();
    let session = format!("sess-{}", std::process::id());
    let relic = relics.start(web(&session, "cache", "/health")).await.unwrap();
    assert_eq!(relic.status, RelicStatus::Running);
    assert!(relic.healthy);
    assert!(relic.internal_url.starts_with(&format!("http://relic_cache_{session}_")), "{}", relic.internal_url);
    assert!(relic.internal_url.ends_with(":8000"));
    assert!(relic.network_id.is_some());

    // A second relic of the session reaches the first by its container name.
    let mut client = web(&session, "client", "/health");
    client.health_check_endpoint = None;
    client.cmd = Some(vec!["sleep".into(), "60".into()]);
    let client = relics.start(client).await.unwrap();
    assert_eq!(client.network_id, relic.network_id, "one network per session");
    let fetch = format!(
        "import urllib.request; print(urllib.request.urlopen('{}/health', timeout=5).read().decode(), end='')",
        relic.internal_url
    );
    let out = backend
        .exec_to_end(
            &Handle::local(client.container_id.clone().unwrap()),
            &ExecRequest { cmd: vec!["python3".into(), "-c".into(), fetch], ..Default::default() },
            4096,
        )
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, "ok\n"), "{out:?}");

    assert_eq!(relics.list("t1", Some(&session)).unwrap().len(), 2);
    assert!(relics.list("t2", Some(&session)).unwrap().is_empty());

    match relics.end_session("t1", &session, false).await {
        Err(RelicError::Session(SessionError::Running { running: 2, .. })) => {}
        other => panic!("ending a session with running relics needs force: {other:?}"),
    }
    let cleanup = relics.end_session("t1", &session, true).await.unwrap();
    assert_eq!(cleanup.containers_removed.len(), 2);
    assert_eq!(cleanup.networks_removed, vec![berth_core::sessions::network_name("t1", &session)]);
    for r in [&relic, &client] {
        assert!(backend.inspect(&Handle::local(r.container_id.clone().unwrap())).await.is_err());
        assert_eq!(relics.get("t1", &r.relic_id).unwrap().status, RelicStatus::Stopped);
    }
}

#[tokio::test]
async fn a_relic_whose_health_check_fails_is_reported_failed_with_its_last_logs_and_removed() {
    let (relics, backend) = relics();
    let session = format!("sess-fail-{}", std::process::id());
    let mut req = web(&session, "broken", "/no-such-path");
    req.health_check_timeout = Duration::from_secs(15);
    let relic = relics.start(req).await.unwrap();
    assert_eq!(relic.status, RelicStatus::Failed);
    assert!(!relic.healthy);
    let error = relic.error.unwrap();
    assert!(error.contains("health check failed") || error.contains("not healthy"), "{error}");
    assert!(error.contains("serving"), "last logs included: {error}");
    assert!(backend.inspect(&Handle::local(relic.container_id.unwrap())).await.is_err());
    relics.end_session("t1", &session, true).await.unwrap();
}

#[tokio::test]
async fn an_unsafe_health_endpoint_is_refused() {
    let (relics, _) = relics();
    let err = relics.start(web("sess-x", "x", "/health'; rm -rf / '")).await.unwrap_err();
    assert!(matches!(err, RelicError::BadRequest(_)), "{err:?}");
}
