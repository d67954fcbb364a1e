use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use engine_api::models::{ContainerStatus, HealthConfig, HostConfig, RestartPolicy, Ulimit};
use engine_api::transport::RequestBody;
use engine_api::{Error, Filters, ListOptions, LogsOptions, RemoveOptions, Started, Stopped, Tail, WaitCondition};
use futures_util::StreamExt;

use crate::support::*;

#[tokio::test]
async fn create_applies_every_host_config_field_the_policy_needs() {
    let docker = docker().await;
    let test = "create-fields";
    let mut config = sh(test, "sleep 30");
    config.env = Some(vec!["A=1".into()]);
    config.user = Some("65534:65534".into());
    config.working_dir = Some("/tmp".into());
    config.healthcheck = Some(HealthConfig {
        test: vec!["CMD-SHELL".into(), "true".into()],
        interval: Some(1_000_000_000),
        timeout: Some(1_000_000_000),
        retries: Some(3),
        ..Default::default()
    });
    config.host_config = Some(HostConfig {
        memory: Some(64 << 20),
        memory_swap: Some(64 << 20),
        nano_cpus: Some(500_000_000),
        pids_limit: Some(64),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        readonly_rootfs: Some(true),
        tmpfs: Some(BTreeMap::from([("/tmp".to_owned(), "rw,size=1m".to_owned())])),
        network_mode: Some("none".into()),
        init: Some(true),
        ulimits: Some(vec![Ulimit { name: "nofile".into(), soft: 256, hard: 256 }]),
        restart_policy: Some(RestartPolicy { name: "no".into(), maximum_retry_count: None }),
        ..Default::default()
    });
    let id = docker.create_container(Some(&unique(test)), &config).await.unwrap().id;
    let inspect = docker.inspect_container(&id).await.unwrap();
    let hc = inspect.host_config.unwrap();
    assert_eq!(hc.memory, Some(64 << 20));
    assert_eq!(hc.nano_cpus, Some(500_000_000));
    assert_eq!(hc.pids_limit, Some(64));
    assert_eq!(hc.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(hc.readonly_rootfs, Some(true));
    assert_eq!(hc.init, Some(true));
    assert_eq!(inspect.config.as_ref().unwrap().user.as_deref(), Some("65534:65534"));
    assert_eq!(inspect.state.status, ContainerStatus::Created);

    assert_eq!(docker.start_container(&id).await.unwrap(), Started::Started);
    assert_eq!(docker.start_container(&id).await.unwrap(), Started::AlreadyRunning, "304 is data");
    // From inside: no capabilities, no new privileges, the pids limit.
    let pid = docker.inspect_container(&id).await.unwrap().state.pid.unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.lines().any(|l| l.starts_with("CapEff:") && l.ends_with("0000000000000000")), "{status}");
    assert!(status.lines().any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')), "{status}");
    docker.pause_container(&id).await.unwrap();
    assert_eq!(docker.inspect_container(&id).await.unwrap().state.status, ContainerStatus::Paused);
    docker.unpause_container(&id).await.unwrap();
    assert_eq!(docker.stop_container(&id, Some(Duration::from_secs(1))).await.unwrap(), Stopped::Stopped);
    assert_eq!(docker.stop_container(&id, Some(Duration::from_secs(1))).await.unwrap(), Stopped::AlreadyStopped);
    docker.restart_container(&id, Some(Duration::from_secs(1))).await.unwrap();
    assert!(docker.inspect_container(&id).await.unwrap().state.running);
    docker.kill_container(&id, Some("SIGKILL")).await.unwrap();
    let exit = docker.wait_container(&id, WaitCondition::NotRunning).await.unwrap().exit().await.unwrap();
    assert_eq!(exit.status_code, 137);
    docker.remove_container(&id, RemoveOptions::default()).await.unwrap();
    assert!(docker.inspect_container(&id).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn not_found_and_conflict_carry_the_daemons_message() {
    let docker = docker().await;
    let test = "errors";
    let err = docker.inspect_container("berth-no-such-container").await.unwrap_err();
    match err {
        Error::NotFound { message } => assert!(message.contains("berth-no-such-container"), "{message}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let name = unique(test);
    let id = docker.create_container(Some(&name), &sh(test, "sleep 30")).await.unwrap().id;
    match docker.create_container(Some(&name), &sh(test, "true")).await.unwrap_err() {
        Error::Conflict { message } => assert!(message.contains(&name), "{message}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    docker.start_container(&id).await.unwrap();
    match docker.remove_container(&id, RemoveOptions::default()).await.unwrap_err() {
        Error::Conflict { message } => assert!(message.to_lowercase().contains("running"), "{message}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    docker.remove_container(&id, RemoveOptions { force: true, volumes: false }).await.unwrap();
    let mut bad = sh(test, "true");
    bad.image = Some("berth-test/no-such-image:0".into());
    assert!(docker.create_container(None, &bad).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn wait_registered_before_start_sees_even_an_instant_exit() {
    let docker = docker().await;
    let test = "wait";
    for _ in 0..3 {
        let config = sh(test, "exit 3");
        let run = run_to_exit(&docker, test, &config);
        let (id, code) =
            tokio::time::timeout(Duration::from_secs(20), run).await.expect("the exit is seen, not missed");
        assert_eq!(code, 3);
        docker.remove_container(&id, RemoveOptions::default()).await.unwrap();
    }
}

#[tokio::test]
async fn logs_keep_stdout_and_stderr_apart_with_tail_and_timestamps() {
    let docker = docker().await;
    let test = "logs";
    let (id, _) =
        run_to_exit(&docker, test, &sh(test, "echo out1; echo err1 >&2; echo out2; printf 'no-newline'")).await;
    let opts = LogsOptions { stdout: true, stderr: true, ..Default::default() };
    let (out, err, con) = collect(docker.logs(&id, &opts).await.unwrap()).await;
    assert_eq!(String::from_utf8(out).unwrap(), "out1\nout2\nno-newline");
    assert_eq!(String::from_utf8(err).unwrap(), "err1\n");
    assert!(con.is_empty());

    let only_err = LogsOptions { stderr: true, tty: Some(false), ..Default::default() };
    let (out, err, _) = collect(docker.logs(&id, &only_err).await.unwrap()).await;
    assert!(out.is_empty());
    assert_eq!(err, b"err1\n");

    let tail = LogsOptions { stdout: true, tail: Tail::Lines(1), timestamps: true, ..Default::default() };
    let (out, _, _) = collect(docker.logs(&id, &tail).await.unwrap()).await;
    let out = String::from_utf8(out).unwrap();
    assert!(out.ends_with(" no-newline") && out.starts_with("20"), "{out:?}");
    docker.remove_container(&id, RemoveOptions::default()).await.unwrap();
}

#[tokio::test]
async fn tty_logs_that_begin_with_frame_like_bytes_are_passed_through_raw() {
    let docker = docker().await;
    let test = "tty-logs";
    let mut config = sh(test, r"printf '\001\000\000\000\000\000\000\005hello'");
    config.tty = Some(true);
    let (id, _) = run_to_exit(&docker, test, &config).await;
    let opts = LogsOptions { stdout: true, stderr: true, ..Default::default() };
    let (out, err, con) = collect(docker.logs(&id, &opts).await.unwrap()).await;
    assert!(out.is_empty() && err.is_empty());
    assert_eq!(con, b"\x01\x00\x00\x00\x00\x00\x00\x05hello");
    docker.remove_container(&id, RemoveOptions::default()).await.unwrap();
}

#[tokio::test]
async fn followed_logs_outlive_the_call_timeout_and_end_with_the_container() {
    let docker = docker().await;
    let test = "follow";
    let id = docker
        .create_container(Some(&unique(test)), &sh(test, "for i in 1 2 3; do echo line$i; sleep 0.4; done"))
        .await
        .unwrap()
        .id;
    docker.start_container(&id).await.unwrap();
    let short = docker.clone().with_timeout(Duration::from_millis(300));
    let opts = LogsOptions { follow: true, stdout: true, tty: Some(false), ..Default::default() };
    let (out, _, _) = collect(short.logs(&id, &opts).await.unwrap()).await;
    assert_eq!(String::from_utf8(out).unwrap(), "line1\nline2\nline3\n");
    cleanup(&docker, test).await;
}

#[tokio::test]
async fn stats_report_the_memory_limit_one_shot_and_streamed() {
    let docker = docker().await;
    let test = "stats";
    let mut config = sh(test, "sleep 30");
    config.host_config = Some(HostConfig { memory: Some(32 << 20), ..Default::default() });
    let id = docker.create_container(Some(&unique(test)), &config).await.unwrap().id;
    docker.start_container(&id).await.unwrap();
    let one = docker.stats_one_shot(&id).await.unwrap();
    assert_eq!(one.cpu_percent(None), None, "a one-shot sample has no previous one of its own");
    assert_eq!(one.memory_limit(), Some(32 << 20));
    assert!(one.memory_used().unwrap() > 0);
    let mut stream = docker.stats_stream(&id).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    let second = stream.next().await.unwrap().unwrap();
    assert!(second.cpu_percent(Some(&first.cpu_stats)).is_some());
    drop(stream);
    let full = docker.stats(&id).await.unwrap();
    assert!(full.cpu_percent(None).is_some(), "stream=false carries precpu");
    cleanup(&docker, test).await;
}

#[tokio::test]
async fn an_archive_put_then_get_returns_the_same_file() {
    let docker = docker().await;
    let test = "archive";
    let id = docker.create_container(Some(&unique(test)), &sh(test, "sleep 30")).await.unwrap().id;
    let content = b"hello from berth\n".repeat(1000);
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "greeting.txt", &content[..]).unwrap();
    let archive = builder.into_inner().unwrap();
    docker.put_archive(&id, "/tmp", RequestBody::Full(Bytes::from(archive))).await.unwrap();

    let (stat, body) = docker.get_archive(&id, "/tmp/greeting.txt").await.unwrap();
    assert_eq!(stat.name, "greeting.txt");
    assert_eq!(stat.size, content.len() as i64);
    let bytes: Vec<u8> = body.map(|c| c.unwrap()).collect::<Vec<_>>().await.concat();
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let mut got = Vec::new();
    entry.read_to_end(&mut got).unwrap();
    assert_eq!(got, content);
    let err = docker.put_archive(&id, "/no/such/dir", RequestBody::Full(Bytes::from_static(b""))).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. } | Error::BadParameter { .. }), "{err:?}");
    cleanup(&docker, test).await;
}

#[tokio::test]
async fn list_and_prune_select_by_label() {
    let docker = docker().await;
    let test = "list-prune";
    let (id, _) = run_to_exit(&docker, test, &sh(test, "true")).await;
    let filters = Filters::new().label(format!("{TEST_LABEL}={test}"));
    let running = docker
        .list_containers(&ListOptions { all: false, filters: filters.clone(), ..Default::default() })
        .await
        .unwrap();
    assert!(running.is_empty());
    let all = docker
        .list_containers(&ListOptions { all: true, filters: filters.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, id);
    assert_eq!(all[0].state, ContainerStatus::Exited);
    let pruned = docker.prune_containers(&filters).await.unwrap();
    assert_eq!(pruned.containers_deleted, vec![id]);
}

#[tokio::test]
async fn tty_output_without_a_newline_arrives_while_the_container_still_runs() {
    // Through attach: the daemon's log drivers hold a partial line until its
    // newline, attach hands on the terminal's bytes as they come.
    let docker = docker().await;
    let test = "tty-prompt";
    let mut config = sh(test, "sleep 0.2; printf 'prompt> '; sleep 30");
    config.tty = Some(true);
    config.open_stdin = Some(true);
    let id = docker.create_container(Some(&unique(test)), &config).await.unwrap().id;
    let mut attached = docker.attach_container(&id, true).await.unwrap();
    docker.start_container(&id).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), attached.output.next())
        .await
        .expect("the prompt came before exit");
    let first = first.unwrap().unwrap();
    assert_eq!(first.stream, engine_api::StreamKind::Console);
    assert_eq!(&first.data[..], b"prompt> ");
    assert!(docker.inspect_container(&id).await.unwrap().state.running);
    cleanup(&docker, test).await;
}

/// Logs of `id` as one string of stdout.
async fn stdout_of(docker: &engine_api::Docker, id: &str, options: &LogsOptions) -> String {
    let (out, _, _) = collect(docker.logs(id, options).await.unwrap()).await;
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn every_create_field_takes_effect_inside_the_container() {
    let docker = docker().await;
    let test = "create-effects";
    let dir = std::env::temp_dir().join(unique(test));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "bound from the host\n").unwrap();
    let mut config = sh(test, "");
    config.entrypoint = Some(vec!["sh".into(), "-c".into()]);
    config.cmd = Some(vec![
        "echo \"A=$A\"; cat /data/f; ulimit -n; pwd; grep ' /scratch ' /proc/mounts; grep CapEff /proc/self/status; \
         touch /data/g 2>/dev/null || echo bind-read-only"
            .into(),
    ]);
    config.env = Some(vec!["A=1".into()]);
    config.working_dir = Some("/scratch".into());
    config.host_config = Some(HostConfig {
        binds: Some(vec![format!("{}:/data:ro", dir.display())]),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(vec!["CHOWN".into()]),
        tmpfs: Some(BTreeMap::from([("/scratch".to_owned(), "rw,size=1m".to_owned())])),
        ulimits: Some(vec![Ulimit { name: "nofile".into(), soft: 256, hard: 256 }]),
        network_mode: Some("none".into()),
        ..Default::default()
    });
    let (id, code) = run_to_exit(&docker, test, &config).await;
    assert_eq!(code, 0);
    let out = stdout_of(&docker, &id, &LogsOptions { stdout: true, ..Default::default() }).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..4], ["A=1", "bound from the host", "256", "/scratch"], "{out}");
    assert!(lines[4].starts_with("tmpfs /scratch tmpfs rw") && lines[4].contains("size=1024k"), "{out}");
    assert!(lines[5].starts_with("CapEff:") && lines[5].ends_with("0000000000000001"), "CHOWN alone: {out}");
    assert_eq!(lines[6], "bind-read-only", "{out}");
    cleanup(&docker, test).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn published_ports_and_network_aliases_given_at_create_are_in_place() {
    use engine_api::models::{EmptyObject, EndpointSettings, NetworkConfig, NetworkingConfig, PortBinding};
    let docker = docker().await;
    let test = "create-ports-aliases";
    let net_name = unique(test);
    let labels = BTreeMap::from([(TEST_LABEL.to_owned(), test.to_owned())]);
    let net = docker.create_network(&NetworkConfig { name: net_name.clone(), labels, ..Default::default() }).await;
    let net = net.unwrap().id;
    let mut config = sh(test, "sleep 30");
    config.exposed_ports = Some(BTreeMap::from([("8080/tcp".to_owned(), EmptyObject {})]));
    let loopback_any_port = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some("0".into()) };
    config.host_config = Some(HostConfig {
        network_mode: Some(net_name.clone()),
        port_bindings: Some(BTreeMap::from([("8080/tcp".to_owned(), vec![loopback_any_port])])),
        ..Default::default()
    });
    let endpoint = EndpointSettings { aliases: Some(vec!["fx-alias".into()]), ..Default::default() };
    config.networking_config =
        Some(NetworkingConfig { endpoints_config: BTreeMap::from([(net_name.clone(), endpoint)]) });
    let id = docker.create_container(Some(&unique(test)), &config).await.unwrap().id;
    docker.start_container(&id).await.unwrap();
    let settings = docker.inspect_container(&id).await.unwrap().network_settings.unwrap();
    let aliases = settings.networks[&net_name].aliases.clone().unwrap_or_default();
    assert!(aliases.contains(&"fx-alias".to_owned()), "{aliases:?}");
    let bound = settings.ports["8080/tcp"].clone().unwrap();
    assert_eq!(bound[0].host_ip.as_deref(), Some("127.0.0.1"));
    let port: u16 = bound[0].host_port.as_deref().unwrap().parse().unwrap();
    assert!(port > 0, "the engine chose a port: {bound:?}");
    cleanup(&docker, test).await;
    docker.remove_network(&net).await.unwrap();
}

#[tokio::test]
async fn a_healthcheck_given_at_create_turns_the_container_healthy() {
    let docker = docker().await;
    let test = "create-health";
    let mut config = sh(test, "touch /tmp/ready; sleep 30");
    config.healthcheck = Some(HealthConfig {
        test: vec!["CMD-SHELL".into(), "test -f /tmp/ready".into()],
        interval: Some(200_000_000),
        timeout: Some(1_000_000_000),
        retries: Some(3),
        ..Default::default()
    });
    let id = docker.create_container(Some(&unique(test)), &config).await.unwrap().id;
    docker.start_container(&id).await.unwrap();
    let mut status = String::new();
    for _ in 0..50 {
        status = docker.inspect_container(&id).await.unwrap().state.health.map(|h| h.status).unwrap_or_default();
        if status == "healthy" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, "healthy");
    cleanup(&docker, test).await;
}

#[tokio::test]
async fn an_auto_removed_container_is_gone_once_it_has_exited() {
    let docker = docker().await;
    let test = "create-auto-remove";
    let mut config = sh(test, "exit 0");
    config.host_config = Some(HostConfig { auto_remove: Some(true), ..Default::default() });
    let (id, code) = run_to_exit(&docker, test, &config).await;
    assert_eq!(code, 0);
    let mut gone = false;
    for _ in 0..50 {
        if docker.inspect_container(&id).await.is_err_and(|e| e.is_not_found()) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the engine removed it by itself");
}

#[tokio::test]
async fn logs_since_and_until_select_lines_by_time() {
    let docker = docker().await;
    let test = "logs-since-until";
    let (id, _) = run_to_exit(&docker, test, &sh(test, "echo early; sleep 2; echo late")).await;
    let stamped = stdout_of(&docker, &id, &LogsOptions { stdout: true, timestamps: true, ..Default::default() }).await;
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 2, "{stamped}");
    let (early, late) = (unix_seconds(lines[0]), unix_seconds(lines[1]));
    assert!(late - early > 1.5, "{stamped}");
    let mid = (early + late) / 2.0;
    let at = |t: f64| Some(format!("{t:.3}"));
    let since = LogsOptions { stdout: true, since: at(mid), ..Default::default() };
    assert_eq!(stdout_of(&docker, &id, &since).await, "late\n");
    let until = LogsOptions { stdout: true, until: at(mid), ..Default::default() };
    assert_eq!(stdout_of(&docker, &id, &until).await, "early\n");
    cleanup(&docker, test).await;
}

/// Unix seconds of a log line's RFC 3339 stamp ("2026-11-28T10:00:00.123456789Z text").
fn unix_seconds(line: &str) -> f64 {
    let stamp = line.split(' ').next().unwrap().trim_end_matches('Z');
    let (date, time) = stamp.split_once('T').unwrap();
    let ymd: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let hms: Vec<f64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    // Days since 1970-01-01 of a proleptic Gregorian date.
    let (y, m, d) = if ymd[1] <= 2 { (ymd[0] - 1, ymd[1] + 9, ymd[2]) } else { (ymd[0], ymd[1] - 3, ymd[2]) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days as f64 * 86_400.0 + hms[0] * 3600.0 + hms[1] * 60.0 + hms[2]
}
