//! Agents against the real engine: create-on-start, published pool ports,
//! the code mounted read-only, logs, stats, exec, stop, restart, removal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_core::agents::{AgentDefinition, AgentError, Agents, PortRange};
use berth_core::context::Context;
use berth_core::engine::Handle;
use berth_core::engine::{Engine, ExecRequest, LogRequest, Stream};
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::policy::{Policy, PolicyConfig};
use berth_core::store::Store;
use berth_docker::DockerBackend;
use futures_util::StreamExt;

fn setup(root: &std::path::Path, ports: PortRange) -> (Agents, Arc<DockerBackend>, Arc<Store>) {
    let backend = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));
    let store = Arc::new(Store::in_memory().unwrap());
    let policy = Policy::new(PolicyConfig { bind_roots: vec![root.to_owned()], ..Default::default() });
    let agents = Agents::new(
        &Context::new(backend.clone(), policy, store.clone(), Arc::new(RandomIds), Arc::new(SystemClock)),
        ports,
    );
    (agents, backend, store)
}

fn definition(id: &str, tenant: &str, code_dir: &std::path::Path) -> AgentDefinition {
    AgentDefinition {
        cmd: Some(vec!["sh".into(), "/app/agent/main.sh".into()]),
        code_dir: Some(code_dir.display().to_string()),
        env: BTreeMap::from([("GREETING".into(), "hello".into())]),
        ports: vec![8080],
        ..AgentDefinition::new(tenant, id, "busybox:1.35")
    }
}

#[tokio::test]
async fn an_agent_is_created_on_start_runs_its_mounted_code_and_is_removed_with_its_ports() {
    let root = tempfile::tempdir().unwrap();
    let code = root.path().join("agent-a");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("main.sh"),
        "echo \"$GREETING from the agent\"\nmkdir -p /tmp/www && echo ok > /tmp/www/index.html\nexec httpd -f -p 8080 -h /tmp/www\n",
    )
    .unwrap();
    let (agents, backend, store) = setup(root.path(), PortRange { first: 19400, last: 19409 });
    let id = format!("agent-test-{}", std::process::id());
    agents.define(definition(&id, "t1", &code)).unwrap();
    assert!(matches!(agents.define(definition(&id, "t1", &code)), Err(AgentError::Exists(_))));

    let started = agents.start("t1", &id).await.unwrap();
    assert_eq!(started.published.len(), 1);
    let host_port = started.published[0].host;
    assert!((19400..=19409).contains(&host_port));
    assert!(agents.state("t1", &id).await.unwrap().running());
    assert!(matches!(agents.get("t2", &id), Err(AgentError::NotFound(_))), "another tenant sees nothing");

    // The published port answers on loopback.
    // Until the server in the container listens, the port's proxy accepts
    // and then resets: that is "not yet", not a failure.
    let mut body = String::new();
    for _ in 0..50 {
        body.clear();
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", host_port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let answered = async {
                s.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
                s.read_to_string(&mut body).await
            };
            if answered.await.is_ok() && body.contains("ok") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(body.ends_with("ok\n"), "{body}");

    // The code is mounted read-only; exec runs inside.
    let out = agents
        .exec(
            "t1",
            &id,
            &ExecRequest {
                cmd: vec!["sh".into(), "-c".into(), "touch /app/agent/x || echo read-only".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(out.stderr.contains("Read-only file system") && out.stdout == "read-only\n", "{out:?}");
    let mut logs = agents.logs("t1", &id, &LogRequest { tail: Some(10), ..Default::default() }).await.unwrap();
    let first = logs.next().await.unwrap().unwrap();
    assert_eq!((first.stream, &first.data[..]), (Stream::Stdout, &b"hello from the agent\n"[..]));
    let usage = agents.stats("t1", &id).await.unwrap();
    assert_eq!(usage.memory_limit, Some(512 << 20));
    assert!(usage.cpu_percent.is_some());

    // Stop, then start again: the same container.
    let cid = started.container_id.clone().unwrap();
    agents.stop("t1", &id, Duration::from_secs(1)).await.unwrap();
    assert!(!agents.state("t1", &id).await.unwrap().running());
    assert_eq!(agents.start("t1", &id).await.unwrap().container_id.unwrap(), cid);

    // A container removed behind berth's back is made again on start.
    backend.remove(&Handle::local(cid.clone()), true).await.unwrap();
    let again = agents.start("t1", &id).await.unwrap();
    assert_ne!(again.container_id.clone().unwrap(), cid);
    assert!(agents.state("t1", &id).await.unwrap().running());

    agents.remove("t1", &id).await.unwrap();
    let gone = backend.inspect(&Handle::local(again.container_id.unwrap())).await;
    assert!(gone.as_ref().is_err_and(|e| e.is_not_found()), "{gone:?}");
    assert_eq!(store.allocate_ports("probe", 10, 19400, 19409).unwrap().len(), 10, "every port came back");
}

#[tokio::test]
async fn an_agent_whose_code_lies_outside_the_bind_roots_is_refused_before_anything_exists() {
    let root = tempfile::tempdir().unwrap();
    let (agents, ..) = setup(root.path(), PortRange::default());
    let err = agents.define(definition("agent-outside", "t1", std::path::Path::new("/etc"))).unwrap_err();
    assert!(matches!(err, AgentError::Policy(ref v) if v.field == "binds"), "{err:?}");
    assert!(agents.list("t1").unwrap().is_empty());
}

#[tokio::test]
async fn a_worktree_agent_runs_as_its_uid_and_gid_in_its_worktree() {
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().unwrap();
    let worktree = root.path().join("tidepool-abc");
    std::fs::create_dir_all(&worktree).unwrap();
    std::os::unix::fs::chown(&worktree, Some(1000), Some(1000)).unwrap();
    let (agents, ..) = setup(root.path(), PortRange { first: 19410, last: 19419 });
    let id = format!("worktree-{}", std::process::id());
    let mut def = definition(&id, "t1", root.path());
    def.code_dir = None;
    def.cmd = Some(vec!["sleep".into(), "60".into()]);
    def.ports = vec![];
    def.worktree = Some(berth_core::agents::Worktree {
        host_path: worktree.display().to_string(),
        mount_at: "/workspace".into(),
        uid: 1000,
        gid: 1000,
    });
    agents.define(def).unwrap();
    agents.start("t1", &id).await.unwrap();
    let req = ExecRequest {
        cmd: vec!["sh".into(), "-c".into(), "echo $(id -u):$(id -g) $(pwd); echo hi > made-here".into()],
        ..Default::default()
    };
    let out = agents.exec("t1", &id, &req).await.unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, "1000:1000 /workspace\n"), "{out:?}");
    let made = std::fs::metadata(worktree.join("made-here")).unwrap();
    assert_eq!((made.uid(), made.gid()), (1000, 1000));
    agents.remove("t1", &id).await.unwrap();
}
