//! The `berth` command line against the real engine (and against none).

use std::process::Command;

fn berth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth"))
}

#[test]
fn berth_engine_reports_the_negotiated_api_of_the_provisioned_daemon() {
    let out = berth().arg("engine").env("DOCKER_HOST", "unix:///var/run/docker.sock").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("engine reachable: API 1."), "{stdout}");
}

#[test]
fn berth_engine_fails_clearly_when_no_daemon_listens() {
    let out = berth().arg("engine").env("DOCKER_HOST", "unix:///nonexistent/berth.sock").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to the daemon at unix:///nonexistent/berth.sock"), "{stderr}");
}

#[test]
fn berth_engine_refuses_an_unsupported_docker_host() {
    let out = berth().arg("engine").env("DOCKER_HOST", "ssh://somewhere").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported scheme"));
}
