//! The swarm backend on the rig of `scripts/swarm-rig.sh` (brought up when
//! it is not): `echo hi` from request to stored result through berth,
//! beside the bare Engine API sequence of the same service (create, the
//! container's exit awaited on its node as soon as the task has one, remove:
//! what any swarm client must do at least; and the slower sequence of a
//! client of the manager alone, which polls the task to `complete`)
//! and beside the same run cold on the host's single engine, interleaved;
//! a tool run on the node's bridge and a code run on its own internal
//! overlay (the network made and removed with it, in the floor too); a
//! pooled code run, handed to a warm member on the node the manager put it
//! on, each arriving at a pool at rest; then 50 runs with 8 in flight, runs
//! per node. Prints a Markdown table (the one
//! in README.md) and whether the targets (cold at most 1.1x the bare
//! sequence, pooled p50 under 60 ms) are met. `BERTH_BENCH_QUICK=1` shrinks every measurement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::context::Context;
use berth_core::engine::Engine;
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::policy::{ContainerRequest, Policy};
use berth_core::pool::{PoolConfig, PoolSpec, Pools};
use berth_core::runs::{RunRecord, RunRequest, RunStatus, Runs, Workload};
use berth_core::spec::Kind;
use berth_core::store::Store;
use berth_docker::DockerBackend;
use berth_swarm::{NodeEngine, SwarmBackend};
use engine_api::{Docker, Filters};
use futures_util::StreamExt;

use test_support::bench::{pct, quick};

#[path = "../tests/swarm/rig.rs"]
mod rig;

use self::rig::{node_docker, NODES};

/// A tool run of `echo hi` on the bridge (`sealed: false`) or a code run on
/// its own overlay (`sealed: true`).
fn request(sealed: bool) -> RunRequest {
    if sealed {
        RunRequest::new("bench", Workload::Code { language: "sh".into(), code: "echo hi".into() })
    } else {
        let command = Some(vec!["sh".into(), "-c".into(), "echo hi".into()]);
        RunRequest::new("bench", Workload::Tool { image: "busybox:1.35".into(), command })
    }
}

async fn run(runs: &Runs, sealed: bool) -> RunRecord {
    let run = runs.execute(request(sealed)).await.unwrap();
    assert_eq!((run.status, run.stdout.as_str()), (RunStatus::Succeeded, "hi\n"), "{run:?}");
    run
}

/// How the bare sequence learns that the task is over.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    /// The manager's task state turns `complete` (reported by the node's
    /// agent, batched: what a client of the manager alone sees).
    Manager,
    /// The container's exit, awaited on its node's engine as soon as the
    /// task has one (what berth does).
    Node,
}

/// The bare sequence of the service berth would make for the same run:
/// its own overlay first when `sealed`, the service, its end as `ending`
/// says, the service removed, the overlay removed.
async fn bare(manager: &Docker, sealed: bool, ending: Ending, n: usize) {
    let name = format!("bench-bare-{}-{n}", std::process::id());
    let mut req = ContainerRequest::new(if sealed { Kind::Code } else { Kind::Tool }, name.clone(), "busybox:1.35");
    req.cmd = Some(vec!["sh".into(), "-c".into(), "echo hi".into()]);
    let spec = Policy::default().admit(req).unwrap();
    let service = berth_swarm::service::service_spec(&spec, &[]).unwrap();
    if let Some(network) = berth_swarm::service::sealed_network(&spec) {
        manager.create_network(&network).await.unwrap();
    }
    let id = manager.create_service(&service).await.unwrap().id;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = manager.list_tasks(&Filters::new().add("service", id.clone())).await.unwrap();
        let task = tasks.first();
        let container = task.and_then(|t| t.status.container_status.as_ref()).map(|c| c.container_id.clone());
        match (ending, task.map(|t| t.status.state.as_str()), container) {
            (Ending::Manager, Some("complete"), _) => break,
            (Ending::Node, _, Some(container)) if !container.is_empty() => {
                let node_id = task.unwrap().node_id.clone();
                let nodes = manager.list_nodes().await.unwrap();
                let host = nodes.iter().find(|n| n.id == node_id).unwrap().description.hostname.clone();
                let node = node_docker(&host);
                let waiting = node.wait_container(&container, engine_api::WaitCondition::NotRunning).await.unwrap();
                waiting.exit().await.unwrap();
                break;
            }
            (_, Some(s @ ("failed" | "rejected")), _) => panic!("the bare service's task {s}"),
            _ => assert!(Instant::now() < deadline, "the bare service did not complete"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    manager.remove_service(&id).await.unwrap();
    if sealed {
        while manager.remove_network(&name).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn main() {
    rig::rig();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("berth.db")).unwrap());
    let nodes = NODES.iter().map(|n| NodeEngine { name: (*n).to_owned(), docker: node_docker(n) }).collect();
    let swarm: Arc<dyn Engine> = Arc::new(SwarmBackend::new(node_docker("bsw-n1"), nodes));
    let host: Arc<dyn Engine> = Arc::new(DockerBackend::new(Docker::from_env().expect("DOCKER_HOST")));
    let runs_on = |engine: &Arc<dyn Engine>| {
        let ctx =
            Context::new(engine.clone(), Policy::default(), store.clone(), Arc::new(RandomIds), Arc::new(SystemClock));
        Arc::new(Runs::new(&ctx, 64))
    };
    let (on_swarm, on_host) = (runs_on(&swarm), runs_on(&host));
    let manager = node_docker("bsw-n1");
    let n = if quick() { 3 } else { 30 };
    let total = if quick() { 8 } else { 50 };
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut verdicts = Vec::new();

    rt.block_on(async {
        for (sealed, label) in [(false, "tool run `echo hi` (node bridge)"), (true, "code run `echo hi` (own overlay)")]
        {
            // Warm-up of every path.
            run(&on_swarm, sealed).await;
            bare(&manager, sealed, Ending::Node, 0).await;
            bare(&manager, sealed, Ending::Manager, 0).await;
            run(&on_host, sealed).await;
            let (mut b, mut f, mut m, mut h) = (vec![], vec![], vec![], vec![]);
            // Each round starts with another of the four, so none always
            // follows the swarm's cleanup of the one before it.
            for i in 0..n {
                for k in 0..4 {
                    let t = Instant::now();
                    match (i + k) % 4 {
                        0 => drop(run(&on_swarm, sealed).await),
                        1 => bare(&manager, sealed, Ending::Node, i + 1).await,
                        2 => bare(&manager, sealed, Ending::Manager, i + 1).await,
                        _ => drop(run(&on_host, sealed).await),
                    }
                    [&mut b, &mut f, &mut m, &mut h][(i + k) % 4].push(t.elapsed());
                }
            }
            let ((b50, b99), (f50, f99), (m50, m99), (h50, h99)) = (pct(b), pct(f), pct(m), pct(h));
            let ratio = b50 / f50;
            let row = |what: &str, p50: f64, p99: f64, against: String| {
                [format!("{label}, {what}"), format!("{p50:.0}"), format!("{p99:.0}"), against]
            };
            rows.push(row("cold through berth on the swarm", b50, b99, format!("{ratio:.2}x the bare sequence")));
            rows.push(row("bare: service, exit awaited on the node, removal", f50, f99, "floor".into()));
            let manager_only = format!("{:.2}x the floor", m50 / f50);
            rows.push(row("bare: service, manager polled to `complete`, removal", m50, m99, manager_only));
            rows.push(row(
                "cold through berth on one engine (host)",
                h50,
                h99,
                format!("{:.2}x the swarm run", h50 / b50),
            ));
            let met = if ratio <= 1.1 { "met" } else { "missed" };
            verdicts.push(format!("{label}: cold p50 {ratio:.2}x the bare sequence (target ≤1.1x): {met}"));
        }

        // Pooled: code runs handed to a warm member (its task placed by the
        // manager, attached on its node), each arriving at a pool at rest.
        let ctx =
            Context::new(swarm.clone(), Policy::default(), store.clone(), Arc::new(RandomIds), Arc::new(SystemClock));
        let spec = PoolSpec { image: "busybox:1.35".into(), min: 2, max: 2 };
        let config =
            PoolConfig { pools: BTreeMap::from([("sh".to_owned(), spec)]), demand: None, ..Default::default() };
        let pools = Pools::new(&ctx, config).unwrap();
        let pooled = Runs::new(&ctx, 64).with_pools(pools.clone());
        pools.refill();
        let (mut p, mut on) = (vec![], BTreeMap::<String, usize>::new());
        for i in 0..n + 1 {
            let deadline = Instant::now() + Duration::from_secs(120);
            while pools.stats().iter().find(|s| s.name == "sh").map_or(0, |s| s.idle) < 2 {
                assert!(Instant::now() < deadline, "the pool did not refill");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            pools.settle().await;
            let t = Instant::now();
            let run = run(&pooled, true).await;
            let took = t.elapsed();
            assert_eq!(run.path, "pooled", "the pool kept up");
            if i > 0 {
                p.push(took);
                *on.entry(run.placement.node().unwrap_or("?").to_owned()).or_default() += 1;
            }
        }
        pools.shutdown().await;
        let (p50, p99) = pct(p);
        let spread = on.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        let met = if p50 < 60.0 { "met" } else { "missed" };
        rows.push([
            "pooled code run `echo hi`, request to stored result".into(),
            format!("{p50:.0}"),
            format!("{p99:.0}"),
            format!("target < 60 ms: {met} ({spread})"),
        ]);
        verdicts.push(format!("pooled run: p50 {p50:.0} ms (target < 60 ms): {met}"));

        let t = Instant::now();
        let runs: Vec<RunRecord> = futures_util::stream::iter((0..total).map(|_| {
            let on_swarm = on_swarm.clone();
            async move { run(&on_swarm, false).await }
        }))
        .buffer_unordered(8)
        .collect()
        .await;
        let rate = total as f64 / t.elapsed().as_secs_f64();
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for r in &runs {
            *per_node.entry(r.placement.node().unwrap_or("?").to_owned()).or_default() += 1;
        }
        let spread = per_node.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        rows.push([format!("{total} tool runs, 8 in flight"), format!("{rate:.1} runs/s"), "".into(), spread]);
    });

    println!("| swarm (3 nodes, this machine) | p50 ms | p99 ms | against |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
    }
    for v in verdicts {
        println!("{v}");
    }
}
