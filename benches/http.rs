//! The native API's read path against its floor, in the same run; prints a
//! Markdown table (the one in README.md). Needs no daemon.
//! `BERTH_BENCH_QUICK=1` shrinks every measurement.
//!
//! `GET /v1/runs/{id}` of berth (auth, tenant lookup in SQLite, request id,
//! access log layer, JSON of the record) beside a bare axum handler that
//! answers the same bytes from memory, each served on loopback by a
//! current-thread runtime on its own thread (as `berth serve` runs), each
//! driven by the same client: p50/p99 of one request at a time on a
//! keep-alive connection, and requests per second over 4 connections.
//! Then `GET /v1/metrics` of a berth whose store holds 10 000 records (runs
//! and sandboxes), its gauges refreshed and its families filled by runs and
//! requests, beside a bare handler that answers the same exposition (on the
//! OCI dry run: no daemon is asked).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use berth_api::native::{app, AppState, Tokens};
use berth_core::context::Context;
use berth_core::engine::Engine;
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::policy::Policy;
use berth_core::runs::{RunId, RunRecord, RunStatus, RunUsage};
use berth_core::store::Store;
use berth_core::{Core, Options};
use berth_docker::DockerBackend;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

fn quick() -> bool {
    std::env::var("BERTH_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

const TOKEN: &str = "bench-token";

fn record() -> RunRecord {
    RunRecord {
        runtime: None,
        id: RunId("run_0123456789ab".into()),
        tenant: "bench".into(),
        session: Some("session_bench".into()),
        name: Some("pdf_extractor".into()),
        image: "busybox:1.35".into(),
        kind: Some(berth_core::spec::Kind::Tool),
        status: RunStatus::Succeeded,
        exit_code: Some(0),
        stdout: "{\"pages\": 12, \"text\": \"".to_owned() + &"lorem ipsum ".repeat(30) + "\"}\n",
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        result: Some(serde_json::json!({"pages": 12})),
        usage: RunUsage { wall_ms: 412, cpu_ms: Some(31), peak_memory_bytes: Some(3 << 20) },
        container_id: Some("f".repeat(64)),
        placement: Default::default(),
        container_name: "berth-run-0123456789ab".into(),
        container_removed: true,
        error: None,
        path: "cold".into(),
        plan: None,
        created_at: chrono::Utc::now(),
        finished_at: Some(chrono::Utc::now()),
    }
}

/// Serves `router` on a loopback port from a current-thread runtime on a thread of its own.
fn serve(router: Router) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.unwrap();
        })
    });
    addr
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn get_once(sender: &mut Sender, path: &str) -> usize {
    sender.ready().await.unwrap();
    let req = hyper::Request::get(path)
        .header("host", "bench")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Empty::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap().to_bytes().len()
}

struct Measured {
    p50_ms: f64,
    p99_ms: f64,
    rps: f64,
}

fn measure(addr: SocketAddr, path: &'static str) -> Measured {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let (warm, samples, window) =
            if quick() { (50, 300, Duration::from_millis(300)) } else { (500, 5000, Duration::from_secs(3)) };
        let mut one = connect(addr).await;
        for _ in 0..warm {
            get_once(&mut one, path).await;
        }
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            get_once(&mut one, path).await;
            times.push(t.elapsed());
        }
        times.sort_unstable();
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)].as_secs_f64() * 1e3;
        let (p50_ms, p99_ms) = (at(0.5), at(0.99));

        let deadline = Instant::now() + window;
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let mut sender = connect(addr).await;
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    get_once(&mut sender, path).await;
                    n += 1;
                }
                n
            }));
        }
        let start = Instant::now();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        Measured { p50_ms, p99_ms, rps: total as f64 / start.elapsed().as_secs_f64() }
    })
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it, and then it only proves it builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rec = record();
    let store = Arc::new(Store::in_memory().unwrap());
    store.put_run(&rec).unwrap();
    // A daemon is never asked: reading a run touches only the store.
    let backend: Arc<dyn Engine> =
        Arc::new(DockerBackend::new(engine_api::Docker::from_env().expect("a DOCKER_HOST that parses")));
    let core = Arc::new(Core::new(
        Context::new(backend, Policy::default(), store, Arc::new(RandomIds), Arc::new(SystemClock)),
        Options::default(),
    ));
    let tokens = Tokens([(TOKEN.to_owned(), "bench".to_owned())].into());
    let berth = serve(app(AppState::new(core, tokens)));

    // The floor: the same body, from memory, with nothing around it.
    let bare = floor(berth, "/v1/runs/run_0123456789ab", "/v1/runs/{id}", "application/json");
    let path = "/v1/runs/run_0123456789ab";
    let b = measure(berth, path);
    let f = measure(bare, path);

    let scraped =
        serve(app(AppState::new(scraped_core(10_000), Tokens([(TOKEN.to_owned(), "bench".to_owned())].into()))));
    let bare_scrape = floor(scraped, "/v1/metrics", "/v1/metrics", "application/openmetrics-text; version=1.0.0");
    let sm = measure(scraped, "/v1/metrics");
    let sf = measure(bare_scrape, "/v1/metrics");
    println!("| measurement | berth | bare axum handler | ratio |");
    println!("| --- | --- | --- | --- |");
    println!("| `GET /v1/runs/{{id}}` p50 | {:.3} ms | {:.3} ms | {:.2}x |", b.p50_ms, f.p50_ms, b.p50_ms / f.p50_ms);
    println!("| `GET /v1/runs/{{id}}` p99 | {:.3} ms | {:.3} ms | {:.2}x |", b.p99_ms, f.p99_ms, b.p99_ms / f.p99_ms);
    println!("| requests per second, 4 connections | {:.0} | {:.0} | {:.2} of bare |", b.rps, f.rps, b.rps / f.rps);
    let rows = [("p50", sm.p50_ms, sf.p50_ms), ("p99", sm.p99_ms, sf.p99_ms)];
    for (q, berth_ms, bare_ms) in rows {
        println!(
            "| `GET /v1/metrics` {q}, 10 000 stored records | {berth_ms:.3} ms | {bare_ms:.3} ms | {:.2}x |",
            berth_ms / bare_ms
        );
    }
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!();
    println!(
        "targets: p50 under 1 ms: {}; at least half the bare rate: {}; scrape p99 under 5 ms: {}",
        verdict(b.p50_ms < 1.0),
        verdict(b.rps >= f.rps / 2.0),
        verdict(sm.p99_ms < 5.0)
    );
}

/// A core on the OCI dry run whose store holds `records` records (nine in
/// ten runs, the rest sandboxes), with 40 runs made through it and its
/// gauges refreshed: what a scrape of a berth that has worked a while
/// encodes.
fn scraped_core(records: usize) -> Arc<Core> {
    let bundles = std::env::temp_dir().join(format!("berth-bench-scrape-{}", std::process::id()));
    let store = Arc::new(Store::in_memory().unwrap());
    let mut run = record();
    for i in 0..records {
        if i % 10 == 9 {
            let sandbox = serde_json::json!({"id": format!("sbx{i:012x}"), "state": "running"});
            store.put_object(&format!("sbx{i:012x}"), "sandbox", "bench", None, &sandbox).unwrap();
        } else {
            run.id = RunId(format!("run_{i:012x}"));
            store.put_run(&run).unwrap();
        }
    }
    let backend: Arc<dyn Engine> = Arc::new(berth_oci::OciDryRun::new(bundles));
    let core = Arc::new(Core::new(
        Context::new(backend, Policy::default(), store, Arc::new(RandomIds), Arc::new(SystemClock)),
        Options::default(),
    ));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for i in 0..40 {
            let code = berth_core::runs::Workload::Code { language: "sh".into(), code: format!("echo {i}") };
            let done = core.run(berth_core::runs::RunRequest::new("bench", code), None).await.unwrap();
            assert_eq!(done.status, RunStatus::DryRun);
        }
        core.refresh_gauges().await;
    });
    core
}

/// A bare handler at `route` answering, as `content_type`, exactly what
/// berth at `berth` answered at `path`, served as berth is.
fn floor(berth: SocketAddr, path: &'static str, route: &str, content_type: &'static str) -> SocketAddr {
    let body = {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { measure_body(berth, path).await })
    };
    serve(Router::new().route(
        route,
        get(move || {
            let body = body.clone();
            async move { ([("content-type", content_type)], body) }
        }),
    ))
}

/// What berth answers at `path`: the floor serves exactly these bytes.
async fn measure_body(addr: SocketAddr, path: &str) -> Bytes {
    let mut sender = connect(addr).await;
    sender.ready().await.unwrap();
    let req = hyper::Request::get(path)
        .header("host", "bench")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Empty::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    res.into_body().collect().await.unwrap().to_bytes()
}
