use engine_api::models::ExecConfig;
use engine_api::Error;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::support::*;

async fn running(test: &str) -> (engine_api::Docker, String) {
    let docker = docker().await;
    let id = docker.create_container(Some(&unique(test)), &sh(test, "sleep 60")).await.unwrap().id;
    docker.start_container(&id).await.unwrap();
    (docker, id)
}

fn exec(cmd: &str) -> ExecConfig {
    ExecConfig {
        attach_stdout: true,
        attach_stderr: true,
        cmd: vec!["sh".into(), "-c".into(), cmd.into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn exec_keeps_stdout_and_stderr_apart_and_reports_the_exit_code() {
    let test = "exec-output";
    let (docker, id) = running(test).await;
    let mut config = exec("echo to-out; echo to-err >&2; echo $GREETING in $(pwd) as $(id -u); exit 7");
    config.env = Some(vec!["GREETING=hi".into()]);
    config.working_dir = Some("/tmp".into());
    config.user = Some("65534".into());
    let created = docker.create_exec(&id, &config).await.unwrap();
    let (out, err, _) = collect(docker.start_exec(&created.id, false).await.unwrap()).await;
    assert_eq!(String::from_utf8(out).unwrap(), "to-out\nhi in /tmp as 65534\n");
    assert_eq!(String::from_utf8(err).unwrap(), "to-err\n");
    let inspect = docker.inspect_exec(&created.id).await.unwrap();
    assert_eq!(inspect.exit_code, Some(7));
    assert!(!inspect.running);
    cleanup(&docker, test).await;
}

#[tokio::test]
async fn stdin_round_trips_through_cat_over_the_upgraded_connection() {
    let test = "exec-stdin";
    let (docker, id) = running(test).await;
    let mut config = exec("cat; echo done >&2");
    config.attach_stdin = true;
    let created = docker.create_exec(&id, &config).await.unwrap();
    let mut session = docker.start_exec_attached(&created.id, false).await.unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let payload = payload.clone();
        let mut stdin = session.stdin;
        tokio::spawn(async move {
            stdin.write_all(&payload).await.unwrap();
            // Half-close: cat sees end of input while its output keeps coming.
            stdin.shutdown().await.unwrap();
            stdin
        })
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(item) = session.output.next().await {
        let o = item.unwrap();
        match o.stream {
            engine_api::StreamKind::Stdout => out.extend_from_slice(&o.data),
            engine_api::StreamKind::Stderr => err.extend_from_slice(&o.data),
            other => panic!("unexpected {other:?}"),
        }
    }
    let _stdin = writer.await.unwrap();
    assert_eq!(out.len(), payload.len());
    assert!(out == payload, "cat echoed the bytes unchanged");
    assert_eq!(err, b"done\n");
    assert_eq!(docker.inspect_exec(&created.id).await.unwrap().exit_code, Some(0));
    cleanup(&docker, test).await;
}

#[tokio::test]
async fn a_tty_exec_is_raw_and_can_be_resized() {
    let test = "exec-tty";
    let (docker, id) = running(test).await;
    let mut config = exec("sleep 0.3; stty size; echo done");
    config.tty = true;
    let created = docker.create_exec(&id, &config).await.unwrap();
    let mut stream = docker.start_exec(&created.id, true).await.unwrap();
    docker.resize_exec(&created.id, 33, 111).await.unwrap();
    let mut console = Vec::new();
    while let Some(item) = stream.next().await {
        let o = item.unwrap();
        assert_eq!(o.stream, engine_api::StreamKind::Console);
        console.extend_from_slice(&o.data);
    }
    // A terminal turns \n into \r\n.
    assert_eq!(String::from_utf8(console).unwrap(), "33 111\r\ndone\r\n");
    cleanup(&docker, test).await;
}

#[tokio::test]
async fn exec_in_a_stopped_container_is_a_conflict() {
    let docker = docker().await;
    let test = "exec-stopped";
    let id = docker.create_container(Some(&unique(test)), &sh(test, "true")).await.unwrap().id;
    let err = docker.create_exec(&id, &exec("true")).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(docker.inspect_exec("no-such-exec").await.unwrap_err().is_not_found());
    cleanup(&docker, test).await;
}

#[tokio::test]
async fn a_detached_exec_runs_to_its_exit_while_the_call_returns_at_once() {
    let docker = docker().await;
    let test = "exec-detached";
    let id = docker.create_container(Some(&unique(test)), &sh(test, "sleep 30")).await.unwrap().id;
    docker.start_container(&id).await.unwrap();
    let config = ExecConfig {
        cmd: vec!["sh".into(), "-c".into(), "sleep 0.3; touch /tmp/done; exit 4".into()],
        ..Default::default()
    };
    let exec = docker.create_exec(&id, &config).await.unwrap().id;
    docker.start_exec_detached(&exec).await.unwrap();
    assert!(docker.inspect_exec(&exec).await.unwrap().running, "still running when the call returned");
    let mut exit = None;
    for _ in 0..50 {
        let inspect = docker.inspect_exec(&exec).await.unwrap();
        if !inspect.running {
            exit = inspect.exit_code;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(exit, Some(4));
    let check = ExecConfig { attach_stdout: true, cmd: vec!["ls".into(), "/tmp/done".into()], ..Default::default() };
    let check = docker.create_exec(&id, &check).await.unwrap().id;
    let (out, _, _) = collect(docker.start_exec(&check, false).await.unwrap()).await;
    assert_eq!(out, b"/tmp/done\n", "it did its work");
    cleanup(&docker, test).await;
}
