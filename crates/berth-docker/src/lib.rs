//! The docker backend: berth's container spec spoken as the Engine API, over
//! engine-api. Over a replaying transport it is also the fixture backend
//! ([`fixture`]).
//!
//! This crate knows the Engine API (through engine-api) and berth's backend
//! seam, and nothing of runs, agents or HTTP.

pub mod fixture;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use engine_api::models::{
    ContainerConfig, EmptyObject, EndpointSettings, ExecConfig, HealthConfig, HostConfig, NetworkConfig,
    NetworkingConfig, PortBinding, RestartPolicy,
};
use engine_api::transport::Transport;
use engine_api::{Docker, Error as EngineError, Filters, ListOptions, LogsOptions, RemoveOptions, StreamKind, Tail};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use berth_core::backend::{
    Backend, BackendError, ContainerEvent, ContainerInfo, ContainerState, ExecOutput, ExecRequest, ExitWatch,
    ImageCommand, LogChunk, LogRequest, LogStream, NetworkInfo, StdioSession, Stream, Usage,
};
use berth_core::output::CappedOutput;
use berth_core::spec::{ContainerId, ContainerSpec, Network, Stdin};

/// The docker backend.
#[derive(Clone)]
pub struct DockerBackend {
    docker: Docker,
    /// Host address published ports bind to.
    publish_ip: String,
}

impl DockerBackend {
    pub fn new(docker: Docker) -> Self {
        DockerBackend { docker, publish_ip: "127.0.0.1".into() }
    }

    /// The fixture backend: the docker backend over a transport that replays
    /// (or records) a scenario.
    pub fn over(transport: impl Transport) -> Self {
        DockerBackend::new(Docker::new(transport))
    }

    /// Published ports bind to `ip` on the host (default loopback).
    pub fn with_publish_ip(mut self, ip: impl Into<String>) -> Self {
        self.publish_ip = ip.into();
        self
    }

    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Removes the container named `spec.name` if it is the one `spec`
    /// describes: exactly that name (the engine also resolves id prefixes)
    /// and every label of the spec. A container of that name that is not
    /// ours (had the request never arrived, it would have been refused) stays.
    async fn remove_if_ours(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        let found = match self.docker.inspect_container(&spec.name).await {
            Ok(found) => found,
            Err(EngineError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let named = found.name.trim_start_matches('/') == spec.name;
        let labels = found.labels();
        let labelled = spec.labels.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        if !(named && labelled) {
            tracing::warn!(name = %spec.name, id = %found.id, "a container of that name is not the one asked for; left alone");
            return Ok(());
        }
        match self.docker.remove_container(&found.id, RemoveOptions { force: true, volumes: false }).await {
            Ok(()) | Err(EngineError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn engine_err(err: EngineError) -> BackendError {
    match err {
        EngineError::NotFound { message } => BackendError::NotFound(message),
        EngineError::Conflict { message } => BackendError::Conflict(message),
        EngineError::BadParameter { message } => BackendError::Invalid(message),
        e @ (EngineError::Transport(_) | EngineError::Timeout { .. }) => BackendError::Unavailable(e.to_string()),
        other => BackendError::Engine(other.to_string()),
    }
}

/// How long berth tries to remove a container whose creation went unanswered.
const LOST_CREATE_CLEANUP: Duration = Duration::from_secs(15);

const NANOS: fn(Duration) -> i64 = |d| d.as_nanos().min(i64::MAX as u128) as i64;

/// The Engine API form of a spec. Every container gets all capabilities
/// dropped, no-new-privileges, no swap beyond its memory and no restart.
pub fn container_config(spec: &ContainerSpec, publish_ip: &str) -> ContainerConfig {
    let (network_mode, networking) = match &spec.network {
        Network::None => ("none".to_owned(), None),
        Network::Bridge => ("bridge".to_owned(), None),
        Network::Named { name, aliases } => {
            let endpoint =
                EndpointSettings { aliases: Some(aliases.clone()).filter(|a| !a.is_empty()), ..Default::default() };
            (name.clone(), Some(NetworkingConfig { endpoints_config: BTreeMap::from([(name.clone(), endpoint)]) }))
        }
    };
    let port_key = |p: u16| format!("{p}/tcp");
    let exposed: BTreeMap<String, EmptyObject> =
        spec.ports.iter().map(|p| (port_key(p.container), EmptyObject {})).collect();
    let bindings: BTreeMap<String, Vec<PortBinding>> = spec
        .ports
        .iter()
        .map(|p| {
            let binding = PortBinding { host_ip: Some(publish_ip.to_owned()), host_port: Some(p.host.to_string()) };
            (port_key(p.container), vec![binding])
        })
        .collect();
    let host = HostConfig {
        memory: Some(spec.limits.memory.bytes() as i64),
        memory_swap: Some(spec.limits.memory.bytes() as i64),
        nano_cpus: Some(spec.limits.cpu.nanos() as i64),
        pids_limit: Some(spec.limits.pids as i64),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(spec.cap_add.clone()).filter(|c| !c.is_empty()),
        security_opt: Some(vec!["no-new-privileges".into()]),
        privileged: Some(false),
        readonly_rootfs: Some(spec.read_only_root),
        tmpfs: Some(
            spec.tmpfs
                .iter()
                .map(|(path, size)| (path.clone(), format!("rw,nosuid,nodev,size={}", size.bytes())))
                .collect(),
        )
        .filter(|t: &BTreeMap<String, String>| !t.is_empty()),
        binds: Some(
            spec.binds
                .iter()
                .map(|b| format!("{}:{}:{}", b.host, b.container, if b.read_only { "ro" } else { "rw" }))
                .collect(),
        )
        .filter(|b: &Vec<String>| !b.is_empty()),
        network_mode: Some(network_mode),
        port_bindings: Some(bindings).filter(|b| !b.is_empty()),
        init: Some(spec.init),
        restart_policy: Some(RestartPolicy { name: "no".into(), maximum_retry_count: None }),
        ..Default::default()
    };
    ContainerConfig {
        hostname: None,
        user: spec.user.clone(),
        attach_stdin: Some(spec.stdin != Stdin::Closed),
        exposed_ports: Some(exposed).filter(|e| !e.is_empty()),
        tty: Some(spec.tty),
        open_stdin: Some(spec.stdin != Stdin::Closed),
        // Only when asked, so the create body of every other container is unchanged.
        stdin_once: (spec.stdin == Stdin::Once).then_some(true),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: spec.cmd.clone(),
        entrypoint: spec.entrypoint.clone(),
        healthcheck: spec.health.as_ref().map(|h| HealthConfig {
            test: vec!["CMD-SHELL".into(), h.command.clone()],
            interval: Some(NANOS(h.interval)),
            timeout: Some(NANOS(h.timeout)),
            retries: Some(h.retries as i64),
            start_period: Some(NANOS(h.start_period)),
            start_interval: None,
        }),
        image: Some(spec.image.clone()),
        working_dir: spec.working_dir.clone(),
        labels: Some(spec.labels.clone().into_iter().collect()),
        host_config: Some(host),
        networking_config: networking,
        ..Default::default()
    }
}

/// The Engine API form of an exec, with or without stdin.
fn exec_config(request: &ExecRequest, stdin: bool) -> ExecConfig {
    ExecConfig {
        attach_stdin: stdin,
        attach_stdout: true,
        attach_stderr: true,
        cmd: request.cmd.clone(),
        env: Some(request.env.clone()).filter(|e| !e.is_empty()),
        working_dir: request.working_dir.clone(),
        user: request.user.clone(),
        ..Default::default()
    }
}

fn label_filters(labels: &[String]) -> Filters {
    labels.iter().fold(Filters::new(), |f, l| f.label(l.clone()))
}

fn usage_of(stats: &engine_api::models::Stats, previous: Option<&engine_api::models::CpuStats>) -> Usage {
    let (net_rx, net_tx) = stats.network_io();
    let (block_read, block_write) = stats.block_io();
    Usage {
        cpu_percent: stats.cpu_percent(previous),
        cpu_time_ns: stats.cpu_stats.cpu_usage.total_usage,
        memory_used: stats.memory_used(),
        memory_peak: stats.memory_stats.max_usage.or(stats.memory_stats.usage),
        memory_limit: stats.memory_limit(),
        net_rx,
        net_tx,
        block_read,
        block_write,
        pids: stats.pids_stats.current,
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.docker.ping().await.map_err(engine_err)
    }

    async fn ensure_image(&self, image: &str) -> Result<(), BackendError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(EngineError::NotFound { .. }) => {}
            Err(e) => return Err(engine_err(e)),
        }
        let mut progress = self.docker.pull_image(image).await.map_err(|e| match e {
            EngineError::NotFound { message } => BackendError::NotFound(format!("image {image}: {message}")),
            other => engine_err(other),
        })?;
        while let Some(line) = progress.next().await {
            line.map_err(|e| BackendError::NotFound(format!("image {image} could not be pulled: {e}")))?;
        }
        Ok(())
    }

    async fn image_command(&self, image: &str) -> Result<ImageCommand, BackendError> {
        let config = self.docker.inspect_image(image).await.map_err(engine_err)?.config.unwrap_or_default();
        Ok(ImageCommand { entrypoint: config.entrypoint, cmd: config.cmd })
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerId, BackendError> {
        let config = container_config(spec, &self.publish_ip);
        match self.docker.create_container(Some(&spec.name), &config).await {
            Ok(created) => Ok(ContainerId(created.id)),
            Err(e @ (EngineError::Transport(_) | EngineError::Timeout { .. })) => {
                // The answer was lost, not necessarily the request: the
                // engine may have made the container. Nobody would know its
                // id, so it is looked up by its name now, or it would be left
                // behind. (One still being made when a timeout struck can
                // appear later; berth's label sweeps are the net for that.)
                match tokio::time::timeout(LOST_CREATE_CLEANUP, self.remove_if_ours(spec)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(cleanup)) => {
                        tracing::warn!(name = %spec.name, %cleanup, "a container whose creation went unanswered was not removed")
                    }
                    Err(_) => {
                        tracing::warn!(name = %spec.name, "removing a container whose creation went unanswered timed out")
                    }
                }
                Err(engine_err(e))
            }
            Err(e) => Err(engine_err(e)),
        }
    }

    async fn start(&self, id: &ContainerId) -> Result<(), BackendError> {
        self.docker.start_container(&id.0).await.map(|_| ()).map_err(engine_err)
    }

    async fn start_watched(&self, id: &ContainerId) -> Result<ExitWatch, BackendError> {
        let waiting =
            self.docker.wait_container(&id.0, engine_api::WaitCondition::NextExit).await.map_err(engine_err)?;
        self.docker.start_container(&id.0).await.map_err(engine_err)?;
        Ok(Box::pin(async move { waiting.exit().await.map(|e| e.status_code).map_err(engine_err) }))
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), BackendError> {
        self.docker.stop_container(&id.0, Some(grace)).await.map(|_| ()).map_err(engine_err)
    }

    async fn kill(&self, id: &ContainerId) -> Result<(), BackendError> {
        match self.docker.kill_container(&id.0, None).await {
            Ok(()) => Ok(()),
            // Killing a container that just ended is not a failure to kill it.
            Err(EngineError::Conflict { .. }) => Ok(()),
            Err(e) => Err(engine_err(e)),
        }
    }

    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), BackendError> {
        self.docker.remove_container(&id.0, RemoveOptions { force, volumes: true }).await.map_err(engine_err)
    }

    async fn state(&self, id: &ContainerId) -> Result<ContainerState, BackendError> {
        let c = self.docker.inspect_container(&id.0).await.map_err(engine_err)?;
        let health = c.state.health.as_ref();
        Ok(ContainerState {
            status: c.state.status.as_str().to_owned(),
            running: c.state.running,
            exit_code: c.state.exit_code,
            oom_killed: c.state.oom_killed,
            health: health.map(|h| h.status.clone()).filter(|s| !s.is_empty() && s != "none"),
            health_log: health.map(|h| h.log.iter().map(|l| l.output.clone()).collect()).unwrap_or_default(),
            labels: c.labels().cloned().unwrap_or_default(),
            name: c.name.trim_start_matches('/').to_owned(),
        })
    }

    async fn logs(&self, id: &ContainerId, request: &LogRequest) -> Result<LogStream, BackendError> {
        let options = LogsOptions {
            follow: request.follow,
            stdout: true,
            stderr: true,
            since: request.since.map(|s| s.to_string()),
            until: None,
            timestamps: request.timestamps,
            tail: request.tail.map_or(Tail::All, Tail::Lines),
            tty: None,
        };
        let stream = self.docker.logs(&id.0, &options).await.map_err(engine_err)?;
        Ok(stream
            .map(|item| {
                let out = item.map_err(engine_err)?;
                let stream = match out.stream {
                    StreamKind::Stderr => Stream::Stderr,
                    StreamKind::Console => Stream::Console,
                    StreamKind::Stdout | StreamKind::Stdin => Stream::Stdout,
                };
                Ok(LogChunk { stream, data: out.data })
            })
            .boxed())
    }

    async fn usage(&self, id: &ContainerId) -> Result<Usage, BackendError> {
        let stats = self.docker.stats(&id.0).await.map_err(engine_err)?;
        Ok(usage_of(&stats, None))
    }

    async fn usage_stream(&self, id: &ContainerId) -> Result<BoxStream<'static, Usage>, BackendError> {
        let stream = self.docker.stats_stream(&id.0).await.map_err(engine_err)?;
        let mut previous: Option<engine_api::models::CpuStats> = None;
        let mut peak = 0u64;
        Ok(stream
            // Once the container has stopped, the engine goes on sending
            // empty samples read at the zero time, once a second, for ever.
            .take_while(|s| {
                let live = s.as_ref().is_ok_and(|s| !s.read.as_deref().is_some_and(|r| r.starts_with("0001-")));
                std::future::ready(live)
            })
            .filter_map(move |s| {
                let usage = s.ok().map(|stats| {
                    let mut usage = usage_of(&stats, previous.as_ref());
                    peak = peak.max(usage.memory_peak.unwrap_or(0));
                    usage.memory_peak = Some(peak);
                    previous = Some(stats.cpu_stats.clone());
                    usage
                });
                std::future::ready(usage)
            })
            .boxed())
    }

    async fn exec(&self, id: &ContainerId, request: &ExecRequest, cap: usize) -> Result<ExecOutput, BackendError> {
        let exec = self.docker.create_exec(&id.0, &exec_config(request, false)).await.map_err(engine_err)?.id;
        let mut stream = self.docker.start_exec(&exec, false).await.map_err(engine_err)?;
        let (mut out, mut err) = (CappedOutput::new(cap), CappedOutput::new(cap));
        while let Some(item) = stream.next().await {
            let o = item.map_err(engine_err)?;
            match o.stream {
                StreamKind::Stderr => err.push(&o.data),
                _ => out.push(&o.data),
            }
        }
        let inspect = self.docker.inspect_exec(&exec).await.map_err(engine_err)?;
        let exit_code = inspect.exit_code.ok_or_else(|| BackendError::Engine("the exec has no exit code".into()))?;
        let (stdout_truncated, stderr_truncated) = (out.truncated(), err.truncated());
        Ok(ExecOutput {
            exit_code,
            stdout: out.into_text(),
            stderr: err.into_text(),
            stdout_truncated,
            stderr_truncated,
        })
    }

    async fn exec_interactive(&self, id: &ContainerId, request: &ExecRequest) -> Result<StdioSession, BackendError> {
        let exec = self.docker.create_exec(&id.0, &exec_config(request, true)).await.map_err(engine_err)?.id;
        let attached = self.docker.start_exec_attached(&exec, false).await.map_err(engine_err)?;
        let output = attached_output(attached.output);
        let docker = self.docker.clone();
        let exit = Box::pin(async move {
            let inspect = docker.inspect_exec(&exec).await.map_err(engine_err)?;
            inspect.exit_code.ok_or_else(|| BackendError::Engine("the exec is still running".into()))
        });
        Ok(StdioSession { output, stdin: Box::pin(attached.stdin), exit })
    }

    async fn start_attached(&self, id: &ContainerId) -> Result<StdioSession, BackendError> {
        // Members are made without a TTY: the attach stream is multiplexed.
        let attached = self.docker.attach_container(&id.0, false).await.map_err(engine_err)?;
        let waiting =
            self.docker.wait_container(&id.0, engine_api::WaitCondition::NextExit).await.map_err(engine_err)?;
        self.docker.start_container(&id.0).await.map_err(engine_err)?;
        let exit = Box::pin(async move { waiting.exit().await.map(|e| e.status_code).map_err(engine_err) });
        Ok(StdioSession { output: attached_output(attached.output), stdin: Box::pin(attached.stdin), exit })
    }

    async fn events(
        &self,
        labels: &[String],
    ) -> Result<BoxStream<'static, Result<ContainerEvent, BackendError>>, BackendError> {
        let filters = label_filters(labels).add("type", "container");
        let options = engine_api::EventsOptions { since: None, until: None, filters };
        let events = self.docker.events(&options).await.map_err(engine_err)?;
        Ok(events
            .map(|e| {
                let e = e.map_err(engine_err)?;
                Ok(ContainerEvent { id: ContainerId(e.actor.id), action: e.action, attributes: e.actor.attributes })
            })
            .boxed())
    }

    async fn list(&self, labels: &[String]) -> Result<Vec<ContainerInfo>, BackendError> {
        let options = ListOptions { all: true, limit: None, filters: label_filters(labels) };
        let list = self.docker.list_containers(&options).await.map_err(engine_err)?;
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                id: ContainerId(c.id),
                name: c.names.first().map(|n| n.trim_start_matches('/').to_owned()).unwrap_or_default(),
                status: c.state.as_str().to_owned(),
                labels: c.labels,
            })
            .collect())
    }

    async fn create_network(
        &self,
        name: &str,
        internal: bool,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, BackendError> {
        let config = NetworkConfig { name: name.into(), internal, labels: labels.clone(), ..Default::default() };
        Ok(self.docker.create_network(&config).await.map_err(engine_err)?.id)
    }

    async fn remove_network(&self, id_or_name: &str) -> Result<(), BackendError> {
        self.docker.remove_network(id_or_name).await.map_err(engine_err)
    }

    async fn list_networks(&self, labels: &[String]) -> Result<Vec<NetworkInfo>, BackendError> {
        let list = self.docker.list_networks(&label_filters(labels)).await.map_err(engine_err)?;
        let mut out = Vec::with_capacity(list.len());
        for n in list {
            // Lists leave Containers empty: inspect tells who is attached.
            let members = self.docker.inspect_network(&n.id).await.map(|i| i.containers.len()).unwrap_or(0);
            let created = n.created.as_deref().and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok());
            out.push(NetworkInfo {
                id: n.id,
                name: n.name,
                internal: n.internal,
                labels: n.labels,
                containers: members,
                created: created.map(|c| c.to_utc()),
            });
        }
        Ok(out)
    }
}

/// An attached exec's or container's output as berth's chunks: stderr kept
/// apart, everything else stdout.
fn attached_output(output: engine_api::stream::OutputStream<engine_api::endpoints::UpgradedReader>) -> LogStream {
    output
        .map(|item| {
            let out = item.map_err(engine_err)?;
            let stream = if out.stream == StreamKind::Stderr { Stream::Stderr } else { Stream::Stdout };
            Ok(LogChunk { stream, data: out.data })
        })
        .boxed()
}
