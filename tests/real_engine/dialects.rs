//! The five seed dialects, over the real engine: every request and response
//! example of each seed's documentation, sent as written.

use test_support as support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use berth_api::dialects::{Dialect, SeedEnv};
use berth_api::native::{AppState, Tokens};
use berth_core::engine::Handle;
use berth_core::policy::{Policy, PolicyConfig};
use futures_util::StreamExt;
use serde_json::json;
use support::api::{core_with, send, unique};

fn dialect(d: Dialect, tokens: &[(&str, &str)], bind_roots: &[&str]) -> (Router, AppState) {
    let policy =
        Policy::new(PolicyConfig { bind_roots: bind_roots.iter().map(Into::into).collect(), ..Default::default() });
    let tokens = tokens.iter().map(|(t, n)| (t.to_string(), n.to_string())).collect();
    let mut state = AppState::new(core_with(policy), Tokens(tokens));
    state.keepalive = Duration::from_millis(500);
    (d.router(state.clone(), Arc::new(SeedEnv::default())), state)
}

/// Cortex-Prime's README: execute a tool, start a relic, get stats, clean up the session.
#[tokio::test]
async fn cortex_tool_relic_stats_and_cleanup_examples_work_as_documented() {
    let (api, _) = dialect(Dialect::Cortex, &[], &[]);
    let tool = json!({
        "tool_name": "pdf_extractor",
        "session_id": "session_abc123",
        "parameters": {"file": "document.pdf"},
        "image": "cortex/tool-pdf-extractor:latest",
        "resource_limits": {"memory_mb": 512, "cpu_limit": 1.0, "timeout_seconds": 300},
        "cleanup": true
    });
    let ran = send(&api, "POST", "/containers/tool/execute", None, Some(tool)).await;
    assert_eq!(ran.status, StatusCode::OK, "{}", ran.text);
    assert_eq!((&ran.json["status"], &ran.json["success"]), (&json!("succeeded"), &json!(true)));
    assert_eq!(ran.json["result"], json!({"tool": "pdf_extractor", "file": "document.pdf", "pages": 1}));
    assert_eq!((&ran.json["tool_name"], &ran.json["session_id"]), (&json!("pdf_extractor"), &json!("session_abc123")));
    assert_eq!(ran.json["container_removed"], true, "cleanup: true");
    let id = ran.json["execution_id"].as_str().unwrap().to_owned();
    let got = send(&api, "GET", &format!("/containers/tool/{id}"), None, None).await;
    assert_eq!(got.json["result"], ran.json["result"]);
    let logs = send(&api, "GET", &format!("/containers/tool/{id}/logs"), None, None).await;
    assert!(logs.json["stdout"].as_str().unwrap().contains("pdf_extractor"));
    let cancel = send(&api, "POST", &format!("/containers/tool/{id}/cancel"), None, None).await;
    assert_eq!(cancel.json["cancelled"], false, "a finished execution is not cancelled");
    let missing = send(&api, "GET", "/containers/tool/run_nope", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.json["detail"].is_string(), "FastAPI's error shape: {}", missing.text);

    let relic = json!({
        "relic_name": "research_cache",
        "session_id": "session_abc123",
        "image": "cortex/relic-research-cache:latest",
        "resource_limits": {"memory_mb": 1024, "cpu_limit": 2.0, "timeout_seconds": 600},
        "create_private_network": true,
        "health_check_endpoint": "/health",
        "health_check_timeout_seconds": 30
    });
    let started = send(&api, "POST", "/containers/relic/start", None, Some(relic)).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let r = &started.json;
    for key in [
        "relic_id",
        "relic_name",
        "session_id",
        "status",
        "container_id",
        "container_name",
        "network_id",
        "internal_url",
        "healthy",
    ] {
        assert!(!r[key].is_null(), "{key} missing from {r}");
    }
    assert!(r["relic_id"].as_str().unwrap().starts_with("relic_"));
    assert_eq!((&r["relic_name"], &r["session_id"]), (&json!("research_cache"), &json!("session_abc123")));
    assert_eq!((&r["status"], &r["healthy"]), (&json!("running"), &json!(true)));
    let name = r["container_name"].as_str().unwrap();
    assert!(name.starts_with("relic_research_cache_session_abc123_"), "{name}");
    assert_eq!(r["internal_url"], json!(format!("http://{name}:8000")));
    let expires: chrono::DateTime<chrono::Utc> = r["expires_at"].as_str().unwrap().parse().unwrap();
    let lifetime = expires - chrono::Utc::now();
    assert!(
        lifetime > chrono::Duration::seconds(500) && lifetime <= chrono::Duration::seconds(600),
        "timeout_seconds is its lifetime"
    );
    let rid = r["relic_id"].as_str().unwrap().to_owned();

    let one = send(&api, "GET", &format!("/containers/relic/{rid}"), None, None).await;
    assert_eq!(one.json["container_name"], r["container_name"]);
    let listed = send(&api, "GET", "/containers/relic?session_id=session_abc123", None, None).await;
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
    let stats = send(&api, "GET", "/containers/stats", None, None).await;
    let mine = stats.json["containers"].as_array().unwrap().iter().find(|c| c["object_id"] == json!(rid)).cloned();
    assert_eq!(mine.expect("the relic is in the stats")["memory_limit_mb"], json!(1024.0));
    let by_id = send(&api, "GET", &format!("/containers/stats/{rid}"), None, None).await;
    assert!(by_id.json["memory_usage_mb"].as_f64().is_some_and(|m| m > 0.0), "{}", by_id.text);
    let stopped = send(&api, "POST", &format!("/containers/relic/{rid}/stop"), None, None).await;
    assert_eq!(stopped.json["status"], "stopped");

    let cleanup = json!({"session_id": "session_abc123", "force": true});
    let cleaned = send(&api, "POST", "/containers/cleanup/session", None, Some(cleanup)).await;
    assert_eq!(cleaned.status, StatusCode::OK, "{}", cleaned.text);
    assert_eq!(
        cleaned.json["networks_removed"],
        json!([berth_core::sessions::network_name("default", "session_abc123")])
    );
    let deleted = send(&api, "DELETE", &format!("/containers/relic/{rid}"), None, None).await;
    assert_eq!(deleted.json["deleted"], true);
    let nets = send(&api, "POST", "/containers/cleanup/all-networks", None, None).await;
    assert_eq!(nets.status, StatusCode::OK);
    let bad = send(&api, "POST", "/containers/tool/execute", None, Some(json!({"tool_name": "x"}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// LAIS's README: deploy, list, details, start/stop, metrics, logs (read
/// and streamed over a WebSocket), remove, and the three health routes.
#[tokio::test]
async fn lais_deploys_an_agent_with_its_code_read_only_and_manages_it_as_documented() {
    let agents_dir = tempfile::tempdir().unwrap();
    let code = agents_dir.path().join("agent-code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.py"), "print('hi')\n").unwrap();
    let (api, _state) = dialect(Dialect::Lais, &[], &[agents_dir.path().to_str().unwrap()]);
    let id = unique("lais");
    let body = json!({"agent_id": id, "code_path": code.to_str().unwrap(), "env": {"MODEL": "small"}});
    let deployed = send(&api, "POST", "/api/deploy", None, Some(body)).await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.text);
    assert_eq!((&deployed.json["id"], &deployed.json["status"]), (&json!(id), &json!("running")));
    assert_eq!(deployed.json["image"], "laias/agent-runner:latest");

    let cid = Handle::local(deployed.json["container_id"].as_str().unwrap().to_owned());
    let engine = support::api::engine();
    let ro = engine
        .io(&cid)
        .unwrap()
        .exec_to_end(
            &cid,
            &berth_core::engine::ExecRequest {
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "cat /app/agent/main.py; touch /app/agent/x 2>&1 || echo read-only".into(),
                ],
                ..Default::default()
            },
            4096,
        )
        .await
        .unwrap();
    assert!(ro.stdout.contains("print('hi')") && ro.stdout.contains("read-only"), "{ro:?}");

    let list = send(&api, "GET", "/api/containers", None, None).await;
    assert!(list.json.as_array().unwrap().iter().any(|c| c["id"] == json!(id)));
    let details = send(&api, "GET", &format!("/api/containers/{id}"), None, None).await;
    assert_eq!(details.json["container_id"], deployed.json["container_id"]);
    let metrics = send(&api, "GET", &format!("/api/containers/{id}/metrics"), None, None).await;
    assert!(metrics.json["memory_usage_mb"].as_f64().is_some(), "{}", metrics.text);
    let logs = send(&api, "GET", &format!("/api/containers/{id}/logs?tail=10"), None, None).await;
    assert!(logs.json["logs"].as_str().unwrap().contains("agent-runner: starting\nmain.py"), "{}", logs.text);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = api.clone();
    let server = tokio::spawn(async move { axum::serve(listener, served).await });
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/containers/{id}/logs/stream")).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("agent-runner: starting"), "{first:?}");
    server.abort();

    let stopped = send(&api, "POST", &format!("/api/containers/{id}/stop"), None, None).await;
    assert_eq!(stopped.json["status"], "exited");
    let started = send(&api, "POST", &format!("/api/containers/{id}/start"), None, None).await;
    assert_eq!(started.json["status"], "running");
    for (path, key) in
        [("/api/health", "status"), ("/api/health/docker", "connected"), ("/api/health/containers", "total")]
    {
        let h = send(&api, "GET", path, None, None).await;
        assert_eq!(h.status, StatusCode::OK, "{path}");
        assert!(!h.json[key].is_null(), "{path}: {}", h.text);
    }
    let removed = send(&api, "DELETE", &format!("/api/containers/{id}"), None, None).await;
    assert_eq!(removed.json["removed"], true);
    let gone = send(&api, "GET", &format!("/api/containers/{id}"), None, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let outside = json!({"agent_id": unique("lais"), "code_path": "/etc"});
    let refused = send(&api, "POST", "/api/deploy", None, Some(outside)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "code outside the bind roots: {}", refused.text);
}

/// Warder's manual test: start (creating the container from its
/// container_config), logs, stats, stop, with a bearer token.
#[tokio::test]
async fn warder_starts_creates_reads_and_stops_an_agent_container_as_documented() {
    let (api, state) = dialect(Dialect::Warder, &[("YOUR_TOKEN", "warder-user")], &[]);
    let token = Some("YOUR_TOKEN");
    let id = unique("warder");
    let config = json!({"container_config": {
        "image": "warder/agent:latest",
        "memory_limit": "512m",
        "cpu_limit": 0.5,
        "env_vars": {"TEST_VAR": "test_value"}
    }});
    let started = send(&api, "POST", &format!("/api/agents/{id}/start"), token, Some(config)).await;
    assert_eq!(started.json, json!({"message": "Agent container started successfully"}), "{}", started.text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = send(&api, "GET", &format!("/api/agents/{id}/logs"), token, None).await;
    let text = logs.json["logs"].as_str().unwrap();
    assert!(text.contains("warder agent up") && text.contains("TEST_VAR=test_value"), "{text}");
    let last = send(&api, "GET", &format!("/api/agents/{id}/logs?lines=1"), token, None).await;
    assert_eq!(last.json["logs"], "TEST_VAR=test_value\n");
    let stats = send(&api, "GET", &format!("/api/agents/{id}/stats"), token, None).await;
    assert!(stats.json["stats"]["cpu_usage"].as_str().unwrap().ends_with('%'), "{}", stats.text);
    assert!(stats.json["stats"]["memory_usage"].as_str().unwrap().ends_with("MB"));
    assert_eq!(stats.json["stats"]["memory_limit"], "512MB");
    let record = state.core.agent_record("warder-user", &id).unwrap();
    assert_eq!(record.definition.network.as_deref(), Some("warder_network"));
    assert_eq!(record.published.len(), 1, "a port from the pool");
    assert!((9000..=9500).contains(&record.published[0].host));

    let stopped = send(&api, "POST", &format!("/api/agents/{id}/stop"), token, None).await;
    assert_eq!(stopped.json, json!({"message": "Agent container stopped successfully"}));
    let again = send(&api, "POST", &format!("/api/agents/{id}/start"), token, None).await;
    assert_eq!(again.json["message"], "Agent container started successfully", "started again without a body");
    let unknown = send(&api, "POST", &format!("/api/agents/{}/stop", unique("nobody")), token, None).await;
    assert_eq!((unknown.status, &unknown.json), (StatusCode::NOT_FOUND, &json!({"detail": "Agent not found"})));
    let anonymous = send(&api, "GET", &format!("/api/agents/{id}/logs"), None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    state.core.remove_agent("warder-user", &id).await.unwrap();
}

/// docker-spawner's README: health, spawn (with its labels), status, exec, stop.
#[tokio::test]
async fn spawner_spawns_execs_and_stops_a_bead_container_as_documented() {
    std::fs::create_dir_all("/worktrees/tidepool-abc").unwrap();
    let (api, _state) = dialect(Dialect::Spawner, &[], &["/worktrees"]);
    let health = send(&api, "GET", "/health", None, None).await;
    assert_eq!((health.status, health.text.as_str()), (StatusCode::OK, "\"OK\""));

    let example = json!({
        "bead_id": "tidepool-abc",
        "worktree_path": "/worktrees/tidepool-abc",
        "backend": "claude",
        "uid": 1000,
        "gid": 1000,
        "expires_at": "2026-01-26T00:00:00Z"
    });
    // The README's expiry is in the past by now: refused, clearly, with nothing made.
    let past = send(&api, "POST", "/spawn", None, Some(example.clone())).await;
    assert_eq!(past.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", past.text);
    assert!(past.json["detail"].as_str().unwrap().contains("in the past"), "{}", past.text);
    let status = send(&api, "GET", "/status/tidepool-abc", None, None).await;
    assert_eq!(status.json, json!({"status": "not_found"}));

    let mut body = example;
    body["expires_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339());
    let spawned = send(&api, "POST", "/spawn", None, Some(body)).await;
    assert_eq!(spawned.status, StatusCode::OK, "{}", spawned.text);
    assert_eq!(spawned.json["hostname"], "tidepool-agent-tidepool-abc");
    let cid = Handle::local(spawned.json["container_id"].as_str().unwrap().to_owned());
    let labels = support::api::engine().inspect(&cid).await.unwrap().labels;
    assert_eq!(labels["com.tidepool.bead_id"], "tidepool-abc");
    assert_eq!(labels["com.tidepool.role"], "agent");
    assert!(labels["com.tidepool.expires_at"].starts_with(&chrono::Utc::now().format("%Y-").to_string()));

    let status = send(&api, "GET", "/status/tidepool-abc", None, None).await;
    assert_eq!(status.json, json!({"status": "running"}));
    let hello = send(&api, "POST", "/exec/tidepool-abc", None, Some(json!({"cmd": ["echo", "hello"]}))).await;
    assert_eq!(hello.text, r#"{"exit_code":0,"stdout":"hello\n","stderr":""}"#);
    let full = json!({"cmd": ["sh", "-c", "pwd; id -u; echo $EXTRA"], "workdir": "/workspace", "env": ["EXTRA=yes"]});
    let ran = send(&api, "POST", "/exec/tidepool-agent-tidepool-abc", None, Some(full)).await;
    assert_eq!(ran.json["stdout"], "/workspace\n1000\nyes\n", "{}", ran.text);

    let stopped = send(&api, "POST", "/stop/tidepool-abc", None, None).await;
    assert_eq!(stopped.status, StatusCode::OK);
    let status = send(&api, "GET", "/status/tidepool-abc", None, None).await;
    assert_eq!(status.json, json!({"status": "not_found"}));
    assert!(support::api::engine().inspect(&cid).await.is_err(), "stopped and removed");
}

/// CodeRunner's README: status, health, and code executed in a sandbox with no network.
#[tokio::test]
async fn coderunner_executes_code_in_a_sandbox_without_network_as_documented() {
    let (api, _) = dialect(Dialect::Coderunner, &[], &[]);
    let root = send(&api, "GET", "/", None, None).await;
    assert_eq!(root.json["status"], "running");
    let health = send(&api, "GET", "/health", None, None).await;
    assert_eq!((health.status, &health.json["status"]), (StatusCode::OK, &json!("healthy")));
    let example = json!({"code": "print(\"Hello from CodeRunner!\")", "language": "python", "timeout": 30});
    let ran = send(&api, "POST", "/execute", None, Some(example)).await;
    assert_eq!(ran.status, StatusCode::OK, "{}", ran.text);
    assert_eq!((&ran.json["success"], &ran.json["output"]), (&json!(true), &json!("Hello from CodeRunner!\n")));
    assert_eq!(ran.json["exit_code"], 0);

    let reach = "import socket\ntry:\n    socket.create_connection(('172.17.0.1', 80), timeout=2)\n    print('reached')\nexcept OSError as e:\n    print('no network:', e.errno)";
    let offline = send(&api, "POST", "/execute", None, Some(json!({"code": reach, "language": "python"}))).await;
    assert!(offline.json["output"].as_str().unwrap().starts_with("no network"), "{}", offline.text);
    let slow = json!({"code": "import time\ntime.sleep(30)", "language": "python", "timeout": 1});
    let timed = send(&api, "POST", "/execute", None, Some(slow)).await;
    assert_eq!((&timed.json["success"], &timed.json["status"]), (&json!(false), &json!("timed_out")));
    let unknown = send(&api, "POST", "/execute", None, Some(json!({"code": "x", "language": "cobol"}))).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

/// `berth serve --dialect NAME=ADDR`: each dialect on its own listener, said at start-up.
#[test]
fn berth_serve_puts_each_dialect_on_its_own_listener_and_refuses_an_unknown_one() {
    use std::io::{BufRead, BufReader, Read, Write};
    let data = tempfile::tempdir().unwrap();
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--dialect", "kubernetes", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown dialect \"kubernetes\""));

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--dialect", "spawner=127.0.0.1:0", "--dialect"])
        .arg("coderunner=127.0.0.1:0")
        .arg("--data")
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut listeners = std::collections::BTreeMap::new();
    for _ in 0..20 {
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("berth: listening on http://") {
            listeners.insert("native".to_owned(), addr.to_owned());
        } else if let Some((who, addr)) =
            line.strip_prefix("berth: ").and_then(|l| l.split_once(" listening on http://"))
        {
            listeners.insert(who.to_owned(), addr.to_owned());
        }
        if listeners.len() == 3 {
            break;
        }
    }
    let get = |addr: &str, path: &str| {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        write!(conn, "GET {path} HTTP/1.1\r\nhost: berth\r\nconnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    };
    let spawner = get(&listeners["dialect spawner"], "/health");
    assert!(spawner.starts_with("HTTP/1.1 200") && spawner.ends_with("\"OK\""), "{spawner}");
    let coderunner = get(&listeners["dialect coderunner"], "/");
    assert!(coderunner.contains("\"status\":\"running\""), "{coderunner}");
    let native = get(&listeners["native"], "/v1/health");
    assert!(native.starts_with("HTTP/1.1 200"), "{native}");
    assert!(native.contains(r#"{"runtime":"docker-runsc","probe":"ok""#), "the engine's runsc is listed: {native}");
    let store = berth_core::store::Store::open(&data.path().join("berth.db")).unwrap();
    let instance = store.instance_id(|| panic!("berth serve made its instance id")).unwrap();
    let cgroups = berth_oci::runtime::cgroup::Layout::detect().dirs(&berth::sealed::cgroup_root(&instance));
    assert!(cgroups.iter().any(|d| d.is_dir()), "the runtimes' cgroup parents while it serves: {cgroups:?}");
    std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(cgroups.iter().all(|d| !d.exists()), "gone once it stopped: {cgroups:?}");
}
