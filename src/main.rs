//! The `berth` command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth::config::{BackendChoice, FileConfig, Flags, OciChoice, ServeConfig};
use berth_core::context;
use berth_core::engine::Engine;
use berth_core::lifetime::recovery::Orphans;
use berth_core::model::ids::{Clock, IdSource, RandomIds, SystemClock};
use berth_core::policy::{Policy, PolicyConfig};
use berth_core::runs::{RunRequest, Runs, Workload};
use berth_core::sandboxes::SandboxConfig;
use berth_core::store::Store;
use berth_core::{Core, Options, RuntimeProbe};
use berth_docker::DockerBackend;
use berth_oci::OciDryRun;
use clap::{Parser, Subcommand};

mod client;
mod doctor;
mod notice;

use notice::notice;

#[derive(Parser)]
#[command(name = "berth", version, about = "A container orchestrator for AI agents and their tools")]
struct Cli {
    /// How berth's own logs are written on stderr: text for people, json for
    /// a collector (one object per line, a request's id in each of its lines).
    #[arg(long, global = true, env = "BERTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The server the client commands talk to.
    #[command(flatten)]
    connection: client::Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check the engine named by DOCKER_HOST: API version, server, storage and cgroups.
    Engine,
    /// Create a run on the server, print its output as it comes and exit with its exit
    /// code (README.md has the table of the others).
    Run(client::RunArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
    /// Run a command in an agent: `-i` forwards stdin, `-t` gives it a terminal
    /// (`berth exec -it AGENT -- sh`); exits with the command's exit code.
    Exec {
        /// Forward this terminal's input to the command.
        #[arg(short, long)]
        interactive: bool,
        /// Give the command a terminal of this one's size (raw mode while it runs).
        #[arg(short, long)]
        tty: bool,
        agent: String,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// Run a code snippet to completion here, with no server (a core of its own over
    /// DOCKER_HOST's engine), and print its record as JSON.
    LocalRun {
        /// Folder of berth's store (created when missing).
        #[arg(long, env = "BERTH_DATA", default_value = "berth-data")]
        data: PathBuf,
        /// A language of the code table (python, sh).
        #[arg(long, default_value = "sh")]
        language: String,
        /// The code to run.
        #[arg(long)]
        code: String,
        /// Seconds before the run is killed (the language's default when absent).
        #[arg(long)]
        timeout: Option<u64>,
        #[arg(long, default_value = "cli")]
        tenant: String,
    },
    /// Print the OCI bundle's config.json that `berth run` with the same arguments would render; nothing runs.
    Plan {
        /// A language of the code table (python, sh).
        #[arg(long, default_value = "sh")]
        language: String,
        /// The code the plan is for.
        #[arg(long)]
        code: String,
        /// Seconds before the run would be killed (checked by policy).
        #[arg(long)]
        timeout: Option<u64>,
        #[arg(long, default_value = "cli")]
        tenant: String,
        /// Also write the whole bundle (config.json, its files, the note) into this folder.
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
    /// Serve the native HTTP API and the enabled seed dialects.
    Serve {
        #[command(flatten)]
        served: Served,
    },
    /// Check what `berth serve` with the same configuration needs here (engines and
    /// their API, clocks, images, cgroups, OCI runtimes, ports, the data folder),
    /// each problem with its fix; exits 1 when one blocks.
    Doctor {
        #[command(flatten)]
        served: Served,
    },
    /// Recover after a crash: fail interrupted runs and remove their containers and orphans.
    Recover {
        #[arg(long, env = "BERTH_DATA", default_value = "berth-data")]
        data: PathBuf,
        /// What to do with run containers the store does not know: remove or keep.
        #[arg(long, env = "BERTH_ORPHANS", default_value = "remove")]
        orphans: Orphans,
    },
}

/// What `berth serve` serves, as flags (over the file and the environment).
#[derive(clap::Args)]
struct Served {
    /// A TOML file (see README.md, "Configuration").
    #[arg(long, env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the native API (default 127.0.0.1:8787).
    #[arg(long, env = "BERTH_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Folder of berth's store (default berth-data).
    #[arg(long, env = "BERTH_DATA")]
    data: Option<PathBuf>,
    /// auto (docker when an engine answers, else oci-dry-run), docker, swarm or oci-dry-run.
    #[arg(long, env = "BERTH_BACKEND")]
    backend: Option<BackendChoice>,
    /// A seed dialect to serve, NAME[=ADDR]: lais, cortex, warder, spawner, coderunner (repeatable).
    #[arg(long = "dialect", value_name = "NAME[=ADDR]")]
    dialects: Vec<String>,
}

fn open_store(data: &std::path::Path) -> anyhow::Result<Arc<Store>> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    Ok(Arc::new(Store::open(&data.join("berth.db"))?))
}

/// The swarm backend over the configured manager and nodes.
fn swarm_backend(
    swarm: Option<&berth::config::SwarmConfig>,
    bind_roots: &[PathBuf],
) -> anyhow::Result<Arc<dyn Engine>> {
    let swarm = swarm.ok_or_else(|| anyhow::anyhow!("backend swarm: no [swarm] manager is configured"))?;
    let mut nodes = Vec::new();
    for (name, endpoint) in &swarm.nodes {
        let docker = swarm.client(endpoint, name).map_err(|e| anyhow::anyhow!(e))?;
        nodes.push(berth_swarm::NodeEngine { name: name.clone(), docker });
    }
    let manager = swarm.client(&swarm.manager, &swarm.manager_name).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Arc::new(berth_swarm::SwarmBackend::new(manager, nodes).with_bind_roots(bind_roots.to_vec())))
}

fn docker_backend() -> anyhow::Result<Arc<dyn Engine>> {
    Ok(Arc::new(DockerBackend::new(engine_api::Docker::from_env()?)))
}

// The engine's IO runs on the current-thread runtime: on multi-thread, every
// chunk hops threads (see the benchmark table in README.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // RUST_LOG says what is logged; a request's span is always on, so that
    // whatever is logged while it is served names it.
    let filter = tracing_subscriber::EnvFilter::from_default_env()
        .add_directive(format!("{}=info", berth_api::native::REQUEST_SPAN_TARGET).parse()?)
        .add_directive(format!("{}=info", notice::TARGET).parse()?);
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        // The spans' fields (a request's id among them) in every line.
        LogFormat::Json => {
            logs.json().with_current_span(true).with_span_list(false).init();
            notice::to_json_log();
        }
    }
    match cli.command {
        Command::Engine => {
            let docker = engine_api::Docker::from_env()?;
            let api = docker.api_version().await?;
            let info = docker.info().await?;
            println!(
                "engine reachable: API {api}, server {}, storage {}, cgroup v{}",
                info.server_version.as_deref().unwrap_or("?"),
                info.driver.as_deref().unwrap_or("?"),
                info.cgroup_version.as_deref().unwrap_or("?")
            );
        }
        Command::Run(args) => std::process::exit(client::run(&cli.connection, args).await),
        Command::Client(command) => std::process::exit(client::main(&cli.connection, command).await),
        Command::Exec { interactive, tty, agent, argv } => {
            std::process::exit(client::terminal::exec(&cli.connection, &agent, argv, interactive, tty).await)
        }
        Command::LocalRun { data, language, code, timeout, tenant } => {
            let store = open_store(&data)?;
            let runs = Runs::new(
                &context::Context::new(
                    docker_backend()?,
                    Policy::default(),
                    store,
                    Arc::new(RandomIds),
                    Arc::new(SystemClock),
                ),
                8,
            );
            let mut req = RunRequest::new(&tenant, Workload::Code { language, code });
            req.timeout = timeout.map(Duration::from_secs);
            let record = runs.execute(req).await?;
            println!("{}", serde_json::to_string_pretty(&record)?);
        }
        Command::Plan { language, code, timeout, tenant, bundle } => {
            // Nothing is created: the dry run only lends Runs a backend.
            let backend = Arc::new(OciDryRun::new(std::env::temp_dir()));
            let store = Arc::new(Store::in_memory()?);
            let runs = Runs::new(
                &context::Context::new(backend, Policy::default(), store, Arc::new(RandomIds), Arc::new(SystemClock)),
                1,
            );
            let mut req = RunRequest::new(&tenant, Workload::Code { language, code });
            req.timeout = timeout.map(Duration::from_secs);
            let plan = berth_oci::plan(&runs.container_spec(&req)?, None)?;
            if let Some(dir) = bundle {
                berth_oci::bundle::write(&dir, &plan)?;
            }
            println!("{}", serde_json::to_string_pretty(&plan.config)?);
        }
        Command::Serve { served } => serve(resolve(served)?).await?,
        Command::Doctor { served } => {
            let report = doctor::examine(&resolve(served)?).await;
            print!("{}", report.render());
            if report.blocking() {
                std::process::exit(1);
            }
        }
        Command::Recover { data, orphans } => {
            let store = open_store(&data)?;
            let ids: Arc<dyn IdSource> = Arc::new(RandomIds);
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let report =
                berth_core::lifetime::recovery::recover(&docker_backend()?, &store, &ids, &clock, orphans).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

/// Sandboxes as configured: the built-in `base` template and the file's,
/// and the helper binary read once (without it, creating a sandbox says
/// which setting names it).
fn sandbox_config(config: &ServeConfig) -> SandboxConfig {
    let mut sandboxes = SandboxConfig::default();
    sandboxes.templates.extend(config.templates.clone());
    sandboxes.spares = config.spares.clone();
    let path = config
        .sandbox_helper
        .clone()
        .or_else(|| std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("berth-sandboxd"))));
    match path.as_ref().map(|p| (p, std::fs::read(p))) {
        Some((_, Ok(bytes))) => sandboxes.helper = Some(Arc::new(bytes)),
        Some((p, Err(e))) => notice!("no sandboxes: the helper {} cannot be read ({e})", p.display()),
        None => notice!("no sandboxes: no helper binary is configured (sandbox_helper)"),
    }
    sandboxes
}

/// What `berth serve` would serve: the file, the environment and the flags.
fn resolve(served: Served) -> anyhow::Result<ServeConfig> {
    let Served { config, listen, data, backend, dialects } = served;
    let flags = Flags { listen, data, backend, dialects };
    let file = match &config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            FileConfig::parse(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a valid configuration: {e}", path.display()))?
        }
        None => FileConfig::default(),
    };
    ServeConfig::resolve(file, &std::env::vars().collect(), flags).map_err(|e| anyhow::anyhow!(e))
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let store = open_store(&config.data)?;
    let dry_run = || -> Arc<dyn Engine> { Arc::new(OciDryRun::new(config.data.join("bundles"))) };
    // The docker backend itself, when it serves: the engine's other
    // runtimes below are the same client under another runtime.
    let mut docker = None;
    let backend = match config.backend {
        BackendChoice::OciDryRun => dry_run(),
        BackendChoice::Docker => {
            let d = DockerBackend::new(engine_api::Docker::from_env()?);
            docker = Some(d.clone());
            Arc::new(d)
        }
        BackendChoice::Swarm => swarm_backend(config.swarm.as_ref(), &config.bind_roots)?,
        BackendChoice::Auto => match engine_api::Docker::from_env().map(DockerBackend::new) {
            Ok(d) if d.ping().await.is_ok() => {
                docker = Some(d.clone());
                Arc::new(d)
            }
            Ok(_) | Err(_) => dry_run(),
        },
    };
    let ids: Arc<dyn IdSource> = Arc::new(RandomIds);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match backend.ping().await {
        Ok(()) => {
            let report =
                berth_core::lifetime::recovery::recover(&backend, &store, &ids, &clock, config.orphans).await?;
            tracing::info!(
                runs_failed = report.runs_failed.len(),
                removed = report.containers_removed.len(),
                "recovered"
            );
            match backend.name() {
                berth_oci::NAME => notice!(
                    "oci-dry-run backend{}: nothing runs; runs end dry_run with the OCI bundle they would run",
                    if config.backend == BackendChoice::Auto { " (no engine reachable)" } else { "" }
                ),
                "swarm" => notice!(
                    "swarm backend, manager reachable; nodes: {}",
                    config
                        .swarm
                        .iter()
                        .flat_map(|s| s.nodes.iter().map(|n| n.0.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => notice!("docker backend, engine reachable"),
            }
        }
        Err(e) => notice!("{} backend, engine not reachable yet ({e})", backend.name()),
    }
    let policy = Policy::new(PolicyConfig { bind_roots: config.bind_roots.clone(), ..Default::default() });
    // Sealed runs straight on runc beside a real engine, when its probe passes.
    let mut sealed: Vec<Arc<dyn Engine>> = Vec::new();
    let mut runtimes = Vec::new();
    let mut oci_instance = None;
    // Beside an engine unless off; without one (the dry run for the rest)
    // only when required, its images then from a layout or a registry.
    let engine_here = docker.is_some();
    let dry_run_asked = config.backend == BackendChoice::OciDryRun;
    if config.oci == OciChoice::Required && !engine_here && !dry_run_asked
        || config.oci != OciChoice::Off && engine_here
    {
        let images = berth_oci::runtime::images::Images {
            engine: engine_here.then(|| backend.clone()),
            layout: config.oci_layout.clone(),
            registry: config
                .oci_registries
                .clone()
                .map(|listed| berth_oci::image::registry::Registry::new().insecure(listed)),
        };
        let instance = store.instance_id(|| RandomIds.next_hex())?;
        oci_instance = Some(instance.clone());
        let cache = berth::sealed::cache(&config.data, config.oci_cache.bytes())
            .map_err(|e| anyhow::anyhow!("the oci backend's image cache: {e}"))?;
        for name in berth::sealed::RUNTIMES {
            let (engine, probe) = berth::sealed::runtime(
                name,
                &config.data,
                &instance,
                images.clone(),
                cache.clone(),
                policy.config.output_cap + 1,
            )
            .await;
            match (&engine, name) {
                (Some(_), "runc") => {
                    notice!("oci backend: code runs and tool runs with no network go to runc ({})", probe.detail)
                }
                (Some(_), _) => notice!("oci backend: runs may ask for {name} ({})", probe.detail),
                (None, "runc") if config.oci == OciChoice::Required => {
                    anyhow::bail!("the oci backend is required: {}", probe.detail)
                }
                (None, "runc") => notice!("oci backend off, every run goes to the engine: {}", probe.detail),
                (None, _) => notice!("oci backend: no {name} ({})", probe.detail),
            }
            // runsc without runc would take every sealed run: it is only ever asked for.
            if name == "runc" && engine.is_none() {
                runtimes.push(probe);
                break;
            }
            sealed.extend(engine);
            runtimes.push(probe);
        }
    }
    // The engine's own runtimes beside its default, for runs that ask (runsc
    // for a run with a network, which berth's own runtimes cannot serve).
    let mut engine_runtimes: Vec<Arc<dyn Engine>> = Vec::new();
    if let Some(docker) = &docker {
        let registered = docker.engine_runtimes().await.unwrap_or_default();
        for name in berth::sealed::ENGINE_RUNTIMES {
            let ok = registered.iter().any(|r| r == name);
            let detail = if ok {
                notice!("docker backend: runs may ask for {name} through the engine (docker-{name})");
                engine_runtimes.push(Arc::new(docker.clone().with_runtime(name)));
                "registered in the engine's configuration".to_owned()
            } else {
                format!("not registered in the engine's configuration (scripts/provision.sh registers {name})")
            };
            runtimes.push(RuntimeProbe { runtime: format!("docker-{name}"), ok, detail });
        }
    }
    let pools = config.pools.clone().filter(|_| backend.capabilities().pools());
    let options = Options {
        ports: config.ports,
        max_runs: config.max_runs,
        max_runs_per_tenant: config.max_runs_per_tenant,
        pools,
        sandboxes: sandbox_config(&config),
        runtimes,
    };
    let mut ctx = context::Context::new(backend, policy, store, ids, clock);
    for engine in sealed {
        ctx = ctx.with_sealed(engine);
    }
    for engine in engine_runtimes {
        ctx = ctx.with_engine_runtime(engine);
    }
    let core = Arc::new(Core::new(ctx, options));
    // The reaper every 30 s; every 5 s, pool members are replaced before
    // they expire and demand pools grow, shrink and go.
    let background = core.spawn_background(Duration::from_secs(30), Duration::from_secs(5));
    let state = berth_api::native::AppState::new(core.clone(), berth_api::native::Tokens(config.tokens.clone()));

    // Bind every listener before serving any, so a taken port fails the start.
    let mut servers = Vec::new();
    let native = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    notice!("listening on http://{}", native.local_addr()?);
    servers.push((native, berth_api::native::app(state.clone())));
    let seeds = Arc::new(config.seeds.clone());
    for (dialect, addr) in &config.dialects {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("dialect {dialect}: cannot listen on {addr}"))?;
        notice!("dialect {dialect} listening on http://{}", listener.local_addr()?);
        servers.push((listener, dialect.router(state.clone(), seeds.clone())));
    }
    if let Some(e2b) = config.e2b {
        for (what, addr, router) in [
            ("control plane", e2b.api, berth_api::dialects::e2b::api_router(state.clone())),
            ("envd", e2b.envd, berth_api::dialects::e2b::envd_router(state.clone())),
        ] {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("dialect e2b ({what}): cannot listen on {addr}"))?;
            notice!("dialect e2b {what} listening on http://{}", listener.local_addr()?);
            servers.push((listener, router));
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, router) in servers {
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        });
    }
    shutdown().await;
    notice!("shutting down, finishing the requests in flight");
    let _ = stop_tx.send(true);
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    // The core first: a spare being made is finished and removed by its
    // tending task, which must still run.
    core.shutdown().await;
    background.stop();
    if let Some(instance) = oci_instance {
        berth::sealed::remove_cgroups(&instance);
    }
    Ok(())
}

/// Ctrl-C or SIGTERM: stop accepting, finish the requests in flight.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
