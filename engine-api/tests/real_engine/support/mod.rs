//! Shared set-up of the real-engine tier: a client for the provisioned
//! daemon, unique names and cleanup by label. The tier never skips: without
//! a daemon every test fails and says how to provision one.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use engine_api::models::{ContainerConfig, HostConfig};
use engine_api::{Docker, Filters, ListOptions, Output, RemoveOptions, StreamKind};
use futures_util::{Stream, StreamExt};

/// The image provisioning builds (`scripts/provision.sh`).
pub const BUSYBOX: &str = "busybox:1.35";
/// The python image provisioning builds from Debian's packages.
pub const PYTHON: &str = "python:3.11-slim";
/// Every object a test creates carries this label, so a test can clean up after itself.
pub const TEST_LABEL: &str = "io.berth.test";

pub async fn docker() -> Docker {
    let docker = Docker::from_env().expect("DOCKER_HOST is readable");
    if let Err(err) = docker.ping().await {
        panic!("the real-engine tier needs a running daemon ({err}); run scripts/provision.sh first");
    }
    docker
}

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("berth-test-{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn labels(test: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(TEST_LABEL.to_owned(), test.to_owned())])
}

/// A busybox container config running `sh -c script`.
pub fn sh(test: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        image: Some(BUSYBOX.into()),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        labels: Some(labels(test)),
        host_config: Some(HostConfig::default()),
        ..Default::default()
    }
}

/// Removes every container carrying `test`'s label.
pub async fn cleanup(docker: &Docker, test: &str) {
    let filters = Filters::new().label(format!("{TEST_LABEL}={test}"));
    let list = docker.list_containers(&ListOptions { all: true, filters, ..Default::default() }).await.unwrap();
    for c in list {
        let _ = docker.remove_container(&c.id, RemoveOptions { force: true, volumes: true }).await;
    }
}

/// Collects output into stdout, stderr and console bytes.
pub async fn collect<S>(mut stream: S) -> (Vec<u8>, Vec<u8>, Vec<u8>)
where
    S: Stream<Item = engine_api::Result<Output>> + Unpin,
{
    let (mut out, mut err, mut con) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(item) = stream.next().await {
        let Output { stream, data } = item.expect("output decodes");
        match stream {
            StreamKind::Stdout => out.extend_from_slice(&data),
            StreamKind::Stderr => err.extend_from_slice(&data),
            StreamKind::Console => con.extend_from_slice(&data),
            StreamKind::Stdin => panic!("the daemon sent a stdin frame: {data:?}"),
        }
    }
    (out, err, con)
}

/// Runs a busybox container to completion and returns its id and exit code.
pub async fn run_to_exit(docker: &Docker, test: &str, config: &ContainerConfig) -> (String, i64) {
    let id = docker.create_container(Some(&unique(test)), config).await.unwrap().id;
    let waiting = docker.wait_container(&id, engine_api::WaitCondition::NextExit).await.unwrap();
    docker.start_container(&id).await.unwrap();
    (id, waiting.exit().await.unwrap().status_code)
}

pub fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}
