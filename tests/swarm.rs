//! The swarm tier: runs on a real multi-node Docker Swarm, the one
//! `scripts/swarm-rig.sh` builds on this machine (three daemons in network
//! namespaces of their own: bsw-n1 the manager, bsw-n2 and bsw-n3 workers).
//! The rig is brought up when it is not (it is idempotent) and left up for
//! the next binary; `scripts/test.sh` takes it down at the end. The tier
//! fails, never skips, when the rig cannot be built.
//!
//! Each test's runs are named and labelled apart, and each checks that
//! nothing it made (service, container, network) is left on the manager
//! or on any node.

#[path = "swarm/rig.rs"]
mod rig;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use berth_core::context::Context;
use berth_core::engine::Engine;
use berth_core::model::handle::Placement;
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::policy::{Policy, PolicyConfig};
use berth_core::runs::{RunRecord, RunRequest, RunStatus, Runs, Workload};
use berth_core::store::Store;
use berth_swarm::{NodeEngine, SwarmBackend};

use berth_core::engine::state::ANNOTATION_PREFIX;
use berth_core::spec::{annotations, labels};

use self::rig::{
    containers_labelled, hub_curl, leftovers, leftovers_labelled_within, leftovers_now, node_docker, port_answers, rig,
    serve, stop_serve, AgentGuard, Served, NODES,
};

fn backend() -> Arc<SwarmBackend> {
    rig();
    let nodes = NODES.iter().map(|n| NodeEngine { name: (*n).to_owned(), docker: node_docker(n) }).collect();
    Arc::new(SwarmBackend::new(node_docker("bsw-n1"), nodes))
}

fn runs_on(swarm: Arc<SwarmBackend>) -> (Arc<Runs>, Arc<Store>) {
    let store = Arc::new(Store::in_memory().unwrap());
    let engine: Arc<dyn Engine> = swarm;
    let ctx = Context::new(
        engine,
        Policy::new(PolicyConfig::default()),
        store.clone(),
        Arc::new(RandomIds),
        Arc::new(SystemClock),
    );
    (Arc::new(Runs::new(&ctx, 8)), store)
}

fn sh(tenant: &str, script: &str) -> RunRequest {
    RunRequest::new(tenant, Workload::Code { language: "sh".into(), code: script.into() })
}

fn node_of(run: &RunRecord) -> String {
    match &run.placement {
        Placement::Node { name } => name.clone(),
        Placement::Local => panic!("a swarm run names its node: {run:?}"),
    }
}

#[tokio::test]
async fn a_code_run_on_the_swarm_succeeds_on_a_configured_node_and_leaves_nothing() {
    let (runs, store) = runs_on(backend());
    let run = runs.execute(sh("sw-ok", "echo hi; echo oops >&2")).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("hi\n", "oops\n"));
    assert!(NODES.contains(&node_of(&run).as_str()), "{run:?}");
    assert_eq!(run.runtime.as_deref(), Some("swarm"));
    assert!(run.container_removed);
    assert_eq!(store.get_run("sw-ok", &run.id).unwrap().unwrap().placement, run.placement);
    assert_eq!(leftovers("sw-ok").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_non_zero_exit_an_oom_and_a_deadline_end_as_on_one_engine() {
    let (runs, _) = runs_on(backend());
    let failed = runs.execute(sh("sw-ends", "exit 3")).await.unwrap();
    assert_eq!((failed.status, failed.exit_code), (RunStatus::Failed, Some(3)), "{failed:?}");

    let mut hog = sh("sw-ends", "head -c 400m /dev/zero | tail > /dev/null");
    hog.memory = Some("32m".parse().unwrap());
    let oom = runs.execute(hog).await.unwrap();
    assert_eq!(oom.status, RunStatus::OomKilled, "the node's engine says OOM, not a guess from 137: {oom:?}");

    let mut slow = sh("sw-ends", "echo started; sleep 60");
    slow.timeout = Some(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let timed = runs.execute(slow).await.unwrap();
    assert_eq!(timed.status, RunStatus::TimedOut, "{timed:?}");
    assert_eq!(timed.stdout, "started\n", "the logs are read before the service goes");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(leftovers("sw-ends").await, Vec::<String>::new());
}

/// What the service API cannot say on 1.41 comes from the nodes' daemons
/// (no-new-privileges) and machines (no swap); the rest is the spec's. A
/// sealed run's one interface beside loopback is its own internal
/// overlay: no route, so not even its node is reached.
#[tokio::test]
async fn a_swarm_sandbox_has_no_capabilities_no_new_privileges_no_swap_and_no_route_out() {
    let (runs, _) = runs_on(backend());
    let script = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; \
                  grep SwapTotal /proc/meminfo | tr -s ' '; id -u; \
                  touch /root-file 2>/dev/null || echo read-only; \
                  ip route | grep -c default; \
                  nc -w1 192.168.177.1 2377 </dev/null 2>&1 | grep -o 'Network is unreachable'";
    let run = runs.execute(sh("sw-inside", script)).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        run.stdout,
        "CapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSwapTotal: 0 kB\n65534\nread-only\n0\nNetwork is unreachable\n",
        "{run:?}"
    );
    assert_eq!(leftovers("sw-inside").await, Vec::<String>::new());
}

#[tokio::test]
async fn runs_at_once_are_spread_over_the_nodes_by_the_manager() {
    let (runs, _) = runs_on(backend());
    let all = futures_util::future::join_all((0..6).map(|i| runs.execute(sh("sw-spread", &format!("echo {i}"))))).await;
    let mut nodes = BTreeSet::new();
    for run in all {
        let run = run.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        nodes.insert(node_of(&run));
    }
    assert!(nodes.len() >= 2, "six runs at once went to {nodes:?}");
    assert_eq!(leftovers("sw-spread").await, Vec::<String>::new());
}

/// `berth serve --config` of the configuration the rig writes: a run over
/// HTTP goes to the swarm, and its view names its node.
#[test]
fn berth_serve_on_the_rigs_configuration_runs_on_the_swarm_and_says_on_which_node() {
    use std::io::{Read, Write};
    rig();
    let data = tempfile::tempdir().unwrap();
    let (mut child, said, addr) = serve(false, std::path::Path::new("/run/bsw/berth.toml"), data.path());
    let answer = addr.as_ref().map(|addr| {
        let body = r#"{"language":"sh","code":"echo on the swarm"}"#;
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        write!(
            conn,
            "POST /v1/runs HTTP/1.1\r\nhost: berth\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    });
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert!(said.contains("berth: swarm backend, manager reachable; nodes: bsw-n1, bsw-n2, bsw-n3"), "{said}");
    let answer = answer.unwrap_or_else(|| panic!("berth serve did not listen: {said}"));
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains(r#""stdout":"on the swarm\n""#) && answer.contains(r#""runtime":"swarm""#), "{answer}");
    assert!(answer.contains(r#""node":"bsw-n"#), "the view names the node: {answer}");
}

/// Every node serves its engine over mutual TLS on its own address; a
/// berth in the hub namespace reaches them with the rig's client
/// certificate, each node's certificate checked against its configured
/// name, and one whose certificate names another node is refused.
#[test]
fn berth_in_the_hub_reaches_the_nodes_over_mutual_tls_and_refuses_a_node_that_proves_another_name() {
    rig();
    let data = tempfile::tempdir().unwrap();
    let (child, said, addr) = serve(true, std::path::Path::new("/run/bsw/berth-tls.toml"), data.path());
    let answer = addr.as_ref().map(|addr| {
        let body = r#"{"language":"sh","code":"echo over tls"}"#;
        hub_curl(&["-X", "POST", "-H", "content-type: application/json", "-d", body, &format!("http://{addr}/v1/runs")])
            .0
    });
    stop_serve(child, data.path());
    assert!(said.contains("berth: swarm backend, manager reachable"), "{said}");
    let answer = answer.unwrap_or_else(|| panic!("berth serve did not listen: {said}"));
    assert!(answer.contains(r#""stdout":"over tls\n""#) && answer.contains(r#""node":"bsw-n"#), "{answer}");

    // The manager's address, the name of another node: its certificate does not prove it.
    let wrong = data.path().join("wrong.toml");
    let text = std::fs::read_to_string("/run/bsw/berth-tls.toml")
        .unwrap()
        .replace("manager_name = \"bsw-n1\"", "manager_name = \"bsw-n2\"");
    std::fs::write(&wrong, text).unwrap();
    let other = tempfile::tempdir().unwrap();
    let (child, said, _) = serve(true, &wrong, other.path());
    stop_serve(child, other.path());
    assert!(said.contains("swarm backend, engine not reachable yet") && said.contains("certificate"), "{said}");
}

/// An agent on the swarm over HTTP, under `berth serve` in the hub over
/// TLS: its port is published in host mode on its node alone and reached
/// at the address its view gives; exec, logs and stats reach its container
/// on that node; a run's output is followed as it comes; nothing is left.
#[test]
fn an_agent_on_the_swarm_is_reached_on_its_nodes_address_and_answers_exec_logs_and_stats() {
    let berth = Served::start();
    let agent = serde_json::json!({
        "id": "web", "image": "busybox:1.35", "ports": [8080],
        "command": ["sh", "-c", "echo serving; exec httpd -f -p 8080"]
    });
    let (created, status) = berth.post_json("/v1/agents", &agent);
    assert_eq!(status, 201, "{created}");
    // The agent goes with the test, however it ends.
    let removed = AgentGuard(&berth, "web");
    let node = created["node"].as_str().expect("the node it runs on").to_owned();
    assert!(NODES.contains(&node.as_str()), "{created}");
    let address = created["address"].as_str().expect("its node's address").to_owned();
    assert_eq!(address, format!("192.168.177.{}", node.trim_start_matches("bsw-n")), "{created}");
    let port = created["ports"][0]["host"].as_u64().expect("a published port");

    // httpd answers 404 for its empty root: an answer from the agent itself.
    assert_eq!(port_answers(&address, port, 404), 404, "the agent's port on {address}:{port}");
    let other = NODES.iter().find(|n| **n != node).unwrap();
    let elsewhere = format!("192.168.177.{}", other.trim_start_matches("bsw-n"));
    let (_, refused) = hub_curl(&["-m", "3", "-o", "/dev/null", &format!("http://{elsewhere}:{port}/")]);
    assert_eq!(refused, 0, "published on {other} too");

    let script = "echo from; pidof httpd >/dev/null && echo httpd runs";
    let (exec, status) = berth.post_json("/v1/agents/web/exec", &serde_json::json!({"cmd": ["sh", "-c", script]}));
    assert_eq!((status, exec["stdout"].as_str()), (200, Some("from\nhttpd runs\n")), "{exec}");
    let (logs, status) = berth.get_json("/v1/agents/web/logs");
    assert_eq!((status, logs["stdout"].as_str()), (200, Some("serving\n")), "{logs}");
    let (stats, status) = berth.get_json("/v1/agents/web/stats");
    assert_eq!(status, 200, "{stats}");
    assert!(stats["memory_used_bytes"].as_u64().unwrap_or(0) > 0 && stats["pids"].as_u64() >= Some(1), "{stats}");

    // A stop scales its service to zero (a container stopped under it
    // would be made again); a start makes its task anew, wherever the
    // manager places it, and the view says where.
    let (stopped, status) = berth.post_json("/v1/agents/web/stop", &serde_json::json!({}));
    assert_eq!((status, stopped["status"].as_str()), (200, Some("exited")), "{stopped}");
    let (started, status) = berth.post_json("/v1/agents/web/start", &serde_json::json!({}));
    assert_eq!((status, started["status"].as_str()), (200, Some("running")), "{started}");
    let address = started["address"].as_str().expect("its node's address").to_owned();
    assert_eq!(port_answers(&address, port, 404), 404, "the started agent's port on {address}:{port}");

    let run = serde_json::json!({"language": "sh", "code": "echo one; sleep 1; echo two", "wait": false});
    let (run, status) = berth.post_json("/v1/runs", &run);
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_str().unwrap();
    let (followed, status) = hub_curl(&["-m", "60", &berth.url(&format!("/v1/runs/{id}/logs?follow=true"))]);
    assert_eq!(status, 200, "{followed}");
    let one = followed.find("one").expect("the first line followed");
    assert!(followed[one..].contains("two") && followed.contains("succeeded"), "{followed}");

    removed.remove();
    drop(berth);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let agent = format!("{}=web", labels::OBJECT);
    assert_eq!(runtime.block_on(leftovers_labelled_within(&agent, Duration::from_secs(5))), Vec::<String>::new());
}

/// A workspace sandbox on the swarm, over HTTP under `berth serve` in the
/// hub: its task waits for berth's helper, which berth attaches to and
/// then copies in; commands, files and background processes go through
/// it; its home is a bounded tmpfs its user owns and may run files from;
/// the view names its node; a kill leaves nothing on any node (its home's
/// volume included).
#[test]
fn a_sandbox_runs_on_a_node_through_its_helper_and_leaves_nothing_when_killed() {
    assert!(std::env::var_os("BERTH_SANDBOX_HELPER").is_some(), "the tier needs BERTH_SANDBOX_HELPER");
    let berth = Served::start();
    let (made, status) = berth.post_json("/v1/sandboxes", &serde_json::json!({"timeout_seconds": 120}));
    assert_eq!((status, made["state"].as_str()), (201, Some("running")), "{made}");
    let id = made["sandbox_id"].as_str().unwrap().to_owned();
    let node = made["node"].as_str().expect("the sandbox's node").to_owned();
    assert!(NODES.contains(&node.as_str()), "{made}");
    let object = format!("{}={id}", labels::OBJECT);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(runtime.block_on(containers_labelled(&node, &object)).len(), 1, "its container is on {node}");

    let script = "echo hi; id -u; grep NoNewPrivs /proc/self/status; grep ' /home/user ' /proc/mounts; exit 4";
    let (ran, status) = berth.post_json(&format!("/v1/sandboxes/{id}/commands"), &serde_json::json!({"cmd": script}));
    assert_eq!((status, ran["exit_code"].as_i64()), (200, Some(4)), "{ran}");
    let out = ran["stdout"].as_str().unwrap();
    assert!(
        out.starts_with(
            "hi
1000
NoNewPrivs:	1
"
        ),
        "{ran}"
    );
    assert!(out.contains("size=524288k") && out.contains("uid=1000") && !out.contains("noexec"), "{ran}");

    let file = berth.url(&format!("/v1/sandboxes/{id}/files?path=/home/user/run.sh"));
    let (put, status) = hub_curl(&["-X", "PUT", "--data-binary", "echo ran from home", &file]);
    assert!((200..300).contains(&status), "{status} {put}");
    let (back, status) = hub_curl(&[&file]);
    assert_eq!((status, back.as_str()), (200, "echo ran from home"));
    let (ran, status) = berth
        .post_json(&format!("/v1/sandboxes/{id}/commands"), &serde_json::json!({"cmd": "chmod +x run.sh && ./run.sh"}));
    assert_eq!(
        (status, ran["stdout"].as_str()),
        (
            200,
            Some(
                "ran from home
"
            )
        ),
        "{ran}"
    );

    let (started, status) = berth.post_json(
        &format!("/v1/sandboxes/{id}/commands"),
        &serde_json::json!({"cmd": "echo one; sleep 0.3; echo two", "background": true}),
    );
    assert_eq!(status, 202, "{started}");
    let pid = started["pid"].as_u64().unwrap();
    let (output, status) = hub_curl(&["-m", "30", &berth.url(&format!("/v1/sandboxes/{id}/processes/{pid}/output"))]);
    assert_eq!(status, 200, "{output}");
    let events: Vec<serde_json::Value> = output.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let text: String = events.iter().filter(|e| e["event"] == "log").filter_map(|e| e["data"].as_str()).collect();
    assert_eq!(text, "one\ntwo\n", "{output}");

    // A paused task would still be running to the manager.
    let (refused, status) = berth.post_json(&format!("/v1/sandboxes/{id}/pause"), &serde_json::json!({}));
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("cannot_pause")), "{refused}");

    let (killed, status) = hub_curl(&["-X", "DELETE", &berth.url(&format!("/v1/sandboxes/{id}"))]);
    assert_eq!(status, 200, "{killed}");
    assert!(killed.contains("\"killed\""), "{killed}");
    drop(berth);
    assert_eq!(runtime.block_on(leftovers_labelled_within(&object, Duration::from_secs(10))), Vec::<String>::new());
}

/// A session on the swarm, over HTTP under `berth serve` in the hub: its
/// network is an overlay over the nodes; its relic is reported running only
/// once the engine's own check passes on its node (one that never passes is
/// reported failed and removed); an agent of the session,
/// placed on another node, reaches the relic by its alias; ending the
/// session takes the relic, the agent and the network.
#[test]
fn a_sessions_relic_is_health_gated_and_reached_by_its_alias_from_another_node() {
    let berth = Served::start();
    let session = format!("sw-session-{}", std::process::id());
    let (opened, status) = berth.post_json("/v1/sessions", &serde_json::json!({"session_id": session}));
    assert_eq!(status, 201, "{opened}");
    let network = opened["network_name"].as_str().expect("the session's network").to_owned();
    // Whatever the test ends with, the session goes with it.
    struct Ended<'a>(&'a Served, String);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            hub_curl(&["-X", "DELETE", &self.0.url(&format!("/v1/sessions/{}?force=true", self.1))]);
        }
    }
    let ended = Ended(&berth, session.clone());

    let relic_body = serde_json::json!({
        "relic_name": "cache", "session_id": session, "image": "busybox:1.35",
        "command": ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/health && exec httpd -f -p 8000 -h /tmp/www"],
        "health_check_endpoint": "/health", "health_check_timeout_seconds": 30
    });
    let (relic, status) = berth.post_json("/v1/relics", &relic_body);
    assert_eq!(status, 201, "{relic}");
    assert_eq!((&relic["status"], &relic["healthy"]), (&serde_json::json!("running"), &serde_json::json!(true)));
    assert_eq!(relic["network_id"], opened["network_id"], "{relic}");
    let url = relic["internal_url"].as_str().expect("its address in the session").to_owned();
    let mut sick = relic_body.clone();
    sick["relic_name"] = serde_json::json!("sick");
    sick["health_check_endpoint"] = serde_json::json!("/missing");
    sick["health_check_timeout_seconds"] = serde_json::json!(4);
    let (sick, status) = berth.post_json("/v1/relics", &sick);
    assert_eq!((status, &sick["status"]), (201, &serde_json::json!("failed")), "{sick}");
    assert!(sick["error"].as_str().unwrap_or_default().contains("last logs"), "{sick}");

    let peer = serde_json::json!({
        "id": "sw-peer", "image": "python:3.11-slim", "network": network, "session_id": session,
        "command": ["sleep", "300"]
    });
    let (peer, status) = berth.post_json("/v1/agents", &peer);
    assert_eq!(status, 201, "{peer}");
    let session_label = format!("{}={session}", labels::SESSION);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut relic_on = Vec::new();
    for node in NODES {
        if !runtime.block_on(containers_labelled(node, &session_label)).is_empty()
            && Some(node) != peer["node"].as_str()
        {
            relic_on.push(node);
        }
    }
    assert_eq!(relic_on.len(), 1, "the relic and its peer on two nodes: the peer on {}", peer["node"]);

    // The overlay teaches each node its peers' endpoints by gossip, which
    // a loaded machine delays: the alias resolves on the peer's node only
    // once the relic's service is in that node's view of the network.
    let peer_node = peer["node"].as_str().expect("the peer's node").to_owned();
    let knows_relic = |view: &serde_json::Value| {
        view["Services"].as_object().is_some_and(|services| {
            services.iter().any(|(name, s)| {
                name.starts_with("berth-relic-") && s["Tasks"].as_array().is_some_and(|t| !t.is_empty())
            })
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut view = rig::overlay_view(&peer_node, &network);
    while !knows_relic(&view) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        view = rig::overlay_view(&peer_node, &network);
    }
    assert!(knows_relic(&view), "{peer_node} never learned the relic on {}: {view}", relic_on[0]);
    // busybox's wget, a static glibc build, crashes on these nodes.
    let fetch = format!(
        "import urllib.request; print(urllib.request.urlopen('{url}/health', timeout=5).read().decode(), end='')"
    );
    // The view may lead the node's resolver by a moment, so the fetch is
    // tried for up to 30 s and its last answer judged.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (got, status) = loop {
        let (got, status) =
            berth.post_json("/v1/agents/sw-peer/exec", &serde_json::json!({"cmd": ["python3", "-c", fetch]}));
        if got["stdout"] == "ok\n" || std::time::Instant::now() > deadline {
            break (got, status);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        (status, got["stdout"].as_str()),
        (200, Some("ok\n")),
        "from {} to {}: {got}",
        peer["node"],
        relic_on[0]
    );

    std::mem::forget(ended);
    let (cleanup, status) = hub_curl(&["-X", "DELETE", &berth.url(&format!("/v1/sessions/{session}?force=true"))]);
    assert_eq!(status, 200, "{cleanup}");
    let cleanup: serde_json::Value = serde_json::from_str(&cleanup).unwrap();
    assert_eq!(cleanup["containers_removed"].as_array().map(Vec::len), Some(2), "{cleanup}");
    assert_eq!(cleanup["networks_removed"], serde_json::json!([network]), "{cleanup}");
    drop(berth);
    let left = runtime.block_on(leftovers_labelled_within(&session_label, Duration::from_secs(10)));
    assert_eq!(left, Vec::<String>::new());
}

/// Warm pools on the swarm: a member is a service whose task the manager
/// places on some node, attached on that node once it runs (its ready line
/// replayed from the node's logs) and handed its script through stdin that
/// is never closed; a code run takes a ready member, its view naming that
/// member's node, and the pool makes another. Nothing is left once berth
/// stops.
#[test]
fn a_code_run_on_the_swarm_takes_a_ready_member_on_its_node_and_the_pool_refills() {
    let berth = Served::start_pooled(1);
    let sh_pool = |berth: &Served| {
        let (pools, _) = berth.get_json("/v1/pools");
        pools.as_array().and_then(|p| p.iter().find(|p| p["name"] == "sh").cloned()).unwrap_or_default()
    };
    let until_idle = |refills: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let pool = sh_pool(&berth);
            if pool["idle"] == 1 && pool["refills"].as_u64() >= Some(refills) {
                return pool;
            }
            assert!(std::time::Instant::now() < deadline, "the sh pool is {pool} after 60 s");
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    until_idle(1);
    let body = serde_json::json!({"language": "sh", "code": "echo pooled; echo err >&2; exit 3"});
    let (run, status) = berth.post_json("/v1/runs", &body);
    assert_eq!(status, 201, "{run}");
    assert_eq!(
        (run["path"].as_str(), run["status"].as_str(), run["exit_code"].as_i64()),
        (Some("pooled"), Some("failed"), Some(3)),
        "{run}"
    );
    assert_eq!((run["stdout"].as_str(), run["stderr"].as_str()), (Some("pooled\n"), Some("err\n")), "{run}");
    assert!(NODES.contains(&run["node"].as_str().unwrap_or_default()), "the member's node: {run}");
    let pool = until_idle(2);
    assert_eq!(pool["hits"], 1, "{pool}");

    drop(berth);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let members = format!("{}=sh", labels::POOL);
    assert_eq!(runtime.block_on(leftovers_labelled_within(&members, Duration::from_secs(30))), Vec::<String>::new());
}

/// Binds on the swarm: a host folder is mounted only on the nodes labelled
/// as holding its bind root, so an agent whose code comes from one is
/// placed on such a node and reads its code there; one whose root no node
/// is labelled as holding is refused with the label to set, and nothing
/// is made.
#[test]
fn an_agents_code_bind_places_it_on_the_node_holding_its_root_or_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let folder = |prefix: &str| tempfile::Builder::new().prefix(prefix).tempdir_in("/tmp").unwrap();
    let (held, unheld) = (folder("berth-swarm-root-"), folder("berth-swarm-unheld-"));
    let code = held.path().join("coder");
    std::fs::create_dir(&code).unwrap();
    std::fs::write(code.join("hello.txt"), "from the held root\n").unwrap();
    for dir in [held.path(), &code] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let roots = format!("{}:{}", held.path().display(), unheld.path().display());
    let berth = Served::start_with(&[("BERTH_BIND_ROOTS", &roots)]);

    let (key, value) = berth_swarm::service::root_label(held.path());
    let label = |flag: &str, arg: &str| {
        std::process::Command::new("docker")
            .args(["-H", "unix:///run/bsw/n1.sock", "node", "update", flag, arg, "bsw-n3"])
            .output()
            .unwrap()
    };
    assert!(label("--label-add", &format!("{key}={value}")).status.success());
    struct Unlabelled<F: Fn(&str, &str) -> std::process::Output>(F, String);
    impl<F: Fn(&str, &str) -> std::process::Output> Drop for Unlabelled<F> {
        fn drop(&mut self) {
            (self.0)("--label-rm", &self.1);
        }
    }
    let _unlabelled = Unlabelled(label, key.clone());

    let agent = serde_json::json!({
        "id": "coder", "image": "busybox:1.35", "code_dir": code.display().to_string(), "command": ["sleep", "300"]
    });
    let (created, status) = berth.post_json("/v1/agents", &agent);
    assert_eq!(status, 201, "{created}");
    let removed = AgentGuard(&berth, "coder");
    assert_eq!(created["node"].as_str(), Some("bsw-n3"), "the one node holding the root: {created}");
    let (read, status) =
        berth.post_json("/v1/agents/coder/exec", &serde_json::json!({"cmd": ["cat", "/app/agent/hello.txt"]}));
    assert_eq!((status, read["stdout"].as_str()), (200, Some("from the held root\n")), "{read}");
    removed.remove();

    let elsewhere = unheld.path().join("lost");
    std::fs::create_dir(&elsewhere).unwrap();
    let agent =
        serde_json::json!({"id": "homeless", "image": "busybox:1.35", "code_dir": elsewhere.display().to_string()});
    let (refused, status) = berth.post_json("/v1/agents", &agent);
    let _gone = AgentGuard(&berth, "homeless");
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("engine_refused")), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    let (key, value) = berth_swarm::service::root_label(unheld.path());
    assert!(message.contains(&format!("docker node update --label-add '{key}={value}'")), "{refused}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for id in ["coder", "homeless"] {
        let mine = format!("{}={id}", labels::OBJECT);
        assert_eq!(runtime.block_on(leftovers_labelled_within(&mine, Duration::from_secs(5))), Vec::<String>::new());
    }
}

/// A task's container left on its node after its service went (removed
/// while the node was away, and not cleaned up by its agent): the swarm
/// backend lists it on its node, and the reaper removes it once expired.
#[tokio::test]
async fn the_reaper_removes_an_expired_container_a_gone_service_left_on_a_node() {
    let swarm = backend();
    let left_on = node_docker("bsw-n3");
    let labels = std::collections::BTreeMap::from([
        (labels::MANAGED.to_owned(), "true".to_owned()),
        (labels::TENANT.to_owned(), "sw-orphan".to_owned()),
        (labels::OBJECT.to_owned(), "run_orphan".to_owned()),
        (format!("{ANNOTATION_PREFIX}{}", annotations::EXPIRES_AT), "2020-01-01T00:00:00Z".to_owned()),
        ("com.docker.swarm.service.id".to_owned(), "a-service-long-gone".to_owned()),
    ]);
    let config = engine_api::models::ContainerConfig {
        image: Some("busybox:1.35".into()),
        cmd: Some(vec!["sleep".into(), "300".into()]),
        labels: Some(labels),
        ..Default::default()
    };
    let made = left_on.create_container(Some("berth-run-orphan.1.left"), &config).await.unwrap();
    left_on.start_container(&made.id).await.unwrap();
    assert_eq!(leftovers_now("sw-orphan").await.len(), 1);

    let engine: Arc<dyn Engine> = swarm;
    let listed = engine.list(&berth_core::engine::Selector::managed().tenant("sw-orphan")).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].handle.placement, Placement::Node { name: "bsw-n3".into() });
    let ctx = Context::new(
        engine,
        Policy::new(PolicyConfig::default()),
        Arc::new(Store::in_memory().unwrap()),
        Arc::new(RandomIds),
        Arc::new(SystemClock),
    );
    let reaper = berth_core::lifetime::reaper::Reaper::new(&ctx, Duration::from_secs(3600));
    let removed = reaper.sweep().await.unwrap();
    assert!(removed.iter().any(|n| n.contains("berth-run-orphan")), "{removed:?}");
    assert_eq!(leftovers("sw-orphan").await, Vec::<String>::new());
}
