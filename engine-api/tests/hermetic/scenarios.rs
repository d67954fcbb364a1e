//! The engine-api flows every later layer relies on, as recorded scenarios.
//! Names are fixed, so a scenario sends the same requests every time.

use bytes::Bytes;
use engine_api::models::{
    ContainerConfig, EndpointSettings, ExecConfig, HostConfig, NetworkConfig, NetworkConnect, NetworkDisconnect,
};
use engine_api::{Docker, Error, Filters, LogsOptions, RemoveImageOptions, RemoveOptions, StreamKind, WaitCondition};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::harness::scenario;

const BUSYBOX: &str = "busybox:1.35";
const REGISTRY_IMAGE: &str = "127.0.0.1:5000/berth/busybox:1.35";
const FORCE: RemoveOptions = RemoveOptions { force: true, volumes: true };

fn sh(script: &str) -> ContainerConfig {
    ContainerConfig {
        image: Some(BUSYBOX.into()),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        labels: Some([("io.berth.test".to_owned(), "fixtures".to_owned())].into()),
        ..Default::default()
    }
}

/// Removes what a crashed earlier recording may have left (404 otherwise).
async fn clear(docker: &Docker, name: &str) {
    match docker.remove_container(name, FORCE).await {
        Ok(()) | Err(Error::NotFound { .. }) => {}
        Err(e) => panic!("cannot clear {name}: {e}"),
    }
}

async fn output(stream: impl futures_util::Stream<Item = engine_api::Result<engine_api::Output>>) -> (String, String) {
    let mut stream = std::pin::pin!(stream);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(item) = stream.next().await {
        let o = item.unwrap();
        match o.stream {
            StreamKind::Stdout | StreamKind::Console => out.extend_from_slice(&o.data),
            StreamKind::Stderr => err.extend_from_slice(&o.data),
            StreamKind::Stdin => panic!("stdin frame"),
        }
    }
    (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

#[tokio::test]
async fn container_lifecycle_create_wait_start_logs_remove() {
    let s = scenario("container_lifecycle");
    let docker = &s.docker;
    let name = "berth-fx-lifecycle";
    clear(docker, name).await;
    let id = docker.create_container(Some(name), &sh("echo out; echo err >&2; echo more; exit 3")).await.unwrap().id;
    let waiting = docker.wait_container(&id, WaitCondition::NextExit).await.unwrap();
    docker.start_container(&id).await.unwrap();
    assert_eq!(waiting.exit().await.unwrap().status_code, 3);
    let logs = docker.logs(&id, &LogsOptions { stdout: true, stderr: true, ..Default::default() }).await.unwrap();
    assert_eq!(output(logs).await, ("out\nmore\n".to_owned(), "err\n".to_owned()));
    let inspect = docker.inspect_container(&id).await.unwrap();
    assert_eq!(inspect.state.exit_code, Some(3));
    assert!(!inspect.state.running);
    docker.remove_container(&id, RemoveOptions::default()).await.unwrap();
    assert!(docker.inspect_container(&id).await.unwrap_err().is_not_found());
    s.finish();
}

#[tokio::test]
async fn exec_with_and_without_stdin() {
    let s = scenario("exec");
    let docker = &s.docker;
    let name = "berth-fx-exec";
    clear(docker, name).await;
    let id = docker.create_container(Some(name), &sh("sleep 60")).await.unwrap().id;
    docker.start_container(&id).await.unwrap();

    let config = ExecConfig {
        attach_stdout: true,
        attach_stderr: true,
        cmd: vec!["sh".into(), "-c".into(), "echo to-out; echo to-err >&2; exit 7".into()],
        ..Default::default()
    };
    let exec = docker.create_exec(&id, &config).await.unwrap().id;
    assert_eq!(output(docker.start_exec(&exec, false).await.unwrap()).await, ("to-out\n".into(), "to-err\n".into()));
    assert_eq!(docker.inspect_exec(&exec).await.unwrap().exit_code, Some(7));

    let config = ExecConfig {
        attach_stdin: true,
        attach_stdout: true,
        attach_stderr: true,
        cmd: vec!["cat".into()],
        ..Default::default()
    };
    let exec = docker.create_exec(&id, &config).await.unwrap().id;
    let session = docker.start_exec_attached(&exec, false).await.unwrap();
    let mut stdin = session.stdin;
    stdin.write_all(b"hello through stdin\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    assert_eq!(output(session.output).await, ("hello through stdin\n".into(), String::new()));
    assert_eq!(docker.inspect_exec(&exec).await.unwrap().exit_code, Some(0));

    docker.remove_container(&id, FORCE).await.unwrap();
    s.finish();
}

#[tokio::test]
async fn attach_before_start_then_stdin_in_and_output_out() {
    let s = scenario("attach");
    let docker = &s.docker;
    let name = "berth-fx-attach";
    clear(docker, name).await;
    let config = ContainerConfig {
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        ..sh("cat; echo read-all >&2")
    };
    let id = docker.create_container(Some(name), &config).await.unwrap().id;
    let attached = docker.attach_container(&id, false).await.unwrap();
    let waiting = docker.wait_container(&id, WaitCondition::NextExit).await.unwrap();
    docker.start_container(&id).await.unwrap();
    let mut stdin = attached.stdin;
    stdin.write_all(b"hello through attach\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    assert_eq!(output(attached.output).await, ("hello through attach\n".into(), "read-all\n".into()));
    assert_eq!(waiting.exit().await.unwrap().status_code, 0);
    docker.remove_container(&id, FORCE).await.unwrap();
    s.finish();
}

#[tokio::test]
async fn internal_network_create_connect_disconnect_remove() {
    let s = scenario("networks");
    let docker = &s.docker;
    let (net_name, member) = ("berth-fx-net", "berth-fx-net-member");
    clear(docker, member).await;
    match docker.remove_network(net_name).await {
        Ok(()) | Err(Error::NotFound { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    let labels = [("io.berth.test".to_owned(), "fixtures".to_owned())].into();
    let net = docker
        .create_network(&NetworkConfig { name: net_name.into(), internal: true, labels, ..Default::default() })
        .await
        .unwrap();
    let mut config = sh("sleep 60");
    config.host_config = Some(HostConfig { network_mode: Some(net_name.into()), ..Default::default() });
    let id = docker.create_container(Some(member), &config).await.unwrap().id;
    docker.start_container(&id).await.unwrap();
    docker.disconnect_network(net_name, &NetworkDisconnect { container: id.clone(), force: false }).await.unwrap();
    let connect = NetworkConnect {
        container: id.clone(),
        endpoint_config: Some(EndpointSettings { aliases: Some(vec!["svc".into()]), ..Default::default() }),
    };
    docker.connect_network(net_name, &connect).await.unwrap();
    let inspect = docker.inspect_network(&net.id).await.unwrap();
    assert!(inspect.internal);
    assert!(inspect.containers.contains_key(&id));
    let listed =
        docker.list_networks(&Filters::new().label("io.berth.test=fixtures").add("name", net_name)).await.unwrap();
    assert_eq!(listed.len(), 1);
    docker.remove_container(&id, FORCE).await.unwrap();
    docker.remove_network(&net.id).await.unwrap();
    assert!(docker.inspect_network(&net.id).await.unwrap_err().is_not_found());
    s.finish();
}

#[tokio::test]
async fn image_pull_with_progress_from_the_local_registry() {
    let s = scenario("pull");
    let docker = &s.docker;
    match docker.remove_image(REGISTRY_IMAGE, RemoveImageOptions { force: true, no_prune: true }).await {
        Ok(_) | Err(Error::NotFound { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    let mut progress = docker.pull_image(REGISTRY_IMAGE).await.unwrap();
    let mut statuses = Vec::new();
    while let Some(line) = progress.next().await {
        statuses.push(line.unwrap().status.unwrap_or_default());
    }
    assert!(statuses.iter().any(|s| s.starts_with("Digest:")), "{statuses:?}");
    assert!(statuses.iter().any(|s| s.contains("Downloaded newer image")), "{statuses:?}");
    let image = docker.inspect_image(REGISTRY_IMAGE).await.unwrap();
    assert!(image.repo_tags.iter().any(|t| t == REGISTRY_IMAGE));
    s.finish();
}

#[tokio::test]
async fn daemon_errors_keep_their_messages() {
    let s = scenario("errors");
    let docker = &s.docker;
    let name = "berth-fx-errors";
    clear(docker, name).await;
    match docker.inspect_container("berth-fx-no-such-container").await.unwrap_err() {
        Error::NotFound { message } => assert!(message.contains("berth-fx-no-such-container")),
        other => panic!("{other:?}"),
    }
    let id = docker.create_container(Some(name), &sh("sleep 60")).await.unwrap().id;
    assert!(docker.create_container(Some(name), &sh("true")).await.unwrap_err().is_conflict());
    docker.start_container(&id).await.unwrap();
    assert_eq!(docker.start_container(&id).await.unwrap(), engine_api::Started::AlreadyRunning);
    assert!(docker.remove_container(&id, RemoveOptions::default()).await.unwrap_err().is_conflict());
    docker.remove_container(&id, FORCE).await.unwrap();
    let tar = engine_api::transport::RequestBody::Full(Bytes::new());
    assert!(docker.put_archive(&id, "/tmp", tar).await.unwrap_err().is_not_found());
    s.finish();
}
