//! Exec through the backend: buffered with caps, and interactive with stdin;
//! and the container events the backend follows.

use std::sync::Arc;
use std::time::Duration;

use berth_core::engine::{Engine, ExecRequest, Handle, Selector, Stream, WorkloadIo};
use berth_core::policy::{ContainerRequest, Policy};
use berth_core::spec::Kind;
use berth_docker::DockerBackend;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

async fn running(backend: &DockerBackend, test: &str) -> Handle {
    let mut req =
        ContainerRequest::new(Kind::Agent, format!("berth-exec-{test}-{}", std::process::id()), "busybox:1.35");
    req.cmd = Some(vec!["sleep".into(), "60".into()]);
    req.labels = [("io.berth-test.case".to_owned(), format!("{test}-{}", std::process::id()))].into();
    let spec = Policy::default().admit(req).unwrap();
    let _ = backend.remove(&Handle::local(spec.name.clone()), true).await;
    let id = backend.create(&spec).await.unwrap();
    backend.start(&id).await.unwrap();
    id
}

fn backend() -> DockerBackend {
    DockerBackend::new(engine_api::Docker::from_env().unwrap())
}

#[tokio::test]
async fn an_interactive_exec_reads_stdin_to_its_end_and_reports_its_exit() {
    let backend = backend();
    let id = running(&backend, "interactive").await;
    let req =
        ExecRequest { cmd: vec!["sh".into(), "-c".into(), "cat; echo done >&2; exit 5".into()], ..Default::default() };
    let req = ExecRequest { stdin: true, ..req };
    let mut session = backend.exec(&id, &req).await.unwrap().stdio;
    session.stdin.write_all(b"line one\nline two\n").await.unwrap();
    session.stdin.shutdown().await.unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = session.output.next().await {
        let chunk = chunk.unwrap();
        match chunk.stream {
            Stream::Stderr => err.extend_from_slice(&chunk.data),
            _ => out.extend_from_slice(&chunk.data),
        }
    }
    assert_eq!(out, b"line one\nline two\n");
    assert_eq!(err, b"done\n");
    assert_eq!(session.exit.await.unwrap(), 5);
    backend.remove(&id, true).await.unwrap();
}

#[tokio::test]
async fn buffered_exec_output_is_capped_with_a_marker() {
    let backend = backend();
    let id = running(&backend, "capped").await;
    let req = ExecRequest { cmd: vec!["sh".into(), "-c".into(), "yes | head -c 5000".into()], ..Default::default() };
    let out = backend.exec_to_end(&id, &req, 100).await.unwrap();
    assert_eq!(out.exit_code, 0);
    assert!(out.stdout.ends_with("[berth: output truncated, 4900 more bytes dropped]\n"), "{}", out.stdout);
    backend.remove(&id, true).await.unwrap();
}

#[tokio::test]
async fn events_of_managed_containers_are_followed() {
    let backend = Arc::new(backend());
    let case = format!("events-{}", std::process::id());
    let mut events = backend.events(&Selector::managed().label("io.berth-test.case", &case)).await.unwrap();
    let id = running(&backend, "events").await;
    backend.kill(&id).await.unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|a: &String| a == "die") {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(e.handle, id);
        seen.push(e.action);
    }
    assert!(seen.contains(&"create".to_owned()) && seen.contains(&"start".to_owned()), "{seen:?}");
    backend.remove(&id, true).await.unwrap();
}
