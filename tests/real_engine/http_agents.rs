//! Agents through the native API, over the real engine: their lifecycle,
//! logs read and followed (NDJSON and SSE), stats, exec (buffered and over a
//! WebSocket), renewal and the audit trail.

use test_support as support;

use std::time::Duration;

use axum::http::StatusCode;
use berth_api::native::app;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::api::{send, state, unique};

fn sleeper(id: &str) -> Value {
    json!({"id": id, "image": "busybox:1.35", "command": ["sleep", "600"]})
}

#[tokio::test]
async fn an_agent_is_defined_started_read_stopped_restarted_and_removed() {
    let s = state(&[]);
    let api = app(s.clone());
    let id = unique("a-life");
    let a = send(&api, "POST", "/v1/agents", None, Some(sleeper(&id))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!((&a.json["id"], &a.json["status"]), (&json!(id), &json!("running")));
    let cid = a.json["container_id"].as_str().unwrap().to_owned();

    let got = send(&api, "GET", &format!("/v1/agents/{id}"), None, None).await;
    assert_eq!((got.status, &got.json["container_id"]), (StatusCode::OK, &json!(cid)));
    let list = send(&api, "GET", "/v1/agents", None, None).await;
    let listed = list.json.as_array().unwrap().iter().find(|x| x["id"] == json!(id)).cloned().unwrap();
    assert_eq!(listed["status"], "running");

    let stopped = send(&api, "POST", &format!("/v1/agents/{id}/stop?grace_seconds=1"), None, None).await;
    assert_eq!((stopped.status, &stopped.json["status"]), (StatusCode::OK, &json!("exited")));
    let restarted = send(&api, "POST", &format!("/v1/agents/{id}/restart"), None, None).await;
    assert_eq!(restarted.json["status"], "running");
    assert_eq!(restarted.json["container_id"], json!(cid), "the same container is started again");

    let again = send(&api, "POST", "/v1/agents", None, Some(sleeper(&id))).await;
    assert_eq!((again.status, &again.json["error"]["code"]), (StatusCode::CONFLICT, &json!("exists")));

    let gone = send(&api, "DELETE", &format!("/v1/agents/{id}"), None, None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let missing = send(&api, "GET", &format!("/v1/agents/{id}"), None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        support::api::engine().inspect(&berth_core::engine::Handle::local(cid)).await.is_err(),
        "its container is gone"
    );

    let trail = send(&api, "GET", "/v1/audit?limit=50", None, None).await;
    let actions: Vec<&str> = trail
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == json!(id))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["agent.define", "agent.start", "agent.stop", "agent.remove"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
}

#[tokio::test]
async fn followed_logs_arrive_in_order_with_keepalives_and_end_with_the_exit_status() {
    let mut s = state(&[]);
    s.keepalive = Duration::from_millis(300);
    let api = app(s);
    let id = unique("a-follow");
    let body = json!({"id": id, "image": "busybox:1.35",
        "command": ["sh", "-c", "echo one; sleep 1; echo two >&2; sleep 1; echo three; exit 3"]});
    assert_eq!(send(&api, "POST", "/v1/agents", None, Some(body)).await.status, StatusCode::CREATED);

    let nd = send(&api, "GET", &format!("/v1/agents/{id}/logs?follow=true"), None, None).await;
    assert_eq!(nd.headers["content-type"], "application/x-ndjson");
    let events: Vec<Value> = nd.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let logs: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["event"] == "log")
        .map(|e| (e["stream"].as_str().unwrap().to_owned(), e["data"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [("stdout", "one\n"), ("stderr", "two\n"), ("stdout", "three\n")];
    assert_eq!(logs, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    assert!(events.iter().filter(|e| e["event"] == "keepalive").count() >= 2, "{events:?}");
    assert_eq!(
        events.last().unwrap(),
        &json!({"event": "exit", "status": "exited", "exit_code": 3, "oom_killed": false})
    );

    // The same, read again as server-sent events once the agent has ended.
    let sse = send(&api, "GET", &format!("/v1/agents/{id}/logs?follow=true&format=sse"), None, None).await;
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    let frames: Vec<&str> = sse.text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.iter().filter(|f| f.starts_with("event: log\n")).count(), 3, "{frames:?}");
    assert!(frames
        .last()
        .unwrap()
        .starts_with("event: exit\ndata: {\"event\":\"exit\",\"status\":\"exited\",\"exit_code\":3"));

    let read = send(&api, "GET", &format!("/v1/agents/{id}/logs?tail=2"), None, None).await;
    assert_eq!((read.json["stderr"].as_str(), read.json["stdout"].as_str()), (Some("two\n"), Some("three\n")));
    let bad = send(&api, "GET", &format!("/v1/agents/{id}/logs?format=xml&follow=true"), None, None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    send(&api, "DELETE", &format!("/v1/agents/{id}"), None, None).await;
}

#[tokio::test]
async fn stats_come_as_one_sample_or_as_a_stream_and_exec_runs_buffered() {
    let mut s = state(&[]);
    s.keepalive = Duration::from_secs(5);
    let api = app(s.clone());
    let id = unique("a-stats");
    let mut body = sleeper(&id);
    body["memory"] = json!("64m");
    assert_eq!(send(&api, "POST", "/v1/agents", None, Some(body)).await.status, StatusCode::CREATED);

    let one = send(&api, "GET", &format!("/v1/agents/{id}/stats"), None, None).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.json["memory_limit_bytes"], json!(64 * 1024 * 1024));
    assert!(one.json["memory_used_bytes"].as_u64().is_some_and(|m| m > 0));

    // A stream, ended from the other side by stopping the agent.
    let stream = {
        let api = api.clone();
        let id = id.clone();
        tokio::spawn(async move { send(&api, "GET", &format!("/v1/agents/{id}/stats?stream=true"), None, None).await })
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    send(&api, "POST", &format!("/v1/agents/{id}/stop?grace_seconds=0"), None, None).await;
    let streamed = tokio::time::timeout(Duration::from_secs(20), stream).await.expect("the stream ends").unwrap();
    let events: Vec<Value> = streamed.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().filter(|e| e["event"] == "stats").count() >= 1, "{events:?}");
    assert_eq!(events.last().unwrap()["event"], "exit");

    send(&api, "POST", &format!("/v1/agents/{id}/start"), None, None).await;
    let cmd = json!({"cmd": ["sh", "-c", "echo $GREETING; echo oops >&2; exit 4"], "env": ["GREETING=hi"]});
    let ran = send(&api, "POST", &format!("/v1/agents/{id}/exec"), None, Some(cmd)).await;
    assert_eq!(ran.json, json!({"exit_code": 4, "stdout": "hi\n", "stderr": "oops\n"}));
    let bad = send(&api, "POST", &format!("/v1/agents/{id}/exec"), None, Some(json!({"cmd": []}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    send(&api, "DELETE", &format!("/v1/agents/{id}"), None, None).await;
}

#[tokio::test]
async fn an_interactive_exec_over_a_websocket_reads_stdin_and_ends_with_its_exit_code() {
    let s = state(&[]);
    let api = app(s.clone());
    let id = unique("a-ws");
    assert_eq!(send(&api, "POST", "/v1/agents", None, Some(sleeper(&id))).await.status, StatusCode::CREATED);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, api).await });

    let url = format!("ws://{addr}/v1/agents/{id}/exec/ws");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use tokio_tungstenite::tungstenite::Message;
    let cmd = json!({"cmd": ["sh", "-c", "read line; echo got:$line; echo done >&2; exit 7"]});
    ws.send(Message::Text(cmd.to_string().into())).await.unwrap();
    ws.send(Message::Binary(b"hello\n".to_vec().into())).await.unwrap();
    ws.send(Message::Text(r#"{"eof": true}"#.into())).await.unwrap();
    let mut events = Vec::new();
    while let Some(Ok(msg)) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.unwrap() {
        match msg {
            Message::Text(t) => events.push(serde_json::from_str::<Value>(&t).unwrap()),
            Message::Close(_) => break,
            _ => {}
        }
    }
    let out: String = events.iter().filter(|e| e["stream"] == "stdout").map(|e| e["data"].as_str().unwrap()).collect();
    let err: String = events.iter().filter(|e| e["stream"] == "stderr").map(|e| e["data"].as_str().unwrap()).collect();
    assert_eq!((out.as_str(), err.as_str()), ("got:hello\n", "done\n"));
    assert_eq!(
        events.last().unwrap(),
        &json!({"event": "exit", "status": "exited", "exit_code": 7, "oom_killed": false})
    );

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/agents/{id}/exec/ws")).await.unwrap();
    ws.send(Message::Text("not json".into())).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"event\":\"error\""), "{first:?}");
    server.abort();
    send(&app(s), "DELETE", &format!("/v1/agents/{id}"), None, None).await;
}

#[tokio::test]
async fn an_expiry_is_renewed_within_the_maximum_lifetime_and_refused_beyond_it() {
    let s = state(&[]);
    let api = app(s.clone());
    let id = unique("a-renew");
    let mut body = sleeper(&id);
    body["start"] = json!(false);
    body["expires_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    let a = send(&api, "POST", "/v1/agents", None, Some(body)).await;
    assert_eq!((a.status, &a.json["status"]), (StatusCode::CREATED, &json!("defined")));
    let later = (chrono::Utc::now() + chrono::Duration::hours(5)).to_rfc3339();
    let renewed = send(&api, "POST", &format!("/v1/agents/{id}/renew"), None, Some(json!({"expires_at": later}))).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text);
    let got = send(&api, "GET", &format!("/v1/agents/{id}"), None, None).await;
    assert_eq!(got.json["expires_at"], renewed.json["expires_at"]);
    let far = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let refused = send(&api, "POST", &format!("/v1/agents/{id}/renew"), None, Some(json!({"expires_at": far}))).await;
    assert_eq!(
        (refused.status, &refused.json["error"]["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("policy_violation"))
    );
    let garbled =
        send(&api, "POST", &format!("/v1/agents/{id}/renew"), None, Some(json!({"expires_at": "tomorrow"}))).await;
    assert_eq!(garbled.status, StatusCode::UNPROCESSABLE_ENTITY);
    send(&api, "DELETE", &format!("/v1/agents/{id}"), None, None).await;
}

#[tokio::test]
async fn an_agent_asking_to_publish_port_zero_is_refused_and_nothing_is_made() {
    let s = state(&[]);
    let api = app(s.clone());
    let id = unique("a-port0");
    let mut body = sleeper(&id);
    body["ports"] = json!([0]);
    let r = send(&api, "POST", "/v1/agents", None, Some(body)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("ports"), "{}", r.text);
    let missing = send(&api, "GET", &format!("/v1/agents/{id}"), None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
