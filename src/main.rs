//! The `berth` command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth::backend::docker::DockerBackend;
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
    /// Recover after a crash: fail interrupted runs and remove their containers and orphans.
    Recover {
        #[arg(long, env = "BERTH_DATA", default_value = "berth-data")]
        data: PathBuf,
    },
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
