//! berth's own description of a container: what orchestration asks a backend
//! to create. It carries only what berth decides (image, command, limits,
//! security, network, mounts, labels); how an engine spells it is the
//! backend's business. Specs are built by [`crate::policy`], which is the
//! only way a request becomes a spec, so every spec has its limits set.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::units::{ByteSize, CpuLimit};

pub use crate::engine::ContainerId;

pub use crate::model::kind::Kind;

/// Whether `name` is a DNS-1123 label (1 to 63 of `[a-z0-9-]`, starting and
/// ending with a letter or digit): a name every engine takes for a
/// workload, a network or a hostname.
pub fn is_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The engine name of a new workload of `kind`: berth's own, from a fresh
/// unique `hex`, never from what a client chose (two tenants may choose alike).
pub fn engine_name(kind: &str, hex: &str) -> String {
    format!("berth-{kind}-{hex}")
}

/// The labels berth puts on everything it creates, so that the engine is the
/// source of truth for what exists and berth can rebuild its view after a restart.
pub mod labels {
    pub const MANAGED: &str = "io.berth.managed";
    pub const KIND: &str = "io.berth.kind";
    /// berth's id of the object (run, agent, relic) the container serves.
    pub const OBJECT: &str = "io.berth.object";
    pub const SESSION: &str = "io.berth.session";
    pub const TENANT: &str = "io.berth.tenant";
    /// Where containers made before annotations kept their expiry; the
    /// reaper still reads it. New ones carry [`super::annotations::EXPIRES_AT`].
    pub const EXPIRES_AT: &str = "io.berth.expires-at";
    /// The berth instance (its store) that made the container.
    pub const INSTANCE: &str = "io.berth.instance";
    /// The warm pool a sandbox was made for (it serves one run, then goes).
    pub const POOL: &str = "io.berth.pool";
    /// A spare sandbox of a template (its value): made ahead of need, no
    /// tenant's until a sandbox record adopts it.
    pub const SPARE: &str = "io.berth.spare";
}

/// The annotations berth keeps with a workload: values that are not for
/// selecting it (an engine without annotations keeps them as labels under
/// [`crate::engine::state::ANNOTATION_PREFIX`]).
pub mod annotations {
    /// When the reaper removes the workload (RFC 3339).
    pub const EXPIRES_AT: &str = "expires-at";
}

/// Which network a container joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// No interface but loopback.
    None,
    /// The engine's default bridge.
    Bridge,
    /// A named network, with aliases the container is known by on it.
    Named { name: String, aliases: Vec<String> },
}

/// A host path mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub host: String,
    pub container: String,
    pub read_only: bool,
}

/// A container port published on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub container: u16,
    pub host: u16,
}

/// The engine's own health check, run inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Run by the container's shell; exit 0 is healthy.
    pub command: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

/// Resource limits; every spec has all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory: ByteSize,
    pub cpu: CpuLimit,
    pub pids: u32,
}

/// Whether a container's stdin is open to a client that attaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stdin {
    /// No stdin: the process reads end-of-file.
    #[default]
    Closed,
    /// Open for any number of attaches, one after another.
    Open,
    /// Open for one attach: end-of-file when that client closes its side
    /// (what a warm pool member is handed its run through).
    Once,
}

/// Whether a workload's output is kept by the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Logs {
    #[default]
    Kept,
    Discarded,
}

/// Everything berth asks of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub kind: Kind,
    pub image: String,
    /// Replaces the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    /// `uid[:gid]` or a user name; `None` keeps the image's user.
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Values kept with the workload that are not for selecting it.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub limits: Limits,
    /// Capabilities added back after all are dropped.
    pub cap_add: Vec<String>,
    pub read_only_root: bool,
    /// Mount point → size of a tmpfs there.
    pub tmpfs: BTreeMap<String, ByteSize>,
    /// Whether the engine keeps what the workload writes to its stdout and
    /// stderr: a sandbox's stdio is berth's protocol with its helper
    /// (files included), which no log should grow by.
    #[serde(default)]
    pub logs: Logs,
    /// Who owns the tmpfs mounts (`uid`, `gid`), when not root: a
    /// sandbox's user, whose writable space they are.
    #[serde(default)]
    pub tmpfs_owner: Option<(u32, u32)>,
    pub binds: Vec<Bind>,
    pub network: Network,
    pub ports: Vec<PortMapping>,
    pub health: Option<HealthCheck>,
    /// The workload's own hostname, when it is to have one of its choosing.
    #[serde(default)]
    pub hostname: Option<String>,
    pub tty: bool,
    pub stdin: Stdin,
    /// A tiny init as process 1 (reaps zombies, forwards signals).
    pub init: bool,
    /// The runtime a run asked for or was routed to (`runc`, `runsc`,
    /// `docker`): which engine of [`crate::engine::Backends`] runs it.
    /// `None` is the kind's engine.
    #[serde(default)]
    pub runtime: Option<String>,
}
