//! The rig the swarm tiers run on (`scripts/swarm-rig.sh`), shared by the
//! swarm binaries: its nodes' engines, bringing it up, what a tenant left
//! on it, and `berth serve` beside it or inside its hub namespace.
#![allow(dead_code)] // Each binary uses what it needs of this module.

use std::sync::OnceLock;
use std::time::Duration;

use berth_core::spec::labels;
use engine_api::{Docker, Filters, ListOptions};

pub const NODES: [&str; 3] = ["bsw-n1", "bsw-n2", "bsw-n3"];

pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/swarm-rig.sh");

/// The path of node `name`'s engine socket (`scripts/swarm-rig.sh`).
fn node_socket(name: &str) -> String {
    format!("/run/bsw/{}.sock", name.trim_start_matches("bsw-"))
}

/// Node `name`'s engine over its Unix socket (reachable from the host's
/// namespace even while the node is cut off).
pub fn node_docker(name: &str) -> Docker {
    let endpoint = engine_api::host::Endpoint::parse(&format!("unix://{}", node_socket(name))).expect("a rig socket");
    Docker::new(engine_api::transport::SocketTransport::new(endpoint))
}

/// `scripts/swarm-rig.sh ARGS…`, which must succeed; gives its stdout.
pub fn rig_do(args: &[&str]) -> String {
    let out = std::process::Command::new("bash").arg(SCRIPT).args(args).output().expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/swarm-rig.sh {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rig, up once for this process.
pub fn rig() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        rig_do(&["up", "3"]);
    });
}

/// What is left of tenant `tenant`'s workloads: services and networks on
/// the manager, containers on every node. The manager removes an overlay a
/// moment after it is asked to, so what is left is looked at again for up
/// to `within`.
pub async fn leftovers_within(tenant: &str, within: Duration) -> Vec<String> {
    leftovers_labelled_within(&format!("{}={tenant}", labels::TENANT), within).await
}

pub async fn leftovers(tenant: &str) -> Vec<String> {
    leftovers_within(tenant, Duration::from_secs(5)).await
}

pub async fn leftovers_now(tenant: &str) -> Vec<String> {
    leftovers_labelled(&format!("{}={tenant}", labels::TENANT)).await
}

/// What is left labelled `label` (`key=value`), looked at for up to `within`.
pub async fn leftovers_labelled_within(label: &str, within: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = leftovers_labelled(label).await;
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What is labelled `label` now: services and networks on the manager,
/// containers and volumes on every node.
pub async fn leftovers_labelled(label: &str) -> Vec<String> {
    let manager = node_docker("bsw-n1");
    let mut left = Vec::new();
    for s in manager.list_services(&Filters::new().label(label)).await.unwrap() {
        left.push(format!("service {}", s.spec.name));
    }
    for n in manager.list_networks(&Filters::new().label(label)).await.unwrap() {
        left.push(format!("network {}", n.name));
    }
    for node in NODES {
        left.extend(containers_labelled(node, label).await.into_iter().map(|c| format!("container {c} on {node}")));
        let volumes = node_docker(node).list_volumes(&Filters::new().label(label)).await.unwrap().volumes;
        left.extend(volumes.into_iter().map(|v| format!("volume {} on {node}", v.name)));
    }
    left
}

/// The ids of node `node`'s containers labelled `label`.
pub async fn containers_labelled(node: &str, label: &str) -> Vec<String> {
    let options = ListOptions { all: true, filters: Filters::new().label(label), ..Default::default() };
    node_docker(node).list_containers(&options).await.unwrap().into_iter().map(|c| c.id).collect()
}

/// The ids of node `node`'s running containers labelled `label`.
pub async fn running_labelled(node: &str, label: &str) -> Vec<String> {
    let options = ListOptions { all: false, filters: Filters::new().label(label), ..Default::default() };
    node_docker(node).list_containers(&options).await.unwrap().into_iter().map(|c| c.id).collect()
}

/// `berth serve` of `config`, in the rig's hub namespace when `in_hub`:
/// the child, its stderr up to its listening line (or its end) and its
/// address.
pub fn serve(
    in_hub: bool,
    config: &std::path::Path,
    data: &std::path::Path,
) -> (std::process::Child, String, Option<String>) {
    serve_with(in_hub, config, data, &[])
}

/// As [`serve`], with `env` set for berth.
pub fn serve_with(
    in_hub: bool,
    config: &std::path::Path,
    data: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String, Option<String>) {
    let mut command = if in_hub {
        let mut c = std::process::Command::new("bash");
        c.args([SCRIPT, "exec", env!("CARGO_BIN_EXE_berth")]);
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
    };
    command.args(["serve", "--listen", "127.0.0.1:0", "--config"]).arg(config).arg("--data").arg(data);
    command.envs(env.iter().copied());
    test_support::serve::spawn(command.env("BERTH_SPARES", ""))
}

/// Stops the `berth serve` whose data folder is `data` (in the hub, the
/// child is `nsenter`'s, so berth is found by its arguments).
pub fn stop_serve(mut child: std::process::Child, data: &std::path::Path) {
    let _ =
        std::process::Command::new("pkill").args(["-TERM", "-f", "--", &format!("--data {}", data.display())]).status();
    let _ = child.wait();
}

/// `curl -s ARGS…` from inside the hub namespace: the answer's body, then
/// its status code on a line of its own.
pub fn hub_curl(args: &[&str]) -> (String, u16) {
    let out = std::process::Command::new("bash")
        .args([SCRIPT, "exec", "curl", "-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (body.to_owned(), code.trim().parse().unwrap_or(0))
}

/// `berth serve` in the hub over the rig's TLS configuration (as berth on
/// a machine of its own reaches the nodes), stopped when dropped, so a
/// failing test leaves no server behind.
pub struct Served {
    child: Option<std::process::Child>,
    data: tempfile::TempDir,
    pub addr: String,
}

impl Served {
    pub fn start() -> Served {
        Served::start_with(&[])
    }

    /// As [`Served::start`], with `env` set for berth.
    pub fn start_with(env: &[(&str, &str)]) -> Served {
        Served::start_over(std::path::Path::new("/run/bsw/berth-tls.toml"), env)
    }

    /// As [`Served::start`], with the rig's TLS configuration with warm
    /// pools of `min` members per language (the rig's has none).
    pub fn start_pooled(min: usize) -> Served {
        rig();
        let text = std::fs::read_to_string("/run/bsw/berth-tls.toml").unwrap();
        assert!(text.contains("pools = false\n"), "{text}");
        let pooled =
            text.replace("pools = false\n", &format!("[pools]\nmin = {min}\nmax = {min}\ntool_pool_after = 0\n"));
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(config.path(), pooled).unwrap();
        Served::start_over(config.path(), &[])
    }

    fn start_over(config: &std::path::Path, env: &[(&str, &str)]) -> Served {
        rig();
        let data = tempfile::tempdir().unwrap();
        let (child, said, addr) = serve_with(true, config, data.path(), env);
        let addr = addr.unwrap_or_else(|| panic!("berth serve did not listen: {said}"));
        Served { child: Some(child), data, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `POST path` of JSON `body` from the hub: the answer and its status.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> (serde_json::Value, u16) {
        let json = body.to_string();
        let (answer, status) =
            hub_curl(&["-X", "POST", "-H", "content-type: application/json", "-d", &json, &self.url(path)]);
        (serde_json::from_str(&answer).unwrap_or(serde_json::Value::String(answer)), status)
    }

    /// `GET path` from the hub: the answer as JSON and its status.
    pub fn get_json(&self, path: &str) -> (serde_json::Value, u16) {
        let (answer, status) = hub_curl(&["-m", "30", &self.url(path)]);
        (serde_json::from_str(&answer).unwrap_or(serde_json::Value::String(answer)), status)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_serve(child, self.data.path());
        }
    }
}

/// Agent `id` of a [`Served`] berth, removed when dropped unless kept, so a
/// failing test leaves no agent behind.
pub struct AgentGuard<'a>(pub &'a Served, pub &'a str);

impl AgentGuard<'_> {
    /// The agent's removal, which must answer 204: the guard's work done.
    pub fn remove(self) {
        let (answer, status) = hub_curl(&["-X", "DELETE", &self.0.url(&format!("/v1/agents/{}", self.1))]);
        assert_eq!(status, 204, "{answer}");
        std::mem::forget(self);
    }
}

impl Drop for AgentGuard<'_> {
    fn drop(&mut self) {
        hub_curl(&["-X", "DELETE", &self.0.url(&format!("/v1/agents/{}", self.1))]);
    }
}

/// The HTTP status `http://address:port/` answers from the hub, once it is
/// `expected`, or the last one after ten seconds of asking.
pub fn port_answers(address: &str, port: u64, expected: u16) -> u16 {
    let mut answered = 0;
    for _ in 0..40 {
        answered = hub_curl(&["-m", "3", "-o", "/dev/null", &format!("http://{address}:{port}/")]).1;
        if answered == expected {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    answered
}

/// Node `node`'s own view of overlay `network` (`GET /networks/ID?verbose=true`
/// on its engine): the services and tasks its share of the overlay's gossip
/// has taught it, by service name. An alias resolves on a node only once its
/// service is here.
pub fn overlay_view(node: &str, network: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-s", "--unix-socket", &node_socket(node), &format!("http://node/networks/{network}?verbose=true")])
        .output()
        .expect("curl runs");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}
