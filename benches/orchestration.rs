//! Orchestration benchmarks, each beside its floor in the same run; prints a
//! Markdown table (the one in README.md). Needs the provisioned daemon.
//! `BERTH_BENCH_QUICK=1` shrinks every measurement.
//!
//! 1. a run of `echo hi` from request to stored result, against the bare
//!    Engine API sequence (create, start, wait, logs, remove) and `docker run --rm`;
//! 2. throughput with 8 runs in flight, against the same two floors;
//! 3. stats of 50 running containers gathered at once, against one after another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::context::Context;
use berth_core::engine::Engine;
use berth_core::engine::Handle;
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::policy::Policy;
use berth_core::runs::{RunRequest, RunStatus, Runs, Workload};
use berth_core::store::Store;
use berth_docker::DockerBackend;
use engine_api::models::ContainerConfig;
use engine_api::{Docker, LogsOptions, RemoveOptions, WaitCondition};
use futures_util::StreamExt;

use test_support::bench::{pct, quick};

fn echo_request() -> RunRequest {
    let command = Some(vec!["echo".into(), "hi".into()]);
    RunRequest::new("bench", Workload::Tool { image: "busybox:1.35".into(), command })
}

async fn berth_run(runs: &Runs) {
    let run = runs.execute(echo_request()).await.unwrap();
    assert_eq!((run.status, run.stdout.as_str()), (RunStatus::Succeeded, "hi\n"));
}

/// The bare Engine API sequence a run needs, nothing else.
async fn bare_run(docker: &Docker) {
    let config = ContainerConfig {
        image: Some("busybox:1.35".into()),
        cmd: Some(vec!["echo".into(), "hi".into()]),
        ..Default::default()
    };
    bare_sequence(docker, &config).await
}

/// The same sequence for the container berth's policy makes (limits, no
/// capabilities, no-new-privileges, init): what the engine itself spends on safety.
async fn bare_policy_run(docker: &Docker) {
    let mut req = berth_core::policy::ContainerRequest::new(berth_core::spec::Kind::Tool, "unused", "busybox:1.35");
    req.cmd = Some(vec!["echo".into(), "hi".into()]);
    let spec = Policy::default().admit(req).unwrap();
    let config = berth_docker::container_config(&spec, "127.0.0.1");
    bare_sequence(docker, &config).await
}

async fn bare_sequence(docker: &Docker, config: &ContainerConfig) {
    let id = docker.create_container(None, config).await.unwrap().id;
    let wait = docker.wait_container(&id, WaitCondition::NextExit).await.unwrap();
    docker.start_container(&id).await.unwrap();
    assert_eq!(wait.exit().await.unwrap().status_code, 0);
    let opts = LogsOptions { stdout: true, stderr: true, tty: Some(false), ..Default::default() };
    let mut logs = docker.logs(&id, &opts).await.unwrap();
    let mut out = Vec::new();
    while let Some(o) = logs.next().await {
        out.extend_from_slice(&o.unwrap().data);
    }
    assert_eq!(out, b"hi\n");
    docker.remove_container(&id, RemoveOptions { force: true, volumes: true }).await.unwrap();
}

fn cli_run() {
    let out =
        std::process::Command::new("docker").args(["run", "--rm", "busybox:1.35", "echo", "hi"]).output().unwrap();
    assert_eq!(out.stdout, b"hi\n");
}

async fn timed<F: std::future::Future<Output = ()>>(f: F) -> Duration {
    let t = Instant::now();
    f.await;
    t.elapsed()
}

async fn in_flight<F, Fut>(total: usize, flight: usize, make: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let t = Instant::now();
    futures_util::stream::iter((0..total).map(|_| make())).buffer_unordered(flight).collect::<Vec<()>>().await;
    total as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it, and then it only proves it builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let docker = Docker::from_env().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("berth.db")).unwrap());
    let backend: Arc<dyn Engine> = Arc::new(DockerBackend::new(docker.clone()));
    let runs = Runs::new(
        &Context::new(backend.clone(), Policy::default(), store, Arc::new(RandomIds), Arc::new(SystemClock)),
        64,
    );
    let n = if quick() { 5 } else { 40 };
    let mut rows: Vec<[String; 4]> = Vec::new();

    rt.block_on(async {
        // Warm-up of each path.
        berth_run(&runs).await;
        bare_run(&docker).await;
        bare_policy_run(&docker).await;
        let (mut ours, mut bare, mut policed, mut cli) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            ours.push(timed(berth_run(&runs)).await);
            bare.push(timed(bare_run(&docker)).await);
            policed.push(timed(bare_policy_run(&docker)).await);
            let t = Instant::now();
            cli_run();
            cli.push(t.elapsed());
        }
        let ((o50, o99), (b50, b99), (p50, p99), (c50, c99)) = (pct(ours), pct(bare), pct(policed), pct(cli));
        rows.push([
            format!("`echo hi` run, request to stored result, p50 / p99 ({n} runs)"),
            format!("{o50:.0} / {o99:.0} ms"),
            format!("bare API {b50:.0} / {b99:.0} ms; `docker run --rm` {c50:.0} / {c99:.0} ms"),
            format!("{:.2}x / {:.2}x bare", o50 / b50, o99 / b99),
        ]);
        rows.push([
            "the same, against the bare sequence for the container berth's policy makes".into(),
            format!("{o50:.0} / {o99:.0} ms"),
            format!("bare API, same container {p50:.0} / {p99:.0} ms"),
            format!("{:.2}x / {:.2}x", o50 / p50, o99 / p99),
        ]);

        let total = if quick() { 16 } else { 200 };
        let ours = in_flight(total, 8, || berth_run(&runs)).await;
        let bare = in_flight(total, 8, || bare_run(&docker)).await;
        let cli = in_flight(total, 8, || async { tokio::task::spawn_blocking(cli_run).await.unwrap() }).await;
        rows.push([
            format!("throughput, {total} runs with 8 in flight"),
            format!("{ours:.1} runs/s"),
            format!("bare API {bare:.1} runs/s; CLI {cli:.1} runs/s"),
            format!("{:.2}x bare", ours / bare),
        ]);

        let count = if quick() { 10 } else { 50 };
        let mut ids = Vec::new();
        for i in 0..count {
            let config = ContainerConfig {
                image: Some("busybox:1.35".into()),
                cmd: Some(vec!["sleep".into(), "300".into()]),
                labels: Some([("io.berth.bench".to_owned(), "stats".to_owned())].into()),
                ..Default::default()
            };
            let id = docker
                .create_container(Some(&format!("berth-bench-stats-{}-{i}", std::process::id())), &config)
                .await
                .unwrap()
                .id;
            docker.start_container(&id).await.unwrap();
            ids.push(Handle::local(id));
        }
        let t = Instant::now();
        let io = backend.io(&ids[0]).unwrap();
        let all = futures_util::future::join_all(ids.iter().map(|id| io.usage(id))).await;
        let together = t.elapsed();
        assert!(all.iter().all(|u| u.as_ref().is_ok_and(|u| u.cpu_percent.is_some())));
        let sample = 5.min(count);
        let t = Instant::now();
        for id in &ids[..sample] {
            io.usage(id).await.unwrap();
        }
        let one_by_one = t.elapsed() / sample as u32 * count as u32;
        rows.push([
            format!("stats (with CPU %) of {count} running containers"),
            format!("{:.2} s at once", together.as_secs_f64()),
            format!("one after another {:.1} s (measured on {sample}, times {count})", one_by_one.as_secs_f64()),
            format!("{:.0}x faster", one_by_one.as_secs_f64() / together.as_secs_f64()),
        ]);
        for id in &ids {
            docker.remove_container(&id.id.0, RemoveOptions { force: true, volumes: true }).await.unwrap();
        }
    });

    println!("| measurement | berth | floor | ratio |");
    println!("| --- | --- | --- | --- |");
    for r in rows {
        println!("| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
    }
}
