//! `berth` as a client of a running `berth serve` (`BERTH_URL`, default
//! `http://127.0.0.1:8787`, and `BERTH_TOKEN`): runs created and followed
//! live, runs, agents, relics, sessions, sandboxes and pools listed and
//! acted on, as tables for people or the server's JSON for scripts. Every
//! command ends with an exit code of [`exit`]'s table.

pub mod exit;
pub mod http;
mod progress;
pub mod render;
pub mod terminal;

use std::io::Write;

use clap::{Args, Subcommand, ValueEnum};
use hyper::Method;
use serde_json::{json, Value};

use self::http::{ClientError, Server};
use self::render::Column;

/// Where the server is, and how the answers are shown.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// The server (`http://host:port`).
    #[arg(long, global = true, env = "BERTH_URL", default_value = "http://127.0.0.1:8787")]
    pub url: String,
    /// A bearer token of the server's `[tokens]`.
    #[arg(long, global = true, env = "BERTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// `table` for people, `json` (the server's own) for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// A run to create.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// A language of the server's code table (`sh`, `python`).
    #[arg(long, conflicts_with = "image", requires = "code")]
    pub language: Option<String>,
    /// The code to run.
    #[arg(long)]
    pub code: Option<String>,
    /// A tool image to run, its command after `--` (the image's own without).
    #[arg(long)]
    pub image: Option<String>,
    /// Seconds before the run is killed.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// A memory limit such as `256m`.
    #[arg(long)]
    pub memory: Option<String>,
    /// A parameter, `NAME=VALUE` (its value JSON when it parses, else a string); repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// The tool's command.
    #[arg(last = true)]
    pub argv: Vec<String>,
}

/// Which output to show: a run's, an agent's or a relic's.
#[derive(Args, Debug, Clone)]
pub struct LogsArgs {
    pub id: String,
    /// As it comes, until it ends.
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum RunsCommand {
    /// The latest runs.
    Ls {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    Get {
        id: String,
    },
    Cancel {
        id: String,
    },
    /// A run's output (`-f`: as it comes, until the run ends).
    Logs(LogsArgs),
}

#[derive(Subcommand, Debug, Clone)]
pub enum AgentsCommand {
    /// Defines and starts an agent of `--image` (its command after `--`).
    Create {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        image: String,
        /// A container port to publish on a port of the server's pool; repeatable.
        #[arg(long = "port")]
        ports: Vec<u16>,
        #[arg(long)]
        memory: Option<String>,
        #[arg(last = true)]
        argv: Vec<String>,
    },
    Ls,
    Get {
        id: String,
    },
    /// An agent's output (`-f`: as it comes).
    Logs(LogsArgs),
    Stats {
        id: String,
    },
    Start {
        id: String,
    },
    Stop {
        id: String,
    },
    Rm {
        id: String,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum SessionsCommand {
    /// Opens a session (its private network is made when a relic or a run first joins it).
    Create {
        id: String,
    },
    Ls,
    Get {
        id: String,
    },
    /// Ends a session and removes its network; one with running
    /// containers only with `--force`, which removes them too.
    Rm {
        id: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum RelicsCommand {
    /// Starts a relic of `--image` in a session, its command after `--`;
    /// answers once it is healthy (with `--health`) or running.
    Start {
        #[arg(long)]
        session: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        image: String,
        /// The port it serves on inside (default 8000).
        #[arg(long)]
        port: Option<u16>,
        /// A path probed until it answers, such as `/health`.
        #[arg(long)]
        health: Option<String>,
        #[arg(long)]
        memory: Option<String>,
        #[arg(last = true)]
        argv: Vec<String>,
    },
    /// The relics of one session, or all.
    Ls {
        #[arg(long)]
        session: Option<String>,
    },
    Get {
        id: String,
    },
    /// A relic's output (`-f`: as it comes).
    Logs(LogsArgs),
    Stop {
        id: String,
    },
    Rm {
        id: String,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum SandboxesCommand {
    /// Creates a sandbox of a template (`base` is built in).
    Create {
        #[arg(long, default_value = "base")]
        template: String,
        /// Seconds until it is removed (from now, and from each refresh).
        #[arg(long)]
        timeout: Option<u64>,
        /// `KEY=value` metadata; repeatable.
        #[arg(long = "meta")]
        metadata: Vec<String>,
    },
    Ls,
    Get {
        id: String,
    },
    /// Runs a command in a sandbox to its end (its argv after `--`): its
    /// output, and its exit code as berth's.
    Run {
        id: String,
        /// Killed after this many seconds (the server's default 60).
        #[arg(long)]
        timeout: Option<u64>,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// Kills a sandbox.
    Rm {
        id: String,
    },
}

/// The client's commands.
#[derive(Subcommand, Debug, Clone)]
pub enum ClientCommand {
    #[command(subcommand)]
    Runs(RunsCommand),
    #[command(subcommand)]
    Agents(AgentsCommand),
    #[command(subcommand)]
    Sessions(SessionsCommand),
    #[command(subcommand)]
    Relics(RelicsCommand),
    #[command(subcommand)]
    Sandboxes(SandboxesCommand),
    /// The warm pools and the sandboxes' spares.
    Pools,
    /// Pulls an image for the server's engine, with a bar of its progress
    /// on a terminal (`-o json`: each progress event as a line).
    Pull {
        image: String,
        /// Pull even when the image is there (a tag that may have moved).
        #[arg(long)]
        refresh: bool,
    },
}

/// Runs a client command; its exit code.
pub async fn main(connection: &Connection, command: ClientCommand) -> i32 {
    finish(async {
        let server = Server::new(&connection.url, connection.token.clone())?;
        let out = connection.output;
        match command {
            ClientCommand::Runs(c) => runs(&server, out, c).await,
            ClientCommand::Agents(c) => agents(&server, out, c).await,
            ClientCommand::Sessions(c) => sessions(&server, out, c).await,
            ClientCommand::Relics(c) => relics(&server, out, c).await,
            ClientCommand::Sandboxes(c) => sandboxes(&server, out, c).await,
            ClientCommand::Pull { image, refresh } => {
                pull(&server, out, &image, refresh, true).await?;
                if out == Output::Table {
                    println!("pulled {image}");
                }
                Ok(0)
            }
            ClientCommand::Pools => {
                ask(&server, out, Method::GET, "/v1/pools", None, render::POOLS).await?;
                Ok(0)
            }
        }
    })
    .await
}

/// `berth run`: creates the run, prints its output as it comes (stdout to
/// stdout, stderr to stderr; with `--output json`, the final record
/// instead) and ends with the run's exit code.
pub async fn run(connection: &Connection, args: RunArgs) -> i32 {
    finish(async {
        let server = Server::new(&connection.url, connection.token.clone())?;
        let body = run_body(&args)?;
        if let Some(image) = &args.image {
            pull(&server, connection.output, image, false, false).await?;
        }
        let made = server.call(Method::POST, "/v1/runs", Some(&body)).await?.json()?;
        let id = made["id"].as_str().ok_or_else(|| ClientError::Garbled(format!("a run without an id: {made}")))?;
        // The follow ends at the run's end; its output is shown unless the
        // final record is what is printed. A spinner says what is awaited
        // until the output begins (or, for the record, until the end).
        let waiting = progress::Spinner::new(&format!("waiting for {id}"));
        let path = format!("/v1/runs/{id}/logs?follow=true");
        follow_output(&server, &path, connection.output == Output::Table, Some(&waiting)).await?;
        waiting.clear();
        // The record once it is final: a moment after the follow's end.
        let record = loop {
            let record = server.call(Method::GET, &format!("/v1/runs/{id}"), None).await?.json()?;
            if is_final(&record) {
                break record;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        if connection.output == Output::Json {
            println!("{}", serde_json::to_string_pretty(&record).unwrap_or_default());
        } else if let Some(error) = record["error"].as_str() {
            eprintln!("berth: run {id} {}: {error}", record["status"].as_str().unwrap_or("ended"));
        }
        Ok(exit::of_run(record["status"].as_str().unwrap_or(""), record["exit_code"].as_i64()))
    })
    .await
}

fn is_final(record: &Value) -> bool {
    !matches!(record["status"].as_str(), Some("pending" | "running") | None)
}

/// The body of `POST /v1/runs` for `args`, answered before the run ends.
fn run_body(args: &RunArgs) -> Result<Value, ClientError> {
    let mut body = json!({"wait": false});
    match (&args.language, &args.code, &args.image) {
        (Some(language), Some(code), None) => {
            body["language"] = json!(language);
            body["code"] = json!(code);
        }
        (None, None, Some(image)) => {
            body["image"] = json!(image);
            if !args.argv.is_empty() {
                body["command"] = json!(args.argv);
            }
        }
        _ => {
            return Err(ClientError::Refused {
                status: 400,
                code: "bad_request".into(),
                message: "give --language and --code, or --image (and its command after --)".into(),
            })
        }
    }
    if let Some(t) = args.timeout {
        body["timeout_seconds"] = json!(t);
    }
    if let Some(m) = &args.memory {
        body["memory"] = json!(m);
    }
    let mut parameters = serde_json::Map::new();
    for p in &args.params {
        let (name, value) = p.split_once('=').ok_or_else(|| ClientError::Refused {
            status: 400,
            code: "bad_request".into(),
            message: format!("--param {p:?}: NAME=VALUE"),
        })?;
        parameters.insert(name.to_owned(), serde_json::from_str(value).unwrap_or_else(|_| json!(value)));
    }
    if !parameters.is_empty() {
        body["parameters"] = Value::Object(parameters);
    }
    Ok(body)
}

/// Reads a followed output stream until its exit event (or its end),
/// printing its pieces as they come when `print`, to stdout or stderr by
/// their stream.
async fn follow_output(
    server: &Server,
    path: &str,
    print: bool,
    waiting: Option<&progress::Spinner>,
) -> Result<(), ClientError> {
    let mut stream = server.follow(path).await?;
    while let Some(line) = stream.next_line().await? {
        let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
        match event["event"].as_str() {
            Some("log") if print => {
                if let Some(w) = waiting {
                    w.clear();
                }
                let data = event["data"].as_str().unwrap_or_default();
                let written = match event["stream"].as_str() {
                    Some("stderr") => std::io::stderr().write_all(data.as_bytes()),
                    _ => std::io::stdout().write_all(data.as_bytes()).and_then(|()| std::io::stdout().flush()),
                };
                if written.is_err() {
                    return Ok(());
                }
            }
            Some("exit") => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

async fn runs(server: &Server, out: Output, command: RunsCommand) -> Result<i32, ClientError> {
    match command {
        RunsCommand::Ls { limit } => {
            ask(server, out, Method::GET, &format!("/v1/runs?limit={limit}"), None, render::RUNS).await?
        }
        RunsCommand::Get { id } => {
            ask(server, out, Method::GET, &format!("/v1/runs/{}", segment(&id)), None, render::RUNS).await?
        }
        RunsCommand::Cancel { id } => {
            let answer = server.call(Method::POST, &format!("/v1/runs/{}/cancel", segment(&id)), None).await?.json()?;
            show_json_or(
                out,
                &answer,
                if answer["cancelled"] == json!(true) { "cancelled" } else { "not in flight: nothing to cancel" },
            );
        }
        RunsCommand::Logs(l) => logs(server, &format!("/v1/runs/{}/logs", segment(&l.id)), l.follow).await?,
    }
    Ok(0)
}

async fn agents(server: &Server, out: Output, command: AgentsCommand) -> Result<i32, ClientError> {
    let at = |id: &str, rest: &str| format!("/v1/agents/{}{rest}", segment(id));
    match command {
        AgentsCommand::Create { id, image, ports, memory, argv } => {
            let mut body = json!({"image": image, "ports": ports});
            set(&mut body, "id", id);
            set(&mut body, "memory", memory);
            set(&mut body, "command", (!argv.is_empty()).then_some(argv));
            pull(server, out, &image, false, false).await?;
            ask(server, out, Method::POST, "/v1/agents", Some(&body), render::AGENTS).await?;
        }
        AgentsCommand::Ls => ask(server, out, Method::GET, "/v1/agents", None, render::AGENTS).await?,
        AgentsCommand::Get { id } => ask(server, out, Method::GET, &at(&id, ""), None, render::AGENTS).await?,
        AgentsCommand::Logs(l) => logs(server, &at(&l.id, "/logs"), l.follow).await?,
        AgentsCommand::Stats { id } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&server.call(Method::GET, &at(&id, "/stats"), None).await?.json()?)
                    .unwrap_or_default()
            );
        }
        AgentsCommand::Start { id } => ask(server, out, Method::POST, &at(&id, "/start"), None, render::AGENTS).await?,
        AgentsCommand::Stop { id } => ask(server, out, Method::POST, &at(&id, "/stop"), None, render::AGENTS).await?,
        AgentsCommand::Rm { id } => remove(server, out, &at(&id, ""), &id).await?,
    }
    Ok(0)
}

async fn sessions(server: &Server, out: Output, command: SessionsCommand) -> Result<i32, ClientError> {
    let at = |id: &str| format!("/v1/sessions/{}", segment(id));
    match command {
        SessionsCommand::Create { id } => {
            let made = server.call(Method::POST, "/v1/sessions", Some(&json!({"session_id": id}))).await?.json()?;
            show_json_or(out, &made, &format!("session {id}"));
        }
        SessionsCommand::Ls => ask(server, out, Method::GET, "/v1/sessions", None, render::SESSIONS).await?,
        SessionsCommand::Get { id } => print_json(&server.call(Method::GET, &at(&id), None).await?.json()?),
        SessionsCommand::Rm { id, force } => {
            let ended = server.call(Method::DELETE, &format!("{}?force={force}", at(&id)), None).await?.json()?;
            show_json_or(out, &ended, &format!("ended {id}"));
        }
    }
    Ok(0)
}

async fn relics(server: &Server, out: Output, command: RelicsCommand) -> Result<i32, ClientError> {
    let at = |id: &str, rest: &str| format!("/v1/relics/{}{rest}", segment(id));
    match command {
        RelicsCommand::Start { session, name, image, port, health, memory, argv } => {
            let mut body = json!({"session_id": session, "relic_name": name, "image": image});
            set(&mut body, "port", port);
            set(&mut body, "health_check_endpoint", health);
            set(&mut body, "memory", memory);
            set(&mut body, "command", (!argv.is_empty()).then_some(argv));
            pull(server, out, &image, false, false).await?;
            ask(server, out, Method::POST, "/v1/relics", Some(&body), render::RELICS).await?;
        }
        RelicsCommand::Ls { session } => {
            let path = match session {
                Some(s) => format!("/v1/relics?session_id={}", segment(&s)),
                None => "/v1/relics".to_owned(),
            };
            ask(server, out, Method::GET, &path, None, render::RELICS).await?;
        }
        RelicsCommand::Get { id } => ask(server, out, Method::GET, &at(&id, ""), None, render::RELICS).await?,
        RelicsCommand::Logs(l) => logs(server, &at(&l.id, "/logs"), l.follow).await?,
        RelicsCommand::Stop { id } => ask(server, out, Method::POST, &at(&id, "/stop"), None, render::RELICS).await?,
        RelicsCommand::Rm { id } => remove(server, out, &at(&id, ""), &id).await?,
    }
    Ok(0)
}

async fn sandboxes(server: &Server, out: Output, command: SandboxesCommand) -> Result<i32, ClientError> {
    let at = |id: &str, rest: &str| format!("/v1/sandboxes/{}{rest}", segment(id));
    match command {
        SandboxesCommand::Create { template, timeout, metadata } => {
            let mut body = json!({"template": template, "metadata": pairs("--meta", &metadata)?});
            set(&mut body, "timeout_seconds", timeout);
            ask(server, out, Method::POST, "/v1/sandboxes", Some(&body), render::SANDBOXES).await?;
        }
        SandboxesCommand::Ls => ask(server, out, Method::GET, "/v1/sandboxes", None, render::SANDBOXES).await?,
        SandboxesCommand::Get { id } => print_json(&server.call(Method::GET, &at(&id, ""), None).await?.json()?),
        SandboxesCommand::Run { id, timeout, argv } => {
            let mut body = json!({"argv": argv});
            set(&mut body, "timeout_seconds", timeout);
            let done = server.call(Method::POST, &at(&id, "/commands"), Some(&body)).await?.json()?;
            if out == Output::Json {
                print_json(&done);
            } else {
                print!("{}", done["stdout"].as_str().unwrap_or_default());
                eprint!("{}", done["stderr"].as_str().unwrap_or_default());
            }
            return Ok(exit::of_command(done["exit_code"].as_i64(), done["signal"].as_i64()));
        }
        SandboxesCommand::Rm { id } => {
            let killed = server.call(Method::DELETE, &at(&id, ""), None).await?.json()?;
            show_json_or(out, &killed, &format!("killed {id}"));
        }
    }
    Ok(0)
}

/// `KEY=value` arguments of `flag` as a JSON object.
fn pairs(flag: &str, given: &[String]) -> Result<Value, ClientError> {
    let mut map = serde_json::Map::new();
    for pair in given {
        let (key, value) = pair.split_once('=').ok_or_else(|| ClientError::Refused {
            status: 400,
            code: "bad_request".into(),
            message: format!("{flag} {pair:?}: KEY=value"),
        })?;
        map.insert(key.to_owned(), json!(value));
    }
    Ok(Value::Object(map))
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// A container's logs: read at once, or followed until it ends.
async fn logs(server: &Server, path: &str, follow: bool) -> Result<(), ClientError> {
    if follow {
        return follow_output(server, &format!("{path}?follow=true"), true, None).await;
    }
    let read = server.call(Method::GET, path, None).await?.json()?;
    print!("{}", read["stdout"].as_str().unwrap_or_default());
    eprint!("{}", read["stderr"].as_str().unwrap_or_default());
    Ok(())
}

/// Pulls `image` through the server, drawing a bar of its progress on a
/// terminal, or with `-o json` and `echo` printing each event as its line
/// (without `echo`, before a workload of the image is asked for, a
/// script's output stays the workload's). The bar appears only once bytes
/// move, so an image that is there draws nothing.
async fn pull(server: &Server, out: Output, image: &str, refresh: bool, echo: bool) -> Result<(), ClientError> {
    let body = json!({"image": image, "refresh": refresh});
    let mut stream = server.stream(Method::POST, "/v1/images/pull", Some(&body)).await?;
    let mut bar = progress::PullBar::new(image);
    loop {
        let Some(line) = stream.next_line().await? else {
            return Err(ClientError::Garbled("the pull's stream ended before it said how".into()));
        };
        let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
        if out == Output::Json && echo && event["event"] != "keepalive" {
            println!("{line}");
        }
        match event["event"].as_str() {
            Some("progress") if out == Output::Table => bar.step(&event),
            Some("pulled") => return Ok(()),
            Some("error") => {
                let message = event["message"].as_str().unwrap_or("the pull failed").to_owned();
                return Err(ClientError::Refused { status: 502, code: "pull_failed".into(), message });
            }
            _ => {}
        }
    }
}

/// Sets `key` of a request's body to a flag's value, when it was given.
fn set(body: &mut Value, key: &str, value: Option<impl serde::Serialize>) {
    if let Some(v) = value {
        body[key] = json!(v);
    }
}

/// Asks `method` of `path` and shows what it answers as `columns`.
async fn ask(
    server: &Server,
    out: Output,
    method: Method,
    path: &str,
    body: Option<&Value>,
    columns: &[Column],
) -> Result<(), ClientError> {
    show(out, &server.call(method, path, body).await?.json()?, columns);
    Ok(())
}

/// Removes what `path` names (`id`), and says so.
async fn remove(server: &Server, out: Output, path: &str, id: &str) -> Result<(), ClientError> {
    server.call(Method::DELETE, path, None).await?;
    show_json_or(out, &json!({"removed": id}), &format!("removed {id}"));
    Ok(())
}

fn show(out: Output, value: &Value, columns: &[Column]) {
    match out {
        Output::Json => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
        Output::Table => print!("{}", render::table(value, columns)),
    }
}

fn show_json_or(out: Output, value: &Value, said: &str) {
    match out {
        Output::Json => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
        Output::Table => println!("{said}"),
    }
}

/// An id as one path segment: anything but what ids are made of is escaped.
pub(crate) fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A command's exit code, its error said on stderr.
async fn finish(command: impl std::future::Future<Output = Result<i32, ClientError>>) -> i32 {
    match command.await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e}");
            exit::of_error(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RunArgs {
        RunArgs { language: None, code: None, image: None, timeout: None, memory: None, params: vec![], argv: vec![] }
    }

    #[test]
    fn a_code_run_or_a_tool_run_with_its_argv_and_parameters_is_asked_without_waiting() {
        let code = RunArgs { language: Some("sh".into()), code: Some("exit 3".into()), timeout: Some(5), ..args() };
        assert_eq!(
            run_body(&code).unwrap(),
            json!({"wait": false, "language": "sh", "code": "exit 3", "timeout_seconds": 5})
        );
        let tool = RunArgs {
            image: Some("busybox:1.35".into()),
            argv: vec!["echo".into(), "hi".into()],
            params: vec!["n=3".into(), "who=ann".into()],
            ..args()
        };
        let body = run_body(&tool).unwrap();
        assert_eq!(body["command"], json!(["echo", "hi"]));
        assert_eq!(body["parameters"], json!({"n": 3, "who": "ann"}));
        assert!(run_body(&args()).is_err());
    }

    #[test]
    fn an_id_is_one_path_segment() {
        assert_eq!(segment("run_1a"), "run_1a");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }
}
