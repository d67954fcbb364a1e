//! The swarm tier's faults, on the rig of `scripts/swarm-rig.sh`: a worker
//! cut off mid-run (its link down in its namespace), a drained node and a
//! manager restart, each under a `berth serve` inside the hub namespace
//! that reaches the nodes over mutual TLS on their addresses, as berth on a
//! machine of its own would. The faults touch the whole rig, so they run
//! one at a time, in a binary of their own (cargo runs test binaries one
//! after another, so never beside the other swarm tests), and each puts
//! the rig back as it found it, even when it fails.

#[path = "swarm/rig.rs"]
mod rig;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use self::rig::{hub_curl, leftovers_within, node_docker, port_answers, rig_do, running_labelled, AgentGuard, Served};

/// The tenant of a `berth serve` without tokens.
const TENANT: &str = "default";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

impl Served {
    /// `POST /v1/runs` of `body`: the answer, which must have `status`.
    fn post(&self, body: Value, status: u16) -> Value {
        let (answer, got) = self.post_json("/v1/runs", &body);
        assert_eq!(got, status, "{answer}");
        answer
    }

    /// A code run, answered as soon as it is recorded; its id.
    fn post_run(&self, code: &str) -> String {
        let view =
            self.post(serde_json::json!({"language": "sh", "code": code, "wait": false, "timeout_seconds": 120}), 202);
        view["id"].as_str().unwrap().to_owned()
    }

    /// A code run, answered when it is over.
    fn run(&self, code: &str) -> Value {
        self.post(serde_json::json!({"language": "sh", "code": code}), 201)
    }

    fn get(&self, id: &str) -> Value {
        let (answer, status) = self.get_json(&format!("/v1/runs/{id}"));
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// Run `id`'s view once `done` holds of it, within `within`.
    fn until(&self, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let view = self.get(id);
            if done(&view) {
                return view;
            }
            assert!(Instant::now() < deadline, "run {id} is still {view} after {within:?}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Runs `ids` once each has started on a node.
    fn placed(&self, ids: &[String]) -> Vec<Value> {
        let started = |v: &Value| v["status"] == "running" && v["node"].is_string();
        ids.iter().map(|id| self.until(id, Duration::from_secs(40), started)).collect()
    }

    /// Runs `ids` once each is over, within `within`.
    fn over(&self, ids: &[String], within: Duration) -> Vec<Value> {
        ids.iter().map(|id| self.until(id, within, |v| v["status"] != "running" && v["status"] != "pending")).collect()
    }

    /// Runs `ids`, which must each end `succeeded` saying `done`.
    fn all_done(&self, ids: &[String]) {
        for view in self.over(ids, Duration::from_secs(90)) {
            assert_eq!(
                (view["status"].as_str(), view["stdout"].as_str()),
                (Some("succeeded"), Some("done\n")),
                "{view}"
            );
        }
    }

    /// Three runs of 40 s; once they have started, `fault` is done to the
    /// worker of one of them (given its name), and that run is waited on
    /// for `within`.
    fn fault_a_worker(&self, fault: impl FnOnce(&str), within: Duration) -> Faulted {
        let ids: Vec<String> = (0..3).map(|_| self.post_run("sleep 40; echo done")).collect();
        let placed = self.placed(&ids);
        let v = placed.iter().find(|v| v["node"] != "bsw-n1").unwrap_or_else(|| panic!("none on a worker: {placed:?}"));
        let (id, node) = (v["id"].as_str().unwrap().to_owned(), v["node"].as_str().unwrap().to_owned());
        let put_back = PutBack(node.clone());
        fault(&node);
        let at = Instant::now();
        let ended = self.over(std::slice::from_ref(&id), within).remove(0);
        let took = at.elapsed();
        Faulted { others: ids.into_iter().filter(|i| *i != id).collect(), node, ended, took, _put_back: put_back }
    }

    fn ready(&self) -> (u16, Value) {
        let (answer, status) = hub_curl(&[&self.url("/v1/ready")]);
        (status, serde_json::from_str(&answer).unwrap_or(Value::Null))
    }

    fn health(&self) -> u16 {
        hub_curl(&["-m", "5", &self.url("/v1/health")]).1
    }
}

/// The rig's number of node `name` (`bsw-n2` → `2`).
fn number(name: &str) -> &str {
    name.trim_start_matches("bsw-n")
}

/// What [`Served::fault_a_worker`] did: the worker, its run's view once
/// over and how long after the fault that was, the other runs' ids.
struct Faulted {
    node: String,
    ended: Value,
    took: Duration,
    others: Vec<String>,
    _put_back: PutBack,
}

/// Node `name`'s state as its manager sees it, within `within` of it being `state`.
fn until_node(name: &str, state: &str, within: Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let deadline = Instant::now() + within;
    loop {
        let nodes = runtime.block_on(node_docker("bsw-n1").list_nodes()).unwrap_or_default();
        let now = nodes.iter().find(|n| n.description.hostname == name).map(|n| n.status.state.clone());
        if now.as_deref() == Some(state) {
            return;
        }
        assert!(Instant::now() < deadline, "node {name} is {now:?}, not {state}, after {within:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn leftovers_after(within: Duration) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(leftovers_within(TENANT, within))
}

/// Puts a node back when dropped: its link up, its availability active.
struct PutBack(String);

impl Drop for PutBack {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash").args([rig::SCRIPT, "mend", number(&self.0)]).status();
        let _ = std::process::Command::new("docker")
            .args(["-H", "unix:///run/bsw/n1.sock", "node", "update", "--availability", "active", &self.0])
            .output();
    }
}

fn set_availability(node: &str, availability: &str) {
    let out = std::process::Command::new("docker")
        .args(["-H", "unix:///run/bsw/n1.sock", "node", "update", "--availability", availability, node])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_run_on_a_worker_cut_off_mid_run_fails_saying_so_while_the_others_finish_and_nothing_is_left() {
    let _one = one_at_a_time();
    let berth = Served::start();
    let cut = |node: &str| drop(rig_do(&["cut", number(node)]));
    let Faulted { node, ended, took, others, _put_back } = berth.fault_a_worker(cut, Duration::from_secs(60));
    assert_eq!(ended["status"], "failed", "{ended}");
    let error = ended["error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("node {node} was marked down")), "{ended}");
    // The manager marks a silent node down about 11 s after it goes quiet;
    // the run ends within 30 s of that.
    assert!(took < Duration::from_secs(41), "the run ended {took:?} after the cut");
    let (status, ready) = berth.ready();
    assert_eq!(status, 200, "some node still takes work: {ready}");
    let states: Vec<(String, String)> = ready["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap().to_owned(), n["state"].as_str().unwrap().to_owned()))
        .collect();
    assert!(states.contains(&(node.clone(), "down".into())), "{ready}");

    berth.all_done(&others);
    rig_do(&["mend", number(&node)]);
    until_node(&node, "ready", Duration::from_secs(60));
    assert_eq!(leftovers_after(Duration::from_secs(60)), Vec::<String>::new());
}

#[test]
fn a_drained_node_ends_its_runs_saying_so_and_new_runs_go_to_the_other_nodes() {
    let _one = one_at_a_time();
    let berth = Served::start();
    let drain = |node: &str| set_availability(node, "drain");
    let Faulted { node, ended, others, _put_back, .. } = berth.fault_a_worker(drain, Duration::from_secs(30));
    assert_eq!(ended["status"], "failed", "{ended}");
    assert!(ended["error"].as_str().unwrap_or_default().contains(&format!("node {node} was drained")), "{ended}");
    let (status, ready) = berth.ready();
    assert_eq!(status, 200, "{ready}");
    assert!(ready["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["name"] == node.as_str() && n["availability"] == "drain"));
    for _ in 0..3 {
        let view = berth.run("echo elsewhere");
        assert_eq!(view["status"], "succeeded", "{view}");
        assert_ne!(view["node"], node.as_str(), "a new run went to the drained node: {view}");
    }
    set_availability(&node, "active");
    berth.all_done(&others);
    assert_eq!(leftovers_after(Duration::from_secs(30)), Vec::<String>::new());
}

#[test]
fn runs_on_workers_complete_across_a_manager_restart_and_berth_answers_throughout() {
    let _one = one_at_a_time();
    let berth = Served::start();
    let ids: Vec<String> = (0..4).map(|_| berth.post_run("sleep 20; echo done")).collect();
    let placed = berth.placed(&ids);
    let on_workers: Vec<String> =
        placed.iter().filter(|v| v["node"] != "bsw-n1").map(|v| v["id"].as_str().unwrap().to_owned()).collect();
    assert!(!on_workers.is_empty(), "no run went to a worker: {placed:?}");

    let restart = std::thread::spawn(|| rig_do(&["restart", "1"]));
    let mut answers = Vec::new();
    while !restart.is_finished() {
        answers.push(berth.health());
        std::thread::sleep(Duration::from_millis(200));
    }
    restart.join().unwrap();
    assert!(answers.iter().all(|s| *s == 200), "berth's API went away during the restart: {answers:?}");

    berth.all_done(&on_workers);
    berth.over(&ids, Duration::from_secs(90));
    until_node("bsw-n2", "ready", Duration::from_secs(60));
    assert_eq!(leftovers_after(Duration::from_secs(60)), Vec::<String>::new());
}

/// An agent on a worker that is cut off: the manager makes its task again
/// on another node, berth's view names that node and its address, and the
/// agent answers there; the old copy, which runs on as long as its node is
/// unreachable, is never what berth names or routes to, and it is stopped
/// once its node answers again.
#[test]
fn an_agent_on_a_worker_cut_off_comes_back_on_another_node_and_its_old_copy_is_stopped() {
    let _one = one_at_a_time();
    let berth = Served::start();
    // The agent is to be on a worker: the manager must not be cut.
    set_availability("bsw-n1", "pause");
    let _manager_back = PutBack("bsw-n1".into());
    let agent = serde_json::json!({
        "id": "mover", "image": "busybox:1.35", "ports": [8080],
        "command": ["sh", "-c", "exec httpd -f -p 8080"]
    });
    let (created, status) = berth.post_json("/v1/agents", &agent);
    assert_eq!(status, 201, "{created}");
    let removed = AgentGuard(&berth, "mover");
    let old = created["node"].as_str().expect("its node").to_owned();
    assert_ne!(old, "bsw-n1", "{created}");
    let port = created["ports"][0]["host"].as_u64().expect("its port");
    let mine = format!("{}=mover", berth_core::spec::labels::OBJECT);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let _node_back = PutBack(old.clone());
    rig_do(&["cut", number(&old)]);
    let cut_at = Instant::now();
    let moved = loop {
        let (view, _) = berth.get_json("/v1/agents/mover");
        if view["node"] != old.as_str() && view["status"] == "running" {
            break view;
        }
        assert!(cut_at.elapsed() < Duration::from_secs(60), "the agent is still {view} 60 s after the cut");
        std::thread::sleep(Duration::from_millis(500));
    };
    let took = cut_at.elapsed();
    let new = moved["node"].as_str().unwrap().to_owned();
    let address = moved["address"].as_str().expect("the new node's address").to_owned();
    assert_eq!(address, format!("192.168.177.{}", number(&new)), "{moved}");
    assert_eq!(port_answers(&address, port, 404), 404, "the agent answers on {address}:{port}");
    let (exec, status) =
        berth.post_json("/v1/agents/mover/exec", &serde_json::json!({"cmd": ["sh", "-c", "hostname; pidof httpd"]}));
    assert_eq!((status, exec["exit_code"].as_i64()), (200, Some(0)), "{exec}");
    let (listed, _) = berth.get_json("/v1/agents");
    let nodes: Vec<&Value> =
        listed.as_array().unwrap().iter().filter(|a| a["id"] == "mover").map(|a| &a["node"]).collect();
    assert_eq!(nodes, vec![&Value::from(new.clone())], "one agent, where it runs now: {listed}");
    // The old copy runs on behind the cut: berth names only the new one.
    assert_eq!(runtime.block_on(running_labelled(&old, &mine)).len(), 1, "the old copy on {old} behind the cut");

    rig_do(&["mend", number(&old)]);
    until_node(&old, "ready", Duration::from_secs(60));
    let mended = Instant::now();
    while !runtime.block_on(running_labelled(&old, &mine)).is_empty() {
        assert!(mended.elapsed() < Duration::from_secs(60), "the old copy still runs on {old} 60 s after it is back");
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "the agent came back on {new} {took:?} after the cut of {old}; its old copy stopped {:?} after {old} was back",
        mended.elapsed()
    );
    let (view, _) = berth.get_json("/v1/agents/mover");
    assert_eq!((view["node"].as_str(), view["status"].as_str()), (Some(new.as_str()), Some("running")), "{view}");

    removed.remove();
    drop(berth);
    assert_eq!(leftovers_after(Duration::from_secs(60)), Vec::<String>::new());
}
