//! What is kept of a workspace sandbox: its template, lifetime and state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::handle::{Handle, Placement};

/// Where a sandbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SandboxState {
    Starting,
    Running,
    Paused,
    Ended,
}

impl SandboxState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why a sandbox ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EndReason {
    /// Its tenant killed it.
    Killed,
    /// Its timeout (or its time paused) ran out.
    Expired,
    /// Its container is gone without berth removing it (an engine restart).
    EngineLost,
    /// It never became ready.
    Failed,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How a sandbox came to be: made for its creation, or a spare adopted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum StartPath {
    #[default]
    Cold,
    Pooled,
}

impl StartPath {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A sandbox's record, kept in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// berth's id (`sbx` and 12 hex characters), unique over all tenants.
    pub id: String,
    pub tenant: String,
    pub template: String,
    pub image: String,
    pub metadata: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub state: SandboxState,
    pub ended: Option<EndReason>,
    /// Records from before spares read as cold.
    #[serde(default)]
    pub path: StartPath,
    pub container_id: Option<String>,
    #[serde(default)]
    pub placement: Placement,
    pub container_name: String,
    /// What the in-sandbox API asks for (E2B's `envdAccessToken`).
    pub access_token: String,
    pub memory_bytes: u64,
    pub cpu_nanos: u64,
    pub disk_bytes: u64,
    pub created_at: DateTime<Utc>,
    /// When it expires while running (moved by each refresh).
    pub expires_at: DateTime<Utc>,
    /// While paused: since when, and the running time it had left.
    pub paused_at: Option<DateTime<Utc>>,
    pub remaining_ms: Option<u64>,
    pub ended_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl SandboxRecord {
    pub fn handle(&self) -> Option<Handle> {
        self.container_id.as_ref().map(|id| Handle::at(id.clone(), self.placement.clone()))
    }
}
