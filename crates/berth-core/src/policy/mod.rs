//! Policy: the only way a request becomes a [`ContainerSpec`].
//!
//! Safe by default: every container gets all capabilities dropped (a
//! configured allow-list may add some back), `no-new-privileges` (applied by
//! the backend to every spec), a pids limit, memory and CPU limits (per-kind
//! defaults, server maxima), never privileged mode or the host's network,
//! and bind mounts only below configured roots. Code sandboxes also get no
//! network, a read-only root with a size-limited tmpfs at `/tmp` and a
//! non-root user. A request asking for more than policy allows is refused
//! with a [`PolicyViolation`] naming the field; nothing is created.
//!
//! This module decides; it does not talk to any engine.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::units::{ByteSize, CpuLimit};
use crate::spec::{labels, Bind, ContainerSpec, HealthCheck, Kind, Limits, Network, PortMapping, Stdin};

mod expiry;
pub use self::expiry::{check_expiry, ExpiryRefused};

/// A request refused by policy: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PolicyViolation {
    pub field: String,
    pub reason: String,
}

fn refuse(field: &str, reason: impl Into<String>) -> PolicyViolation {
    PolicyViolation { field: field.to_owned(), reason: reason.into() }
}

/// Per-kind defaults for limits and run time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KindDefaults {
    pub memory: ByteSize,
    pub cpu: CpuLimit,
    pub pids: u32,
    /// How long a run (or a relic's start) may take by default.
    pub timeout: Duration,
}

/// The configured policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    pub agent: KindDefaults,
    pub tool: KindDefaults,
    pub code: KindDefaults,
    pub relic: KindDefaults,
    /// Workspace sandboxes (their timeout is the default lifetime).
    #[serde(default = "sandbox_defaults")]
    pub sandbox: KindDefaults,
    /// Server maxima no request may exceed.
    pub max_memory: ByteSize,
    pub max_cpu: CpuLimit,
    pub max_pids: u32,
    pub max_timeout: Duration,
    /// The longest an agent, relic or session may live before it is reaped
    /// (a later expiry, or a renewal past it, is refused).
    pub max_lifetime: Duration,
    /// Capabilities a request may add back (names without `CAP_`, upper case).
    pub cap_allowlist: Vec<String>,
    /// Bind mounts are allowed only below these host directories.
    pub bind_roots: Vec<PathBuf>,
    /// The user code sandboxes run as.
    pub sandbox_user: String,
    /// Size of the tmpfs at `/tmp` of a read-only sandbox.
    pub sandbox_tmpfs: ByteSize,
    /// Bytes kept of each of stdout and stderr of a run.
    pub output_cap: usize,
}

fn sandbox_defaults() -> KindDefaults {
    KindDefaults {
        memory: ByteSize::mib(512),
        cpu: CpuLimit(1_000_000_000),
        pids: 256,
        timeout: Duration::from_secs(300),
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        let cpu1 = CpuLimit(1_000_000_000);
        PolicyConfig {
            agent: KindDefaults { memory: ByteSize::mib(512), cpu: cpu1, pids: 512, timeout: Duration::from_secs(300) },
            tool: KindDefaults { memory: ByteSize::mib(512), cpu: cpu1, pids: 256, timeout: Duration::from_secs(300) },
            code: KindDefaults { memory: ByteSize::mib(256), cpu: cpu1, pids: 128, timeout: Duration::from_secs(30) },
            relic: KindDefaults {
                memory: ByteSize::mib(1024),
                cpu: cpu1,
                pids: 512,
                timeout: Duration::from_secs(600),
            },
            sandbox: sandbox_defaults(),
            max_memory: ByteSize::mib(8192),
            max_cpu: CpuLimit(4_000_000_000),
            max_pids: 4096,
            max_timeout: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(7 * 24 * 3600),
            cap_allowlist: vec!["NET_BIND_SERVICE".into(), "CHOWN".into(), "SETUID".into(), "SETGID".into()],
            bind_roots: vec![],
            sandbox_user: "65534:65534".into(),
            sandbox_tmpfs: ByteSize::mib(64),
            output_cap: 1024 * 1024,
        }
    }
}

/// How a request asks to be networked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkRequest {
    /// The kind's default: none for code, the bridge otherwise.
    #[default]
    Default,
    None,
    Bridge,
    /// The host's network: never allowed.
    Host,
    Named {
        name: String,
        #[serde(default)]
        aliases: Vec<String>,
    },
}

/// What a caller asks for; [`Policy::admit`] turns it into a spec or refuses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRequest {
    pub kind: Kind,
    pub name: String,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub memory: Option<ByteSize>,
    pub cpu: Option<CpuLimit>,
    pub pids: Option<u32>,
    pub cap_add: Vec<String>,
    pub privileged: bool,
    pub read_only_root: Option<bool>,
    pub network: NetworkRequest,
    pub binds: Vec<Bind>,
    pub ports: Vec<PortMapping>,
    pub health: Option<HealthCheck>,
    /// A hostname of the workload's own (a DNS-1123 label).
    pub hostname: Option<String>,
    pub tty: bool,
    pub open_stdin: bool,
    /// A sandbox's writable space: mount point → size of a tmpfs there,
    /// owned by its user. Only sandboxes ask for it.
    pub tmpfs: BTreeMap<String, ByteSize>,
    /// The runtime asked for by name (`runc`, `runsc`, `docker`); which
    /// names exist is the serving configuration's (the core's backends).
    pub runtime: Option<String>,
}

impl ContainerRequest {
    /// A request with nothing but its kind, name and image.
    pub fn new(kind: Kind, name: impl Into<String>, image: impl Into<String>) -> Self {
        ContainerRequest {
            kind,
            name: name.into(),
            image: image.into(),
            entrypoint: None,
            cmd: None,
            env: BTreeMap::new(),
            working_dir: None,
            user: None,
            labels: BTreeMap::new(),
            memory: None,
            cpu: None,
            pids: None,
            cap_add: vec![],
            privileged: false,
            read_only_root: None,
            network: NetworkRequest::Default,
            binds: vec![],
            ports: vec![],
            health: None,
            hostname: None,
            tty: false,
            open_stdin: false,
            runtime: None,
            tmpfs: BTreeMap::new(),
        }
    }
}

/// The policy in force.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub config: PolicyConfig,
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Self {
        Policy { config }
    }

    pub fn defaults(&self, kind: Kind) -> &KindDefaults {
        match kind {
            Kind::Agent => &self.config.agent,
            Kind::Tool => &self.config.tool,
            Kind::Code => &self.config.code,
            Kind::Relic => &self.config.relic,
            Kind::Sandbox => &self.config.sandbox,
        }
    }

    /// Checks a run's timeout against the server maximum; `None` takes the kind's default.
    pub fn timeout(&self, kind: Kind, requested: Option<Duration>) -> Result<Duration, PolicyViolation> {
        match requested {
            None => Ok(self.defaults(kind).timeout),
            Some(t) if t.is_zero() => Err(refuse("timeout", "must be positive")),
            Some(t) if t > self.config.max_timeout => Err(refuse(
                "timeout",
                format!("{} s exceeds the server maximum of {} s", t.as_secs(), self.config.max_timeout.as_secs()),
            )),
            Some(t) => Ok(t),
        }
    }

    /// Checks an expiry: in the future, and within the maximum lifetime from `now`.
    pub fn expiry(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<chrono::DateTime<chrono::Utc>, PolicyViolation> {
        check_expiry(now, expires_at, self.config.max_lifetime).map_err(|e| refuse("expires_at", e.to_string()))
    }

    /// Turns a request into a spec, or refuses it naming the field.
    pub fn admit(&self, req: ContainerRequest) -> Result<ContainerSpec, PolicyViolation> {
        let c = &self.config;
        let d = self.defaults(req.kind);
        check_name(&req.name)?;
        check_image(&req.image)?;
        if req.privileged {
            return Err(refuse("privileged", "privileged containers are never allowed"));
        }
        for key in req.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(refuse("env", format!("{key:?} is not a variable name")));
            }
        }
        if let Some(key) = req.labels.keys().find(|k| k.starts_with("io.berth.")) {
            return Err(refuse("labels", format!("{key:?}: the io.berth. prefix is berth's own")));
        }

        let memory = req.memory.unwrap_or(d.memory);
        if memory > c.max_memory {
            return Err(refuse("memory", format!("{memory} exceeds the server maximum of {}", c.max_memory)));
        }
        if memory < ByteSize::mib(6) {
            return Err(refuse("memory", "the engine needs at least 6m"));
        }
        let cpu = req.cpu.unwrap_or(d.cpu);
        if cpu > c.max_cpu {
            return Err(refuse(
                "cpu",
                format!("{} cores exceed the server maximum of {}", cpu.cores(), c.max_cpu.cores()),
            ));
        }
        let pids = req.pids.unwrap_or(d.pids);
        if pids == 0 || pids > c.max_pids {
            return Err(refuse("pids", format!("must be between 1 and {}", c.max_pids)));
        }

        let mut cap_add = Vec::new();
        for cap in &req.cap_add {
            let name = cap.trim().to_ascii_uppercase();
            let name = name.strip_prefix("CAP_").unwrap_or(&name).to_owned();
            if !c.cap_allowlist.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
                return Err(refuse(
                    "cap_add",
                    format!("{cap} is not in the allowed capabilities {:?}", c.cap_allowlist),
                ));
            }
            cap_add.push(name);
        }

        for bind in &req.binds {
            check_bind(bind, &c.bind_roots)?;
        }

        let sandbox = req.kind == Kind::Code;
        let workspace = req.kind == Kind::Sandbox;
        let network = match (req.network, sandbox) {
            (NetworkRequest::Host, _) => return Err(refuse("network", "the host's network is never allowed")),
            (NetworkRequest::Default | NetworkRequest::None, true) => Network::None,
            (NetworkRequest::Default, false) if workspace => Network::None,
            (_, true) => return Err(refuse("network", "code sandboxes have no network")),
            (NetworkRequest::Default | NetworkRequest::Bridge, false) => Network::Bridge,
            (NetworkRequest::None, false) => Network::None,
            (NetworkRequest::Named { name, aliases }, false) => {
                if name.starts_with("container:") || name == "host" {
                    return Err(refuse("network", format!("{name:?} would share another namespace")));
                }
                Network::Named { name, aliases }
            }
        };

        let mut tmpfs = BTreeMap::new();
        let mut tmpfs_owner = None;
        if !req.tmpfs.is_empty() && !workspace {
            return Err(refuse("tmpfs", "only sandboxes ask for their writable space"));
        }
        let (user, read_only_root) = if sandbox {
            if req.read_only_root == Some(false) {
                return Err(refuse("read_only_root", "code sandboxes always have a read-only root"));
            }
            if req.user.as_deref().is_some_and(is_root) {
                return Err(refuse("user", "code sandboxes never run as root"));
            }
            tmpfs.insert("/tmp".to_owned(), c.sandbox_tmpfs);
            (Some(req.user.unwrap_or_else(|| c.sandbox_user.clone())), true)
        } else if workspace {
            // A workspace's writable space is its tmpfs mounts, owned by its
            // user: the root stays writable only for root, which it never is.
            let Some(owner) = req.user.as_deref().and_then(numeric_user) else {
                return Err(refuse("user", "a sandbox runs as a numeric uid:gid that is not root"));
            };
            if owner.0 == 0 {
                return Err(refuse("user", "sandboxes never run as root"));
            }
            for (path, size) in &req.tmpfs {
                if !path.starts_with('/') || path.contains("..") {
                    return Err(refuse("tmpfs", format!("{path:?} must be an absolute path without '..'")));
                }
                if *size > c.max_memory {
                    return Err(refuse("tmpfs", format!("{size} exceeds the server maximum of {}", c.max_memory)));
                }
                tmpfs.insert(path.clone(), *size);
            }
            tmpfs_owner = Some(owner);
            (req.user, false)
        } else {
            (req.user, req.read_only_root.unwrap_or(false))
        };
        if !req.ports.is_empty() && network == Network::None {
            return Err(refuse("ports", "a container without a network publishes no ports"));
        }
        check_ports(req.ports.iter().flat_map(|p| [p.container, p.host]))?;
        if let Some(h) = &req.hostname {
            if !crate::spec::is_dns_label(h) {
                return Err(refuse("hostname", format!("{h:?} is not a DNS label (1 to 63 of [a-z0-9-])")));
            }
        }

        let mut all_labels = req.labels;
        all_labels.insert(labels::MANAGED.into(), "true".into());
        all_labels.insert(labels::KIND.into(), req.kind.as_str().into());

        Ok(ContainerSpec {
            name: req.name,
            kind: req.kind,
            image: req.image,
            entrypoint: req.entrypoint,
            cmd: req.cmd,
            env: req.env,
            working_dir: req.working_dir,
            user,
            labels: all_labels,
            annotations: BTreeMap::new(),
            limits: Limits { memory, cpu, pids },
            cap_add,
            read_only_root,
            tmpfs,
            tmpfs_owner,
            logs: if workspace { crate::spec::Logs::Discarded } else { crate::spec::Logs::Kept },
            binds: req.binds,
            network,
            ports: req.ports,
            health: req.health,
            hostname: req.hostname,
            tty: req.tty,
            stdin: if req.open_stdin { Stdin::Open } else { Stdin::Closed },
            init: true,
            runtime: req.runtime,
        })
    }
}

/// `uid:gid` (or a bare uid, its own gid) as numbers.
fn numeric_user(user: &str) -> Option<(u32, u32)> {
    match user.split_once(':') {
        Some((u, g)) => Some((u.parse().ok()?, g.parse().ok()?)),
        None => user.parse().ok().map(|u| (u, u)),
    }
}

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or("");
    name == "0" || name.eq_ignore_ascii_case("root")
}

/// An image reference as a request may give it: 1 to 512 characters, no
/// spaces or control characters (the engine judges the rest).
pub fn check_image(image: &str) -> Result<(), PolicyViolation> {
    if image.trim().is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("image", "must be an image reference without spaces"));
    }
    if image.len() > 512 {
        return Err(refuse("image", "must be at most 512 characters"));
    }
    Ok(())
}

/// Container names as the engine accepts them, and no longer than 128 characters.
fn check_name(name: &str) -> Result<(), PolicyViolation> {
    let mut chars = name.chars();
    let ok = name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(refuse("name", format!("{name:?} is not a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128)")))
    }
}

/// Ports to publish are 1 to 65535: port 0 would ask the engine for "any
/// port", which is not what a definition that names its ports means.
pub fn check_ports(ports: impl IntoIterator<Item = u16>) -> Result<(), PolicyViolation> {
    if ports.into_iter().any(|p| p == 0) {
        return Err(refuse("ports", "port 0 cannot be published: ports are 1 to 65535"));
    }
    Ok(())
}

/// A bind's host path must be absolute, plain (no `..`) and below a configured root.
fn check_bind(bind: &Bind, roots: &[PathBuf]) -> Result<(), PolicyViolation> {
    let plain =
        |p: &Path| p.is_absolute() && p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let host = Path::new(&bind.host);
    if !plain(host) {
        return Err(refuse("binds", format!("{:?} must be an absolute path without '..'", bind.host)));
    }
    if !plain(Path::new(&bind.container)) {
        return Err(refuse("binds", format!("{:?} must be an absolute path without '..'", bind.container)));
    }
    if !roots.iter().any(|root| host.starts_with(root)) {
        return Err(refuse(
            "binds",
            format!(
                "{:?} is not below an allowed root {roots:?} (the roots are the setting bind_roots, \
                 BERTH_BIND_ROOTS in the environment)",
                bind.host
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(PolicyConfig { bind_roots: vec!["/srv/agents".into()], ..Default::default() })
    }

    fn req(kind: Kind) -> ContainerRequest {
        ContainerRequest::new(kind, "berth-x", "busybox:1.35")
    }

    #[test]
    fn a_plain_request_gets_the_kinds_limits_and_berths_labels() {
        let spec = policy().admit(req(Kind::Tool)).unwrap();
        assert_eq!(spec.limits.memory, ByteSize::mib(512));
        assert_eq!(spec.limits.cpu, CpuLimit(1_000_000_000));
        assert_eq!(spec.limits.pids, 256);
        assert!(spec.cap_add.is_empty());
        assert_eq!(spec.labels[labels::MANAGED], "true");
        assert_eq!(spec.labels[labels::KIND], "tool");
        assert_eq!(spec.network, Network::Bridge);
    }

    #[test]
    fn a_code_sandbox_gets_no_network_a_read_only_root_tmpfs_and_a_non_root_user() {
        let spec = policy().admit(req(Kind::Code)).unwrap();
        assert_eq!(spec.network, Network::None);
        assert!(spec.read_only_root);
        assert_eq!(spec.tmpfs["/tmp"], ByteSize::mib(64));
        assert_eq!(spec.user.as_deref(), Some("65534:65534"));
    }

    #[test]
    fn requests_for_more_than_policy_allows_are_refused_naming_the_field() {
        let p = policy();
        let field = |r: ContainerRequest| p.admit(r).unwrap_err().field;
        assert_eq!(field(ContainerRequest { privileged: true, ..req(Kind::Agent) }), "privileged");
        assert_eq!(field(ContainerRequest { memory: Some(ByteSize::mib(1 << 20)), ..req(Kind::Tool) }), "memory");
        assert_eq!(field(ContainerRequest { cpu: Some(CpuLimit(64_000_000_000)), ..req(Kind::Tool) }), "cpu");
        assert_eq!(field(ContainerRequest { pids: Some(0), ..req(Kind::Tool) }), "pids");
        assert_eq!(field(ContainerRequest { cap_add: vec!["SYS_ADMIN".into()], ..req(Kind::Agent) }), "cap_add");
        assert_eq!(field(ContainerRequest { network: NetworkRequest::Host, ..req(Kind::Agent) }), "network");
        assert_eq!(field(ContainerRequest { network: NetworkRequest::Bridge, ..req(Kind::Code) }), "network");
        assert_eq!(field(ContainerRequest { read_only_root: Some(false), ..req(Kind::Code) }), "read_only_root");
        assert_eq!(field(ContainerRequest { user: Some("root".into()), ..req(Kind::Code) }), "user");
        assert_eq!(field(ContainerRequest { user: Some("0:0".into()), ..req(Kind::Code) }), "user");
        assert_eq!(field(ContainerRequest { name: "../x".into(), ..req(Kind::Tool) }), "name");
        assert_eq!(field(ContainerRequest { image: "".into(), ..req(Kind::Tool) }), "image");
        let named = NetworkRequest::Named { name: "container:abc".into(), aliases: vec![] };
        assert_eq!(field(ContainerRequest { network: named, ..req(Kind::Agent) }), "network");
        let labels = BTreeMap::from([("io.berth.kind".to_owned(), "agent".to_owned())]);
        assert_eq!(field(ContainerRequest { labels, ..req(Kind::Agent) }), "labels");
    }

    #[test]
    fn port_zero_is_refused_naming_the_ports_field() {
        let mut r = req(Kind::Agent);
        r.ports = vec![PortMapping { container: 0, host: 20000 }];
        assert_eq!(policy().admit(r).unwrap_err().field, "ports");
        assert_eq!(check_ports([80, 0]).unwrap_err().field, "ports");
        assert!(check_ports([80, 65535]).is_ok());
    }

    #[test]
    fn a_bind_outside_the_roots_is_refused_naming_the_setting_that_allows_it() {
        let bind = Bind { host: "/etc".into(), container: "/app/agent".into(), read_only: true };
        let err = policy().admit(ContainerRequest { binds: vec![bind], ..req(Kind::Agent) }).unwrap_err();
        assert!(err.reason.contains("bind_roots") && err.reason.contains("BERTH_BIND_ROOTS"), "{}", err.reason);
    }

    #[test]
    fn binds_are_allowed_only_below_configured_roots() {
        let p = policy();
        let bind = |host: &str| ContainerRequest {
            binds: vec![Bind { host: host.into(), container: "/app/agent".into(), read_only: true }],
            ..req(Kind::Agent)
        };
        assert!(p.admit(bind("/srv/agents/a1")).is_ok());
        for bad in ["/etc", "/srv/agents/../../etc", "relative", "/srv/agentsX/a"] {
            assert_eq!(p.admit(bind(bad)).unwrap_err().field, "binds", "{bad}");
        }
    }

    #[test]
    fn allowed_capabilities_may_be_added_back_in_either_spelling() {
        let spec =
            policy().admit(ContainerRequest { cap_add: vec!["cap_net_bind_service".into()], ..req(Kind::Agent) });
        assert_eq!(spec.unwrap().cap_add, vec!["NET_BIND_SERVICE".to_owned()]);
    }

    #[test]
    fn timeouts_are_defaulted_and_capped() {
        let p = policy();
        assert_eq!(p.timeout(Kind::Tool, None).unwrap(), Duration::from_secs(300));
        assert_eq!(p.timeout(Kind::Relic, None).unwrap(), Duration::from_secs(600));
        assert_eq!(p.timeout(Kind::Tool, Some(Duration::from_secs(7200))).unwrap_err().field, "timeout");
        assert_eq!(p.timeout(Kind::Tool, Some(Duration::ZERO)).unwrap_err().field, "timeout");
    }
}
