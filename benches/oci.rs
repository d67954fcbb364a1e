//! The `oci` backend against the daemon: `echo hi` (sh) and python `print`
//! code runs from request to stored result, cold on the `oci` backend
//! (runc), cold on the docker backend, `docker run --rm` of the same image
//! (the CLI), and a bare `runc run` of the very bundle the backend wrote
//! (berth's overhead over the runtime alone), interleaved in one run; then
//! sustained throughput of `echo hi` runs with 16 in flight on each backend,
//! pools off and on. Prints a Markdown table (the one in README.md) and
//! whether each target is met. Needs the provisioned daemon, root and runc.
//! `BERTH_BENCH_QUICK=1` shrinks every measurement.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::context::Context;
use berth_core::engine::Engine;
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::model::units::ByteSize;
use berth_core::policy::{Policy, PolicyConfig};
use berth_core::pool::{PoolConfig, PoolSpec, Pools};
use berth_core::runs::{RunRequest, RunStatus, Runs, Workload};
use berth_core::store::Store;
use berth_docker::DockerBackend;
use berth_oci::cache::ImageCache;
use berth_oci::runtime::binary::Binary;
use berth_oci::runtime::{OciRuntime, RuntimeConfig};
use futures_util::StreamExt;

use test_support::bench::{pct, quick};

#[derive(Clone, Copy)]
struct Case {
    language: &'static str,
    image: &'static str,
    code: &'static str,
    cli: &'static [&'static str],
    label: &'static str,
}

const CASES: [Case; 2] = [
    Case { language: "sh", image: "busybox:1.35", code: "echo hi", cli: &["echo", "hi"], label: "`echo hi` (sh)" },
    Case {
        language: "python",
        image: "python:3.11-slim",
        code: "print('hi')",
        cli: &["python3", "-c", "print('hi')"],
        label: "python `print('hi')`",
    },
];

fn request(case: Case) -> RunRequest {
    RunRequest::new("bench", Workload::Code { language: case.language.into(), code: case.code.into() })
}

/// One run; returns what ran it and its path.
async fn run(runs: &Runs, case: Case) -> (String, String) {
    let run = runs.execute(request(case)).await.unwrap();
    assert_eq!((run.status, run.stdout.as_str()), (RunStatus::Succeeded, "hi\n"), "{run:?}");
    (run.runtime.unwrap_or_default(), run.path)
}

fn cli_run(case: Case) {
    let out = std::process::Command::new("docker").args(["run", "--rm", case.image]).args(case.cli).output().unwrap();
    assert_eq!(out.stdout, b"hi\n");
}

fn binary(dir: &std::path::Path) -> Binary {
    Binary::runc("runc", dir.join("state"))
}

fn oci_backend(dir: &std::path::Path, images: Arc<dyn Engine>) -> Arc<OciRuntime> {
    let (cache, _) = ImageCache::open(&dir.join("images"), 4 << 30).unwrap();
    let config = RuntimeConfig {
        binary: binary(dir),
        bundles: dir.join("bundles"),
        init: "/usr/bin/tini-static".into(),
        output_cap: PolicyConfig::default().output_cap + 1,
        cgroup_parent: format!("/berth-oci/bench{}", std::process::id()),
        overlay_bytes: 64 << 20,
    };
    OciRuntime::new(config, images, cache)
}

/// The bundle folder of a created (never started) container of `case`.
async fn bundle_of(oci: &Arc<OciRuntime>, case: Case) -> (berth_core::engine::Handle, PathBuf) {
    let mut req = berth_core::policy::ContainerRequest::new(
        berth_core::spec::Kind::Code,
        format!("berth-bench-bare-{}", case.language),
        case.image,
    );
    let mut cmd: Vec<String> =
        if case.language == "sh" { vec!["sh".into(), "-c".into()] } else { vec!["python3".into(), "-c".into()] };
    cmd.push(case.code.into());
    req.cmd = Some(cmd);
    let spec = Policy::default().admit(req).unwrap();
    let h = oci.create(&spec).await.unwrap();
    let dir = oci.config().bundles.join(&h.id.0);
    (h, dir)
}

/// `runc run` of `bundle` as a person would type it, under a fresh id.
fn bare_run(bin: &Binary, bundle: &std::path::Path, n: usize) {
    let id = format!("berth-bench-bare-{}-{n}", std::process::id());
    let out = std::process::Command::new(&bin.path)
        .arg("--root")
        .arg(&bin.state)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"hi\n", "{}", String::from_utf8_lossy(&out.stderr));
}

fn pool_config(total: usize) -> PoolConfig {
    let pools: BTreeMap<String, PoolSpec> =
        BTreeMap::from([("sh".to_owned(), PoolSpec { image: "busybox:1.35".into(), min: 8, max: total.max(8) })]);
    let budget = ByteSize(Policy::default().config.code.memory.bytes() * (total as u64 + 8));
    PoolConfig { pools, memory_budget: budget, demand: None, refill_concurrency: 4, ..Default::default() }
}

/// `total` runs of `echo hi` with 16 in flight: runs per second, and the share that was pooled.
async fn sustained(ctx: &Context, pools: Option<PoolConfig>, total: usize) -> (f64, f64) {
    let mut runs = Runs::new(ctx, 64);
    let pools = pools.map(|config| Pools::new(ctx, config).unwrap());
    if let Some(p) = &pools {
        runs = runs.with_pools(p.clone());
        p.refill();
        // Started as a server starts: its minimum made before the load comes.
        let deadline = Instant::now() + Duration::from_secs(120);
        while p.stats().iter().find(|s| s.name == "sh").map_or(0, |s| s.idle) < 8 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let runs = Arc::new(runs);
    let t = Instant::now();
    let paths: Vec<String> = futures_util::stream::iter((0..total).map(|_| {
        let runs = runs.clone();
        async move { run(&runs, CASES[0]).await.1 }
    }))
    .buffer_unordered(16)
    .collect()
    .await;
    let rate = total as f64 / t.elapsed().as_secs_f64();
    if let Some(p) = pools {
        p.shutdown().await;
    }
    (rate, paths.iter().filter(|p| *p == "pooled").count() as f64 / total as f64)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("berth.db")).unwrap());
    let docker: Arc<dyn Engine> = Arc::new(DockerBackend::new(engine_api::Docker::from_env().expect("DOCKER_HOST")));
    let oci = oci_backend(&dir.path().join("oci"), docker.clone());
    let ctx = |sealed: bool| {
        let ctx =
            Context::new(docker.clone(), Policy::default(), store.clone(), Arc::new(RandomIds), Arc::new(SystemClock));
        if sealed {
            ctx.with_sealed(oci.clone())
        } else {
            ctx
        }
    };
    let (on_oci, on_docker) = (Runs::new(&ctx(true), 64), Runs::new(&ctx(false), 64));
    let n = if quick() { 5 } else { 40 };
    let total = if quick() { 32 } else { 300 };
    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut verdicts: Vec<String> = Vec::new();

    rt.block_on(async {
        for case in CASES {
            // Warm-up of every path: the image unpacked, the daemon's caches hot.
            assert_eq!(run(&on_oci, case).await, ("runc".to_owned(), "cold".to_owned()));
            assert_eq!(run(&on_docker, case).await.0, "docker");
            cli_run(case);
            let (bare_h, bundle) = bundle_of(&oci, case).await;
            let bin = binary(&dir.path().join("oci"));
            bare_run(&bin, &bundle, 0);
            let (mut o, mut d, mut c, mut b) = (vec![], vec![], vec![], vec![]);
            for i in 0..n {
                let t = Instant::now();
                run(&on_oci, case).await;
                o.push(t.elapsed());
                let t = Instant::now();
                run(&on_docker, case).await;
                d.push(t.elapsed());
                let t = Instant::now();
                cli_run(case);
                c.push(t.elapsed());
                let t = Instant::now();
                bare_run(&bin, &bundle, i + 1);
                b.push(t.elapsed());
            }
            oci.remove(&bare_h, true).await.unwrap();
            let ((o50, o99), (d50, d99), (c50, c99), (b50, b99)) = (pct(o), pct(d), pct(c), pct(b));
            let overhead = o50 / b50;
            let cold_met = case.language != "sh" || o50 <= 60.0;
            rows.push([
                format!("{}, request to stored result, p50 / p99 ({n} runs)", case.label),
                format!("{o50:.0} / {o99:.0} ms"),
                format!("{d50:.0} / {d99:.0} ms"),
                format!("{c50:.0} / {c99:.0} ms"),
                format!("{b50:.0} / {b99:.0} ms"),
                format!("{overhead:.2}x bare runc"),
            ]);
            if case.language == "sh" {
                verdicts.push(format!(
                    "{}: oci cold p50 {o50:.0} ms (target ≤ 60 ms: {}), {:.1}x faster than docker cold",
                    case.label,
                    if cold_met { "met" } else { "NOT met" },
                    d50 / o50
                ));
            }
            verdicts.push(format!(
                "{}: berth on runc {overhead:.2}x a bare `runc run` of the same bundle (target ≤ 1.2x: {})",
                case.label,
                if overhead <= 1.2 { "met" } else { "NOT met" }
            ));
        }

        let mut sustained_rows = Vec::new();
        for (label, sealed, pools) in [
            ("oci, pools off", true, false),
            ("oci, pools on", true, true),
            ("docker, pools off", false, false),
            ("docker, pools on", false, true),
        ] {
            let (rate, share) = sustained(&ctx(sealed), pools.then(|| pool_config(total)), total).await;
            sustained_rows.push((label, rate, share));
            if label == "oci, pools on" {
                verdicts.push(format!(
                    "sustained with pools on: {rate:.1} runs/s on the oci backend (target ≥ 20: {})",
                    if rate >= 20.0 { "met" } else { "NOT met" }
                ));
            }
        }
        rows.push([
            format!("`echo hi`, {total} runs with 16 in flight: runs/s (pooled share)"),
            sustained_rows
                .iter()
                .filter(|r| r.0.starts_with("oci"))
                .map(|r| format!("{:.1} ({:.0}%) {}", r.1, r.2 * 100.0, r.0.trim_start_matches("oci, ")))
                .collect::<Vec<_>>()
                .join("; "),
            sustained_rows
                .iter()
                .filter(|r| r.0.starts_with("docker"))
                .map(|r| format!("{:.1} ({:.0}%) {}", r.1, r.2 * 100.0, r.0.trim_start_matches("docker, ")))
                .collect::<Vec<_>>()
                .join("; "),
            "".into(),
            "".into(),
            "".into(),
        ]);
    });

    println!("| measurement | oci (runc) | docker backend | `docker run --rm` | bare `runc run` | berth on runc |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        println!("| {} |", r.join(" | "));
    }
    println!();
    for v in verdicts {
        println!("- {v}");
    }
    berth_oci::runtime::cgroup::Layout::detect().remove_empty(&format!("/berth-oci/bench{}", std::process::id()));
}
