use serde::{Deserialize, Serialize};

use super::lenient;

/// Body of `POST /containers/{id}/exec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecConfig {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    pub cmd: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// `[height, width]` of the TTY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_size: Option<[u32; 2]>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExecCreated {
    #[serde(rename = "Id", alias = "ID", alias = "id")]
    pub id: String,
}

/// Body of `POST /exec/{id}/start`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecStart {
    pub detach: bool,
    pub tty: bool,
}

/// `GET /exec/{id}/json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecInspect {
    #[serde(rename = "ID", alias = "Id", alias = "id", default)]
    pub id: String,
    #[serde(default)]
    pub running: bool,
    /// `None` while the process runs.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub exit_code: Option<i64>,
    #[serde(rename = "ContainerID", alias = "ContainerId", default)]
    pub container_id: String,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub pid: Option<i64>,
    #[serde(default)]
    pub process_config: Option<ExecProcessConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExecProcessConfig {
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub entrypoint: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub arguments: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
}
