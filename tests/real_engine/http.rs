//! The native HTTP API, in-process over the real engine, plus one real socket.

use test_support as support;

use axum::http::StatusCode;
use berth_api::native::{app, AppState};
use serde_json::{json, Value};
use support::api::{send, state};

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>) {
    let a = send(&app(state.clone()), method, uri, token, body).await;
    let request_id = a.headers.get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
    (a.status, a.json, request_id)
}

#[tokio::test]
async fn a_code_run_is_created_read_and_listed_with_a_request_id_on_every_answer() {
    let s = state(&[]);
    let (status, run, rid) =
        call(&s, "POST", "/v1/runs", None, Some(json!({"language": "sh", "code": "echo '{\"ok\":1}'"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert!(rid.is_some_and(|r| !r.is_empty()));
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["result"], json!({"ok": 1}));
    let id = run["id"].as_str().unwrap();
    let (status, got, _) = call(&s, "GET", &format!("/v1/runs/{id}"), None, None).await;
    assert_eq!((status, &got["id"]), (StatusCode::OK, &run["id"]));
    let (_, list, _) = call(&s, "GET", "/v1/runs?limit=5", None, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, cancelled, _) = call(&s, "POST", &format!("/v1/runs/{id}/cancel"), None, None).await;
    assert_eq!((status, cancelled), (StatusCode::OK, json!({"cancelled": false})));
}

#[tokio::test]
async fn tenants_see_only_their_own_runs_and_a_missing_token_is_refused() {
    let s = state(&[("tok-a", "tenant-a"), ("tok-b", "tenant-b")]);
    let (status, run, _) =
        call(&s, "POST", "/v1/runs", Some("tok-a"), Some(json!({"language": "sh", "code": "true"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = run["id"].as_str().unwrap();
    let (status, body, _) = call(&s, "GET", &format!("/v1/runs/{id}"), Some("tok-b"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (_, list, _) = call(&s, "GET", "/v1/runs", Some("tok-b"), None).await;
    assert_eq!(list, json!([]));
    let (status, _, _) = call(&s, "POST", &format!("/v1/runs/{id}/cancel"), Some("tok-b"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for token in [None, Some("wrong")] {
        let (status, body, _) = call(&s, "GET", "/v1/runs", token, None).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::UNAUTHORIZED, &json!("unauthorized")));
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_in_the_one_error_shape_and_changes_nothing() {
    let s = state(&[]);
    let cases = [
        (json!({"language": "sh"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (
            json!({"image": "busybox:1.35", "language": "sh", "code": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"language": "sh", "code": "true", "memory": "lots"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"language": "sh", "code": "true", "memory": "100g"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "policy_violation",
        ),
        (json!({"language": "cobol", "code": "x"}), StatusCode::BAD_REQUEST, "bad_request"),
        (json!({"language": "sh", "code": "true", "surprise": 1}), StatusCode::UNPROCESSABLE_ENTITY, "bad_request"),
    ];
    for (body, status, code) in cases {
        let (got, err, _) = call(&s, "POST", "/v1/runs", None, Some(body.clone())).await;
        assert_eq!((got, &err["error"]["code"]), (status, &json!(code)), "{body} → {err}");
        assert!(err["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, err, _) = call(&s, "GET", "/v1/nowhere", None, None).await;
    assert_eq!((status, &err["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")));
    let (_, list, _) = call(&s, "GET", "/v1/runs", None, None).await;
    assert_eq!(list, json!([]), "nothing was run");
}

#[tokio::test]
async fn health_readiness_and_the_openapi_document_cover_every_route() {
    let s = state(&[]);
    let (status, health, _) = call(&s, "GET", "/v1/health", None, None).await;
    assert_eq!((status, health), (StatusCode::OK, json!({"status": "ok", "backend": "docker"})));
    let (status, ready, _) = call(&s, "GET", "/v1/ready", None, None).await;
    assert_eq!((status, &ready["engine"]), (StatusCode::OK, &json!("up")));
    let (_, doc, _) = call(&s, "GET", "/openapi.json", None, None).await;
    let paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    // Every route the router serves under /v1 is in the document.
    let served = [
        "/v1/agents",
        "/v1/agents/{id}",
        "/v1/agents/{id}/exec",
        "/v1/agents/{id}/exec/ws",
        "/v1/agents/{id}/logs",
        "/v1/agents/{id}/renew",
        "/v1/agents/{id}/restart",
        "/v1/agents/{id}/start",
        "/v1/agents/{id}/stats",
        "/v1/agents/{id}/stop",
        "/v1/audit",
        "/v1/health",
        "/v1/images/pull",
        "/v1/metrics",
        "/v1/pools",
        "/v1/ready",
        "/v1/relics",
        "/v1/relics/{id}",
        "/v1/relics/{id}/logs",
        "/v1/relics/{id}/stats",
        "/v1/relics/{id}/stop",
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/cancel",
        "/v1/runs/{id}/logs",
        "/v1/sandboxes",
        "/v1/sandboxes/{id}",
        "/v1/sandboxes/{id}/commands",
        "/v1/sandboxes/{id}/files",
        "/v1/sandboxes/{id}/fs/list",
        "/v1/sandboxes/{id}/fs/mkdir",
        "/v1/sandboxes/{id}/fs/move",
        "/v1/sandboxes/{id}/fs/stat",
        "/v1/sandboxes/{id}/pause",
        "/v1/sandboxes/{id}/ports/{port}/{path}",
        "/v1/sandboxes/{id}/processes",
        "/v1/sandboxes/{id}/processes/{pid}/close-stdin",
        "/v1/sandboxes/{id}/processes/{pid}/output",
        "/v1/sandboxes/{id}/processes/{pid}/resize",
        "/v1/sandboxes/{id}/processes/{pid}/signal",
        "/v1/sandboxes/{id}/processes/{pid}/stdin",
        "/v1/sandboxes/{id}/resume",
        "/v1/sandboxes/{id}/timeout",
        "/v1/sessions",
        "/v1/sessions/{id}",
    ];
    assert_eq!(paths, served);
    // …and every documented path is served (the fallback answers "no such route").
    for path in served {
        let (_, body, _) = call(
            &s,
            "GET",
            &path.replace("{id}", "x").replace("{pid}", "1").replace("{port}", "8000").replace("{path}", "x"),
            None,
            None,
        )
        .await;
        assert_ne!(body["error"]["message"], "no such route", "{path}");
    }
}

#[test]
fn berth_serve_answers_on_a_real_socket_and_refuses_a_public_address_without_tokens() {
    use std::io::{BufRead, BufReader, Read, Write};
    let data = tempfile::tempdir().unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(data.path())
        .env_remove("BERTH_TOKENS")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refusing to listen on 0.0.0.0:0 without tokens"));

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    for _ in 0..10 {
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        if let Some(a) = line.trim().strip_prefix("berth: listening on http://") {
            addr = Some(a.to_owned());
            break;
        }
    }
    let addr = addr.expect("berth says where it listens");
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /v1/health HTTP/1.1\r\nhost: berth\r\nconnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("x-request-id"), "{answer}");
    // SIGTERM: a graceful shutdown, and a clean exit.
    std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(child.wait().unwrap().success());
    // …which removes the warm pools' members it made.
    let store = berth_core::store::Store::open(&data.path().join("berth.db")).unwrap();
    let instance = store.instance_id(|| "none-made".into()).unwrap();
    let left = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=io.berth.instance={instance}")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout), "", "no container of this berth is left");
}

#[tokio::test]
async fn a_run_goes_on_to_its_end_when_its_client_hangs_up() {
    let s = state(&[]);
    let client = {
        let s = s.clone();
        tokio::spawn(async move {
            call(&s, "POST", "/v1/runs", None, Some(json!({"language": "sh", "code": "sleep 1; echo done"}))).await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    client.abort();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, list, _) = call(&s, "GET", "/v1/runs", None, None).await;
        let run = list.as_array().and_then(|l| l.first()).cloned();
        if let Some(run) = run.filter(|r| r["status"] != "pending" && r["status"] != "running") {
            assert_eq!((&run["status"], &run["stdout"]), (&json!("succeeded"), &json!("done\n")));
            assert_eq!(run["container_removed"], json!(true));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run never finished");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_run_submitted_without_waiting_is_answered_at_once_and_followed_to_its_end() {
    let s = state(&[]);
    let api = app(s.clone());
    let body = json!({"language": "sh", "code": "sleep 1; echo done", "wait": false});
    let accepted = send(&api, "POST", "/v1/runs", None, Some(body)).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    let id = accepted.json["id"].as_str().unwrap().to_owned();
    assert_eq!(accepted.headers["location"], format!("/v1/runs/{id}"));
    assert_eq!(accepted.json["status"], "pending");
    let followed = send(&api, "GET", &format!("/v1/runs/{id}/logs?follow=true"), None, None).await;
    let last: Value = serde_json::from_str(followed.text.lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], "succeeded", "{}", followed.text);
    let (status, run, _) = call(&s, "GET", &format!("/v1/runs/{id}"), None, None).await;
    assert_eq!((status, &run["stdout"]), (StatusCode::OK, &json!("done\n")));
    // A refusal is still a refusal, at once, and nothing is recorded.
    let refused = json!({"language": "cobol", "code": "x", "wait": false});
    let answer = send(&api, "POST", "/v1/runs", None, Some(refused)).await;
    assert!(answer.status.is_client_error(), "{} {}", answer.status, answer.text);
    let (_, list, _) = call(&s, "GET", "/v1/runs", None, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_running_runs_output_is_followed_to_an_exit_event_with_its_status() {
    let s = state(&[]);
    let api = app(s.clone());
    let submit = {
        let api = api.clone();
        let code = "echo first; sleep 1; echo second; exit 2";
        tokio::spawn(async move {
            send(&api, "POST", "/v1/runs", None, Some(json!({"language": "sh", "code": code}))).await
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let id = loop {
        let (_, list, _) = call(&s, "GET", "/v1/runs", None, None).await;
        if let Some(run) = list.as_array().and_then(|l| l.first()).filter(|r| r["status"] == "running") {
            break run["id"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "the run never ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let followed = send(&api, "GET", &format!("/v1/runs/{id}/logs?follow=true"), None, None).await;
    let events: Vec<Value> = followed.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let out: String = events.iter().filter(|e| e["event"] == "log").map(|e| e["data"].as_str().unwrap()).collect();
    assert_eq!(out, "first\nsecond\n");
    assert_eq!(
        events.last().unwrap(),
        &json!({"event": "exit", "status": "failed", "exit_code": 2, "oom_killed": false})
    );
    assert_eq!(submit.await.unwrap().json["status"], "failed");
    // Once it has ended, its logs come from the record, and the same way.
    let again = send(&api, "GET", &format!("/v1/runs/{id}/logs?follow=true&format=sse"), None, None).await;
    assert!(again
        .text
        .contains("event: log\ndata: {\"event\":\"log\",\"stream\":\"stdout\",\"data\":\"first\\nsecond\\n\"}"));
    assert!(again.text.ends_with("\"exit_code\":2,\"oom_killed\":false}\n\n"), "{}", again.text);
    let read = send(&api, "GET", &format!("/v1/runs/{id}/logs"), None, None).await;
    assert_eq!(
        (read.json["stdout"].as_str(), read.json["truncated"].as_bool()),
        (Some("first\nsecond\n"), Some(false))
    );
}

#[test]
fn a_graceful_shutdown_finishes_the_request_in_flight_before_exiting() {
    use std::io::{BufReader, Read, Write};
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--backend", "docker", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (said, addr) = test_support::serve::until_listening(&mut stderr);
    let addr = addr.unwrap_or_else(|| panic!("berth ended before listening: {said}"));
    let body = r#"{"language": "sh", "code": "sleep 2; echo done"}"#;
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /v1/runs HTTP/1.1\r\nhost: berth\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains(r#""stdout":"done\n""#), "{answer}");
    assert!(child.wait().unwrap().success(), "a clean exit after the request was answered");
}

/// The value of the one sample of `text` named with exactly these labels.
fn sample(text: &str, series: &str) -> f64 {
    let line = text.lines().find(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')));
    let line = line.unwrap_or_else(|| panic!("no sample {series} in:\n{text}"));
    line[series.len()..].trim().parse().unwrap()
}

/// Four runs of known ends, then a scrape: each run counted once when it
/// started and once by how it ended (kind, path, backend, runtime, status),
/// each of its phases observed once, the engine's calls counted by
/// operation, the requests by route template and status, the gauges as a
/// refresh found them; and `promtool check metrics` accepts the whole.
#[tokio::test]
async fn a_scrape_after_known_runs_counts_each_by_how_it_ended_and_promtool_accepts_it() {
    let s = state(&[]);
    let mut ids = Vec::new();
    for (code, timeout) in [("true", 30), ("true", 30), ("exit 3", 30), ("sleep 30", 1)] {
        let body = json!({"language": "sh", "code": code, "timeout_seconds": timeout});
        let (status, run, _) = call(&s, "POST", "/v1/runs", None, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        ids.push(run["id"].as_str().unwrap().to_owned());
    }
    let (status, _, _) = call(&s, "GET", "/v1/runs/run_nope", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.core.refresh_gauges().await;
    let scrape = send(&app(s.clone()), "GET", "/v1/metrics", None, None).await;
    let text = scrape.text;

    let run = r#"kind="code",path="cold",backend="docker",runtime="docker""#;
    assert_eq!(sample(&text, &format!("berth_runs_started_total{{{run}}}")), 4.0);
    for (status, n) in [("succeeded", 2.0), ("failed", 1.0), ("timed_out", 1.0)] {
        assert_eq!(sample(&text, &format!("berth_runs_finished_total{{{run},status=\"{status}\"}}")), n, "{status}");
    }
    for phase in ["admission", "start", "execution", "total"] {
        let series = format!("berth_run_phase_seconds_count{{phase=\"{phase}\",kind=\"code\",path=\"cold\"}}");
        assert_eq!(sample(&text, &series), 4.0, "{phase}");
    }
    // The timed-out run's execution alone took its second.
    let slow = r#"berth_run_phase_seconds_bucket{le="0.5",phase="execution",kind="code",path="cold"}"#;
    assert_eq!(sample(&text, slow), 3.0);
    assert_eq!(sample(&text, r#"berth_engine_calls_total{backend="docker",operation="create",outcome="ok"}"#), 4.0);
    let posted = r#"berth_http_requests_total{api="native",route="/v1/runs",method="POST",status="201"}"#;
    assert_eq!(sample(&text, posted), 4.0);
    let missing = r#"berth_http_requests_total{api="native",route="/v1/runs/{id}",method="GET",status="404"}"#;
    assert_eq!(sample(&text, missing), 1.0);
    assert_eq!(sample(&text, "berth_sessions"), 0.0);
    assert!(text.contains("berth_build_info{version=\""), "{text}");
    assert!(ids.iter().all(|id| !text.contains(id.as_str())), "no run id is a label:\n{text}");

    assert!(text.ends_with("# EOF\n"), "OpenMetrics by default");

    // The same numbers in the Prometheus text format, which promtool reads.
    let request =
        axum::http::Request::get("/v1/metrics").header("accept", "text/plain").body(axum::body::Body::empty()).unwrap();
    let answer = tower::ServiceExt::oneshot(app(s.clone()), request).await.unwrap();
    assert_eq!(answer.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let body = http_body_util::BodyExt::collect(answer.into_body()).await.unwrap().to_bytes();
    let plain = String::from_utf8(body.to_vec()).unwrap();
    assert!(plain.contains(&format!("# TYPE berth_runs_started_total counter\nberth_runs_started_total{{{run}}} 4\n")));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &plain).unwrap();
    let checked = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(file.path()).unwrap())
        .output()
        .expect("promtool runs (scripts/provision.sh installs it)");
    assert!(
        checked.status.success(),
        "promtool: {}{}\n{plain}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
