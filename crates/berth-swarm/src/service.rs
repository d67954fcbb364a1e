//! berth's container spec as a swarm service (sans IO): one replica that
//! is never restarted (a job service leaks its container on removal on
//! API 1.41), reservations equal to the limits so that placement respects
//! them, berth's labels on the service and on its container (so the
//! node's engine lists, and the reaper finds, what the manager made), and
//! the hardening the service API can express. What it cannot express on
//! 1.41 is refused here or left to the nodes' configuration:
//! no-new-privileges and the absence of swap come from each node's daemon
//! (`"no-new-privileges": true`, no swap on the machine), and are checked
//! from inside a task by the swarm tier.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_core::engine::state::ANNOTATION_PREFIX;
use berth_core::spec::{ContainerSpec, Kind, Logs, Network, Stdin};
use engine_api::models::{
    Driver, EndpointSpec, Limit, NetworkAttachment, NetworkConfig, PortConfig, Replicated, Resources, ServiceMode,
    ServiceSpec, TaskContainerSpec, TaskMount, TaskPlacement, TaskRestartPolicy, TaskSpec, TmpfsOptions, VolumeOptions,
};

/// What a spec asks that a service cannot be made of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    #[error("{name}: the bind of {path} is below none of the bind roots {roots:?}")]
    NoRoot { name: String, path: String, roots: Vec<PathBuf> },
}

/// The node label that says a node holds bind root `root`, as its key and
/// value: `io.berth.root.<the path, its separators as dots>` = the path.
/// The key takes only what a placement constraint's key may hold; the
/// value, the path itself, makes the match exact.
pub fn root_label(root: &Path) -> (String, String) {
    let path = root.to_string_lossy().into_owned();
    let key: String = path
        .trim_matches('/')
        .chars()
        .map(|c| match c {
            '/' => '.',
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' => c,
            _ => '_',
        })
        .collect();
    (format!("{ROOT_LABEL_PREFIX}{key}"), path)
}

/// The prefix of the node labels that name the bind roots a node holds.
pub const ROOT_LABEL_PREFIX: &str = "io.berth.root.";

/// The labels a node must carry to take `spec`'s task: one per bind root
/// its binds come from (the longest root that holds each bind).
pub fn root_labels(spec: &ContainerSpec, roots: &[PathBuf]) -> Result<BTreeMap<String, String>, Unsupported> {
    let mut needed = BTreeMap::new();
    for bind in &spec.binds {
        let root = roots
            .iter()
            .filter(|r| Path::new(&bind.host).starts_with(r))
            .max_by_key(|r| r.components().count())
            .ok_or_else(|| Unsupported::NoRoot {
                name: spec.name.clone(),
                path: bind.host.clone(),
                roots: roots.to_vec(),
            })?;
        let (key, value) = root_label(root);
        needed.insert(key, value);
    }
    Ok(needed)
}

/// How long a task's container is given between SIGTERM and SIGKILL when
/// its service goes: a run's a second, an agent's as long as the engine
/// gives a container by default (a stop's own grace is kept by berth).
fn stop_grace_nanos(spec: &ContainerSpec) -> i64 {
    match spec.kind {
        Kind::Agent => 10_000_000_000,
        _ => 1_000_000_000,
    }
}

/// The labels of a spec as the engine carries them: berth's labels and its
/// annotations under their prefix.
pub fn labels_of(spec: &ContainerSpec) -> BTreeMap<String, String> {
    spec.labels
        .clone()
        .into_iter()
        .chain(spec.annotations.iter().map(|(k, v)| (format!("{ANNOTATION_PREFIX}{k}"), v.clone())))
        .collect()
}

/// The network a run with no network is given on the swarm, named as the
/// run is: an internal overlay of its own, so it has no route out, cannot
/// reach its node and has no peer (services cannot join a node's `none`).
/// `None` for a spec with a network.
pub fn sealed_network(spec: &ContainerSpec) -> Option<NetworkConfig> {
    (spec.network == Network::None).then(|| NetworkConfig {
        name: spec.name.clone(),
        driver: Some("overlay".into()),
        internal: true,
        attachable: Some(false),
        labels: spec.labels.clone(),
    })
}

/// The service that runs `spec` (on [`sealed_network`] when it has no
/// network), placed on the nodes labelled as holding the bind roots of its
/// binds (`roots`: the configured ones).
pub fn service_spec(spec: &ContainerSpec, roots: &[PathBuf]) -> Result<ServiceSpec, Unsupported> {
    let constraints: Vec<String> =
        root_labels(spec, roots)?.into_iter().map(|(key, value)| format!("node.labels.{key}=={value}")).collect();
    let network = match &spec.network {
        // A service cannot join the node's `none`: a run with no network
        // gets an internal overlay of its own ([`sealed_network`]).
        Network::None => NetworkAttachment { target: spec.name.clone(), aliases: Vec::new() },
        Network::Bridge => NetworkAttachment { target: "bridge".into(), aliases: Vec::new() },
        // A session's overlay, where its peers reach the task by its
        // aliases (DNS round robin: no virtual IP, see [`endpoint`]).
        Network::Named { name, aliases } => NetworkAttachment { target: name.clone(), aliases: aliases.clone() },
    };
    let labels = labels_of(spec);
    let limit = Limit {
        nano_cpus: Some(spec.limits.cpu.nanos() as i64),
        memory_bytes: Some(spec.limits.memory.bytes() as i64),
        pids: Some(i64::from(spec.limits.pids)),
    };
    let binds = spec.binds.iter().map(|b| TaskMount {
        kind: "bind".into(),
        source: Some(b.host.clone()),
        target: b.container.clone(),
        read_only: Some(b.read_only),
        ..TaskMount::default()
    });
    let mounts = tmpfs_mounts(spec).into_iter().chain(binds).collect();
    let container = TaskContainerSpec {
        image: spec.image.clone(),
        labels: labels.clone(),
        command: spec.entrypoint.clone(),
        args: spec.cmd.clone(),
        hostname: spec.hostname.clone(),
        env: spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        init: Some(spec.init),
        read_only: Some(spec.read_only_root),
        tty: Some(spec.tty),
        open_stdin: Some(spec.stdin != Stdin::Closed),
        mounts,
        capability_drop: vec!["ALL".into()],
        capability_add: spec.cap_add.clone(),
        ulimits: Vec::new(),
        stop_grace_period: Some(stop_grace_nanos(spec)),
        health_check: spec.health.as_ref().map(berth_docker::health_config),
    };
    Ok(ServiceSpec {
        name: spec.name.clone(),
        labels,
        task_template: TaskSpec {
            container_spec: container,
            resources: Some(Resources { limits: Some(limit), reservations: Some(Limit { pids: None, ..limit }) }),
            restart_policy: Some(TaskRestartPolicy { condition: restart_condition(spec).into() }),
            placement: (!constraints.is_empty()).then_some(TaskPlacement { constraints }),
            networks: vec![network],
            force_update: 0,
            // A sandbox's stdio carries its helper's frames, kept nowhere.
            log_driver: match spec.logs {
                Logs::Kept => None,
                Logs::Discarded => Some(Driver { name: "none".into(), options: BTreeMap::new() }),
            },
        },
        mode: ServiceMode { replicated: Some(Replicated { replicas: 1 }) },
        endpoint_spec: endpoint(spec),
    })
}

/// The writable spaces of `spec`'s task. A tmpfs mount of a service takes
/// no owner and no `exec` on 1.41 (nor its mode, which the node drops), so
/// a space with an owner (a sandbox's home, where its user writes and runs
/// what it wrote) is a volume of the node's local driver over a tmpfs,
/// named for the service ([`volume_name`]) and labelled as it is: a named
/// volume, since the node makes an unnamed one twice and removes one. The
/// backend removes it with the task, and its sweep any left behind.
pub fn tmpfs_mounts(spec: &ContainerSpec) -> Vec<TaskMount> {
    spec.tmpfs
        .iter()
        .enumerate()
        .map(|(i, (path, size))| match spec.tmpfs_owner {
            None => TaskMount {
                kind: "tmpfs".into(),
                target: path.clone(),
                tmpfs_options: Some(TmpfsOptions { size_bytes: Some(size.bytes() as i64), mode: Some(0o1777) }),
                ..TaskMount::default()
            },
            Some((uid, gid)) => TaskMount {
                kind: "volume".into(),
                source: Some(volume_name(&spec.name, i)),
                target: path.clone(),
                read_only: Some(false),
                volume_options: Some(VolumeOptions {
                    no_copy: true,
                    labels: spec.labels.clone(),
                    driver_config: Some(Driver {
                        name: "local".into(),
                        options: BTreeMap::from([
                            ("type".into(), "tmpfs".into()),
                            ("device".into(), "tmpfs".into()),
                            (
                                "o".into(),
                                format!("size={},uid={uid},gid={gid},mode=0755,exec,nosuid,nodev", size.bytes()),
                            ),
                        ]),
                    }),
                }),
                ..TaskMount::default()
            },
        })
        .collect()
}

/// The name of the `index`th writable space of service `service` when it
/// is a volume ([`tmpfs_mounts`]).
pub fn volume_name(service: &str, index: usize) -> String {
    format!("{service}-space-{index}")
}

/// The volumes a service's task mounts, by name.
pub fn volumes_of(spec: &ServiceSpec) -> Vec<String> {
    spec.task_template
        .container_spec
        .mounts
        .iter()
        .filter(|m| m.kind == "volume")
        .filter_map(|m| m.source.clone())
        .collect()
}

/// When the manager makes a service's task again: an agent's when its
/// node is lost or its process fails (a process that ends well stays
/// ended, as an agent's container on one engine does), never a run's (a
/// job service leaks on 1.41, and a run that ends is over).
pub fn restart_condition(spec: &ContainerSpec) -> &'static str {
    match spec.kind {
        Kind::Agent => MOVES,
        _ => "none",
    }
}

/// The restart condition of a service whose task the manager makes again.
pub const MOVES: &str = "on-failure";

/// A service's endpoint: DNS round robin, since this kernel has no IPVS
/// (neither service VIPs nor the ingress mesh work; DNS round robin needs
/// no VIP), and its published ports in host mode, on the node that runs
/// the task.
fn endpoint(spec: &ContainerSpec) -> Option<EndpointSpec> {
    Some(EndpointSpec {
        mode: Some("dnsrr".into()),
        ports: spec
            .ports
            .iter()
            .map(|p| PortConfig {
                protocol: "tcp".into(),
                target_port: p.container,
                published_port: p.host,
                publish_mode: "host".into(),
            })
            .collect(),
    })
}

/// A session's network: an internal overlay that spans the nodes, which
/// standalone containers may join too.
pub fn session_network(name: &str, internal: bool, labels: &BTreeMap<String, String>) -> NetworkConfig {
    NetworkConfig {
        name: name.into(),
        driver: Some("overlay".into()),
        internal,
        attachable: Some(true),
        labels: labels.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::policy::{ContainerRequest, Policy};
    use berth_core::spec::{Bind, Kind};

    fn code_spec() -> ContainerSpec {
        let mut req = ContainerRequest::new(Kind::Code, "berth-run-1", "busybox:1.35");
        req.cmd = Some(vec!["sh".into(), "-c".into(), "echo hi".into()]);
        let mut spec = Policy::default().admit(req).unwrap();
        spec.labels.insert("io.berth.object".into(), "run_1".into());
        spec.annotations.insert("expires-at".into(), "2026-12-02T00:00:00Z".into());
        spec
    }

    fn sandbox_spec() -> ContainerSpec {
        let mut req = ContainerRequest::new(Kind::Sandbox, "berth-sandbox-1", "berth/base:1");
        req.user = Some("1000:1000".into());
        req.tmpfs = BTreeMap::from([("/home/user".to_owned(), berth_core::model::units::ByteSize::mib(512))]);
        let mut spec = Policy::default().admit(req).unwrap();
        spec.labels.insert("io.berth.object".into(), "sbx1".into());
        spec
    }

    #[test]
    fn a_sandboxs_home_is_a_named_tmpfs_volume_its_user_owns_and_its_output_is_kept_nowhere() {
        let spec = sandbox_spec();
        assert!(spec.tmpfs_owner.is_some() && spec.logs == Logs::Discarded);
        let service = service_spec(&spec, &[]).unwrap();
        let mounts = &service.task_template.container_spec.mounts;
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        let home = &mounts[0];
        assert_eq!((home.kind.as_str(), home.source.as_deref()), ("volume", Some("berth-sandbox-1-space-0")));
        let options = home.volume_options.as_ref().unwrap();
        assert_eq!(options.labels.get("io.berth.object").map(String::as_str), Some("sbx1"));
        let driver = options.driver_config.as_ref().unwrap();
        assert_eq!((driver.name.as_str(), driver.options["type"].as_str()), ("local", "tmpfs"));
        assert_eq!(driver.options["o"], format!("size={},uid=1000,gid=1000,mode=0755,exec,nosuid,nodev", 512 << 20));
        assert_eq!(volumes_of(&service), ["berth-sandbox-1-space-0"]);
        assert_eq!(service.task_template.log_driver.as_ref().map(|d| d.name.as_str()), Some("none"));
    }

    #[test]
    fn a_runs_tmp_is_a_tmpfs_mount_and_its_output_is_kept() {
        let service = service_spec(&code_spec(), &[]).unwrap();
        let mounts = &service.task_template.container_spec.mounts;
        assert!(mounts.iter().all(|m| m.kind == "tmpfs" && m.volume_options.is_none()), "{mounts:?}");
        assert!(volumes_of(&service).is_empty() && service.task_template.log_driver.is_none());
    }

    #[test]
    fn a_run_is_one_replica_never_restarted_with_reservations_equal_to_its_limits() {
        let spec = code_spec();
        let service = service_spec(&spec, &[]).unwrap();
        assert_eq!(service.mode.replicated, Some(Replicated { replicas: 1 }));
        let task = &service.task_template;
        assert_eq!(task.restart_policy.as_ref().unwrap().condition, "none");
        let resources = task.resources.as_ref().unwrap();
        let (limits, reserved) = (resources.limits.unwrap(), resources.reservations.unwrap());
        assert_eq!(limits.memory_bytes, Some(spec.limits.memory.bytes() as i64));
        assert_eq!((reserved.memory_bytes, reserved.nano_cpus), (limits.memory_bytes, limits.nano_cpus));
        assert_eq!(limits.pids, Some(i64::from(spec.limits.pids)));
        assert_eq!(task.networks, vec![NetworkAttachment { target: "berth-run-1".into(), aliases: vec![] }]);
        let own = sealed_network(&spec).expect("a sealed run's own network");
        assert_eq!((own.name.as_str(), own.driver.as_deref(), own.internal), ("berth-run-1", Some("overlay"), true));
        assert_eq!(own.labels.get("io.berth.object").map(String::as_str), Some("run_1"));
    }

    #[test]
    fn an_agents_task_is_made_again_when_it_fails_or_its_node_is_lost_and_a_runs_never() {
        let mut req = ContainerRequest::new(Kind::Agent, "berth-agent-a1", "busybox:1.35");
        req.cmd = Some(vec!["sleep".into(), "600".into()]);
        let agent = Policy::default().admit(req).unwrap();
        let condition =
            |spec: &ContainerSpec| service_spec(spec, &[]).unwrap().task_template.restart_policy.unwrap().condition;
        assert_eq!((condition(&agent), condition(&code_spec())), ("on-failure".to_owned(), "none".to_owned()));
    }

    #[test]
    fn berths_labels_and_annotations_are_on_the_service_and_on_its_container() {
        let service = service_spec(&code_spec(), &[]).unwrap();
        for labels in [&service.labels, &service.task_template.container_spec.labels] {
            assert_eq!(labels.get("io.berth.object").map(String::as_str), Some("run_1"));
            assert!(labels.contains_key(&format!("{ANNOTATION_PREFIX}expires-at")));
        }
    }

    #[test]
    fn the_container_drops_every_capability_and_keeps_the_policys_root_user_and_command() {
        let spec = code_spec();
        let c = service_spec(&spec, &[]).unwrap().task_template.container_spec;
        assert_eq!(c.capability_drop, vec!["ALL".to_owned()]);
        assert_eq!(c.read_only, Some(spec.read_only_root));
        assert_eq!((c.user, c.args, c.command), (spec.user.clone(), spec.cmd.clone(), spec.entrypoint.clone()));
        assert_eq!(c.init, Some(spec.init));
        let tmp = c.mounts.iter().find(|m| m.target == "/tmp").expect("the bounded /tmp");
        assert_eq!(tmp.kind, "tmpfs");
        assert_eq!(tmp.tmpfs_options.unwrap().size_bytes, Some(spec.tmpfs["/tmp"].bytes() as i64));
    }

    #[test]
    fn published_ports_are_in_host_mode_on_the_tasks_node_with_no_virtual_ip() {
        let mut spec = code_spec();
        let endpoint = service_spec(&spec, &[]).unwrap().endpoint_spec.expect("the endpoint");
        assert_eq!((endpoint.mode.as_deref(), endpoint.ports.len()), (Some("dnsrr"), 0));
        spec.ports = vec![berth_core::spec::PortMapping { container: 8080, host: 9001 }];
        let endpoint = service_spec(&spec, &[]).unwrap().endpoint_spec.expect("the ports");
        assert_eq!(endpoint.mode.as_deref(), Some("dnsrr"));
        assert_eq!(
            endpoint.ports,
            vec![PortConfig {
                protocol: "tcp".into(),
                target_port: 8080,
                published_port: 9001,
                publish_mode: "host".into()
            }]
        );
    }

    #[test]
    fn a_session_member_joins_its_overlay_under_its_aliases_with_the_engines_health_check() {
        let mut spec = code_spec();
        spec.network = Network::Named { name: "berth-session-x".into(), aliases: vec!["db".into(), "x-db".into()] };
        spec.health = Some(berth_core::spec::HealthCheck {
            command: "wget -qO- http://127.0.0.1:8000/health".into(),
            interval: std::time::Duration::from_millis(500),
            timeout: std::time::Duration::from_secs(2),
            retries: 3,
            start_period: std::time::Duration::ZERO,
        });
        let service = service_spec(&spec, &[]).unwrap();
        assert_eq!(
            service.task_template.networks,
            vec![NetworkAttachment { target: "berth-session-x".into(), aliases: vec!["db".into(), "x-db".into()] }]
        );
        assert_eq!(sealed_network(&spec), None);
        let check = service.task_template.container_spec.health_check.expect("the health check");
        assert_eq!(check.test, vec!["CMD-SHELL".to_owned(), "wget -qO- http://127.0.0.1:8000/health".to_owned()]);
        assert_eq!((check.interval, check.retries), (Some(500_000_000), Some(3)));
        let net = session_network("berth-session-x", true, &spec.labels);
        assert_eq!((net.driver.as_deref(), net.internal, net.attachable), (Some("overlay"), true, Some(true)));
    }

    #[test]
    fn a_bind_places_the_task_on_the_nodes_labelled_as_holding_its_root() {
        let mut spec = code_spec();
        spec.binds.push(Bind { host: "/srv/agents/a1".into(), container: "/app/agent".into(), read_only: true });
        spec.binds.push(Bind { host: "/worktrees/w1".into(), container: "/workspace".into(), read_only: false });
        let roots = [PathBuf::from("/srv"), PathBuf::from("/srv/agents"), PathBuf::from("/worktrees")];
        let service = service_spec(&spec, &roots).unwrap();
        let placement = service.task_template.placement.expect("constraints");
        assert_eq!(
            placement.constraints,
            vec![
                "node.labels.io.berth.root.srv.agents==/srv/agents".to_owned(),
                "node.labels.io.berth.root.worktrees==/worktrees".to_owned()
            ]
        );
        let mounts = &service.task_template.container_spec.mounts;
        let code = mounts.iter().find(|m| m.target == "/app/agent").expect("the code bind");
        assert_eq!(
            (code.kind.as_str(), code.source.as_deref(), code.read_only),
            ("bind", Some("/srv/agents/a1"), Some(true))
        );
        assert!(mounts.iter().any(|m| m.target == "/workspace" && m.read_only == Some(false)));
        assert_eq!(service_spec(&code_spec(), &roots).unwrap().task_template.placement, None, "no bind, no constraint");
    }

    #[test]
    fn a_root_label_keeps_to_what_a_constraint_key_may_hold_and_its_value_is_the_path() {
        assert_eq!(
            root_label(Path::new("/var/lib/My Agents+x")),
            ("io.berth.root.var.lib.My_Agents_x".to_owned(), "/var/lib/My Agents+x".to_owned())
        );
    }

    #[test]
    fn a_bind_below_no_root_is_refused_by_name() {
        let mut spec = code_spec();
        spec.binds.push(Bind { host: "/srv/code".into(), container: "/code".into(), read_only: true });
        let refused = service_spec(&spec, &[PathBuf::from("/worktrees")]).unwrap_err();
        assert!(matches!(&refused, Unsupported::NoRoot { path, .. } if path == "/srv/code"), "{refused}");
    }
}
