//! `berth serve`'s configuration: defaults, then the TOML file, then
//! `BERTH_*` variables and flags (which clap reads as one), and the seeds'
//! own variables where they mean something to berth.
//!
//! It owns merging and checking only (a public address without tokens is
//! refused here, before anything listens); it starts nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

use berth_api::dialects::e2b::Listeners as E2bListeners;
use berth_api::dialects::{parse_dialect_flag, Dialect, SeedEnv};
use berth_core::agents::PortRange;
use berth_core::lifetime::recovery::Orphans;
use berth_core::pool::PoolConfig;

/// Which backend serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    /// docker when an engine answers at start-up, else oci-dry-run.
    #[default]
    Auto,
    Docker,
    OciDryRun,
    /// A Docker Swarm: the manager places, each node's engine acts (`[swarm]`).
    Swarm,
}

impl FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "docker" => Ok(BackendChoice::Docker),
            "oci-dry-run" => Ok(BackendChoice::OciDryRun),
            "swarm" => Ok(BackendChoice::Swarm),
            other => Err(format!("unknown backend {other:?}: one of auto, docker, oci-dry-run, swarm")),
        }
    }
}

/// Whether sealed runs (code runs, tool runs with no network) run straight
/// on an OCI runtime (`runc`) beside the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OciChoice {
    /// When the start-up probe passes; on the engine otherwise (said at start-up).
    #[default]
    Auto,
    /// Always on the engine.
    Off,
    /// On the runtime, or berth does not start.
    Required,
}

impl FromStr for OciChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(OciChoice::Auto),
            "off" => Ok(OciChoice::Off),
            "required" => Ok(OciChoice::Required),
            other => Err(format!("unknown oci setting {other:?}: one of auto, off, required")),
        }
    }
}

/// A dialect in the file: `lais = true` (its seed's port on loopback) or
/// `lais = "0.0.0.0:8000"`; E2B's two listeners as
/// `[dialects.e2b]` with `api` and `envd`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DialectEntry {
    On(bool),
    At(String),
    Listeners { api: Option<String>, envd: Option<String> },
}

/// The name of the E2B dialect, which listens twice.
pub const E2B: &str = "e2b";

fn address(what: &str, text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|e| format!("{what}: {text:?} is not an address ({e})"))
}

/// Warm pools in the file: `pools = false`, or a `[pools]` table sizing
/// every configured pool (`min`, `max`, `idle_seconds`, `memory_budget`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PoolsEntry {
    On(bool),
    Sized(PoolsTable),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolsTable {
    pub min: Option<usize>,
    pub max: Option<usize>,
    pub idle_seconds: Option<u64>,
    /// Members × their memory limit, over all pools (`2g`).
    pub memory_budget: Option<String>,
    /// Runs of a tool image within a minute that give it a pool of its own
    /// (3); 0: tool runs are never pooled.
    pub tool_pool_after: Option<usize>,
}

impl PoolsEntry {
    /// The pools this entry asks for: the defaults, resized; `None` when off.
    fn resolve(entry: Option<PoolsEntry>) -> Result<Option<PoolConfig>, String> {
        let table = match entry {
            None | Some(PoolsEntry::On(true)) => PoolsTable::default(),
            Some(PoolsEntry::On(false)) => return Ok(None),
            Some(PoolsEntry::Sized(t)) => t,
        };
        let mut config = PoolConfig::default();
        for pool in config.pools.values_mut() {
            pool.min = table.min.unwrap_or(pool.min);
            pool.max = table.max.unwrap_or(pool.max.max(pool.min));
            if pool.min > pool.max {
                return Err(format!("pools: min {} is above max {}", pool.min, pool.max));
            }
        }
        if let Some(s) = table.idle_seconds {
            // Under 30 s, members would be replaced about as fast as they are made.
            if !(30..=86_400).contains(&s) {
                return Err(format!("pools: idle_seconds {s} is outside 30..=86400"));
            }
            config.idle_lifetime = std::time::Duration::from_secs(s);
        }
        match table.tool_pool_after {
            Some(0) => config.demand = None,
            Some(n) => config.demand = config.demand.map(|d| berth_core::pool::DemandConfig { after: n, ..d }),
            None => {}
        }
        if let Some(b) = &table.memory_budget {
            config.memory_budget = b.parse().map_err(|e| format!("pools: memory_budget: {e}"))?;
        }
        Ok(Some(config))
    }
}

/// The configuration file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    pub backend: Option<BackendChoice>,
    /// token = tenant.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
    /// Dialects to serve, each on its own listener.
    #[serde(default)]
    pub dialects: BTreeMap<String, DialectEntry>,
    /// Host folders under which agents' code and worktrees may be mounted.
    #[serde(default)]
    pub bind_roots: Vec<PathBuf>,
    /// Host ports published for agents: `[first, last]`.
    pub ports: Option<(u16, u16)>,
    /// Runs in flight at once, in all and per tenant.
    pub max_runs: Option<usize>,
    pub max_runs_per_tenant: Option<usize>,
    /// Run containers the store does not know, at start-up: `remove` or `keep`.
    pub orphans: Option<Orphans>,
    /// Warm pools for code runs (on by default).
    pub pools: Option<PoolsEntry>,
    /// berth's in-sandbox helper binary (default: `berth-sandboxd` beside
    /// the `berth` executable).
    pub sandbox_helper: Option<PathBuf>,
    /// Workspace templates by name (`base` is built in).
    #[serde(default)]
    pub templates: BTreeMap<String, berth_core::sandboxes::Template>,
    /// Spare sandboxes kept ready per template (default: one of `base`).
    pub spares: Option<BTreeMap<String, usize>>,
    /// Sealed runs on an OCI runtime: `auto` (default), `off`, `required`.
    pub oci: Option<OciChoice>,
    /// The bound of the OCI runtime's image cache (`4g`).
    pub oci_cache: Option<String>,
    /// An OCI image layout the OCI runtime's images may come from.
    pub oci_layout: Option<PathBuf>,
    /// Registries (`host:port`) the OCI runtime may pull from over plain
    /// HTTP beside loopback ones; `[]` with `oci_pull = false` for none.
    pub oci_registries: Option<Vec<String>>,
    /// Whether the OCI runtime pulls images from registries itself (on by
    /// default; loopback registries and `oci_registries` only).
    pub oci_pull: Option<bool>,
    /// The swarm backend's manager and nodes.
    pub swarm: Option<SwarmEntry>,
}

/// `[swarm]`: the manager's engine and every node's, by the node's name
/// (its hostname in the swarm, and its identity to berth).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmEntry {
    /// `unix:///path` or `tcp://host:port` of a manager.
    pub manager: Option<String>,
    /// The name the manager's certificate must carry (default: the
    /// host of its `tcp://` endpoint).
    pub manager_name: Option<String>,
    /// A folder with `ca.pem`, `cert.pem` and `key.pem`: every `tcp://`
    /// endpoint is then spoken to over TLS with that client certificate,
    /// each node's certificate checked against the node's name.
    pub tls: Option<PathBuf>,
    #[serde(default)]
    pub nodes: Vec<SwarmNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmNode {
    pub name: String,
    /// `unix:///path` or `tcp://host:port` of the node's engine.
    pub engine: String,
}

/// The swarm backend's endpoints, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmConfig {
    pub manager: engine_api::Endpoint,
    /// The name the manager's certificate must carry, over TLS.
    pub manager_name: String,
    /// Name → engine, in order.
    pub nodes: Vec<(String, engine_api::Endpoint)>,
    /// TLS material for the `tcp://` endpoints.
    pub tls: Option<engine_api::tls::TlsFiles>,
}

impl SwarmConfig {
    /// A client for `endpoint`, over TLS (the peer to prove `name`) when
    /// TLS material is configured and the endpoint is `tcp://`.
    pub fn client(&self, endpoint: &engine_api::Endpoint, name: &str) -> Result<engine_api::Docker, String> {
        let transport = engine_api::transport::SocketTransport::new(endpoint.clone());
        let transport = match (&self.tls, endpoint) {
            (Some(files), engine_api::Endpoint::Tcp(_)) => {
                let tls = engine_api::tls::TlsClient::new(files, name).map_err(|e| format!("swarm: {name}: {e}"))?;
                transport.with_tls(tls)
            }
            _ => transport,
        };
        Ok(engine_api::Docker::new(transport))
    }
}

impl SwarmConfig {
    /// `[swarm]` under `BERTH_SWARM_MANAGER` and `BERTH_SWARM_NODES`
    /// (`name=endpoint,...`); `None` when neither names a manager.
    fn resolve(file: Option<SwarmEntry>, vars: &BTreeMap<String, String>) -> Result<Option<SwarmConfig>, String> {
        let file = file.unwrap_or_default();
        let Some(manager) = vars.get("BERTH_SWARM_MANAGER").cloned().or(file.manager) else {
            return Ok(None);
        };
        let nodes: Vec<(String, String)> = match vars.get("BERTH_SWARM_NODES") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    n.split_once('=')
                        .map(|(name, engine)| (name.trim().to_owned(), engine.trim().to_owned()))
                        .ok_or_else(|| format!("BERTH_SWARM_NODES: {n:?} is not name=endpoint"))
                })
                .collect::<Result<_, _>>()?,
            None => file.nodes.into_iter().map(|n| (n.name, n.engine)).collect(),
        };
        if nodes.is_empty() {
            return Err("swarm: no nodes are configured (each node's name and engine)".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut parsed = Vec::new();
        for (name, engine) in nodes {
            if name.is_empty() || !seen.insert(name.clone()) {
                return Err(format!("swarm: node name {name:?} is empty or given twice"));
            }
            let endpoint = engine_api::Endpoint::parse(&engine).map_err(|e| format!("swarm: node {name}: {e}"))?;
            parsed.push((name, endpoint));
        }
        let manager = engine_api::Endpoint::parse(&manager).map_err(|e| format!("swarm: manager: {e}"))?;
        let manager_name = match (vars.get("BERTH_SWARM_MANAGER_NAME").cloned().or(file.manager_name), &manager) {
            (Some(name), _) => name,
            (None, engine_api::Endpoint::Tcp(addr)) => engine_api::tls::host_of(addr).to_owned(),
            (None, engine_api::Endpoint::Unix(_)) => "manager".to_owned(),
        };
        let tls =
            vars.get("BERTH_SWARM_TLS").map(PathBuf::from).or(file.tls).map(|d| engine_api::tls::TlsFiles::in_dir(&d));
        Ok(Some(SwarmConfig { manager, manager_name, nodes: parsed, tls }))
    }
}

impl FileConfig {
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// What the command line gives (flags, or their `BERTH_*` variables).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    pub backend: Option<BackendChoice>,
    /// `NAME[=ADDR]`, as given.
    pub dialects: Vec<String>,
}

/// Everything `serve` needs, merged and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub backend: BackendChoice,
    pub tokens: BTreeMap<String, String>,
    pub dialects: BTreeMap<Dialect, SocketAddr>,
    /// The E2B dialect's control plane and in-sandbox API, when served.
    pub e2b: Option<E2bListeners>,
    pub bind_roots: Vec<PathBuf>,
    pub ports: PortRange,
    pub max_runs: usize,
    pub max_runs_per_tenant: usize,
    pub orphans: Orphans,
    /// Warm pools (`None`: off); used where something runs, not on the dry run.
    pub pools: Option<PoolConfig>,
    /// Where the sandbox helper is looked for.
    pub sandbox_helper: Option<PathBuf>,
    pub templates: BTreeMap<String, berth_core::sandboxes::Template>,
    /// Template → spare sandboxes kept ready.
    pub spares: BTreeMap<String, usize>,
    pub oci: OciChoice,
    pub oci_cache: berth_core::model::units::ByteSize,
    pub oci_layout: Option<PathBuf>,
    /// `None`: no pulls by the OCI runtime itself.
    pub oci_registries: Option<Vec<String>>,
    /// The swarm backend's manager and nodes, when configured.
    pub swarm: Option<SwarmConfig>,
    pub seeds: SeedEnv,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// The spare sandboxes: `BERTH_SPARES` (`base=2,web=1`; empty for none)
/// over the file's `[spares]`, by default one of `base`; each of a known
/// template, at most [`MAX_SPARES`](berth_core::sandboxes::spares::state::MAX_SPARES).
fn spares(
    file: Option<BTreeMap<String, usize>>,
    var: Option<&String>,
    templates: &BTreeMap<String, berth_core::sandboxes::Template>,
) -> Result<BTreeMap<String, usize>, String> {
    let spares = match var {
        Some(v) => {
            let mut out = BTreeMap::new();
            for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, n) =
                    pair.split_once('=').ok_or_else(|| format!("BERTH_SPARES: {pair:?} is not TEMPLATE=COUNT"))?;
                let n = n.trim().parse::<usize>().map_err(|e| format!("BERTH_SPARES: {pair:?}: {e}"))?;
                out.insert(name.trim().to_owned(), n);
            }
            out
        }
        None => file.unwrap_or_else(|| BTreeMap::from([("base".to_owned(), 1)])),
    };
    let max = berth_core::sandboxes::spares::state::MAX_SPARES;
    for (name, n) in &spares {
        if name != "base" && !templates.contains_key(name) {
            return Err(format!("spares: no template {name:?}"));
        }
        if *n > max {
            return Err(format!("spares: {name} = {n} is above the most of {max}"));
        }
    }
    Ok(spares)
}

impl ServeConfig {
    /// Merges defaults, the file, the variables (`vars`: the process's, or a
    /// test's) and the flags, in that order of precedence from low to high.
    pub fn resolve(file: FileConfig, vars: &BTreeMap<String, String>, flags: Flags) -> Result<ServeConfig, String> {
        let mut tokens = file.tokens;
        if let Some(env) = vars.get("BERTH_TOKENS") {
            for pair in env.split(',').filter(|p| !p.trim().is_empty()) {
                let (token, tenant) =
                    pair.split_once('=').ok_or("BERTH_TOKENS is token=tenant[,token=tenant...]".to_owned())?;
                tokens.insert(token.trim().to_owned(), tenant.trim().to_owned());
            }
        }
        let mut dialects = BTreeMap::new();
        let mut e2b = None;
        for (name, entry) in file.dialects {
            if name == E2B {
                e2b = match entry {
                    DialectEntry::On(false) => None,
                    DialectEntry::On(true) => Some(E2bListeners::default()),
                    DialectEntry::Listeners { api, envd } => {
                        let default = E2bListeners::default();
                        Some(E2bListeners {
                            api: api.map(|a| address("dialects.e2b.api", &a)).transpose()?.unwrap_or(default.api),
                            envd: envd.map(|a| address("dialects.e2b.envd", &a)).transpose()?.unwrap_or(default.envd),
                        })
                    }
                    DialectEntry::At(_) => {
                        return Err("e2b listens twice: [dialects.e2b] with api = \"ADDR\" and envd = \"ADDR\"".into())
                    }
                };
                continue;
            }
            let flag = match entry {
                DialectEntry::On(false) => continue,
                DialectEntry::On(true) => name,
                DialectEntry::At(addr) => format!("{name}={addr}"),
                DialectEntry::Listeners { .. } => {
                    return Err(format!("dialect {name}: give an address or true, not api and envd"))
                }
            };
            let (d, addr) = parse_dialect_flag(&flag)?;
            dialects.insert(d, addr);
        }
        let from_vars = vars.get("BERTH_DIALECTS").map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>());
        for flag in from_vars.unwrap_or_default().iter().chain(&flags.dialects).filter(|f| !f.trim().is_empty()) {
            if flag.trim() == E2B {
                e2b = e2b.or(Some(E2bListeners::default()));
                continue;
            }
            if flag.trim().starts_with("e2b=") {
                return Err("e2b listens twice: move it with [dialects.e2b] api and envd in the file".into());
            }
            let (d, addr) = parse_dialect_flag(flag.trim())?;
            dialects.insert(d, addr);
        }
        let mut bind_roots = file.bind_roots;
        if let Some(roots) = vars.get("BERTH_BIND_ROOTS") {
            bind_roots.extend(roots.split(':').filter(|r| !r.is_empty()).map(PathBuf::from));
        }
        if let Some(bad) = bind_roots.iter().find(|r| !r.is_absolute()) {
            return Err(format!("bind root {} is not an absolute path", bad.display()));
        }
        // Warder's variables name the agents' port pool.
        let number = |k: &str| -> Result<Option<u16>, String> {
            vars.get(k).map(|v| v.trim().parse::<u16>().map_err(|e| format!("{k}={v:?}: {e}"))).transpose()
        };
        let (mut first, mut last) = file.ports.unwrap_or((PortRange::default().first, PortRange::default().last));
        first = number("AGENT_PORT_RANGE_START")?.unwrap_or(first);
        last = number("AGENT_PORT_RANGE_END")?.unwrap_or(last);
        if first == 0 || first > last {
            return Err(format!("port range {first}–{last} is empty"));
        }
        let config = ServeConfig {
            listen: flags.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid address")),
            data: flags.data.or(file.data).unwrap_or_else(|| PathBuf::from("berth-data")),
            backend: flags.backend.or(file.backend).unwrap_or_default(),
            tokens,
            dialects,
            e2b,
            bind_roots,
            ports: PortRange { first, last },
            max_runs: file.max_runs.unwrap_or(32).max(1),
            max_runs_per_tenant: file.max_runs_per_tenant.unwrap_or(8).max(1),
            orphans: match vars.get("BERTH_ORPHANS") {
                Some(v) => v.parse()?,
                None => file.orphans.unwrap_or_default(),
            },
            pools: PoolsEntry::resolve(file.pools)?,
            sandbox_helper: vars.get("BERTH_SANDBOX_HELPER").map(PathBuf::from).or(file.sandbox_helper),
            spares: spares(file.spares, vars.get("BERTH_SPARES"), &file.templates)?,
            templates: file.templates,
            oci: match vars.get("BERTH_OCI") {
                Some(v) => v.trim().parse()?,
                None => file.oci.unwrap_or_default(),
            },
            oci_cache: match vars.get("BERTH_OCI_CACHE").or(file.oci_cache.as_ref()) {
                Some(v) => v.parse().map_err(|e| format!("oci_cache: {e}"))?,
                None => "4g".parse().map_err(|e| format!("oci_cache: {e}"))?,
            },
            oci_layout: vars.get("BERTH_OCI_LAYOUT").map(PathBuf::from).or(file.oci_layout),
            oci_registries: {
                let pull = match vars.get("BERTH_OCI_PULL") {
                    Some(v) => {
                        v.trim().parse::<bool>().map_err(|_| format!("BERTH_OCI_PULL: {v:?} is not true or false"))?
                    }
                    None => file.oci_pull.unwrap_or(true),
                };
                let listed = match vars.get("BERTH_OCI_REGISTRIES") {
                    Some(v) => v.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect(),
                    None => file.oci_registries.unwrap_or_default(),
                };
                pull.then_some(listed)
            },
            swarm: SwarmConfig::resolve(file.swarm, vars)?,
            seeds: SeedEnv::from_vars(vars)?,
        };
        if config.backend == BackendChoice::Swarm && config.swarm.is_none() {
            return Err("backend swarm: [swarm] names no manager (or set BERTH_SWARM_MANAGER)".into());
        }
        config.check()?;
        Ok(config)
    }

    /// Refuses a listener off loopback without tokens, and two listeners on one address.
    fn check(&self) -> Result<(), String> {
        let mut seen = BTreeMap::from([(self.listen, "the native API".to_owned())]);
        let e2b = self.e2b.iter().flat_map(|l| [(l.api, "e2b's control plane"), (l.envd, "e2b's envd")]);
        let named = self.dialects.iter().map(|(d, a)| (*a, d.name())).chain(e2b);
        for (addr, d) in named {
            if addr.port() != 0 {
                if let Some(other) = seen.insert(addr, format!("dialect {d}")) {
                    return Err(format!("dialect {d} and {other} would both listen on {addr}"));
                }
            }
        }
        if self.tokens.is_empty() {
            let e2b = self.e2b.iter().flat_map(|l| [l.api, l.envd]);
            let all = std::iter::once(self.listen).chain(self.dialects.values().copied()).chain(e2b);
            if let Some(public) = all.into_iter().find(|a| !a.ip().is_loopback()) {
                return Err(format!(
                    "refusing to listen on {public} without tokens: configure [tokens] (or BERTH_TOKENS), or listen on loopback"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_swarm_backend_takes_its_manager_and_nodes_from_the_file_and_the_variables_over_it() {
        let text = "backend = \"swarm\"\n[swarm]\nmanager = \"unix:///run/m.sock\"\nnodes = [{ name = \"n1\", engine = \"tcp://10.0.0.1:2376\" }]\n";
        let file = || FileConfig::parse(text).unwrap();
        let c = ServeConfig::resolve(file(), &vars(&[]), Flags::default()).unwrap();
        let swarm = c.swarm.unwrap();
        assert_eq!(swarm.manager, engine_api::Endpoint::Unix("/run/m.sock".into()));
        assert_eq!(swarm.nodes, vec![("n1".to_owned(), engine_api::Endpoint::Tcp("10.0.0.1:2376".into()))]);
        let over = vars(&[("BERTH_SWARM_NODES", "a=unix:///a.sock, b=unix:///b.sock")]);
        let names: Vec<String> = ServeConfig::resolve(file(), &over, Flags::default())
            .unwrap()
            .swarm
            .unwrap()
            .nodes
            .into_iter()
            .map(|n| n.0)
            .collect();
        assert_eq!(names, ["a", "b"]);
        for (bad, why) in [
            (vars(&[("BERTH_SWARM_MANAGER", "unix:///m"), ("BERTH_SWARM_NODES", "a")]), "not name=endpoint"),
            (vars(&[("BERTH_SWARM_MANAGER", "unix:///m"), ("BERTH_SWARM_NODES", "a=unix:///x,a=unix:///y")]), "twice"),
            (vars(&[("BERTH_SWARM_MANAGER", "unix:///m"), ("BERTH_SWARM_NODES", "a=ssh://x")]), "node a"),
            (vars(&[("BERTH_SWARM_MANAGER", "unix:///m")]), "no nodes"),
        ] {
            let err = ServeConfig::resolve(FileConfig::default(), &bad, Flags::default()).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        let none = FileConfig::parse("backend = \"swarm\"\n").unwrap();
        assert!(ServeConfig::resolve(none, &vars(&[]), Flags::default()).unwrap_err().contains("no manager"));
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_hold_when_nothing_is_given() {
        let c = ServeConfig::resolve(FileConfig::default(), &vars(&[]), Flags::default()).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!((c.backend, c.ports, c.dialects.len()), (BackendChoice::Auto, PortRange::default(), 0));
    }

    #[test]
    fn one_spare_of_base_is_kept_unless_the_file_or_the_variable_says_otherwise() {
        let none = FileConfig::default();
        assert_eq!(ServeConfig::resolve(none, &vars(&[]), Flags::default()).unwrap().spares["base"], 1);
        let file = || FileConfig::parse("[templates.web]\nimage = \"web:1\"\n[spares]\nbase = 0\nweb = 3\n").unwrap();
        let c = ServeConfig::resolve(file(), &vars(&[]), Flags::default()).unwrap();
        assert_eq!(c.spares, BTreeMap::from([("base".to_owned(), 0), ("web".to_owned(), 3)]));
        let c = ServeConfig::resolve(file(), &vars(&[("BERTH_SPARES", "web=2")]), Flags::default()).unwrap();
        assert_eq!(c.spares, BTreeMap::from([("web".to_owned(), 2)]));
        let c = ServeConfig::resolve(file(), &vars(&[("BERTH_SPARES", "")]), Flags::default()).unwrap();
        assert!(c.spares.is_empty());
    }

    #[test]
    fn spares_of_an_unknown_template_too_many_or_misspelt_are_refused() {
        let resolve = |file: &str, var: Option<&str>| {
            let vars = vars(&var.map(|v| ("BERTH_SPARES", v)).into_iter().collect::<Vec<_>>());
            ServeConfig::resolve(FileConfig::parse(file).unwrap(), &vars, Flags::default()).unwrap_err()
        };
        assert!(resolve("[spares]\nnope = 1\n", None).contains("no template \"nope\""));
        assert!(resolve("[spares]\nbase = 17\n", None).contains("above the most of 16"));
        assert!(resolve("", Some("base")).contains("is not TEMPLATE=COUNT"));
        assert!(resolve("", Some("base=two")).contains("BERTH_SPARES"));
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let file = FileConfig::parse(
            "listen = \"127.0.0.1:9999\"\nbackend = \"docker\"\nports = [7000, 7010]\n[dialects]\ncortex = true\nlais = \"127.0.0.1:18000\"\nwarder = false\n",
        )
        .unwrap();
        let flags = Flags {
            listen: Some("127.0.0.1:1234".parse().unwrap()),
            backend: Some(BackendChoice::OciDryRun),
            dialects: vec!["lais=127.0.0.1:28000".into(), "spawner".into()],
            ..Default::default()
        };
        let c = ServeConfig::resolve(file, &vars(&[]), flags).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(c.backend, BackendChoice::OciDryRun);
        assert_eq!(c.ports, PortRange { first: 7000, last: 7010 });
        let expected = BTreeMap::from([
            (Dialect::Lais, "127.0.0.1:28000".parse().unwrap()),
            (Dialect::Cortex, "127.0.0.1:8086".parse().unwrap()),
            (Dialect::Spawner, "127.0.0.1:7435".parse().unwrap()),
        ]);
        assert_eq!(c.dialects, expected);
    }

    #[test]
    fn e2b_listens_twice_where_the_file_says_and_a_bare_flag_keeps_that() {
        let file =
            FileConfig::parse("[dialects.e2b]\napi = \"127.0.0.1:13000\"\nenvd = \"127.0.0.1:14998\"\n").unwrap();
        let flags = Flags { dialects: vec!["e2b".into()], ..Default::default() };
        let c = ServeConfig::resolve(file, &vars(&[]), flags).unwrap();
        let e2b = c.e2b.expect("e2b is served");
        assert_eq!((e2b.api, e2b.envd), ("127.0.0.1:13000".parse().unwrap(), "127.0.0.1:14998".parse().unwrap()));

        let flags = Flags { dialects: vec!["e2b".into()], ..Default::default() };
        let c = ServeConfig::resolve(FileConfig::default(), &vars(&[]), flags).unwrap();
        assert_eq!(c.e2b, Some(E2bListeners::default()));

        let flags = Flags { dialects: vec!["e2b=127.0.0.1:1".into()], ..Default::default() };
        assert!(ServeConfig::resolve(FileConfig::default(), &vars(&[]), flags).unwrap_err().contains("[dialects.e2b]"));
        let one_address = FileConfig::parse("[dialects]\ne2b = \"127.0.0.1:1\"\n").unwrap();
        assert!(ServeConfig::resolve(one_address, &vars(&[]), Flags::default()).is_err());
        let same = FileConfig::parse("[dialects.e2b]\napi = \"127.0.0.1:8787\"\n").unwrap();
        let e = ServeConfig::resolve(same, &vars(&[]), Flags::default()).unwrap_err();
        assert!(e.contains("both listen on 127.0.0.1:8787"), "{e}");
    }

    #[test]
    fn seed_and_berth_variables_are_read() {
        let v = vars(&[
            ("BERTH_TOKENS", "t1=alice, t2=bob"),
            ("BERTH_DIALECTS", "coderunner"),
            ("BERTH_BIND_ROOTS", "/srv/agents:/worktrees"),
            ("AGENT_PORT_RANGE_START", "9100"),
            ("AGENT_PORT_RANGE_END", "9199"),
            ("TIDEPOOL_NETWORK", "tidepool-internal"),
        ]);
        let c = ServeConfig::resolve(FileConfig::default(), &v, Flags::default()).unwrap();
        assert_eq!(c.tokens.get("t2").map(String::as_str), Some("bob"));
        assert!(c.dialects.contains_key(&Dialect::Coderunner));
        assert_eq!(c.bind_roots, vec![PathBuf::from("/srv/agents"), PathBuf::from("/worktrees")]);
        assert_eq!(c.ports, PortRange { first: 9100, last: 9199 });
        assert_eq!(c.seeds.tidepool_network, "tidepool-internal");
        let keep = ServeConfig::resolve(FileConfig::default(), &vars(&[("BERTH_ORPHANS", "keep")]), Flags::default());
        assert_eq!(keep.unwrap().orphans, Orphans::Keep);
    }

    #[test]
    fn a_public_listener_without_tokens_and_clashing_listeners_are_refused() {
        let public = Flags { dialects: vec!["cortex=0.0.0.0:8086".into()], ..Default::default() };
        let e = ServeConfig::resolve(FileConfig::default(), &vars(&[]), public.clone()).unwrap_err();
        assert!(e.starts_with("refusing to listen on 0.0.0.0:8086 without tokens"), "{e}");
        assert!(ServeConfig::resolve(FileConfig::default(), &vars(&[("BERTH_TOKENS", "t=a")]), public).is_ok());
        let clash = Flags { dialects: vec!["cortex=127.0.0.1:8787".into()], ..Default::default() };
        assert!(ServeConfig::resolve(FileConfig::default(), &vars(&[]), clash).unwrap_err().contains("both listen"));
        assert!(ServeConfig::resolve(
            FileConfig::default(),
            &vars(&[("AGENT_PORT_RANGE_START", "x")]),
            Flags::default()
        )
        .is_err());
        assert!(FileConfig::parse("surprise = 1").is_err());
    }

    #[test]
    fn pools_are_on_by_default_and_may_be_resized_or_turned_off() {
        let resolve = |text: &str| ServeConfig::resolve(FileConfig::parse(text).unwrap(), &vars(&[]), Flags::default());
        assert_eq!(resolve("").unwrap().pools, Some(PoolConfig::default()));
        assert_eq!(resolve("pools = false").unwrap().pools, None);
        let sized = resolve("[pools]\nmin = 3\nmax = 6\nidle_seconds = 60\nmemory_budget = \"4g\"\n").unwrap();
        let sized = sized.pools.unwrap();
        assert!(sized.pools.values().all(|p| (p.min, p.max) == (3, 6)));
        assert_eq!((sized.idle_lifetime.as_secs(), sized.memory_budget.bytes()), (60, 4 << 30));
        assert!(resolve("[pools]\nmin = 5\nmax = 2\n").unwrap_err().contains("min 5 is above max 2"));
        assert_eq!(resolve("[pools]\ntool_pool_after = 0\n").unwrap().pools.unwrap().demand, None);
        assert!(resolve("[pools]\nidle_seconds = 5\n").unwrap_err().contains("outside 30..=86400"));
        assert!(resolve("[pools]\nidle_seconds = 10000000000000\n").unwrap_err().contains("outside"));
        let after = resolve("[pools]\ntool_pool_after = 5\n").unwrap().pools.unwrap().demand.unwrap();
        assert_eq!(after.after, 5);
    }
}
