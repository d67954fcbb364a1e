//! Swarm mode's wire models (API 1.41): services, their tasks, the nodes.
//! Only the fields berth sends or reads; unknown ones are tolerated, and
//! the daemon drops unknown fields of a service spec without an error, so
//! what was made is read back rather than trusted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::container::{HealthConfig, Ulimit};
use super::lenient;

/// Body of `POST /services/create` and of an update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "lenient::null_default")]
    pub labels: BTreeMap<String, String>,
    pub task_template: TaskSpec,
    #[serde(default)]
    pub mode: ServiceMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_spec: Option<EndpointSpec>,
}

/// How many tasks a service keeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceMode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated: Option<Replicated>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Replicated {
    pub replicas: u64,
}

/// What each task of a service runs, and where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskSpec {
    pub container_spec: TaskContainerSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<TaskRestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<TaskPlacement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient::null_default")]
    pub networks: Vec<NetworkAttachment>,
    /// Raised to have the manager replace the tasks although nothing else
    /// of the spec changed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub force_update: u64,
    /// The log driver of the task's container; the node's default without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Driver>,
}

/// A driver by name with its options: a task's log driver, a volume's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Driver {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "lenient::null_default")]
    pub options: BTreeMap<String, String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A task's container. `command` replaces the image's entrypoint and
/// `args` its command.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskContainerSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "lenient::null_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient::null_default")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, rename = "TTY", skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_stdin: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient::null_default")]
    pub mounts: Vec<TaskMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient::null_default")]
    pub capability_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient::null_default")]
    pub capability_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient::null_default")]
    pub ulimits: Vec<Ulimit>,
    /// Nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<i64>,
    /// Run by the node's engine as for a container of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthConfig>,
}

/// A mount of a task's container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskMount {
    /// `bind`, `volume`, `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
}

/// How the node makes a volume mount's volume when it has none of its name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    /// Whether the image's files at the target are left out of a new volume.
    #[serde(default)]
    pub no_copy: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "lenient::null_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<Driver>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TmpfsOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// Limits bound a task; reservations only steer where it is placed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Limit>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Limit {
    #[serde(default, rename = "NanoCPUs", skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<i64>,
    /// Limits only (API 1.41).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskRestartPolicy {
    /// `none`, `on-failure`, `any`.
    pub condition: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskPlacement {
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient::null_default")]
    pub constraints: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkAttachment {
    pub target: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient::null_default")]
    pub aliases: Vec<String>,
}

/// How a service is reached: `dnsrr` (no virtual IP, which needs IPVS) and
/// its published ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient::null_default")]
    pub ports: Vec<PortConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortConfig {
    #[serde(default)]
    pub protocol: String,
    pub target_port: u16,
    #[serde(default)]
    pub published_port: u16,
    /// `host` (on the task's node) or `ingress`.
    #[serde(default)]
    pub publish_mode: String,
}

/// Answer to `POST /services/create`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceCreated {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub warnings: Vec<String>,
}

/// A service as the manager keeps it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default)]
    pub version: ObjectVersion,
    pub spec: ServiceSpec,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectVersion {
    pub index: u64,
}

/// One task: a slot of a service on a node.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    /// Empty until the scheduler has placed it.
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(default)]
    pub status: TaskStatus,
    #[serde(default)]
    pub desired_state: String,
    /// RFC 3339, as the manager wrote it.
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskStatus {
    /// `new`, `pending`, `assigned`, `accepted`, `preparing`, `starting`,
    /// `running`, `complete`, `failed`, `shutdown`, `rejected`, `orphaned`, …
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub err: Option<String>,
    #[serde(default)]
    pub container_status: Option<TaskContainerStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskContainerStatus {
    #[serde(rename = "ContainerID", default)]
    pub container_id: String,
    #[serde(default)]
    pub exit_code: Option<i64>,
}

/// A node of the swarm.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default)]
    pub description: NodeDescription,
    #[serde(default)]
    pub status: NodeStatus,
    #[serde(default)]
    pub spec: NodeSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDescription {
    #[serde(default)]
    pub hostname: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeStatus {
    /// `ready`, `down`, `unknown`, `disconnected`.
    #[serde(default)]
    pub state: String,
    /// The address the node is reached at (never its identity).
    #[serde(default)]
    pub addr: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeSpec {
    /// `active`, `pause`, `drain`.
    #[serde(default)]
    pub availability: String,
    #[serde(default)]
    pub role: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub labels: BTreeMap<String, String>,
}
