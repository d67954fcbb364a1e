use std::sync::Arc;
use std::time::Duration;

use engine_api::transport::SocketTransport;
use engine_api::version::{MAX_API_VERSION, MIN_API_VERSION};
use engine_api::{Docker, Endpoint, Error, EventsOptions, Filters, RemoveOptions};
use futures_util::StreamExt;

use crate::support::*;

#[tokio::test]
async fn the_version_is_negotiated_within_our_range() {
    let docker = docker().await;
    let v = docker.api_version().await.unwrap();
    assert!(v >= MIN_API_VERSION && v <= MAX_API_VERSION, "negotiated {v}");
    let daemon: engine_api::ApiVersion = docker.version().await.unwrap().api_version.unwrap().parse().unwrap();
    assert_eq!(v, daemon.min(MAX_API_VERSION));
    let info = docker.info().await.unwrap();
    assert!(info.driver.is_some() && info.ncpu.unwrap_or(0) > 0);
}

#[tokio::test(flavor = "current_thread")]
async fn sequential_calls_reuse_one_kept_alive_connection() {
    let transport = Arc::new(SocketTransport::new(Endpoint::from_env().unwrap()));
    let docker = Docker::from_transport(transport.clone());
    for _ in 0..20 {
        docker.ping().await.unwrap();
        docker.version().await.unwrap();
    }
    assert_eq!(transport.idle_connections(), 1, "one connection served every call");
}

#[tokio::test]
async fn an_unreachable_daemon_is_a_connect_error() {
    let docker = Docker::new(SocketTransport::new(Endpoint::Unix("/nonexistent/docker.sock".into())));
    let err = docker.ping().await.unwrap_err();
    assert!(matches!(err, Error::Transport(engine_api::transport::TransportError::Connect { .. })), "{err:?}");
}

#[tokio::test]
async fn a_call_that_outlives_its_timeout_is_a_timeout_error() {
    let docker = docker().await;
    let test = "timeout";
    let id = docker.create_container(Some(&unique(test)), &sh(test, "sleep 30")).await.unwrap().id;
    docker.start_container(&id).await.unwrap();
    // A stats read with precpu waits for a second sample before its head.
    let quick = docker.clone().with_timeout(Duration::from_millis(100));
    let err = quick.stats(&id).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    cleanup(&docker, test).await;
}

#[tokio::test]
async fn events_are_seen_for_create_start_and_die() {
    let docker = docker().await;
    let test = "events";
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 - 1;
    let filters = Filters::new().add("type", "container").label(format!("{TEST_LABEL}={test}"));
    let mut events = docker.events(&EventsOptions { since: Some(since), until: None, filters }).await.unwrap();
    let (id, code) = run_to_exit(&docker, test, &sh(test, "exit 0")).await;
    assert_eq!(code, 0);
    let mut seen = Vec::new();
    while !seen.contains(&"die".to_owned()) {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(event.actor.id, id);
        seen.push(event.action);
    }
    for action in ["create", "start", "die"] {
        assert!(seen.iter().any(|a| a == action), "missing {action} in {seen:?}");
    }
    docker.remove_container(&id, RemoveOptions::default()).await.unwrap();
}

#[tokio::test]
async fn events_read_up_to_a_past_until_end_by_themselves() {
    let docker = docker().await;
    let test = "events-until";
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let since = now() - 1;
    let (id, _) = run_to_exit(&docker, test, &sh(test, "exit 0")).await;
    // Whole seconds: wait until the second the container died in is over.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let until = now();
    let filters = Filters::new().add("type", "container").label(format!("{TEST_LABEL}={test}"));
    let events = docker.events(&EventsOptions { since: Some(since), until: Some(until), filters }).await.unwrap();
    let events: Vec<_> = tokio::time::timeout(Duration::from_secs(10), events.collect::<Vec<_>>())
        .await
        .expect("a stream with an until in the past ends");
    let actions: Vec<String> =
        events.into_iter().map(|e| e.unwrap()).filter(|e| e.actor.id == id).map(|e| e.action).collect();
    for action in ["create", "start", "die"] {
        assert!(actions.iter().any(|a| a == action), "missing {action} in {actions:?}");
    }
    docker.remove_container(&id, RemoveOptions::default()).await.unwrap();
}

#[tokio::test]
async fn volumes_are_created_listed_and_removed() {
    let docker = docker().await;
    let name = unique("volume");
    let config =
        engine_api::models::VolumeConfig { name: name.clone(), labels: labels("volume"), ..Default::default() };
    assert_eq!(docker.create_volume(&config).await.unwrap().name, name);
    let listed = docker.list_volumes(&Filters::new().add("name", name.clone())).await.unwrap();
    assert!(listed.volumes.iter().any(|v| v.name == name && v.labels.contains_key(TEST_LABEL)));
    docker.remove_volume(&name, false).await.unwrap();
    assert!(docker.remove_volume(&name, false).await.unwrap_err().is_not_found());
}
