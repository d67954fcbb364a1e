//! Every route of the native API and of the seed dialects over recorded
//! fixtures: the core over the docker backend over a replay (suite `http`),
//! with sequential ids and a fixed clock, driven through the routers as a
//! client would. `scripts/record-fixtures.sh` records them.
//!
//! Routes that never ask the engine (`/openapi.json`, `/v1/pools`,
//! `/v1/metrics`, LAIS's `/api/health`) ride along in flows that do; their
//! answers leave the recordings unchanged. None is left out.

use test_support as support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use berth_api::dialects::{Dialect, SeedEnv};
use berth_api::native::{app, AppState, Tokens};
use berth_core::context::Context;
use berth_core::policy::{Policy, PolicyConfig};
use berth_core::store::Store;
use berth_core::{Core, Options};
use berth_docker::fixture::Fixture;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::api::send;

struct Flow {
    state: AppState,
    fixture: Fixture,
}

fn flow(name: &str) -> Flow {
    let fixture = Fixture::open("http", name)
        .unwrap_or_else(|e| panic!("{e}\n(recordings are made by scripts/record-fixtures.sh)"));
    let policy = Policy::new(PolicyConfig { bind_roots: vec!["/tmp".into()], ..Default::default() });
    let options = Options { ports: berth_core::agents::PortRange { first: 19600, last: 19609 }, ..Default::default() };
    let store = Arc::new(Store::in_memory().unwrap());
    let core = Arc::new(Core::new(
        Context::new(fixture.backend(), policy, store, fixture.ids(), fixture.clock.clone()),
        options,
    ));
    let tokens = Tokens([("fx-token".to_owned(), "fx-tenant".to_owned())].into());
    let mut state = AppState::new(core, tokens);
    state.keepalive = Duration::from_secs(30);
    Flow { state, fixture }
}

impl Flow {
    fn api(&self) -> Router {
        app(self.state.clone())
    }

    fn dialect(&self, d: Dialect) -> Router {
        d.router(self.state.clone(), Arc::new(SeedEnv::default()))
    }

    fn finish(self) {
        if let Err(e) = self.fixture.finish() {
            panic!("{e}")
        }
    }
}

/// Every request is the fixture tenant's, so containers of other tenants on
/// the recording daemon never show in its lists.
const T: Option<&str> = Some("fx-token");

/// The WebSocket handshake to `path`, with the fixture tenant's token.
fn ws_request(addr: std::net::SocketAddr, path: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    req.headers_mut().insert("authorization", "Bearer fx-token".parse().unwrap());
    req
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test]
async fn runs_and_ops_routes_answer_over_a_recording() {
    let f = flow("native_runs");
    let api = f.api();
    let run = send(&api, "POST", "/v1/runs", T, Some(json!({"language": "sh", "code": "echo '{\"n\": 1}'"}))).await;
    assert_eq!((run.status, &run.json["result"]), (StatusCode::CREATED, &json!({"n": 1})), "{}", run.text);
    let id = run.json["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&api, "GET", &format!("/v1/runs/{id}"), T, None).await.json["status"], "succeeded");
    assert_eq!(send(&api, "GET", "/v1/runs", T, None).await.json.as_array().unwrap().len(), 1);
    let logs = send(&api, "GET", &format!("/v1/runs/{id}/logs"), T, None).await;
    assert_eq!(logs.json["stdout"], "{\"n\": 1}\n");
    let followed = ndjson(&send(&api, "GET", &format!("/v1/runs/{id}/logs?follow=true"), T, None).await.text);
    assert_eq!(followed.last().unwrap()["exit_code"], 0);
    assert_eq!(send(&api, "POST", &format!("/v1/runs/{id}/cancel"), T, None).await.json["cancelled"], false);
    assert_eq!(send(&api, "GET", "/v1/health", T, None).await.json["backend"], "docker");
    assert_eq!(send(&api, "GET", "/v1/ready", T, None).await.json["engine"], "up");
    let audit = send(&api, "GET", "/v1/audit", T, None).await;
    assert!(!audit.json.as_array().unwrap().is_empty(), "{}", audit.text);

    // Pools are off in a fixture core: none listed, every pool family with
    // no samples; the run above is counted. These and the document never
    // ask the engine.
    assert_eq!(send(&api, "GET", "/v1/pools", T, None).await.json, json!([]));
    let metrics = send(&api, "GET", "/v1/metrics", T, None).await;
    assert_eq!(metrics.headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(metrics.text.contains("# TYPE berth_pool_hits counter\n"), "{}", metrics.text);
    assert!(!metrics.text.lines().any(|l| l.starts_with("berth_pool_")), "{}", metrics.text);
    let run =
        r#"berth_runs_finished_total{kind="code",path="cold",backend="docker",runtime="docker",status="succeeded"} 1"#;
    assert!(metrics.text.lines().any(|l| l == run), "the recorded run, counted: {}", metrics.text);
    assert!(metrics.text.ends_with("# EOF\n"), "{}", metrics.text);
    let doc = send(&api, "GET", "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    for path in ["/v1/runs", "/v1/agents/{id}/exec", "/v1/relics/{id}/stats", "/v1/sessions/{id}", "/v1/metrics"] {
        assert!(doc.json["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    f.finish();
}

#[tokio::test]
async fn every_agent_route_answers_over_a_recording() {
    let f = flow("native_agent");
    let api = f.api();
    let body = json!({"id": "fx-agent", "image": "busybox:1.35", "command": ["sh", "-c", "echo up; exec sleep 600"]});
    let a = send(&api, "POST", "/v1/agents", T, Some(body)).await;
    assert_eq!((a.status, &a.json["status"]), (StatusCode::CREATED, &json!("running")), "{}", a.text);
    assert_eq!(send(&api, "GET", "/v1/agents/fx-agent", T, None).await.json["status"], "running");
    assert_eq!(send(&api, "GET", "/v1/agents", T, None).await.json[0]["status"], "running");
    let stats = send(&api, "GET", "/v1/agents/fx-agent/stats", T, None).await;
    assert!(stats.json["memory_used_bytes"].as_u64().is_some(), "{}", stats.text);
    let exec = json!({"cmd": ["sh", "-c", "echo out; echo err >&2; exit 5"]});
    let ran = send(&api, "POST", "/v1/agents/fx-agent/exec", T, Some(exec)).await;
    assert_eq!(ran.json, json!({"exit_code": 5, "stdout": "out\n", "stderr": "err\n"}));

    // The interactive exec, through a real socket, over the recording.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = api.clone();
    let server = tokio::spawn(async move { axum::serve(listener, served).await });
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(addr, "/v1/agents/fx-agent/exec/ws")).await.unwrap();
    use tokio_tungstenite::tungstenite::Message;
    let cmd = json!({"cmd": ["sh", "-c", "read line; echo got:$line"]});
    ws.send(Message::Text(cmd.to_string().into())).await.unwrap();
    ws.send(Message::Text("hi\n".into())).await.unwrap();
    ws.send(Message::Text(r#"{"eof": true}"#.into())).await.unwrap();
    let mut events = Vec::new();
    while let Some(Ok(Message::Text(t))) = ws.next().await {
        events.push(serde_json::from_str::<Value>(&t).unwrap());
    }
    server.abort();
    let out: String = events.iter().filter(|e| e["event"] == "log").map(|e| e["data"].as_str().unwrap()).collect();
    assert_eq!(out, "got:hi\n");
    assert_eq!(events.last().unwrap()["exit_code"], 0);

    let renew = json!({"expires_at": "2026-01-01T05:00:00Z"});
    assert_eq!(send(&api, "POST", "/v1/agents/fx-agent/renew", T, Some(renew)).await.status, StatusCode::OK);
    let stopped = send(&api, "POST", "/v1/agents/fx-agent/stop?grace_seconds=1", T, None).await;
    assert_eq!(stopped.json["status"], "exited");
    let logs = send(&api, "GET", "/v1/agents/fx-agent/logs", T, None).await;
    assert_eq!(logs.json["stdout"], "up\n");
    let followed = ndjson(&send(&api, "GET", "/v1/agents/fx-agent/logs?follow=true", T, None).await.text);
    assert_eq!(followed.last().unwrap()["event"], "exit", "{followed:?}");
    assert_eq!(send(&api, "POST", "/v1/agents/fx-agent/restart", T, None).await.json["status"], "running");
    assert_eq!(send(&api, "POST", "/v1/agents/fx-agent/start", T, None).await.json["status"], "running");
    assert_eq!(send(&api, "DELETE", "/v1/agents/fx-agent", T, None).await.status, StatusCode::NO_CONTENT);
    f.finish();
}

#[tokio::test]
async fn every_relic_and_session_route_answers_over_a_recording() {
    let f = flow("native_relic_session");
    let api = f.api();
    let opened = send(&api, "POST", "/v1/sessions", T, Some(json!({"session_id": "fx-s"}))).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    let relic = json!({"relic_name": "web", "session_id": "fx-s", "image": "busybox:1.35",
        "command": ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/health && exec httpd -f -p 8000 -h /tmp/www"],
        "health_check_endpoint": "/health", "health_check_timeout_seconds": 20});
    let r = send(&api, "POST", "/v1/relics", T, Some(relic)).await;
    assert_eq!((r.status, &r.json["healthy"]), (StatusCode::CREATED, &json!(true)), "{}", r.text);
    let rid = r.json["relic_id"].as_str().unwrap().to_owned();
    assert_eq!(send(&api, "GET", &format!("/v1/relics/{rid}"), T, None).await.json["status"], "running");
    assert_eq!(send(&api, "GET", "/v1/relics?session_id=fx-s", T, None).await.json.as_array().unwrap().len(), 1);
    assert!(send(&api, "GET", &format!("/v1/relics/{rid}/stats"), T, None).await.json["pids"].is_u64());
    assert!(send(&api, "GET", &format!("/v1/relics/{rid}/logs"), T, None).await.json["logs"].is_string());
    assert_eq!(send(&api, "GET", "/v1/sessions", T, None).await.json, json!(["fx-s"]));
    let session = send(&api, "GET", "/v1/sessions/fx-s", T, None).await;
    assert_eq!(session.json["containers"].as_array().unwrap().len(), 1);
    assert_eq!(send(&api, "POST", &format!("/v1/relics/{rid}/stop"), T, None).await.json["status"], "stopped");
    let ended = send(&api, "DELETE", "/v1/sessions/fx-s?force=true", T, None).await;
    assert_eq!(ended.json["networks_removed"], json!([berth_core::sessions::network_name("fx-tenant", "fx-s")]));
    assert_eq!(send(&api, "DELETE", &format!("/v1/relics/{rid}"), T, None).await.status, StatusCode::NO_CONTENT);
    f.finish();
}

#[tokio::test]
async fn the_cortex_and_coderunner_dialects_answer_over_a_recording() {
    let f = flow("dialect_runs");
    let cortex = f.dialect(Dialect::Cortex);
    let tool = json!({"tool_name": "echo", "session_id": "fx-c", "image": "busybox:1.35",
        "command": ["sh", "-c", "echo \"{\\\"file\\\": \\\"$PARAM_FILE\\\"}\""], "parameters": {"file": "a.pdf"},
        "resource_limits": {"memory_mb": 64, "cpu_limit": 0.5, "timeout_seconds": 30}});
    let ran = send(&cortex, "POST", "/containers/tool/execute", T, Some(tool)).await;
    assert_eq!(ran.json["result"], json!({"file": "a.pdf"}), "{}", ran.text);
    let id = ran.json["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(send(&cortex, "GET", &format!("/containers/tool/{id}"), T, None).await.json["success"], true);
    assert!(send(&cortex, "GET", &format!("/containers/tool/{id}/logs"), T, None).await.json["stdout"].is_string());
    assert_eq!(send(&cortex, "POST", &format!("/containers/tool/{id}/cancel"), T, None).await.json["cancelled"], false);
    assert_eq!(send(&cortex, "GET", "/health", T, None).await.json["status"], "healthy");
    assert_eq!(send(&cortex, "GET", "/containers/stats", T, None).await.json["total"], 0);
    let cleaned = send(&cortex, "POST", "/containers/cleanup/session", T, Some(json!({"session_id": "fx-c"}))).await;
    assert_eq!(cleaned.json["success"], true, "{}", cleaned.text);

    let coderunner = f.dialect(Dialect::Coderunner);
    let code = json!({"code": "print(\"Hello from CodeRunner!\")", "language": "python", "timeout": 30});
    let out = send(&coderunner, "POST", "/execute", T, Some(code)).await;
    assert_eq!(out.json["output"], "Hello from CodeRunner!\n", "{}", out.text);
    assert_eq!(send(&coderunner, "GET", "/health", T, None).await.json["docker"], "connected");
    assert_eq!(send(&coderunner, "GET", "/", T, None).await.json["status"], "running");
    f.finish();
}

#[tokio::test]
async fn the_agent_dialects_answer_over_a_recording() {
    let f = flow("dialect_agents");
    let warder = f.dialect(Dialect::Warder);
    let config = json!({"container_config": {"memory_limit": "64m"}});
    let started = send(&warder, "POST", "/api/agents/fx-w/start", T, Some(config)).await;
    assert_eq!(started.json["message"], "Agent container started successfully", "{}", started.text);
    assert!(send(&warder, "GET", "/api/agents/fx-w/stats", T, None).await.json["stats"]["memory_limit"] == "64MB");
    assert!(send(&warder, "GET", "/api/agents/fx-w/logs?lines=5", T, None).await.json["logs"].is_string());
    let stopped = send(&warder, "POST", "/api/agents/fx-w/stop", T, None).await;
    assert_eq!(stopped.json["message"], "Agent container stopped successfully");

    let lais = f.dialect(Dialect::Lais);
    let deploy = json!({"agent_id": "fx-l", "image": "busybox:1.35", "code_path": "/tmp",
        "command": ["sh", "-c", "echo runner; exec sleep 600"]});
    let d = send(&lais, "POST", "/api/deploy", T, Some(deploy)).await;
    assert_eq!((d.status, &d.json["status"]), (StatusCode::CREATED, &json!("running")), "{}", d.text);
    assert_eq!(send(&lais, "GET", "/api/containers", T, None).await.json.as_array().unwrap().len(), 2);
    assert_eq!(send(&lais, "GET", "/api/containers/fx-l", T, None).await.json["status"], "running");
    assert!(send(&lais, "GET", "/api/containers/fx-l/metrics", T, None).await.json["pids"].is_u64());
    assert!(send(&lais, "GET", "/api/containers/fx-l/logs", T, None).await.json["logs"].is_string());
    assert_eq!(send(&lais, "POST", "/api/containers/fx-l/stop", T, None).await.json["status"], "exited");
    assert_eq!(send(&lais, "POST", "/api/containers/fx-l/start", T, None).await.json["status"], "running");
    assert_eq!(send(&lais, "GET", "/api/health/containers", T, None).await.json["total"], 2);
    assert_eq!(send(&lais, "GET", "/api/health/docker", T, None).await.json["connected"], true);
    assert_eq!(send(&lais, "DELETE", "/api/containers/fx-l", T, None).await.json["removed"], true);
    f.state.core.remove_agent("fx-tenant", "fx-w").await.unwrap();

    let spawner = f.dialect(Dialect::Spawner);
    let spawn = json!({"bead_id": "fx-b", "worktree_path": "/tmp", "backend": "claude", "uid": 1000, "gid": 1000,
        "expires_at": "2026-01-02T00:00:00Z"});
    let sp = send(&spawner, "POST", "/spawn", T, Some(spawn)).await;
    assert_eq!(sp.json["hostname"], "tidepool-agent-fx-b", "{}", sp.text);
    assert_eq!(send(&spawner, "GET", "/status/fx-b", T, None).await.json["status"], "running");
    let hello = send(&spawner, "POST", "/exec/fx-b", T, Some(json!({"cmd": ["echo", "hello"]}))).await;
    assert_eq!(hello.text, r#"{"exit_code":0,"stdout":"hello\n","stderr":""}"#);
    assert_eq!(send(&spawner, "POST", "/stop/fx-b", T, None).await.status, StatusCode::OK);
    assert_eq!(send(&spawner, "GET", "/health", T, None).await.text, "\"OK\"");
    f.finish();
}

#[tokio::test]
async fn the_cortex_relic_routes_start_stat_stop_and_sweep_over_a_recording() {
    let f = flow("dialect_relics");
    let cortex = f.dialect(Dialect::Cortex);
    let relic = json!({"relic_name": "web", "session_id": "fx-cr", "image": "busybox:1.35",
        "command": ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/health && exec httpd -f -p 8000 -h /tmp/www"],
        "health_check_endpoint": "/health", "health_check_timeout_seconds": 20});
    let r = send(&cortex, "POST", "/containers/relic/start", T, Some(relic)).await;
    assert_eq!(
        (r.status, &r.json["status"], &r.json["healthy"]),
        (StatusCode::OK, &json!("running"), &json!(true)),
        "{}",
        r.text
    );
    assert_eq!(r.json["session_id"], "fx-cr");
    assert!(r.json["network_id"].is_string(), "a relic gets its session's private network: {}", r.text);
    let rid = r.json["relic_id"].as_str().unwrap().to_owned();

    let listed = send(&cortex, "GET", "/containers/relic?session_id=fx-cr", T, None).await;
    assert_eq!(listed.json.as_array().map(|l| l.len()), Some(1), "{}", listed.text);
    assert_eq!(listed.json[0]["relic_id"], rid.as_str());
    let one = send(&cortex, "GET", &format!("/containers/relic/{rid}"), T, None).await;
    assert_eq!((&one.json["relic_name"], &one.json["status"]), (&json!("web"), &json!("running")), "{}", one.text);

    let stats = send(&cortex, "GET", &format!("/containers/stats/{rid}"), T, None).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
    assert_eq!((&stats.json["kind"], &stats.json["object_id"]), (&json!("relic"), &json!(rid.as_str())));
    assert_eq!((&stats.json["session_id"], &stats.json["status"]), (&json!("fx-cr"), &json!("running")));
    assert!(stats.json["pids"].as_u64().is_some_and(|p| p >= 1), "{}", stats.text);
    let missing = send(&cortex, "GET", "/containers/stats/fx-nothing", T, None).await;
    assert_eq!(
        (missing.status, &missing.json["detail"]),
        (StatusCode::NOT_FOUND, &json!("Container fx-nothing not found"))
    );

    let stopped = send(&cortex, "POST", &format!("/containers/relic/{rid}/stop"), T, None).await;
    assert_eq!(stopped.json["status"], "stopped", "{}", stopped.text);
    let deleted = send(&cortex, "DELETE", &format!("/containers/relic/{rid}"), T, None).await;
    assert_eq!(deleted.json, json!({"relic_id": rid, "deleted": true}));
    assert_eq!(send(&cortex, "GET", &format!("/containers/relic/{rid}"), T, None).await.status, StatusCode::NOT_FOUND);

    // The session's network is empty now but was made moments ago (after the
    // fixture clock's "now"), so the sweep spares it; ending the session does not.
    let swept = send(&cortex, "POST", "/containers/cleanup/all-networks", T, None).await;
    assert_eq!(swept.json, json!({"networks_removed": [], "count": 0}), "{}", swept.text);
    let cleaned = send(&cortex, "POST", "/containers/cleanup/session", T, Some(json!({"session_id": "fx-cr"}))).await;
    assert_eq!(
        cleaned.json["networks_removed"],
        json!([berth_core::sessions::network_name("fx-tenant", "fx-cr")]),
        "{}",
        cleaned.text
    );
    assert_eq!(cleaned.json["success"], true);
    f.finish();
}

#[tokio::test]
async fn the_lais_log_stream_follows_an_agent_to_its_end_over_a_recording() {
    let f = flow("dialect_lais_stream");
    let lais = f.dialect(Dialect::Lais);
    let health = send(&lais, "GET", "/api/health", T, None).await;
    assert_eq!((&health.json["status"], &health.json["backend"]), (&json!("healthy"), &json!("docker")));
    let deploy = json!({"agent_id": "fx-ls", "image": "busybox:1.35", "code_path": "/tmp",
        "command": ["sh", "-c", "echo runner; echo ready; exec sleep 600"]});
    let d = send(&lais, "POST", "/api/deploy", T, Some(deploy)).await;
    assert_eq!((d.status, &d.json["status"]), (StatusCode::CREATED, &json!("running")), "{}", d.text);
    // Stopped once it has written its lines (asked until it has: a replay
    // asks as often as the recording did, since it gets the same answers),
    // so the followed stream ends with the agent's output.
    for _ in 0..50 {
        let logs = send(&lais, "GET", "/api/containers/fx-ls/logs", T, None).await;
        if logs.json["logs"].as_str().is_some_and(|l| l.contains("ready")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(send(&lais, "POST", "/api/containers/fx-ls/stop", T, None).await.json["status"], "exited");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = lais.clone();
    let server = tokio::spawn(async move { axum::serve(listener, served).await });
    let (mut ws, _) =
        tokio_tungstenite::connect_async(ws_request(addr, "/api/containers/fx-ls/logs/stream")).await.unwrap();
    use tokio_tungstenite::tungstenite::Message;
    let mut text = String::new();
    let mut closed = false;
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(t) => text.push_str(&t),
            Message::Close(_) => closed = true,
            other => panic!("unexpected message {other:?}"),
        }
    }
    server.abort();
    assert_eq!(text, "runner\nready\n");
    assert!(closed, "the stream closes when the agent's logs end");

    let unknown = send(&lais, "GET", "/api/containers/fx-none/logs/stream", T, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    assert_eq!(send(&lais, "DELETE", "/api/containers/fx-ls", T, None).await.json["removed"], true);
    f.finish();
}
