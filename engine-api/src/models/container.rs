use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::lenient;

/// Body of `POST /containers/create`: the container's config with its host
/// config and networking config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_stdin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_stdout: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_stderr: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, EmptyObject>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_stdin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin_once: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub env: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_config: Option<HostConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking_config: Option<NetworkingConfig>,
}

/// `{}` in the wire format (exposed ports, volumes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyObject {}

/// The engine's own health check. Durations are nanoseconds; 0 inherits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["CMD", args…]`, `["CMD-SHELL", command]`, `["NONE"]` or `[]` (inherit).
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// API >= 1.44.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
}

/// The host side of a container: limits, security, mounts and networking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// Memory limit in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Memory plus swap in bytes; `-1` unlimited swap. Set equal to `memory` for no swap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    /// CPU quota in units of 1e-9 CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub cap_add: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub cap_drop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub security_opt: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly_rootfs: Option<bool>,
    /// Mount point → options, e.g. `{"/tmp": "rw,noexec,nosuid,size=65536k"}`.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub tmpfs: Option<BTreeMap<String, String>>,
    /// `host-path:container-path[:options]`.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub binds: Option<Vec<String>>,
    /// `bridge`, `none`, `host`, `container:<id>` or a network name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// `"8080/tcp"` → host bindings.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub port_bindings: Option<BTreeMap<String, Vec<PortBinding>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub ulimits: Option<Vec<Ulimit>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_remove: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub extra_hosts: Option<Vec<String>>,
    /// The OCI runtime the engine runs the container with, one of those
    /// its configuration registers (`runc` when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The container's log driver (`{"Type": "none"}` keeps no log).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub log_config: Option<LogConfig>,
}

/// A container's log driver and its options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "lenient::null_default")]
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// `""`, `no`, `always`, `unless-stopped`, `on-failure`.
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_retry_count: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkingConfig {
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub endpoints_config: BTreeMap<String, EndpointSettings>,
}

/// A container's attachment to one network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient::null_default", default)]
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "NetworkID", skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    #[serde(rename = "IPAddress", skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// Answer to `POST /containers/create`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCreated {
    #[serde(alias = "id")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub warnings: Vec<String>,
}

/// A container's lifecycle state. States this client does not know (Podman's
/// `stopping`, for one) are kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContainerStatus {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Other(String),
}

impl ContainerStatus {
    pub fn as_str(&self) -> &str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Dead => "dead",
            ContainerStatus::Other(s) => s,
        }
    }
}

/// The status of a container whose engine did not say: an unknown state, not
/// a guessed one (the flags beside it still say what the engine did report).
fn unknown_status() -> ContainerStatus {
    ContainerStatus::Other(String::new())
}

impl From<&str> for ContainerStatus {
    fn from(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "created" | "configured" => ContainerStatus::Created,
            "running" => ContainerStatus::Running,
            "paused" => ContainerStatus::Paused,
            "restarting" => ContainerStatus::Restarting,
            "removing" => ContainerStatus::Removing,
            "exited" | "stopped" => ContainerStatus::Exited,
            "dead" => ContainerStatus::Dead,
            _ => ContainerStatus::Other(s.to_owned()),
        }
    }
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ContainerStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ContainerStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ContainerStatus::from(String::deserialize(d)?.as_str()))
    }
}

/// `GET /containers/{id}/json`, the fields berth reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    #[serde(alias = "id")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    /// Required: without it nothing about the container's state is known.
    #[serde(alias = "state")]
    pub state: ContainerState,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub host_config: Option<HostConfig>,
    #[serde(default)]
    pub network_settings: Option<NetworkSettings>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub restart_count: Option<i64>,
}

impl ContainerInspect {
    /// Whether the container has a TTY, which decides how its logs are framed.
    pub fn tty(&self) -> bool {
        self.config.as_ref().and_then(|c| c.tty).unwrap_or(false)
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.config.as_ref().and_then(|c| c.labels.as_ref())
    }
}

/// The `State` of an inspected container.
///
/// Go's JSON decoding ignores the case of keys, so engines written against it
/// (Podman) are not held to Docker's spelling: the fields berth reads also
/// accept the lower-case one.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// Missing reads as unknown (`Other("")`), so an engine that leaves it out
    /// still yields the flags, exit code and health it did send.
    #[serde(alias = "status", default = "unknown_status")]
    pub status: ContainerStatus,
    #[serde(alias = "running", default)]
    pub running: bool,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub restarting: bool,
    #[serde(rename = "OOMKilled", alias = "OomKilled", alias = "oomKilled", default)]
    pub oom_killed: bool,
    #[serde(default)]
    pub dead: bool,
    #[serde(alias = "pid", default, deserialize_with = "lenient::opt_i64")]
    pub pid: Option<i64>,
    #[serde(alias = "exitCode", default, deserialize_with = "lenient::opt_i64")]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(alias = "health", default)]
    pub health: Option<Health>,
}

/// The engine's health-check state of a container.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `none`, `starting`, `healthy` or `unhealthy`.
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub failing_streak: Option<i64>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub log: Vec<HealthLog>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthLog {
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub output: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub networks: BTreeMap<String, EndpointSettings>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
}

/// One entry of `GET /containers/json`. Like [`ContainerState`], the fields
/// berth reads also accept their lower-case spelling.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    #[serde(alias = "id")]
    pub id: String,
    #[serde(alias = "names", default, deserialize_with = "lenient::null_default")]
    pub names: Vec<String>,
    #[serde(alias = "image", default)]
    pub image: String,
    #[serde(alias = "created", default, deserialize_with = "lenient::opt_i64")]
    pub created: Option<i64>,
    /// Machine-readable state; missing reads as unknown (`Other("")`) rather
    /// than dropping the whole list.
    #[serde(alias = "state", default = "unknown_status")]
    pub state: ContainerStatus,
    /// Human-readable status (`Up 3 seconds`).
    #[serde(alias = "status", default)]
    pub status: String,
    #[serde(alias = "labels", default, deserialize_with = "lenient::null_default")]
    pub labels: BTreeMap<String, String>,
}

/// Answer to `POST /containers/{id}/wait`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitExit {
    /// Required: a wait answer without an exit code has no honest default
    /// (0 would report a success nobody saw).
    #[serde(alias = "statusCode")]
    pub status_code: i64,
    /// Some Podman versions send `"Error": {"Message": ""}` on every exit,
    /// success included: an error with no message is no error.
    #[serde(alias = "error", default, deserialize_with = "wait_error")]
    pub error: Option<WaitError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitError {
    #[serde(alias = "message", default)]
    pub message: String,
}

fn wait_error<'de, D: Deserializer<'de>>(d: D) -> Result<Option<WaitError>, D::Error> {
    Ok(Option::<WaitError>::deserialize(d)?.filter(|e| !e.message.is_empty()))
}

/// Answer to `POST /containers/prune`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainersPruned {
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub containers_deleted: Vec<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub space_reclaimed: Option<i64>,
}

/// What `X-Docker-Container-Path-Stat` says about an archive's path.
#[derive(Debug, Clone, Deserialize)]
pub struct PathStat {
    pub name: String,
    #[serde(default)]
    pub size: i64,
    /// Go `os.FileMode` bits (not a POSIX mode).
    #[serde(default)]
    pub mode: u32,
    #[serde(default)]
    pub mtime: String,
    #[serde(rename = "linkTarget", default)]
    pub link_target: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_states_and_lower_case_keys_are_tolerated() {
        let s: ContainerSummary = serde_json::from_str(
            r#"{"id":"abc","Names":null,"State":"stopping","Created":"1700000000","Labels":null,"Extra":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(s.id, "abc");
        assert_eq!(s.state, ContainerStatus::Other("stopping".into()));
        assert_eq!(s.created, Some(1_700_000_000));
        assert!(s.labels.is_empty());
    }

    #[test]
    fn the_podman_inspect_seed_parses_with_its_lenient_values_read() {
        let c: ContainerInspect =
            serde_json::from_str(include_str!("../../../fuzz/seeds/models/container_inspect_podman.json")).unwrap();
        assert_eq!(c.id, "abc");
        assert_eq!(c.name, "");
        assert_eq!(c.restart_count, Some(3), "a count sent as a string");
        assert_eq!(c.state.status, ContainerStatus::Other("stopping".into()));
        assert!(!c.state.running);
        assert!(c.state.oom_killed, "Podman's OomKilled spelling");
        assert_eq!(c.state.pid, Some(12), "a pid sent as a string");
        assert_eq!(c.state.exit_code, Some(1), "an exit code sent as a float");
        assert!(c.state.health.is_none());
        assert!(!c.tty());
        assert!(c.labels().is_none());
    }

    #[test]
    fn an_inspect_state_in_lower_case_or_without_status_parses() {
        let c: ContainerInspect = serde_json::from_str(
            r#"{"Id":"abc","state":{"status":"running","running":true,"exitCode":0,"pid":7,"oomKilled":false,
                "health":{"Status":"healthy"}}}"#,
        )
        .unwrap();
        assert_eq!(c.state.status, ContainerStatus::Running);
        assert!(c.state.running);
        assert_eq!((c.state.exit_code, c.state.pid), (Some(0), Some(7)));
        assert_eq!(c.state.health.map(|h| h.status), Some("healthy".into()));

        let c: ContainerInspect = serde_json::from_str(r#"{"Id":"abc","State":{"Running":true}}"#).unwrap();
        assert_eq!(c.state.status, ContainerStatus::Other(String::new()), "unknown, not guessed");
        assert!(c.state.running);
        assert!(serde_json::from_str::<ContainerInspect>(r#"{"Id":"abc"}"#).is_err(), "no state at all is no answer");
    }

    #[test]
    fn a_list_entry_in_podmans_shape_parses() {
        let s: ContainerSummary = serde_json::from_str(
            r#"{"id":"def","names":["web"],"image":"docker.io/library/busybox:latest","state":"exited",
                "status":"Exited (0) 3 seconds ago","created":"1700000000","labels":{"berth.run":"r1"}}"#,
        )
        .unwrap();
        assert_eq!(s.id, "def");
        assert_eq!(s.names, vec!["web"]);
        assert_eq!(s.image, "docker.io/library/busybox:latest");
        assert_eq!(s.state, ContainerStatus::Exited);
        assert_eq!(s.status, "Exited (0) 3 seconds ago");
        assert_eq!(s.created, Some(1_700_000_000));
        assert_eq!(s.labels.get("berth.run").map(String::as_str), Some("r1"));

        let s: ContainerSummary = serde_json::from_str(r#"{"Id":"abc","Status":"Up 3 seconds"}"#).unwrap();
        assert_eq!(s.state, ContainerStatus::Other(String::new()), "a missing state is unknown");
    }

    #[test]
    fn a_wait_answer_in_podmans_shape_parses_and_an_empty_error_is_no_error() {
        let w: WaitExit = serde_json::from_str(r#"{"StatusCode":0,"Error":{"Message":""}}"#).unwrap();
        assert_eq!(w, WaitExit { status_code: 0, error: None });
        let w: WaitExit = serde_json::from_str(r#"{"StatusCode":3,"Error":null}"#).unwrap();
        assert_eq!(w, WaitExit { status_code: 3, error: None });
        let w: WaitExit = serde_json::from_str(r#"{"statusCode":1,"error":{"message":"oops"}}"#).unwrap();
        assert_eq!(w, WaitExit { status_code: 1, error: Some(WaitError { message: "oops".into() }) });
        assert!(serde_json::from_str::<WaitExit>(r#"{"Error":null}"#).is_err(), "no exit code is no answer");
    }

    #[test]
    fn dockers_own_answers_still_parse_to_the_same_fields() {
        let c: ContainerInspect =
            serde_json::from_str(include_str!("../../../fuzz/seeds/models/container_inspect.json")).unwrap();
        assert_eq!((c.id.as_str(), c.name.as_str()), ("4fa6e0f0c678", "/web"));
        assert_eq!(c.state.status, ContainerStatus::Running);
        assert!(c.state.running && !c.state.oom_killed);
        assert_eq!((c.state.pid, c.state.exit_code), (Some(1234), Some(0)));
        assert_eq!(c.state.health.as_ref().map(|h| h.status.as_str()), Some("healthy"));
        assert_eq!(c.labels().and_then(|l| l.get("berth.run")).map(String::as_str), Some("r1"));

        let list: Vec<ContainerSummary> =
            serde_json::from_str(include_str!("../../../fuzz/seeds/models/container_list.json")).unwrap();
        assert_eq!(list[0].id, "abc");
        assert_eq!(list[0].state, ContainerStatus::Running);
        assert_eq!(list[0].status, "Up 3 seconds");
        assert_eq!(list[1].state, ContainerStatus::Other("stopping".into()));

        let w: WaitExit = serde_json::from_str(include_str!("../../../fuzz/seeds/models/wait.json")).unwrap();
        assert_eq!(w, WaitExit { status_code: 137, error: Some(WaitError { message: "killed".into() }) });
    }

    #[test]
    fn create_config_serializes_only_what_is_set() {
        let c = ContainerConfig {
            image: Some("busybox:1.35".into()),
            host_config: Some(HostConfig {
                memory: Some(1 << 20),
                cap_drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"Image":"busybox:1.35","HostConfig":{"Memory":1048576,"CapDrop":["ALL"]}}"#
        );
    }
}
