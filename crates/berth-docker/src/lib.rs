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
    ContainerConfig, EmptyObject, EndpointSettings, ExecConfig, HealthConfig, HostConfig, LogConfig, NetworkConfig,
    NetworkingConfig, PortBinding, RestartPolicy,
};
use engine_api::transport::{RequestBody, Transport};
use engine_api::{Docker, Error as ClientError, Filters, ListOptions, LogsOptions, RemoveOptions, StreamKind, Tail};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use berth_core::engine::state::{split_annotations, ANNOTATION_PREFIX};
use berth_core::engine::{
    ByteStream, Capabilities, Engine, EngineError, ExecRequest, ExecSession, ExitWatch, Handle, Health, ImageCommand,
    ImageInfo, Isolation, LogChunk, LogRequest, LogStream, NetworkInfo, Phase, ProcessId, PullProgress, PullStream,
    Selector, StdioSession, Stream, TtySize, Usage, UsageStream, WorkloadEvent, WorkloadInfo, WorkloadIo,
    WorkloadState,
};
use berth_core::spec::{ContainerSpec, HealthCheck, Logs, Network, Stdin};

/// The docker backend.
#[derive(Clone)]
pub struct DockerBackend {
    docker: Docker,
    /// Host address published ports bind to.
    publish_ip: String,
    /// The engine's runtime the containers run under, when not its default.
    runtime: Option<EngineRuntime>,
}

/// One of the OCI runtimes the engine's configuration registers (runsc, say),
/// as a run asks for it and as its record names it.
#[derive(Clone, Debug)]
struct EngineRuntime {
    /// The engine's name of it, sent as `HostConfig.Runtime`.
    name: String,
    /// `docker-<name>`: what a record says ran it, apart from the same
    /// runtime driven by berth itself.
    record: String,
}

impl DockerBackend {
    pub fn new(docker: Docker) -> Self {
        DockerBackend { docker, publish_ip: "127.0.0.1".into(), runtime: None }
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

    /// The same engine, its containers run under the engine's runtime
    /// `name` (one of [`DockerBackend::engine_runtimes`]).
    pub fn with_runtime(mut self, name: &str) -> Self {
        self.runtime = Some(EngineRuntime { name: name.to_owned(), record: format!("docker-{name}") });
        self
    }

    /// The OCI runtimes the engine's configuration registers (`GET /info`).
    pub async fn engine_runtimes(&self) -> Result<Vec<String>, EngineError> {
        Ok(self.docker.info().await.map_err(engine_err)?.runtimes.into_keys().collect())
    }

    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Removes the container named `spec.name` if it is the one `spec`
    /// describes: exactly that name (the engine also resolves id prefixes)
    /// and every label of the spec. A container of that name that is not
    /// ours (had the request never arrived, it would have been refused) stays.
    async fn remove_if_ours(&self, spec: &ContainerSpec) -> Result<(), ClientError> {
        let found = match self.docker.inspect_container(&spec.name).await {
            Ok(found) => found,
            Err(ClientError::NotFound { .. }) => return Ok(()),
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
            Ok(()) | Err(ClientError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// How long a forced removal waits for another one already under way.
const OTHER_REMOVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The engine client's error as the seam's, kept as its source.
/// The docker backend's classification of a client error, for backends
/// that speak to engines through it (the swarm's nodes).
pub fn engine_err(err: ClientError) -> EngineError {
    let e = match &err {
        ClientError::NotFound { message } => EngineError::not_found(message.clone()),
        ClientError::Conflict { message } => EngineError::conflict(message.clone()),
        ClientError::BadParameter { message } => EngineError::invalid(message.clone()),
        ClientError::Transport(_) | ClientError::Timeout { .. } => EngineError::unavailable(err.to_string()),
        other => EngineError::failed(other.to_string()),
    };
    e.with_source(err)
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
                .map(|(path, size)| {
                    let owner =
                        spec.tmpfs_owner.map(|(u, g)| format!(",exec,uid={u},gid={g},mode=0755")).unwrap_or_default();
                    (path.clone(), format!("rw,nosuid,nodev,size={}{owner}", size.bytes()))
                })
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
        log_config: match spec.logs {
            Logs::Kept => None,
            Logs::Discarded => Some(LogConfig { kind: "none".into(), config: BTreeMap::new() }),
        },
        ..Default::default()
    };
    ContainerConfig {
        hostname: spec.hostname.clone(),
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
        healthcheck: spec.health.as_ref().map(health_config),
        image: Some(spec.image.clone()),
        working_dir: spec.working_dir.clone(),
        // Annotations travel as labels: API 1.41 has no container annotations.
        labels: Some(
            spec.labels
                .clone()
                .into_iter()
                .chain(spec.annotations.iter().map(|(k, v)| (format!("{ANNOTATION_PREFIX}{k}"), v.clone())))
                .collect(),
        ),
        host_config: Some(host),
        networking_config: networking,
        ..Default::default()
    }
}

impl DockerBackend {
    /// Attaches to running workload `h`'s stdio, what it wrote so far
    /// replayed from its logs first, with its exit awaited: for a
    /// container that started before anyone could attach (a swarm task's).
    pub async fn attach_replaying(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        self.attached(h, true).await
    }

    async fn attached(&self, h: &Handle, replaying: bool) -> Result<StdioSession, EngineError> {
        let attached = match replaying {
            true => self.docker.attach_container_replaying(&h.id.0, false).await,
            false => self.docker.attach_container(&h.id.0, false).await,
        }
        .map_err(engine_err)?;
        let waiting =
            self.docker.wait_container(&h.id.0, engine_api::WaitCondition::NotRunning).await.map_err(engine_err)?;
        let exit = Box::pin(async move { waiting.exit().await.map(|e| e.status_code).map_err(engine_err) });
        Ok(StdioSession { output: attached_output(attached.output), stdin: Box::pin(attached.stdin), exit })
    }
}

/// The Engine API form of a health check, run by the container's shell.
pub fn health_config(h: &HealthCheck) -> HealthConfig {
    HealthConfig {
        test: vec!["CMD-SHELL".into(), h.command.clone()],
        interval: Some(NANOS(h.interval)),
        timeout: Some(NANOS(h.timeout)),
        retries: Some(h.retries as i64),
        start_period: Some(NANOS(h.start_period)),
        start_interval: None,
    }
}

/// The Engine API form of an exec.
fn exec_config(request: &ExecRequest) -> ExecConfig {
    ExecConfig {
        attach_stdin: request.stdin,
        tty: request.tty.is_some(),
        attach_stdout: true,
        attach_stderr: true,
        cmd: request.cmd.clone(),
        env: Some(request.env.clone()).filter(|e| !e.is_empty()),
        working_dir: request.working_dir.clone(),
        user: request.user.clone(),
        ..Default::default()
    }
}

fn label_filters(selector: &Selector) -> Filters {
    selector.label_filters().into_iter().fold(Filters::new(), |f, l| f.label(l))
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
impl Engine for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn runtime(&self) -> &str {
        self.runtime.as_ref().map_or("docker", |r| &r.record)
    }

    fn asked_as(&self) -> &str {
        self.runtime.as_ref().map_or("docker", |r| &r.name)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::CONTAINER_ENGINE
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.docker.ping().await.map_err(engine_err)
    }

    async fn ensure_image(&self, image: &str) -> Result<(), EngineError> {
        let mut progress = self.pull_image(image, false).await?;
        while let Some(line) = progress.next().await {
            line?;
        }
        Ok(())
    }

    async fn pull_image(&self, image: &str, refresh: bool) -> Result<PullStream, EngineError> {
        if !refresh {
            match self.docker.inspect_image(image).await {
                Ok(_) => return Ok(futures_util::stream::empty().boxed()),
                Err(ClientError::NotFound { .. }) => {}
                Err(e) => return Err(engine_err(e)),
            }
        }
        let progress = self.docker.pull_image(image).await.map_err(|e| match e {
            ClientError::NotFound { ref message } => {
                EngineError::not_found(format!("image {image}: {message}")).with_source(e)
            }
            other => engine_err(other),
        })?;
        let image = image.to_owned();
        Ok(progress
            .map(move |line| match line {
                Ok(line) => {
                    let detail = line.progress_detail.unwrap_or_default();
                    let bytes = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
                    Ok(PullProgress {
                        layer: line.id,
                        status: line.status.unwrap_or_default(),
                        current: bytes(detail.current),
                        total: bytes(detail.total),
                    })
                }
                Err(e) => Err(EngineError::not_found(format!("image {image} could not be pulled: {e}")).with_source(e)),
            })
            .boxed())
    }

    async fn image_command(&self, image: &str) -> Result<ImageCommand, EngineError> {
        let config = self.docker.inspect_image(image).await.map_err(engine_err)?.config.unwrap_or_default();
        Ok(ImageCommand { entrypoint: config.entrypoint, cmd: config.cmd })
    }

    async fn image_info(&self, image: &str) -> Result<ImageInfo, EngineError> {
        let inspected = self.docker.inspect_image(image).await.map_err(engine_err)?;
        let config = inspected.config.unwrap_or_default();
        Ok(ImageInfo {
            id: inspected.id,
            entrypoint: config.entrypoint,
            cmd: config.cmd,
            env: config.env,
            working_dir: config.working_dir.filter(|d| !d.is_empty()),
            user: config.user.filter(|u| !u.is_empty()),
        })
    }

    async fn image_archive(&self, image: &str) -> Result<ByteStream, EngineError> {
        let body = self.docker.export_image(image).await.map_err(engine_err)?;
        Ok(body.map(|chunk| chunk.map_err(|e| EngineError::unavailable(e.to_string()).with_source(e))).boxed())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Handle, EngineError> {
        let mut config = container_config(spec, &self.publish_ip);
        if let (Some(host), Some(runtime)) = (config.host_config.as_mut(), &self.runtime) {
            host.runtime = Some(runtime.name.clone());
        }
        match self.docker.create_container(Some(&spec.name), &config).await {
            Ok(created) => Ok(Handle::local(created.id)),
            Err(e @ (ClientError::Transport(_) | ClientError::Timeout { .. })) => {
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

    async fn start(&self, h: &Handle) -> Result<(), EngineError> {
        self.docker.start_container(&h.id.0).await.map(|_| ()).map_err(engine_err)
    }

    async fn start_watched(&self, h: &Handle) -> Result<ExitWatch, EngineError> {
        let waiting =
            self.docker.wait_container(&h.id.0, engine_api::WaitCondition::NextExit).await.map_err(engine_err)?;
        self.docker.start_container(&h.id.0).await.map_err(engine_err)?;
        Ok(Box::pin(async move { waiting.exit().await.map(|e| e.status_code).map_err(engine_err) }))
    }

    async fn start_attached(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        // Members are made without a TTY: the attach stream is multiplexed.
        let attached = self.docker.attach_container(&h.id.0, false).await.map_err(engine_err)?;
        let waiting =
            self.docker.wait_container(&h.id.0, engine_api::WaitCondition::NextExit).await.map_err(engine_err)?;
        self.docker.start_container(&h.id.0).await.map_err(engine_err)?;
        let exit = Box::pin(async move { waiting.exit().await.map(|e| e.status_code).map_err(engine_err) });
        Ok(StdioSession { output: attached_output(attached.output), stdin: Box::pin(attached.stdin), exit })
    }

    async fn stop(&self, h: &Handle, grace: Duration) -> Result<(), EngineError> {
        self.docker.stop_container(&h.id.0, Some(grace)).await.map(|_| ()).map_err(engine_err)
    }

    async fn kill(&self, h: &Handle) -> Result<(), EngineError> {
        match self.docker.kill_container(&h.id.0, None).await {
            Ok(()) => Ok(()),
            // Killing a container that just ended is not a failure to kill it.
            Err(ClientError::Conflict { .. }) => Ok(()),
            Err(e) => Err(engine_err(e)),
        }
    }

    async fn pause(&self, h: &Handle) -> Result<(), EngineError> {
        self.docker.pause_container(&h.id.0).await.map_err(engine_err)
    }

    async fn unpause(&self, h: &Handle) -> Result<(), EngineError> {
        self.docker.unpause_container(&h.id.0).await.map_err(engine_err)
    }

    async fn remove(&self, h: &Handle, force: bool) -> Result<(), EngineError> {
        match self.docker.remove_container(&h.id.0, RemoveOptions { force, volumes: true }).await {
            // A forced removal conflicts only with another removal already
            // under way (a running container is killed first): the container
            // is going, which is what was asked. It is done once it is gone.
            Err(ClientError::Conflict { message }) if force => {
                tracing::debug!(id = %h.id.0, %message, "the container was already being removed");
                let deadline = tokio::time::Instant::now() + OTHER_REMOVAL;
                loop {
                    match self.docker.inspect_container(&h.id.0).await {
                        Err(ClientError::NotFound { .. }) => return Ok(()),
                        _ if tokio::time::Instant::now() >= deadline => {
                            return Err(engine_err(ClientError::Conflict { message }))
                        }
                        _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                    }
                }
            }
            other => other.map_err(engine_err),
        }
    }

    async fn inspect(&self, h: &Handle) -> Result<WorkloadState, EngineError> {
        let c = self.docker.inspect_container(&h.id.0).await.map_err(engine_err)?;
        let health = c.state.health.as_ref();
        let (labels, annotations) = split_annotations(c.labels().cloned().unwrap_or_default());
        Ok(WorkloadState {
            phase: phase_of(&c.state.status),
            health: health.and_then(|h| match h.status.as_str() {
                "starting" => Some(Health::Starting),
                "healthy" => Some(Health::Healthy),
                "unhealthy" => Some(Health::Unhealthy),
                _ => None,
            }),
            exit_code: c.state.exit_code,
            oom_killed: c.state.oom_killed,
            health_log: health.map(|h| h.log.iter().map(|l| l.output.clone()).collect()).unwrap_or_default(),
            labels,
            annotations,
            name: c.name.trim_start_matches('/').to_owned(),
            placement: None,
        })
    }

    async fn list(&self, selector: &Selector) -> Result<Vec<WorkloadInfo>, EngineError> {
        let options = ListOptions { all: true, limit: None, filters: label_filters(selector) };
        let list = self.docker.list_containers(&options).await.map_err(engine_err)?;
        Ok(list
            .into_iter()
            .map(|c| {
                let (labels, annotations) = split_annotations(c.labels);
                WorkloadInfo {
                    handle: Handle::local(c.id),
                    name: c.names.first().map(|n| n.trim_start_matches('/').to_owned()).unwrap_or_default(),
                    phase: phase_of(&c.state),
                    labels,
                    annotations,
                }
            })
            .collect())
    }

    async fn events(
        &self,
        selector: &Selector,
    ) -> Result<BoxStream<'static, Result<WorkloadEvent, EngineError>>, EngineError> {
        let filters = label_filters(selector).add("type", "container");
        let options = engine_api::EventsOptions { since: None, until: None, filters };
        let events = self.docker.events(&options).await.map_err(engine_err)?;
        Ok(events
            .map(|e| {
                let e = e.map_err(engine_err)?;
                Ok(WorkloadEvent {
                    handle: Handle::local(e.actor.id),
                    action: e.action,
                    attributes: e.actor.attributes,
                })
            })
            .boxed())
    }

    fn io(&self, _h: &Handle) -> Result<&dyn WorkloadIo, EngineError> {
        Ok(self)
    }

    fn isolation(&self) -> Option<&dyn Isolation> {
        Some(self)
    }
}

#[async_trait]
impl WorkloadIo for DockerBackend {
    async fn logs(&self, h: &Handle, request: &LogRequest) -> Result<LogStream, EngineError> {
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
        let stream = self.docker.logs(&h.id.0, &options).await.map_err(engine_err)?;
        Ok(stream
            .map(|item| {
                let out = item.map_err(engine_err)?;
                Ok(LogChunk { stream: stream_of(out.stream), data: out.data })
            })
            .boxed())
    }

    /// One stats call: the engine's answer carries the previous CPU sample,
    /// so the CPU percent comes without waiting for a second one here.
    async fn usage(&self, h: &Handle) -> Result<Usage, EngineError> {
        let stats = self.docker.stats(&h.id.0).await.map_err(engine_err)?;
        Ok(usage_of(&stats, None))
    }

    async fn usage_stream(&self, h: &Handle) -> Result<UsageStream, EngineError> {
        let stream = self.docker.stats_stream(&h.id.0).await.map_err(engine_err)?;
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

    async fn exec(&self, h: &Handle, request: &ExecRequest) -> Result<ExecSession, EngineError> {
        let exec = self.docker.create_exec(&h.id.0, &exec_config(request)).await.map_err(engine_err)?.id;
        let tty = request.tty.is_some();
        let (output, stdin): (LogStream, std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>) = if request.stdin {
            let attached = self.docker.start_exec_attached(&exec, tty).await.map_err(engine_err)?;
            // API 1.41 takes no size at the exec's creation: the terminal
            // gets it once the exec runs.
            if let Some(size) = request.tty {
                if let Err(e) = self.docker.resize_exec(&exec, u32::from(size.rows), u32::from(size.cols)).await {
                    tracing::debug!(%e, "the exec's terminal was not sized");
                }
            }
            (attached_output(attached.output), Box::pin(attached.stdin))
        } else {
            // Without stdin, no upgrade: the output is a plain streamed answer.
            let stream = self.docker.start_exec(&exec, tty).await.map_err(engine_err)?;
            let output = stream
                .map(|item| {
                    let out = item.map_err(engine_err)?;
                    Ok(LogChunk { stream: stream_of(out.stream), data: out.data })
                })
                .boxed();
            (output, Box::pin(tokio::io::sink()))
        };
        let docker = self.docker.clone();
        let id = exec.clone();
        let exit = Box::pin(async move {
            let inspect = docker.inspect_exec(&id).await.map_err(engine_err)?;
            inspect.exit_code.ok_or_else(|| EngineError::failed("the exec has no exit code yet"))
        });
        Ok(ExecSession { process: ProcessId(exec), stdio: StdioSession { output, stdin, exit } })
    }

    async fn resize(&self, _h: &Handle, process: &ProcessId, size: TtySize) -> Result<(), EngineError> {
        self.docker.resize_exec(&process.0, u32::from(size.rows), u32::from(size.cols)).await.map_err(engine_err)
    }

    async fn attach(&self, h: &Handle) -> Result<StdioSession, EngineError> {
        self.attached(h, false).await
    }

    async fn put_files(&self, h: &Handle, dir: &str, tar: ByteStream) -> Result<(), EngineError> {
        let body = tar.map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string()))).boxed();
        self.docker.put_archive(&h.id.0, dir, RequestBody::Stream(body)).await.map_err(engine_err)
    }

    async fn get_files(&self, h: &Handle, path: &str) -> Result<ByteStream, EngineError> {
        let (_stat, body) = self.docker.get_archive(&h.id.0, path).await.map_err(engine_err)?;
        Ok(body.map(|chunk| chunk.map_err(|e| EngineError::unavailable(e.to_string()).with_source(e))).boxed())
    }
}

#[async_trait]
impl Isolation for DockerBackend {
    async fn create_network(
        &self,
        name: &str,
        internal: bool,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        let config = NetworkConfig { name: name.into(), internal, labels: labels.clone(), ..Default::default() };
        Ok(self.docker.create_network(&config).await.map_err(engine_err)?.id)
    }

    async fn remove_network(&self, id_or_name: &str) -> Result<(), EngineError> {
        self.docker.remove_network(id_or_name).await.map_err(engine_err)
    }

    async fn list_networks(&self, selector: &Selector) -> Result<Vec<NetworkInfo>, EngineError> {
        let list = self.docker.list_networks(&label_filters(selector)).await.map_err(engine_err)?;
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

/// The engine's status word as a phase.
fn phase_of(status: &engine_api::models::ContainerStatus) -> Phase {
    use engine_api::models::ContainerStatus as S;
    match status {
        S::Created => Phase::Created,
        S::Running => Phase::Running,
        S::Paused => Phase::Paused,
        S::Restarting => Phase::Restarting,
        S::Removing => Phase::Removing,
        S::Exited => Phase::Exited,
        S::Dead => Phase::Dead,
        S::Other(_) => Phase::Unknown,
    }
}

fn stream_of(kind: StreamKind) -> Stream {
    match kind {
        StreamKind::Stderr => Stream::Stderr,
        StreamKind::Console => Stream::Console,
        StreamKind::Stdout | StreamKind::Stdin => Stream::Stdout,
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
