//! engine-api benchmarks, each beside its floor in the same run; prints a
//! Markdown table (the one in README.md).
//!
//! `cargo bench -p engine-api --bench engine` — needs the provisioned daemon.
//! `BERTH_BENCH_QUICK=1` shrinks every measurement (CI runs it that way to
//! keep the bench working; the README's numbers come from a full run);
//! `BERTH_BENCH_ONLY=demux|ping|logs` runs one of them (for profiling).
//!
//! 1. demux of mixed frames (8 B to 64 KiB) cut into chunks so that frames
//!    straddle them, against a plain memcpy of the same chunks;
//! 2. the logs of a container that wrote 256 MiB without a TTY, through the
//!    client on both tokio runtime flavours, against `curl --unix-socket`;
//! 3. ping p50/p99 through the client against a bare hyper connection kept
//!    alive, one call of each in turn, on both runtime flavours.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine_api::decode::mux::{encode_frame, Demuxer};
use engine_api::models::ContainerConfig;
use engine_api::{Docker, LogsOptions, RemoveOptions, WaitCondition};
use futures_util::StreamExt;

struct Row {
    what: String,
    ours: String,
    floor: String,
    ratio: String,
    target: Target,
}

/// The target for a row, on the measured ratio to its floor.
enum Target {
    AtLeast(f64, f64),
    AtMost(f64, f64),
    /// Measured for comparison only: `berth serve` runs its engine IO on
    /// the current-thread runtime, where the target applies.
    Comparison,
}

impl Target {
    fn met(&self) -> bool {
        match *self {
            Target::AtLeast(ratio, want) => ratio >= want,
            Target::AtMost(ratio, want) => ratio <= want,
            Target::Comparison => true,
        }
    }

    fn describe(&self) -> String {
        let verdict = if self.met() { "met" } else { "MISSED" };
        match *self {
            Target::AtLeast(_, want) => format!("≥ {want:.1}x: {verdict}"),
            Target::AtMost(_, want) => format!("≤ {want:.1}x: {verdict}"),
            Target::Comparison => "comparison (serve runs current_thread)".into(),
        }
    }
}

fn quick() -> bool {
    std::env::var("BERTH_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// xorshift: deterministic sizes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn demux_rows() -> Vec<Row> {
    let total = if quick() { 16 << 20 } else { 256 << 20 };
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut body = Vec::with_capacity(total + (64 << 10));
    let payload = vec![b'x'; 64 << 10];
    while body.len() < total {
        // Log-uniform sizes from 8 B to 64 KiB.
        let bits = 3 + rng.next() % 14;
        let len = (8 + rng.next() % (1 << bits)).min(64 << 10) as usize;
        encode_frame(1 + (rng.next() % 2) as u8, &payload[..len], &mut body);
    }
    let body = Bytes::from(body);
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let len = (1024 + rng.next() % (31 << 10)) as usize; // 1–32 KiB, like socket reads
        let end = (at + len).min(body.len());
        chunks.push(body.slice(at..end));
        at = end;
    }
    let rounds = if quick() { 3 } else { 5 };

    let mut best_demux = Duration::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut d = Demuxer::new();
        let mut seen = 0usize;
        for chunk in &chunks {
            d.push(chunk.clone());
            while let Some(out) = d.next_output().expect("valid frames") {
                seen += out.data.len();
            }
        }
        d.finish().expect("ends at a frame boundary");
        best_demux = best_demux.min(start.elapsed());
        black_box(seen);
    }
    let mut dst = vec![0u8; 64 << 10];
    let mut best_copy = Duration::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        for chunk in &chunks {
            dst[..chunk.len()].copy_from_slice(chunk);
            black_box(&dst);
        }
        best_copy = best_copy.min(start.elapsed());
    }
    let gbps = |d: Duration| body.len() as f64 / d.as_secs_f64() / 1e9;
    vec![Row {
        what: format!("demux {} MiB of 8 B–64 KiB frames in 1–32 KiB chunks", body.len() >> 20),
        ours: format!("{:.1} GB/s", gbps(best_demux)),
        floor: format!("memcpy {:.1} GB/s", gbps(best_copy)),
        ratio: format!("{:.1}x memcpy", gbps(best_demux) / gbps(best_copy)),
        target: Target::AtLeast(gbps(best_demux) / gbps(best_copy), 1.0),
    }]
}

fn runtime(flavour: &str) -> tokio::runtime::Runtime {
    match flavour {
        "current_thread" => tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap(),
    }
}

/// Creates a container that writes `bytes` of 8 KiB lines to stdout and exits.
async fn log_writer(docker: &Docker, bytes: u64) -> String {
    let line = "0123456789abcdef".repeat(512)[..8191].to_owned(); // 8 KiB with the newline
    let config = ContainerConfig {
        image: Some("busybox:1.35".into()),
        cmd: Some(vec!["sh".into(), "-c".into(), format!("yes {line} | head -c {bytes}")]),
        ..Default::default()
    };
    let name = format!("berth-bench-logs-{}", std::process::id());
    let id = docker.create_container(Some(&name), &config).await.unwrap().id;
    let wait = docker.wait_container(&id, WaitCondition::NextExit).await.unwrap();
    docker.start_container(&id).await.unwrap();
    assert_eq!(wait.exit().await.unwrap().status_code, 0);
    id
}

async fn fetch_logs(docker: &Docker, id: &str) -> (usize, Duration) {
    let start = Instant::now();
    let opts = LogsOptions { stdout: true, tty: Some(false), ..Default::default() };
    let mut stream = docker.logs(id, &opts).await.unwrap();
    let mut n = 0;
    while let Some(out) = stream.next().await {
        n += out.unwrap().data.len();
    }
    (n, start.elapsed())
}

fn curl_logs(path: &str) -> (usize, Duration) {
    let start = Instant::now();
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{size_download}", "--unix-socket", "/var/run/docker.sock"])
        .arg(format!("http://docker{path}"))
        .output()
        .expect("curl runs");
    let elapsed = start.elapsed();
    let size = String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().unwrap_or(0.0) as usize;
    (size, elapsed)
}

fn logs_rows() -> Vec<Row> {
    let bytes: u64 = if quick() { 16 << 20 } else { 256 << 20 };
    let rounds = if quick() { 1 } else { 5 };
    let rt = runtime("current_thread");
    let docker = Docker::from_env().unwrap();
    let id = rt.block_on(log_writer(&docker, bytes));
    let version = rt.block_on(docker.api_version()).unwrap();
    let path = format!("/v{version}/containers/{id}/logs?stdout=true");
    let mbps = |n: usize, d: Duration| n as f64 / d.as_secs_f64() / 1e6;

    // Rounds interleave curl and both flavours, so drift (the page cache,
    // dockerd's own state) hits them alike; each keeps its best round.
    const FLAVOURS: [&str; 2] = ["current_thread", "multi_thread"];
    let clients: Vec<_> = FLAVOURS.iter().map(|f| (runtime(f), Docker::from_env().unwrap())).collect();
    let mut curl_best = 0.0f64;
    let mut bests = [0.0f64; 2];
    let mut payloads = [0usize; 2];
    for _ in 0..rounds {
        let (curl_bytes, d) = curl_logs(&path);
        curl_best = curl_best.max(mbps(curl_bytes, d));
        for (i, (rt, docker)) in clients.iter().enumerate() {
            let (n, d) = rt.block_on(fetch_logs(docker, &id));
            payloads[i] = n;
            // Compare like with like: the wire bytes curl counted, in our time.
            bests[i] = bests[i].max(mbps(curl_bytes.max(n), d));
        }
    }
    let mut rows = Vec::new();
    for (i, flavour) in FLAVOURS.into_iter().enumerate() {
        let (best, payload) = (bests[i], payloads[i]);
        assert_eq!(payload as u64, bytes, "every byte the container wrote came back");
        rows.push(Row {
            what: format!("logs of a container that wrote {} MiB, 8 KiB lines, no TTY ({flavour})", bytes >> 20),
            ours: format!("{best:.0} MB/s"),
            floor: format!("curl {curl_best:.0} MB/s"),
            ratio: format!("{:.2}x curl", best / curl_best),
            target: match flavour {
                "current_thread" => Target::AtLeast(best / curl_best, 0.9),
                _ => Target::Comparison,
            },
        });
    }
    rt.block_on(docker.remove_container(&id, RemoveOptions { force: true, volumes: true })).unwrap();
    rows
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1e3;
    (at(0.50), at(0.99))
}

/// `n` pings through the client and `n` through a bare hyper connection
/// kept alive doing the same `GET /v{version}/_ping` and nothing else,
/// one of each in turn, so that drift (the daemon, the other core) falls
/// on both alike. Returns (client, bare) latencies.
async fn interleaved_pings(docker: &Docker, target: &str, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::UnixStream::connect("/var/run/docker.sock").await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let (mut ours, mut bare) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let start = Instant::now();
        sender.ready().await.unwrap();
        let req = http::Request::get(target).header("host", "docker").body(Empty::new()).unwrap();
        let res = sender.send_request(req).await.unwrap();
        res.into_body().collect().await.unwrap();
        bare.push(start.elapsed());

        let start = Instant::now();
        docker.ping().await.unwrap();
        ours.push(start.elapsed());
    }
    (ours, bare)
}

fn ping_rows() -> Vec<Row> {
    let n = if quick() { 500 } else { 5000 };
    let mut rows = Vec::new();
    for flavour in ["current_thread", "multi_thread"] {
        let rt = runtime(flavour);
        let docker = Docker::from_env().unwrap();
        let target = format!("/v{}/_ping", rt.block_on(docker.api_version()).unwrap());
        // Warm both up, then alternate one call of each.
        rt.block_on(interleaved_pings(&docker, &target, 200));
        let (ours, bare) = rt.block_on(interleaved_pings(&docker, &target, n));
        let (o50, o99) = percentiles(ours);
        let (b50, b99) = percentiles(bare);
        rows.push(Row {
            what: format!("ping p50 / p99, {n} calls ({flavour})"),
            ours: format!("{o50:.3} / {o99:.3} ms"),
            floor: format!("bare hyper {b50:.3} / {b99:.3} ms"),
            ratio: format!("{:.2}x / {:.2}x", o50 / b50, o99 / b99),
            target: match flavour {
                "current_thread" => Target::AtMost((o50 / b50).max(o99 / b99), 1.1),
                _ => Target::Comparison,
            },
        });
    }
    rows
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it, and then it only proves it builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // BERTH_BENCH_ONLY=demux|ping|logs runs one measurement (for profiling).
    let only = std::env::var("BERTH_BENCH_ONLY").unwrap_or_default();
    let wanted = |what: &str| only.is_empty() || only == what;
    let mut rows = Vec::new();
    if wanted("demux") {
        rows.extend(demux_rows());
    }
    if wanted("ping") {
        rows.extend(ping_rows());
    }
    if wanted("logs") {
        rows.extend(logs_rows());
    }
    println!("| measurement | engine-api | floor | ratio | target |");
    println!("| --- | --- | --- | --- | --- |");
    for r in &rows {
        println!("| {} | {} | {} | {} | {} |", r.what, r.ours, r.floor, r.ratio, r.target.describe());
    }
    // Quick runs are too short to judge; a full run that misses a target fails.
    if !quick() && rows.iter().any(|r| !r.target.met()) {
        eprintln!("a target was missed");
        std::process::exit(1);
    }
}
