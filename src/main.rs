//! The `berth` command line.

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
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
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
    }
    Ok(())
}
