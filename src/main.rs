//! The `berth` command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth::backend::docker::DockerBackend;
use berth::backend::oci::OciDryRun;
use berth::backend::Backend;
use berth::ids::{Clock, IdSource, RandomIds, SystemClock};
use berth::policy::Policy;
use berth::runs::{RunRequest, Runs, Workload};
use berth::store::Store;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth", version, about = "A container orchestrator for AI agents and their tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the engine named by DOCKER_HOST: API version, server, storage and cgroups.
    Engine,
    /// Run a code snippet to completion and print its record as JSON.
    Run {
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
    /// Serve the native HTTP API (runs, health, OpenAPI).
    Serve {
        /// `docker`, `oci-dry-run`, or `auto`: docker when its engine answers, else the dry run.
        #[arg(long, env = "BERTH_BACKEND", default_value = "auto")]
        backend: BackendChoice,
        /// A TOML file: `listen`, `data` and a `[tokens]` table of token = tenant.
        #[arg(long, env = "BERTH_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8787).
        #[arg(long, env = "BERTH_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        /// Folder of berth's store (default berth-data).
        #[arg(long, env = "BERTH_DATA")]
        data: Option<PathBuf>,
    },
    /// Recover after a crash: fail interrupted runs and remove their containers and orphans.
    Recover {
        #[arg(long, env = "BERTH_DATA", default_value = "berth-data")]
        data: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendChoice {
    Auto,
    Docker,
    OciDryRun,
}

fn open_store(data: &std::path::Path) -> anyhow::Result<Arc<Store>> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    Ok(Arc::new(Store::open(&data.join("berth.db"))?))
}

fn docker_backend() -> anyhow::Result<Arc<dyn Backend>> {
    Ok(Arc::new(DockerBackend::new(berth::engine_api::Docker::from_env()?)))
}

// The engine's IO runs on the current-thread runtime: on multi-thread, every
// chunk hops threads (see the benchmark table in README.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Engine => {
            let docker = berth::engine_api::Docker::from_env()?;
            let api = docker.api_version().await?;
            let info = docker.info().await?;
            println!(
                "engine reachable: API {api}, server {}, storage {}, cgroup v{}",
                info.server_version.as_deref().unwrap_or("?"),
                info.driver.as_deref().unwrap_or("?"),
                info.cgroup_version.as_deref().unwrap_or("?")
            );
        }
        Command::Run { data, language, code, timeout, tenant } => {
            let store = open_store(&data)?;
            let runs =
                Runs::new(docker_backend()?, Policy::default(), store, Arc::new(RandomIds), Arc::new(SystemClock), 8);
            let mut req = RunRequest::new(&tenant, Workload::Code { language, code });
            req.timeout = timeout.map(Duration::from_secs);
            let record = runs.execute(req).await?;
            println!("{}", serde_json::to_string_pretty(&record)?);
        }
        Command::Plan { language, code, timeout, tenant, bundle } => {
            // Nothing is created: the dry run only lends Runs a backend.
            let backend = Arc::new(OciDryRun::new(std::env::temp_dir()));
            let store = Arc::new(Store::in_memory()?);
            let runs = Runs::new(backend, Policy::default(), store, Arc::new(RandomIds), Arc::new(SystemClock), 1);
            let mut req = RunRequest::new(&tenant, Workload::Code { language, code });
            req.timeout = timeout.map(Duration::from_secs);
            let plan = berth::backend::oci::plan(&runs.container_spec(&req)?, None)?;
            if let Some(dir) = bundle {
                berth::backend::oci::bundle::write(&dir, &plan)?;
            }
            println!("{}", serde_json::to_string_pretty(&plan.config)?);
        }
        Command::Serve { backend, config, listen, data } => serve(backend, config, listen, data).await?,
        Command::Recover { data } => {
            let store = open_store(&data)?;
            let ids: Arc<dyn IdSource> = Arc::new(RandomIds);
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let report = berth::recovery::recover(&docker_backend()?, &store, &ids, &clock).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

/// `berth serve`'s configuration file; flags and `BERTH_*` variables override it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<std::net::SocketAddr>,
    data: Option<PathBuf>,
    #[serde(default)]
    tokens: std::collections::BTreeMap<String, String>,
}

async fn serve(
    choice: BackendChoice,
    config: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    data: Option<PathBuf>,
) -> anyhow::Result<()> {
    let file: FileConfig = match &config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("{} is not a valid configuration", path.display()))?
        }
        None => FileConfig::default(),
    };
    let listen = listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:8787".parse().expect("a valid address"));
    let data = data.or(file.data).unwrap_or_else(|| PathBuf::from("berth-data"));
    let mut tokens = file.tokens;
    if let Ok(env) = std::env::var("BERTH_TOKENS") {
        for pair in env.split(',').filter(|p| !p.trim().is_empty()) {
            let (token, tenant) = pair.split_once('=').context("BERTH_TOKENS is token=tenant[,token=tenant...]")?;
            tokens.insert(token.trim().to_owned(), tenant.trim().to_owned());
        }
    }
    if tokens.is_empty() && !listen.ip().is_loopback() {
        anyhow::bail!("refusing to listen on {listen} without tokens: configure [tokens] (or BERTH_TOKENS), or listen on loopback");
    }
    let store = open_store(&data)?;
    let dry_run = || -> Arc<dyn Backend> { Arc::new(OciDryRun::new(data.join("bundles"))) };
    let backend = match choice {
        BackendChoice::OciDryRun => dry_run(),
        BackendChoice::Docker => docker_backend()?,
        BackendChoice::Auto => match docker_backend() {
            Ok(docker) if docker.ping().await.is_ok() => docker,
            Ok(_) | Err(_) => dry_run(),
        },
    };
    let ids: Arc<dyn IdSource> = Arc::new(RandomIds);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match backend.ping().await {
        Ok(()) => {
            let report = berth::recovery::recover(&backend, &store, &ids, &clock).await?;
            tracing::info!(
                runs_failed = report.runs_failed.len(),
                removed = report.containers_removed.len(),
                "recovered"
            );
            match backend.name() {
                berth::backend::oci::NAME => eprintln!(
                    "berth: oci-dry-run backend{}: nothing runs; runs end dry_run with the OCI bundle they would run",
                    if choice == BackendChoice::Auto { " (no engine reachable)" } else { "" }
                ),
                _ => eprintln!("berth: docker backend, engine reachable"),
            }
        }
        Err(e) => eprintln!("berth: docker backend, engine not reachable yet ({e})"),
    }
    let policy = Policy::default();
    let reaper =
        Arc::new(berth::reaper::Reaper::new(backend.clone(), store.clone(), clock.clone(), policy.config.max_lifetime));
    let reaping = reaper.spawn(Duration::from_secs(30));
    let runs = Arc::new(Runs::new(backend.clone(), policy, store, ids, clock, 32));
    let state = berth::http::AppState { runs, backend, tokens: Arc::new(berth::http::Tokens(tokens)) };
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!("berth: listening on http://{}", listener.local_addr()?);
    axum::serve(listener, berth::http::app(state)).with_graceful_shutdown(shutdown()).await?;
    reaping.abort();
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
