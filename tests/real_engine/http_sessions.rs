//! Relics and sessions through the native API, over the real engine, and
//! tenant isolation on every route of the native API.

use test_support as support;

use axum::http::StatusCode;
use berth_api::native::app;
use serde_json::{json, Value};
use support::api::{send, state, unique};

fn web(session: &str, name: &str) -> Value {
    json!({
        "relic_name": name,
        "session_id": session,
        "image": "python:3.11-slim",
        "command": ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/health && exec python3 -m http.server 8000 --directory /tmp/www"],
        "health_check_endpoint": "/health",
        "health_check_timeout_seconds": 20
    })
}

#[tokio::test]
async fn a_session_is_opened_its_relic_started_read_and_the_session_ended_with_everything_in_it() {
    let s = state(&[]);
    let api = app(s.clone());
    let session = unique("s-http");
    let opened = send(&api, "POST", "/v1/sessions", None, Some(json!({"session_id": session}))).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    assert_eq!(opened.json["network_name"], json!(berth_core::sessions::network_name("default", &session)));

    let relic = send(&api, "POST", "/v1/relics", None, Some(web(&session, "cache"))).await;
    assert_eq!(relic.status, StatusCode::CREATED, "{}", relic.text);
    assert_eq!((&relic.json["status"], &relic.json["healthy"]), (&json!("running"), &json!(true)));
    assert_eq!(relic.json["network_id"], opened.json["network_id"]);
    let rid = relic.json["relic_id"].as_str().unwrap().to_owned();
    assert!(relic.json["internal_url"].as_str().unwrap().ends_with(":8000"));

    let listed = send(&api, "GET", &format!("/v1/relics?session_id={session}"), None, None).await;
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
    let other = send(&api, "GET", "/v1/relics?session_id=nobody", None, None).await;
    assert_eq!(other.json, json!([]));
    let stats = send(&api, "GET", &format!("/v1/relics/{rid}/stats"), None, None).await;
    assert!(stats.json["memory_limit_bytes"].as_u64().is_some(), "{}", stats.text);
    let logs = send(&api, "GET", &format!("/v1/relics/{rid}/logs"), None, None).await;
    assert!(logs.json["logs"].as_str().unwrap().contains("GET /health"), "{}", logs.text);

    let seen = send(&api, "GET", &format!("/v1/sessions/{session}"), None, None).await;
    assert_eq!(seen.json["containers"].as_array().unwrap().len(), 1);
    assert_eq!(seen.json["containers"][0]["kind"], "relic");
    let sessions = send(&api, "GET", "/v1/sessions", None, None).await;
    assert!(sessions.json.as_array().unwrap().contains(&json!(session)));

    let refused = send(&api, "DELETE", &format!("/v1/sessions/{session}"), None, None).await;
    assert_eq!((refused.status, &refused.json["error"]["code"]), (StatusCode::CONFLICT, &json!("session_running")));
    let ended = send(&api, "DELETE", &format!("/v1/sessions/{session}?force=true"), None, None).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.text);
    assert_eq!(ended.json["containers_removed"].as_array().unwrap().len(), 1);
    assert_eq!(ended.json["networks_removed"], json!([berth_core::sessions::network_name("default", &session)]));
    let after = send(&api, "GET", &format!("/v1/relics/{rid}"), None, None).await;
    assert_eq!((&after.json["status"], &after.json["healthy"]), (&json!("stopped"), &json!(false)));
    let deleted = send(&api, "DELETE", &format!("/v1/relics/{rid}"), None, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = send(&api, "GET", &format!("/v1/sessions/{session}"), None, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_relic_that_never_becomes_healthy_is_reported_failed_with_its_logs_and_removed() {
    let s = state(&[]);
    let api = app(s.clone());
    let session = unique("s-sick");
    let mut body = web(&session, "sick");
    body["health_check_endpoint"] = json!("/missing");
    body["health_check_timeout_seconds"] = json!(4);
    let relic = send(&api, "POST", "/v1/relics", None, Some(body)).await;
    assert_eq!((relic.status, &relic.json["status"]), (StatusCode::CREATED, &json!("failed")), "{}", relic.text);
    assert!(relic.json["error"].as_str().unwrap().contains("last logs"));
    let leftover = support::api::engine().list(&berth_core::engine::Selector::all().session(&session)).await.unwrap();
    assert!(leftover.iter().all(|c| c.phase != berth_core::engine::Phase::Running), "{leftover:?}");
    send(&api, "DELETE", &format!("/v1/sessions/{session}?force=true"), None, None).await;

    let bad = json!({"relic_name": "x", "session_id": "no spaces", "image": "busybox:1.35"});
    let refused = send(&api, "POST", "/v1/relics", None, Some(bad)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
}

/// Another tenant's id is 404 on every route that takes one, and lists
/// show nothing of it.
#[tokio::test]
async fn a_tenant_sees_and_touches_nothing_of_another_tenants_on_any_route() {
    let s = state(&[("tok-a", "tenant-a"), ("tok-b", "tenant-b")]);
    let api = app(s.clone());
    let (a, b) = (Some("tok-a"), Some("tok-b"));
    let agent = unique("iso-agent");
    let body = json!({"id": agent, "image": "busybox:1.35", "command": ["sleep", "600"]});
    assert_eq!(send(&api, "POST", "/v1/agents", a, Some(body)).await.status, StatusCode::CREATED);
    let session = unique("iso-sess");
    let relic = json!({"relic_name": "r", "session_id": session, "image": "busybox:1.35", "command": ["sleep", "600"]});
    let relic = send(&api, "POST", "/v1/relics", a, Some(relic)).await;
    assert_eq!(relic.status, StatusCode::CREATED, "{}", relic.text);
    let rid = relic.json["relic_id"].as_str().unwrap().to_owned();
    let run = send(&api, "POST", "/v1/runs", a, Some(json!({"language": "sh", "code": "echo mine"}))).await;
    let run_id = run.json["id"].as_str().unwrap().to_owned();

    let exec = json!({"cmd": ["true"]});
    let renew = json!({"expires_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()});
    let touching: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/agents/{agent}"), None),
        ("POST", format!("/v1/agents/{agent}/start"), None),
        ("POST", format!("/v1/agents/{agent}/stop"), None),
        ("POST", format!("/v1/agents/{agent}/restart"), None),
        ("GET", format!("/v1/agents/{agent}/logs"), None),
        ("GET", format!("/v1/agents/{agent}/stats"), None),
        ("POST", format!("/v1/agents/{agent}/exec"), Some(exec)),
        ("GET", format!("/v1/agents/{agent}/exec/ws"), None),
        ("POST", format!("/v1/agents/{agent}/renew"), Some(renew)),
        ("DELETE", format!("/v1/agents/{agent}"), None),
        ("GET", format!("/v1/relics/{rid}"), None),
        ("POST", format!("/v1/relics/{rid}/stop"), None),
        ("GET", format!("/v1/relics/{rid}/logs"), None),
        ("GET", format!("/v1/relics/{rid}/stats"), None),
        ("DELETE", format!("/v1/relics/{rid}"), None),
        ("GET", format!("/v1/sessions/{session}"), None),
        ("GET", format!("/v1/runs/{run_id}"), None),
        ("GET", format!("/v1/runs/{run_id}/logs"), None),
        ("POST", format!("/v1/runs/{run_id}/cancel"), None),
    ];
    for (method, uri, body) in &touching {
        let got = send(&api, method, uri, b, body.clone()).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{method} {uri} as another tenant: {}", got.text);
        let anonymous = send(&api, method, uri, None, body.clone()).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{method} {uri} without a token");
    }
    for list in ["/v1/agents", "/v1/relics", "/v1/runs", "/v1/sessions", "/v1/audit"] {
        let got = send(&api, "GET", list, b, None).await;
        assert_eq!(got.json, json!([]), "{list} as another tenant");
    }
    // Ending "the same" session as another tenant removes nothing of the first's.
    let ended = send(&api, "DELETE", &format!("/v1/sessions/{session}?force=true"), b, None).await;
    assert_eq!(ended.json["containers_removed"], json!([]), "{}", ended.text);
    let still = send(&api, "GET", &format!("/v1/relics/{rid}"), a, None).await;
    assert_eq!(still.json["status"], "running");
    let mine = send(&api, "GET", &format!("/v1/agents/{agent}"), a, None).await;
    assert_eq!(mine.json["status"], "running", "nothing the other tenant did reached it");

    send(&api, "DELETE", &format!("/v1/agents/{agent}"), a, None).await;
    send(&api, "DELETE", &format!("/v1/sessions/{session}?force=true"), a, None).await;
}

/// Two tenants pick the same ids for everything, as independent users do.
#[tokio::test]
async fn two_tenants_with_the_same_ids_neither_see_break_nor_end_each_others_things() {
    let s = state(&[("token-a", "tenant-a"), ("token-b", "tenant-b")]);
    let api = app(s.clone());
    let same = unique("same");
    let (a, b) = (Some("token-a"), Some("token-b"));
    let mut made = Vec::new();
    for who in [a, b] {
        let agent = json!({"id": same, "image": "busybox:1.35", "command": ["sleep", "600"], "session_id": same});
        let created = send(&api, "POST", "/v1/agents", who, Some(agent)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let opened = send(&api, "POST", "/v1/sessions", who, Some(json!({"session_id": same}))).await;
        assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
        let relic = send(&api, "POST", "/v1/relics", who, Some(web(&same, "web"))).await;
        assert_eq!((relic.status, &relic.json["healthy"]), (StatusCode::CREATED, &json!(true)), "{}", relic.text);
        made.push((created.json, opened.json, relic.json));
    }
    let ((agent_a, net_a, relic_a), (agent_b, net_b, relic_b)) = (&made[0], &made[1]);
    assert_ne!(agent_a["container_id"], agent_b["container_id"]);
    assert_ne!(net_a["network_id"], net_b["network_id"]);
    assert_ne!(relic_a["container_id"], relic_b["container_id"]);

    // Each sees only its own, under the same ids.
    let seen_a = send(&api, "GET", &format!("/v1/agents/{same}"), a, None).await;
    assert_eq!(seen_a.json["container_id"], agent_a["container_id"]);
    let session_a = send(&api, "GET", &format!("/v1/sessions/{same}"), a, None).await;
    assert_eq!(session_a.json["network_id"], net_a["network_id"]);
    let theirs: Vec<&Value> = session_a.json["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["container_id"] == agent_b["container_id"] || c["container_id"] == relic_b["container_id"])
        .collect();
    assert!(theirs.is_empty(), "tenant a sees tenant b's containers: {theirs:?}");
    let rid_b = relic_b["relic_id"].as_str().unwrap();
    assert_eq!(send(&api, "GET", &format!("/v1/relics/{rid_b}"), a, None).await.status, StatusCode::NOT_FOUND);

    // B ends its session and removes its agent: A's are untouched.
    let ended = send(&api, "DELETE", &format!("/v1/sessions/{same}?force=true"), b, None).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.text);
    assert_eq!(send(&api, "DELETE", &format!("/v1/agents/{same}"), b, None).await.status, StatusCode::NO_CONTENT);
    let rid_a = relic_a["relic_id"].as_str().unwrap();
    let relic = send(&api, "GET", &format!("/v1/relics/{rid_a}"), a, None).await;
    assert_eq!((&relic.json["status"], &relic.json["healthy"]), (&json!("running"), &json!(true)), "{}", relic.text);
    let agent = send(&api, "GET", &format!("/v1/agents/{same}"), a, None).await;
    assert_eq!(agent.json["status"], "running", "{}", agent.text);
    let session = send(&api, "GET", &format!("/v1/sessions/{same}"), a, None).await;
    assert_eq!(session.json["network_id"], net_a["network_id"], "{}", session.text);
    // A relic started in A's session now still joins A's network.
    let another = send(&api, "POST", "/v1/relics", a, Some(web(&same, "second"))).await;
    assert_eq!(another.json["network_id"], net_a["network_id"], "{}", another.text);

    let ended = send(&api, "DELETE", &format!("/v1/sessions/{same}?force=true"), a, None).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.text);
    send(&api, "DELETE", &format!("/v1/agents/{same}"), a, None).await;
}
