//! An upgrade, as an operator does one: agents, a relic in a session and a
//! run are made by the berth of before this layout (the last release,
//! built from its commit), which then stops; the code of now opens the same
//! store and engine and must find, show, stop, reap and end all of it:
//! containers with engine names from client ids, RFC 3339 expiry labels,
//! a session network named after its session, records with global ids.
//!
//! Alone in its binary: it starts a server of its own and waits for expiry.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::native::{app, AppState, Tokens};
use berth_core::context::Context;
use berth_core::engine::{Engine, Handle};
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::policy::Policy;
use berth_core::store::Store;
use berth_core::{Core, Options};
use berth_docker::DockerBackend;
use serde_json::{json, Value};
use test_support::api::send;

/// The last release before crates per layer: `main` at the end of the
/// engine-api and fixtures work.
const BEFORE: &str = "2e9dffdb97ffc8678db0809ab46360a1570692a9";

/// The `berth` binary of [`BEFORE`]: `BERTH_OLD_BIN` when set (test.sh
/// builds it first, so its time shows), else built here from the commit.
fn old_berth() -> PathBuf {
    if let Some(bin) = std::env::var_os("BERTH_OLD_BIN").map(PathBuf::from) {
        assert!(bin.is_file(), "BERTH_OLD_BIN={} is not a file", bin.display());
        return bin;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo.join("target"));
    let root = out.join("berth-before");
    let src = root.join("src");
    if !src.join("Cargo.toml").is_file() {
        std::fs::create_dir_all(&src).unwrap();
        let tar = root.join("before.tar");
        let archived = Command::new("git")
            .args(["-C", repo.to_str().unwrap(), "archive", "--format=tar", "-o"])
            .arg(&tar)
            .arg(BEFORE)
            .status()
            .expect("git runs");
        assert!(archived.success(), "commit {BEFORE} must be in this clone's history");
        let unpacked = Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&src).status().expect("tar runs");
        assert!(unpacked.success(), "the archive of {BEFORE} did not unpack");
    }
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--bin", "berth", "--manifest-path"])
        .arg(src.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", root.join("target"))
        .status()
        .expect("cargo runs");
    assert!(built.success(), "the berth of {BEFORE} did not build");
    root.join("target/debug/berth")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One call to the old server, with curl (the test speaks to it as any client would).
fn call(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "-X", method, &format!("http://127.0.0.1:{port}{path}")]);
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "-d", &b.to_string()]);
    }
    let out = cmd.output().expect("curl runs");
    assert!(out.status.success(), "{method} {path}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn wait_until_up(port: u16, server: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(server.try_wait().unwrap().is_none(), "the old berth exited at start-up");
        assert!(Instant::now() < deadline, "the old berth never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sleeper(id: &str, expires_in: chrono::Duration) -> Value {
    let expires_at = (chrono::Utc::now() + expires_in).to_rfc3339();
    json!({"id": id, "image": "busybox:1.35", "command": ["sleep", "600"], "expires_at": expires_at})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_release_before_made_is_found_shown_stopped_reaped_and_ended_after_the_upgrade() {
    let old = tokio::task::spawn_blocking(old_berth).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let tag = format!("{}", std::process::id());
    let (kept, expiring, session) = (format!("up-kept-{tag}"), format!("up-exp-{tag}"), format!("up-s-{tag}"));
    std::fs::write(data.path().join("berth.toml"), "pools = false\n").unwrap();

    // The release before makes things, then stops.
    let port = free_port();
    let mut child = Command::new(&old)
        .args(["serve", "--backend", "docker", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data")
        .arg(data.path())
        .arg("--config")
        .arg(data.path().join("berth.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the old berth starts");
    wait_until_up(port, &mut child);
    let server = Server(child);
    let a = call(port, "POST", "/v1/agents", Some(sleeper(&kept, chrono::Duration::seconds(8))));
    assert_eq!(a["status"], "running", "{a}");
    let renewed = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    call(port, "POST", &format!("/v1/agents/{kept}/renew"), Some(json!({"expires_at": renewed})));
    let e = call(port, "POST", "/v1/agents", Some(sleeper(&expiring, chrono::Duration::seconds(8))));
    assert_eq!(e["status"], "running", "{e}");
    let opened = call(port, "POST", "/v1/sessions", Some(json!({"session_id": session})));
    let relic = call(
        port,
        "POST",
        "/v1/relics",
        Some(json!({"relic_name": "cache", "session_id": session, "image": "busybox:1.35",
            "command": ["sh", "-c", "mkdir -p /tmp/w && echo ok > /tmp/w/health && exec httpd -f -p 8000 -h /tmp/w"],
            "health_check_endpoint": "/health", "health_check_timeout_seconds": 20})),
    );
    assert_eq!(relic["healthy"], true, "{relic}");
    let run = call(port, "POST", "/v1/runs", Some(json!({"language": "sh", "code": "echo before"})));
    assert_eq!(run["status"], "succeeded", "{run}");
    drop(server);

    // The code of now, on the same store and engine.
    let backend: Arc<dyn Engine> = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));
    let store = Arc::new(Store::open(&data.path().join("berth.db")).expect("the old store opens and migrates"));
    let core = Arc::new(Core::new(
        Context::new(backend.clone(), Policy::default(), store, Arc::new(RandomIds), Arc::new(SystemClock)),
        Options::default(),
    ));
    let api = app(AppState::new(core.clone(), Tokens::default()));

    let got = send(&api, "GET", &format!("/v1/agents/{kept}"), None, None).await;
    assert_eq!(
        (&got.json["status"], &got.json["container_id"]),
        (&json!("running"), &a["container_id"]),
        "{}",
        got.text
    );
    let listed = send(&api, "GET", "/v1/agents", None, None).await;
    let ids: Vec<&str> = listed.json.as_array().unwrap().iter().filter_map(|x| x["id"].as_str()).collect();
    assert!(ids.contains(&kept.as_str()) && ids.contains(&expiring.as_str()), "{ids:?}");
    let stopped = send(&api, "POST", &format!("/v1/agents/{kept}/stop?grace_seconds=1"), None, None).await;
    assert_eq!(stopped.json["status"], "exited", "{}", stopped.text);
    let started = send(&api, "POST", &format!("/v1/agents/{kept}/start"), None, None).await;
    assert_eq!((&started.json["status"], &started.json["container_id"]), (&json!("running"), &a["container_id"]));

    let rid = relic["relic_id"].as_str().unwrap();
    let r = send(&api, "GET", &format!("/v1/relics/{rid}"), None, None).await;
    assert_eq!((&r.json["status"], &r.json["container_id"]), (&json!("running"), &relic["container_id"]));
    let s = send(&api, "GET", &format!("/v1/sessions/{session}"), None, None).await;
    assert_eq!(s.json["network_id"], opened["network_id"], "the old session network is found: {}", s.text);
    let second = send(
        &api,
        "POST",
        "/v1/relics",
        None,
        Some(json!({"relic_name": "db", "session_id": session,
        "image": "busybox:1.35", "command": ["sleep", "600"]})),
    )
    .await;
    assert_eq!(second.json["network_id"], opened["network_id"], "a new relic joins it: {}", second.text);

    let r = send(&api, "GET", &format!("/v1/runs/{}", run["id"].as_str().unwrap()), None, None).await;
    assert_eq!((&r.json["status"], &r.json["stdout"]), (&json!("succeeded"), &json!("before\n")), "{}", r.text);

    // Expiry from the old labels: the expiring agent goes, the renewed one stays.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reaped = core.reap().await.unwrap();
        if reaped.iter().any(|n| n.contains(&expiring)) {
            assert!(!reaped.iter().any(|n| n.contains(&kept)), "the renewal in the old store counts: {reaped:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the expired agent was never reaped");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let gone = Handle::local(e["container_id"].as_str().unwrap());
    assert!(backend.inspect(&gone).await.is_err(), "reaped");

    let ended = send(&api, "DELETE", &format!("/v1/sessions/{session}?force=true"), None, None).await;
    assert_eq!(ended.json["networks_removed"], json!([format!("berth-session-{session}")]), "{}", ended.text);
    assert_eq!(send(&api, "DELETE", &format!("/v1/agents/{kept}"), None, None).await.status.as_u16(), 204);
    send(&api, "DELETE", &format!("/v1/agents/{expiring}"), None, None).await;
    let left = backend.inspect(&Handle::local(a["container_id"].as_str().unwrap())).await;
    assert!(left.is_err(), "the kept agent's container is removed with it");
}
