//! What a run is asked to do: the request, its workload, the code table's
//! languages and the names parameters travel under.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::units::{ByteSize, CpuLimit};

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// A tool image, with its own command or the image's.
    Tool { image: String, command: Option<Vec<String>> },
    /// A snippet in a language of the configured table.
    Code { language: String, code: String },
}

/// A request for a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub tenant: String,
    pub session: Option<String>,
    /// A name for people (Cortex's `tool_name`).
    pub name: Option<String>,
    pub workload: Workload,
    pub parameters: serde_json::Map<String, serde_json::Value>,
    pub env: BTreeMap<String, String>,
    pub memory: Option<ByteSize>,
    pub cpu: Option<CpuLimit>,
    pub timeout: Option<Duration>,
    /// Remove the container when the run is over (the record stays).
    pub cleanup: bool,
    /// Whether a tool run has the engine's bridge (the default) or no
    /// network at all (`false`: a sealed run, which an OCI runtime can
    /// take). Code runs never have one.
    pub network: bool,
    /// The runtime to run it with, by name (`runc`, `runsc`, `docker`):
    /// one of the server's; `None` lets the server choose.
    pub runtime: Option<String>,
}

impl RunRequest {
    pub fn new(tenant: &str, workload: Workload) -> Self {
        RunRequest {
            tenant: tenant.into(),
            session: None,
            name: None,
            workload,
            parameters: Default::default(),
            env: Default::default(),
            memory: None,
            cpu: None,
            timeout: None,
            cleanup: true,
            network: true,
            runtime: None,
        }
    }
}

/// A language of the code table: the image and the command the code is appended to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Language {
    pub image: String,
    pub command: Vec<String>,
}

/// The default languages: `python` (python:3.11-slim, `python3 -c`) and `sh`
/// (busybox:1.35, `sh -c`).
pub fn default_languages() -> BTreeMap<String, Language> {
    BTreeMap::from([
        (
            "python".to_owned(),
            Language { image: "python:3.11-slim".into(), command: vec!["python3".into(), "-c".into()] },
        ),
        ("sh".to_owned(), Language { image: "busybox:1.35".into(), command: vec!["sh".into(), "-c".into()] }),
    ])
}

/// The largest snippet accepted (it travels as one argument).
pub const MAX_CODE_BYTES: usize = 100 * 1024;

/// `PARAM_<NAME>` for a parameter name, or `None` for an empty one.
pub fn param_var(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let name: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    Some(format!("PARAM_{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_become_upper_case_variables() {
        assert_eq!(param_var("file").as_deref(), Some("PARAM_FILE"));
        assert_eq!(param_var("max-pages.v2").as_deref(), Some("PARAM_MAX_PAGES_V2"));
        assert_eq!(param_var(""), None);
    }
}
