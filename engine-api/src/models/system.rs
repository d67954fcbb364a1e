use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lenient;

/// `GET /version`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemVersion {
    pub version: Option<String>,
    pub api_version: Option<String>,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: Option<String>,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub kernel_version: Option<String>,
    pub git_commit: Option<String>,
}

/// `GET /info`, the fields berth reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemInfo {
    #[serde(rename = "ID")]
    pub id: Option<String>,
    pub name: Option<String>,
    pub server_version: Option<String>,
    pub containers: Option<i64>,
    pub containers_running: Option<i64>,
    pub containers_paused: Option<i64>,
    pub containers_stopped: Option<i64>,
    pub images: Option<i64>,
    pub driver: Option<String>,
    pub cgroup_driver: Option<String>,
    pub cgroup_version: Option<String>,
    #[serde(rename = "NCPU")]
    pub ncpu: Option<i64>,
    pub mem_total: Option<i64>,
    pub operating_system: Option<String>,
    pub kernel_version: Option<String>,
    pub docker_root_dir: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub security_options: Vec<String>,
    /// The engine's clock, RFC 3339.
    pub system_time: Option<String>,
    /// The OCI runtimes the engine's configuration registers, by name.
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub runtimes: BTreeMap<String, serde_json::Value>,
}

/// One event from `GET /events`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Event {
    /// `container`, `image`, `network`, `volume`, …
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// `create`, `start`, `die`, `health_status: healthy`, …
    #[serde(rename = "Action", default)]
    pub action: String,
    #[serde(rename = "Actor", default)]
    pub actor: EventActor,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub time: Option<i64>,
    #[serde(rename = "timeNano", default, deserialize_with = "lenient::opt_i64")]
    pub time_nano: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventActor {
    #[serde(rename = "ID", alias = "id", default)]
    pub id: String,
    #[serde(rename = "Attributes", default, deserialize_with = "lenient::null_default")]
    pub attributes: BTreeMap<String, String>,
}
