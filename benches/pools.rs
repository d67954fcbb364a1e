//! Warm-pool benchmarks: a python `print` code run, an `echo hi` sh code run
//! and an `echo hi` tool run (busybox, from its demand pool) from request to
//! stored result, pooled, cold and `docker run --rm` (the CLI, the floor a
//! person would reach for), in one run; then throughput of the code runs
//! with 8 in flight, pooled against cold. Prints a Markdown table (the one in
//! README.md) and whether each target is met. Needs the provisioned daemon.
//! `BERTH_BENCH_QUICK=1` shrinks every measurement.
//!
//! Pooled latency is measured while the pool keeps up: before each timed
//! run the bench waits (untimed) until the pool is at rest (refilled to its
//! minimum, the last member removed), since a pool that is empty sends the
//! run down the cold path. The throughput part fills the
//! pool with as many members as it runs, then lets refilling go on as it
//! would in service.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::context::Context;
use berth_core::engine::Engine;
use berth_core::model::ids::{IdSource, RandomIds, SystemClock};
use berth_core::model::units::ByteSize;
use berth_core::policy::Policy;
use berth_core::pool::{DemandConfig, PoolConfig, PoolSpec, Pools};
use berth_core::runs::{RunRequest, RunStatus, Runs, Workload};
use berth_core::store::Store;
use berth_docker::DockerBackend;
use futures_util::StreamExt;

use test_support::bench::{pct, quick};

#[derive(Clone, Copy)]
struct Case {
    /// A tool run of `cli` in `image`, not a code run.
    tool: bool,
    language: &'static str,
    image: &'static str,
    code: &'static str,
    cli: &'static [&'static str],
    label: &'static str,
}

const CASES: [Case; 2] = [
    Case {
        tool: false,
        language: "python",
        image: "python:3.11-slim",
        code: "print('hi')",
        cli: &["python3", "-c", "print('hi')"],
        label: "python `print('hi')`",
    },
    Case {
        tool: false,
        language: "sh",
        image: "busybox:1.35",
        code: "echo hi",
        cli: &["sh", "-c", "echo hi"],
        label: "sh `echo hi`",
    },
];

const TOOL: Case = Case {
    tool: true,
    language: "",
    image: "busybox:1.35",
    code: "",
    cli: &["echo", "hi"],
    label: "tool `echo hi` (busybox)",
};

impl Case {
    fn pool(self) -> String {
        if self.tool {
            berth_core::pool::tool_pool(self.image)
        } else {
            self.language.to_owned()
        }
    }
}

fn request(case: Case) -> RunRequest {
    let workload = if case.tool {
        Workload::Tool { image: case.image.into(), command: Some(case.cli.iter().map(|s| s.to_string()).collect()) }
    } else {
        Workload::Code { language: case.language.into(), code: case.code.into() }
    };
    RunRequest::new("bench", workload)
}

/// One run; returns its path.
async fn run(runs: &Runs, case: Case) -> String {
    let run = runs.execute(request(case)).await.unwrap();
    assert_eq!((run.status, run.stdout.as_str()), (RunStatus::Succeeded, "hi\n"), "{run:?}");
    run.path
}

fn cli_run(case: Case) {
    let out = std::process::Command::new("docker").args(["run", "--rm", case.image]).args(case.cli).output().unwrap();
    assert_eq!(out.stdout, b"hi\n");
}

async fn ready(pools: &Pools, name: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let idle = pools.stats().into_iter().find(|s| s.name == name).map_or(0, |s| s.idle);
        if idle >= n {
            return;
        }
        assert!(Instant::now() < deadline, "pool {name} never reached {n} members");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

fn pool_config(min: usize) -> PoolConfig {
    let pools: BTreeMap<String, PoolSpec> = CASES
        .iter()
        .map(|c| (c.language.to_owned(), PoolSpec { image: c.image.into(), min, max: min.max(4) }))
        .collect();
    let budget = ByteSize(Policy::default().config.code.memory.bytes() * (2 * min as u64).max(8));
    // The tool image's pool starts with its first run and keeps 2 members.
    let demand = DemandConfig { after: 1, window: Duration::from_secs(3600), max: 2, pools: 1 };
    PoolConfig { pools, memory_budget: budget, demand: Some(demand), ..Default::default() }
}

fn pooled_runs(backend: &Arc<dyn Engine>, store: &Arc<Store>, min: usize) -> (Runs, Arc<Pools>) {
    let ids: Arc<dyn IdSource> = Arc::new(RandomIds);
    let policy = Policy::default();
    let pools = Pools::new(
        &Context::new(backend.clone(), policy.clone(), store.clone(), ids.clone(), Arc::new(SystemClock)),
        pool_config(min),
    )
    .unwrap();
    let runs = Runs::new(&Context::new(backend.clone(), policy, store.clone(), ids, Arc::new(SystemClock)), 64)
        .with_pools(pools.clone());
    pools.refill();
    (runs, pools)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("berth.db")).unwrap());
    let backend: Arc<dyn Engine> = Arc::new(DockerBackend::new(engine_api::Docker::from_env().expect("DOCKER_HOST")));
    let cold = Runs::new(
        &Context::new(backend.clone(), Policy::default(), store.clone(), Arc::new(RandomIds), Arc::new(SystemClock)),
        64,
    );
    let n = if quick() { 5 } else { 40 };
    let total = if quick() { 16 } else { 48 };
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut verdicts: Vec<String> = Vec::new();

    rt.block_on(async {
        // What a pooled run would cost if it execed in its member: the bare
        // exec sequence (create, start with output, inspect), nothing else.
        let mut req = berth_core::policy::ContainerRequest::new(
            berth_core::spec::Kind::Code,
            format!("berth-bench-exec-{}", std::process::id()),
            "busybox:1.35",
        );
        req.cmd = Some(vec!["sleep".into(), "600".into()]);
        let sandbox = backend.create(&Policy::default().admit(req).unwrap()).await.unwrap();
        backend.start(&sandbox).await.unwrap();
        let echo = berth_core::engine::ExecRequest { cmd: vec!["echo".into(), "hi".into()], ..Default::default() };
        let mut floor = vec![];
        for _ in 0..n + 1 {
            let t = Instant::now();
            assert_eq!(backend.io(&sandbox).unwrap().exec_to_end(&sandbox, &echo, 1024).await.unwrap().stdout, "hi\n");
            floor.push(t.elapsed());
        }
        backend.remove(&sandbox, true).await.unwrap();
        let (f50, f99) = pct(floor[1..].to_vec());
        rows.push([
            format!("for comparison: a bare exec of `echo hi` into a running sandbox ({n} execs)"),
            format!("{f50:.0} / {f99:.0} ms"),
            "".into(),
            "".into(),
            "".into(),
        ]);

        let (pooled, pools) = pooled_runs(&backend, &store, 2);
        for case in CASES.into_iter().chain([TOOL]) {
            // Warm-up of each path (the tool's first run starts its pool).
            if case.tool {
                run(&pooled, case).await;
            }
            ready(&pools, &case.pool(), 1).await;
            assert_eq!(run(&pooled, case).await, "pooled");
            assert_eq!(run(&cold, case).await, "cold");
            cli_run(case);
            let (mut p, mut c, mut d) = (vec![], vec![], vec![]);
            for _ in 0..n {
                // A request arriving at a pool at rest: refilled, the last member removed.
                ready(&pools, &case.pool(), 2).await;
                pools.settle().await;
                let t = Instant::now();
                let path = run(&pooled, case).await;
                p.push(t.elapsed());
                assert_eq!(path, "pooled", "the pool kept up");
                let t = Instant::now();
                run(&cold, case).await;
                c.push(t.elapsed());
                let t = Instant::now();
                cli_run(case);
                d.push(t.elapsed());
            }
            let ((p50, p99), (c50, c99), (d50, d99)) = (pct(p), pct(c), pct(d));
            let met = p50 < 60.0;
            rows.push([
                format!("{}, request to stored result, p50 / p99 ({n} runs)", case.label),
                format!("{p50:.0} / {p99:.0} ms"),
                format!("{c50:.0} / {c99:.0} ms"),
                format!("{d50:.0} / {d99:.0} ms"),
                format!("pooled p50 < 60 ms: {}", if met { "met" } else { "NOT met" }),
            ]);
            verdicts.push(format!(
                "{}: pooled p50 {p50:.0} ms ({}), {:.1}x faster than cold, {:.1}x faster than the CLI",
                case.label,
                if met { "target met" } else { "target NOT met" },
                c50 / p50,
                d50 / p50
            ));
        }
        pools.shutdown().await;

        for case in CASES {
            let (pooled, pools) = pooled_runs(&backend, &store, total);
            ready(&pools, case.language, total).await;
            let hot = in_flight(total, 8, || async {
                run(&pooled, case).await;
            })
            .await;
            let stats = pools.stats().into_iter().find(|s| s.name == case.language).unwrap();
            pools.shutdown().await;
            let cool = in_flight(total, 8, || async {
                run(&cold, case).await;
            })
            .await;
            let cli =
                in_flight(total, 8, || async { tokio::task::spawn_blocking(move || cli_run(case)).await.unwrap() })
                    .await;
            let met = hot >= 3.0 * cool;
            rows.push([
                format!("{}, throughput, {total} runs with 8 in flight (pool of {total})", case.label),
                format!("{hot:.1} runs/s ({} hits, {} misses)", stats.hits, stats.misses),
                format!("{cool:.1} runs/s"),
                format!("{cli:.1} runs/s"),
                format!("pooled ≥ 3x cold: {} ({:.1}x)", if met { "met" } else { "NOT met" }, hot / cool),
            ]);
            verdicts.push(format!(
                "{}: {:.1}x the cold path's runs per second with 8 in flight ({})",
                case.label,
                hot / cool,
                if met { "target met" } else { "target NOT met" }
            ));
        }
    });

    println!("| measurement | pooled | cold | `docker run --rm` | target |");
    println!("| --- | --- | --- | --- | --- |");
    for r in rows {
        println!("| {} | {} | {} | {} | {} |", r[0], r[1], r[2], r[3], r[4]);
    }
    println!();
    for v in verdicts {
        println!("- {v}");
    }
}
