//! Rendering: berth's [`ContainerSpec`] → the OCI bundle that would run it.
//!
//! Pure and sans-IO: the same spec, id and image config always render the
//! same bundle, and nothing here reads or writes a file or talks to an
//! engine. It mirrors what the docker backend asks of dockerd
//! (`backend::docker::container_config`) as dockerd 20.10 turns it into a
//! runtime spec: all capabilities dropped but those policy added back,
//! no-new-privileges, the engine's default mounts, masked and read-only
//! paths and device rules, memory without swap, CPU as a CFS quota, a pids
//! limit, a network namespace of its own. What the engine alone would supply
//! (an init binary, network interfaces, published ports, health checks) is
//! named in the bundle's [`BundleNote`], not pretended.
//!
//! It must not decide policy: a spec is taken as policy left it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::runtime_spec::{
    Capabilities, Cpu, DeviceKind, DeviceRule, Linux, Memory, Mount, Namespace, NamespaceKind, Pids, Process,
    Resources, Rlimit, RlimitKind, Root, Spec, User, OCI_VERSION,
};
use berth_core::spec::{ContainerSpec, HealthCheck, Network, PortMapping};

/// The bundle's root filesystem folder, relative to the bundle.
pub const ROOTFS: &str = "rootfs";

/// `PATH` when neither the spec nor the image sets one (the engine's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Open files allowed to the process, soft and hard: the runtime's own
/// default (`runc spec`). A bundle only lowers limits, since raising one
/// above its runner's hard limit fails where the runner lacks
/// `CAP_SYS_RESOURCE`; dockerd sets none and its containers inherit the
/// daemon's.
pub const NOFILE_LIMIT: u64 = 1024;

/// The CFS period the engine uses for a CPU limit, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The smallest CPU limit the engine accepts (0.01 of a CPU).
const MIN_CPU_NANOS: u64 = 10_000_000;

/// What an image contributes to a container, when it is known (its config as
/// an engine reports it). Without it, what the image would have set is left
/// unresolved and named in the note.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// Parts of the process the image would have set, left open because the
/// image's config was not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unresolved {
    /// `process.args` is empty: the command is the image's.
    Command,
    /// The image's own environment is not merged into `process.env`.
    Env,
    /// `process.cwd` is `/`, where the image might name another folder.
    WorkingDir,
    /// `process.user` is root, where the image might name another user.
    User,
}

/// What a runtime alone does not do and an engine would: the rootfs to
/// unpack and the duties beside the runtime spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleNote {
    /// The image whose filesystem is expected at [`ROOTFS`].
    pub image: String,
    pub rootfs: String,
    pub unresolved: Vec<Unresolved>,
    /// The network the engine would attach (a bundle's namespace has only loopback).
    pub network: Network,
    /// Host ports the engine would publish.
    pub ports: Vec<PortMapping>,
    /// The health check the engine would run.
    pub health: Option<HealthCheck>,
    /// Whether the engine would run a tiny init as process 1.
    pub init: bool,
}

/// A rendered bundle: `config.json`, the small files it binds in, and its note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub config: Spec,
    /// File name (relative to the bundle) → content.
    pub files: BTreeMap<String, String>,
    pub note: BundleNote,
}

/// Why a spec cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("container id {0:?} must be at least 12 characters of [a-zA-Z0-9_.-]")]
    BadId(String),
    #[error("user {0:?} is a name: a bundle needs uid[:gid] (names live in the image's /etc/passwd)")]
    UserName(String),
    #[error("user {0:?} is not uid[:gid]")]
    BadUser(String),
    #[error("capability {0:?} is not a capability name")]
    BadCapability(String),
    #[error("working directory {0:?} must be an absolute path")]
    RelativeWorkingDir(String),
    #[error("no command: neither the spec nor the image {0} names one")]
    NoCommand(String),
    #[error("a CPU limit of {0} ns per s is below the engine's minimum of 0.01 CPU")]
    CpuTooSmall(u64),
    #[error("a memory limit of {0} bytes does not fit the runtime spec")]
    MemoryTooLarge(u64),
    /// The recorded seccomp filter is the engine's for berth's capabilities only.
    #[error("capability {0} changes the engine's seccomp profile, which berth has recorded only without it")]
    SeccompCapability(String),
}

/// Renders the bundle that would run `spec` as container `id`; `image` is the
/// image's config when known.
pub fn render(spec: &ContainerSpec, id: &str, image: Option<&ImageConfig>) -> Result<Bundle, RenderError> {
    let id_ok = id.len() >= 12 && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !id_ok {
        return Err(RenderError::BadId(id.to_owned()));
    }
    let hostname = spec.hostname.clone().unwrap_or_else(|| id[..12].to_owned());
    let mut unresolved = BTreeSet::new();

    let user_text = spec.user.clone().or_else(|| image.and_then(|i| i.user.clone()));
    if user_text.is_none() && image.is_none() {
        unresolved.insert(Unresolved::User);
    }
    let user = parse_user(user_text.as_deref())?;

    let args = command(spec, image, &mut unresolved)?;
    let cwd = match spec.working_dir.clone().or_else(|| image.and_then(|i| i.working_dir.clone())) {
        Some(dir) if dir.starts_with('/') => dir,
        Some(dir) => return Err(RenderError::RelativeWorkingDir(dir)),
        None => {
            if image.is_none() {
                unresolved.insert(Unresolved::WorkingDir);
            }
            "/".to_owned()
        }
    };
    if image.is_none() {
        unresolved.insert(Unresolved::Env);
    }
    let env = environment(spec, image, &hostname);

    let caps = spec.cap_add.iter().map(|c| capability(c)).collect::<Result<Vec<_>, _>>()?;
    // As dockerd does: a non-root process keeps added capabilities in its
    // bounding set only; root gets them effective and permitted too. No
    // inheritable or ambient capabilities for anyone.
    let capabilities = if user.uid == 0 {
        Capabilities { bounding: caps.clone(), effective: caps.clone(), permitted: caps, ..Default::default() }
    } else {
        Capabilities { bounding: caps, ..Default::default() }
    };

    let seccomp = crate::seccomp::filter_for(&capabilities.bounding).map_err(RenderError::SeccompCapability)?;

    let process = Process {
        terminal: spec.tty,
        user,
        args,
        env,
        cwd,
        capabilities,
        rlimits: vec![Rlimit { kind: RlimitKind::NoFile, hard: NOFILE_LIMIT, soft: NOFILE_LIMIT }],
        no_new_privileges: true,
        oom_score_adj: 0,
    };

    let (mounts, files) = mounts(spec, &hostname);
    let linux = Linux {
        // Namespaced sysctls the engine sets for a container with a network
        // namespace of its own (every berth container has one).
        sysctl: BTreeMap::from([
            ("net.ipv4.ip_unprivileged_port_start".to_owned(), "0".to_owned()),
            ("net.ipv4.ping_group_range".to_owned(), "0 2147483647".to_owned()),
        ]),
        resources: resources(spec)?,
        cgroups_path: format!("/berth/{id}"),
        namespaces: [
            NamespaceKind::Mount,
            NamespaceKind::Network,
            NamespaceKind::Uts,
            NamespaceKind::Pid,
            NamespaceKind::Ipc,
        ]
        .into_iter()
        .map(|kind| Namespace { kind, path: None })
        .collect(),
        masked_paths: MASKED_PATHS.iter().map(|p| (*p).to_owned()).collect(),
        readonly_paths: READONLY_PATHS.iter().map(|p| (*p).to_owned()).collect(),
        seccomp: Some(seccomp),
    };
    let config = Spec {
        oci_version: OCI_VERSION.to_owned(),
        process,
        root: Root { path: ROOTFS.to_owned(), readonly: spec.read_only_root },
        hostname,
        mounts,
        annotations: spec.labels.clone(),
        linux,
    };
    let note = BundleNote {
        image: spec.image.clone(),
        rootfs: ROOTFS.to_owned(),
        unresolved: unresolved.into_iter().collect(),
        network: spec.network.clone(),
        ports: spec.ports.clone(),
        health: spec.health.clone(),
        init: spec.init,
    };
    Ok(Bundle { config, files, note })
}

/// Paths of `/proc` and `/sys` hidden from the container, as the engine hides them.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths of `/proc` the container may read but not write, as the engine sets them.
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The process's arguments: the entrypoint, then the command. As the engine
/// does, an entrypoint given by the spec drops the image's command.
fn command(
    spec: &ContainerSpec,
    image: Option<&ImageConfig>,
    unresolved: &mut BTreeSet<Unresolved>,
) -> Result<Vec<String>, RenderError> {
    let entrypoint = spec.entrypoint.clone().or_else(|| image.map(|i| i.entrypoint.clone())).unwrap_or_default();
    let cmd = match (&spec.cmd, &spec.entrypoint) {
        (Some(cmd), _) => cmd.clone(),
        (None, Some(_)) => vec![],
        (None, None) => image.map(|i| i.cmd.clone()).unwrap_or_default(),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        match image {
            Some(_) => return Err(RenderError::NoCommand(spec.image.clone())),
            None => {
                unresolved.insert(Unresolved::Command);
            }
        }
    }
    Ok(args)
}

/// The engine's variables first (`PATH`, `HOSTNAME`, `TERM` with a TTY), each
/// replaced in place by the spec's or the image's value of the same name; the
/// spec's variables win over the image's.
fn environment(spec: &ContainerSpec, image: Option<&ImageConfig>, hostname: &str) -> Vec<String> {
    let mut env = vec![format!("PATH={DEFAULT_PATH}"), format!("HOSTNAME={hostname}")];
    if spec.tty {
        env.push("TERM=xterm".to_owned());
    }
    let key = |entry: &str| entry.split_once('=').map_or(entry, |(k, _)| k).to_owned();
    let mut container: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for entry in image.map(|i| i.env.as_slice()).unwrap_or_default() {
        if !spec.env.contains_key(&key(entry)) {
            container.push(entry.clone());
        }
    }
    for entry in container {
        let k = key(&entry);
        match env.iter_mut().find(|e| key(e) == k) {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
    env
}

/// `uid[:gid]` (no user: root). A lone uid gets gid 0, as the engine gives a
/// uid the image's `/etc/passwd` does not know. The primary group is also the
/// one supplementary group, as the engine lists it for a user in no other group.
fn parse_user(text: Option<&str>) -> Result<User, RenderError> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    let Some(text) = text else {
        return Ok(User { uid: 0, gid: 0, additional_gids: vec![0] });
    };
    let (uid, gid) = text.split_once(':').map_or((text, None), |(u, g)| (u, Some(g)));
    let number = |s: &str| -> Result<Option<u32>, RenderError> {
        if s.chars().all(|c| c.is_ascii_digit()) {
            s.parse().map(Some).map_err(|_| RenderError::BadUser(text.to_owned()))
        } else if s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            Ok(None)
        } else {
            Err(RenderError::BadUser(text.to_owned()))
        }
    };
    let uid = number(uid)?.ok_or_else(|| RenderError::UserName(text.to_owned()))?;
    let gid = match gid {
        Some(g) => number(g)?.ok_or_else(|| RenderError::UserName(text.to_owned()))?,
        None => 0,
    };
    Ok(User { uid, gid, additional_gids: vec![gid] })
}

/// `NET_BIND_SERVICE` → `CAP_NET_BIND_SERVICE`.
fn capability(name: &str) -> Result<String, RenderError> {
    let bare = name.strip_prefix("CAP_").unwrap_or(name);
    let ok = !bare.is_empty() && bare.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(format!("CAP_{bare}"))
    } else {
        Err(RenderError::BadCapability(name.to_owned()))
    }
}

fn strings(options: &[&str]) -> Vec<String> {
    options.iter().map(|o| (*o).to_owned()).collect()
}

fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount { destination: destination.into(), kind: kind.into(), source: source.into(), options: strings(options) }
}

/// The hosts file the engine writes for a container (before any network adds its address).
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
                     ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// The engine's default mounts, then the spec's binds and tmpfs (shallowest
/// first, as the engine orders them), then `/etc/resolv.conf`,
/// `/etc/hostname` and `/etc/hosts` bound from files of the bundle. A mount
/// of the spec replaces a default one at the same place.
fn mounts(spec: &ContainerSpec, hostname: &str) -> (Vec<Mount>, BTreeMap<String, String>) {
    let mut own: Vec<Mount> = spec
        .binds
        .iter()
        .map(|b| {
            let options: &[&str] = if b.read_only { &["rbind", "ro", "rprivate"] } else { &["rbind", "rprivate"] };
            mount(&b.container, "bind", &b.host, options)
        })
        .chain(spec.tmpfs.iter().map(|(path, size)| {
            // Berth asks for rw,nosuid,nodev,size=N; the engine adds noexec and rprivate.
            let size = format!("size={}", size.bytes());
            // A sandbox's own space (it has an owner) runs what is put there.
            let exec = if spec.tmpfs_owner.is_some() { "exec" } else { "noexec" };
            let mut options = vec![exec, "rprivate", "rw", "nosuid", "nodev", &size];
            let owner = spec.tmpfs_owner.map(|(u, g)| [format!("uid={u}"), format!("gid={g}"), "mode=0755".into()]);
            options.extend(owner.iter().flatten().map(String::as_str));
            mount(path, "tmpfs", "tmpfs", &options)
        }))
        .collect();
    own.sort_by_key(|m| m.destination.trim_end_matches('/').split('/').count());
    let taken: BTreeSet<String> = own.iter().map(|m| m.destination.clone()).collect();

    let defaults = [
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        mount("/sys/fs/cgroup", "cgroup", "cgroup", &["ro", "nosuid", "noexec", "nodev"]),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]),
    ];
    let etc_options: &[&str] = if spec.read_only_root { &["rbind", "ro", "rprivate"] } else { &["rbind", "rprivate"] };
    let files = BTreeMap::from([
        ("hostname".to_owned(), format!("{hostname}\n")),
        ("hosts".to_owned(), HOSTS.to_owned()),
        ("resolv.conf".to_owned(), "# berth: no nameserver; a network of the engine would name one\n".to_owned()),
    ]);
    let etc = ["resolv.conf", "hostname", "hosts"].map(|f| mount(&format!("/etc/{f}"), "bind", f, etc_options));

    let mut all: Vec<Mount> = defaults.into_iter().filter(|m| !taken.contains(&m.destination)).collect();
    all.extend(own);
    all.extend(etc.into_iter().filter(|m| !taken.contains(&m.destination)));
    (all, files)
}

/// Memory without swap, CPU as a CFS quota per 100 ms, the pids limit, and
/// the engine's device rules (deny all; allow the null, zero, full… nodes).
fn resources(spec: &ContainerSpec) -> Result<Resources, RenderError> {
    let nanos = spec.limits.cpu.nanos();
    if nanos < MIN_CPU_NANOS {
        return Err(RenderError::CpuTooSmall(nanos));
    }
    let quota = (u128::from(nanos) * u128::from(CPU_PERIOD_US) / 1_000_000_000) as i64;
    let bytes = spec.limits.memory.bytes();
    let memory = i64::try_from(bytes).map_err(|_| RenderError::MemoryTooLarge(bytes))?;
    let char_dev = |major, minor, allow| DeviceRule {
        allow,
        kind: Some(DeviceKind::Char),
        major: Some(major),
        minor: Some(minor),
        access: "rwm".into(),
    };
    let devices = vec![
        DeviceRule { allow: false, kind: None, major: None, minor: None, access: "rwm".into() },
        char_dev(1, 5, true),     // zero
        char_dev(1, 3, true),     // null
        char_dev(1, 9, true),     // urandom
        char_dev(1, 8, true),     // random
        char_dev(5, 0, true),     // tty
        char_dev(5, 1, true),     // console
        char_dev(10, 229, false), // fuse
    ];
    Ok(Resources {
        devices,
        memory: Memory { limit: memory, swap: memory, disable_oom_killer: false },
        cpu: Cpu { quota, period: CPU_PERIOD_US },
        pids: Pids { limit: i64::from(spec.limits.pids) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::model::units::{ByteSize, CpuLimit};
    use berth_core::policy::{ContainerRequest, Policy, PolicyConfig};
    use berth_core::spec::{Bind, Kind};

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn policy() -> Policy {
        Policy::new(PolicyConfig { bind_roots: vec!["/srv".into()], ..Default::default() })
    }

    fn sandbox() -> ContainerSpec {
        let mut req = ContainerRequest::new(Kind::Code, "berth-run-1", "busybox:1.35");
        req.cmd = Some(vec!["sh".into(), "-c".into(), "echo hi".into()]);
        req.cpu = Some(CpuLimit::from_cores(0.5).unwrap());
        req.memory = Some(ByteSize::mib(64));
        req.pids = Some(32);
        policy().admit(req).unwrap()
    }

    fn agent() -> ContainerSpec {
        let mut req = ContainerRequest::new(Kind::Agent, "berth-agent-a", "busybox:1.35");
        req.cmd = Some(vec!["sleep".into(), "60".into()]);
        req.cap_add = vec!["NET_BIND_SERVICE".into()];
        req.binds = vec![
            Bind { host: "/srv/a/code".into(), container: "/app/agent".into(), read_only: true },
            Bind { host: "/srv/a/wt".into(), container: "/workspace".into(), read_only: false },
        ];
        policy().admit(req).unwrap()
    }

    fn render_ok(spec: &ContainerSpec) -> Spec {
        render(spec, ID, None).unwrap().config
    }

    fn mount_at<'a>(spec: &'a Spec, destination: &str) -> &'a Mount {
        spec.mounts.iter().find(|m| m.destination == destination).unwrap_or_else(|| panic!("no mount at {destination}"))
    }

    #[test]
    fn a_sandbox_keeps_no_capability_in_any_of_the_five_sets_and_no_new_privileges() {
        let config = render_ok(&sandbox());
        assert_eq!(config.process.capabilities, Capabilities::default());
        assert!(config.process.no_new_privileges);
        let json = serde_json::to_value(&config).unwrap();
        for set in ["bounding", "effective", "inheritable", "permitted", "ambient"] {
            assert_eq!(json["process"]["capabilities"][set], serde_json::json!([]), "{set} is written, empty");
        }
    }

    #[test]
    fn an_added_capability_stays_in_the_bounding_set_of_a_non_root_user_and_is_effective_for_root() {
        let root = render_ok(&agent());
        assert_eq!(root.process.user.uid, 0);
        let caps = vec!["CAP_NET_BIND_SERVICE".to_owned()];
        assert_eq!(root.process.capabilities.effective, caps);
        assert_eq!(root.process.capabilities.permitted, caps);
        assert!(root.process.capabilities.inheritable.is_empty() && root.process.capabilities.ambient.is_empty());
        let mut spec = agent();
        spec.user = Some("1000:1000".into());
        let user = render_ok(&spec);
        assert_eq!(user.process.capabilities, Capabilities { bounding: caps, ..Default::default() });
    }

    #[test]
    fn half_a_cpu_is_a_quota_of_50000_per_100000_and_memory_and_pids_are_the_limits_asked_for() {
        let config = render_ok(&sandbox());
        let r = &config.linux.resources;
        assert_eq!((r.cpu.quota, r.cpu.period), (50_000, 100_000));
        assert_eq!((r.memory.limit, r.memory.swap), (64 << 20, 64 << 20), "no swap beyond the memory");
        assert_eq!(r.pids.limit, 32);
        assert!(!r.devices[0].allow && r.devices[0].kind.is_none(), "every device denied first");
        let mut spec = sandbox();
        spec.limits.cpu = CpuLimit(1_000_000);
        assert_eq!(render(&spec, ID, None).unwrap_err(), RenderError::CpuTooSmall(1_000_000));
    }

    #[test]
    fn a_sandbox_has_a_read_only_root_a_size_limited_tmpfs_and_its_non_root_user() {
        let config = render_ok(&sandbox());
        assert!(config.root.readonly);
        assert_eq!(config.root.path, "rootfs");
        let tmp = mount_at(&config, "/tmp");
        assert_eq!(tmp.kind, "tmpfs");
        assert!(tmp.options.contains(&format!("size={}", 64 << 20)), "{:?}", tmp.options);
        assert!(tmp.options.iter().any(|o| o == "noexec") && tmp.options.iter().any(|o| o == "nosuid"));
        assert_eq!((config.process.user.uid, config.process.user.gid), (65534, 65534));
        assert!(mount_at(&config, "/etc/hosts").options.contains(&"ro".to_owned()));
    }

    #[test]
    fn every_container_gets_its_own_network_namespace_and_the_engines_default_mounts() {
        let config = render_ok(&sandbox());
        let kinds: Vec<NamespaceKind> = config.linux.namespaces.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            [NamespaceKind::Mount, NamespaceKind::Network, NamespaceKind::Uts, NamespaceKind::Pid, NamespaceKind::Ipc]
        );
        assert!(config.linux.namespaces.iter().all(|n| n.path.is_none()), "new namespaces, none joined");
        for (dest, kind) in [
            ("/proc", "proc"),
            ("/dev", "tmpfs"),
            ("/dev/pts", "devpts"),
            ("/dev/shm", "tmpfs"),
            ("/dev/mqueue", "mqueue"),
            ("/sys", "sysfs"),
            ("/sys/fs/cgroup", "cgroup"),
        ] {
            assert_eq!(mount_at(&config, dest).kind, kind);
        }
        assert!(mount_at(&config, "/sys").options.contains(&"ro".to_owned()));
        assert_eq!(config.linux.cgroups_path, format!("/berth/{ID}"));
    }

    #[test]
    fn the_engines_masked_and_read_only_paths_are_set() {
        let config = render_ok(&sandbox());
        for masked in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"] {
            assert!(config.linux.masked_paths.iter().any(|p| p == masked), "{masked}");
        }
        assert!(config.linux.readonly_paths.iter().any(|p| p == "/proc/sys"));
        assert!(config.linux.readonly_paths.iter().any(|p| p == "/proc/sysrq-trigger"));
    }

    #[test]
    fn binds_carry_their_options_and_the_agent_code_is_read_only() {
        let config = render_ok(&agent());
        let code = mount_at(&config, "/app/agent");
        assert_eq!((code.kind.as_str(), code.source.as_str()), ("bind", "/srv/a/code"));
        assert_eq!(code.options, ["rbind", "ro", "rprivate"]);
        assert_eq!(mount_at(&config, "/workspace").options, ["rbind", "rprivate"]);
        assert!(!config.root.readonly);
        let order: Vec<&str> = config.mounts.iter().map(|m| m.destination.as_str()).collect();
        let (ws, app) = (order.iter().position(|d| *d == "/workspace"), order.iter().position(|d| *d == "/app/agent"));
        assert!(ws < app, "shallowest first: {order:?}");
    }

    #[test]
    fn the_process_is_the_specs_command_env_and_hostname_with_berths_labels_as_annotations() {
        let mut spec = sandbox();
        spec.env.insert("FOO".into(), "bar".into());
        spec.env.insert("PATH".into(), "/bin".into());
        spec.working_dir = Some("/work".into());
        let config = render_ok(&spec);
        assert_eq!(config.process.args, ["sh", "-c", "echo hi"]);
        assert_eq!(config.process.env, ["PATH=/bin", "HOSTNAME=0123456789ab", "FOO=bar"]);
        assert_eq!(config.process.cwd, "/work");
        assert_eq!(config.hostname, "0123456789ab");
        assert_eq!(config.annotations["io.berth.kind"], "code");
        assert_eq!(config.annotations["io.berth.managed"], "true");
        assert!(!config.process.terminal);
        assert_eq!(
            config.process.rlimits,
            [Rlimit { kind: RlimitKind::NoFile, hard: NOFILE_LIMIT, soft: NOFILE_LIMIT }]
        );
        spec.tty = true;
        assert!(render_ok(&spec).process.env.contains(&"TERM=xterm".to_owned()));
    }

    #[test]
    fn the_image_config_fills_in_what_the_spec_leaves_and_an_entrypoint_drops_the_images_command() {
        let image = ImageConfig {
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            env: vec!["PATH=/image/bin".into(), "LANG=C".into()],
            working_dir: Some("/srv".into()),
            user: Some("7:8".into()),
        };
        let mut spec = agent();
        spec.cmd = None;
        let bundle = render(&spec, ID, Some(&image)).unwrap();
        assert!(bundle.note.unresolved.is_empty());
        let p = &bundle.config.process;
        assert_eq!((p.args.as_slice(), p.cwd.as_str(), p.user.uid, p.user.gid), (&["sh".to_owned()][..], "/srv", 7, 8));
        assert_eq!(p.env, ["PATH=/image/bin", "HOSTNAME=0123456789ab", "LANG=C"]);
        spec.entrypoint = Some(vec!["/bin/true".into()]);
        assert_eq!(render(&spec, ID, Some(&image)).unwrap().config.process.args, ["/bin/true"]);
        let bare = ImageConfig { cmd: vec![], ..image };
        spec.entrypoint = None;
        assert_eq!(render(&spec, ID, Some(&bare)).unwrap_err(), RenderError::NoCommand("busybox:1.35".into()));
    }

    #[test]
    fn without_the_image_config_what_the_image_would_set_is_named_unresolved() {
        let mut spec = agent();
        spec.cmd = None;
        let bundle = render(&spec, ID, None).unwrap();
        assert!(bundle.config.process.args.is_empty());
        assert_eq!(
            bundle.note.unresolved,
            [Unresolved::Command, Unresolved::Env, Unresolved::WorkingDir, Unresolved::User]
        );
        assert_eq!(render(&sandbox(), ID, None).unwrap().note.unresolved, [Unresolved::Env, Unresolved::WorkingDir]);
    }

    #[test]
    fn users_must_be_numeric_and_ids_plain() {
        let mut spec = sandbox();
        spec.user = Some("nobody".into());
        assert_eq!(render(&spec, ID, None).unwrap_err(), RenderError::UserName("nobody".into()));
        spec.user = Some("1000:x y".into());
        assert!(matches!(render(&spec, ID, None), Err(RenderError::BadUser(_))));
        spec.user = Some("1000".into());
        let user = render(&spec, ID, None).unwrap().config.process.user;
        assert_eq!((user.uid, user.gid, user.additional_gids), (1000, 0, vec![0]));
        assert!(matches!(render(&sandbox(), "../../etc/x", None), Err(RenderError::BadId(_))));
        assert!(matches!(render(&sandbox(), "short", None), Err(RenderError::BadId(_))));
    }

    #[test]
    fn a_spec_mount_replaces_the_default_at_the_same_place() {
        let mut spec = sandbox();
        spec.tmpfs.insert("/dev/shm".into(), ByteSize::mib(8));
        let config = render_ok(&spec);
        let shm: Vec<&Mount> = config.mounts.iter().filter(|m| m.destination == "/dev/shm").collect();
        assert_eq!(shm.len(), 1);
        assert!(shm[0].options.contains(&format!("size={}", 8 << 20)));
    }

    #[test]
    fn a_bundle_round_trips_through_json_and_names_its_files_and_engine_duties() {
        let bundle = render(&agent(), ID, None).unwrap();
        let json = serde_json::to_string(&bundle).unwrap();
        assert_eq!(serde_json::from_str::<Bundle>(&json).unwrap(), bundle);
        assert_eq!(bundle.files.keys().collect::<Vec<_>>(), ["hostname", "hosts", "resolv.conf"]);
        assert_eq!(bundle.files["hostname"], "0123456789ab\n");
        assert_eq!(bundle.note.network, Network::Bridge);
        assert!(bundle.note.init);
        assert_eq!(mount_at(&bundle.config, "/etc/hosts").source, "hosts", "relative to the bundle");
    }
}
