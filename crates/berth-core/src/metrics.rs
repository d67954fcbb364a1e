//! What berth counts about itself, for a scraper: runs started and
//! finished, how long each phase of a run took, engine calls by operation
//! with their latency and errors, and gauges of what exists now
//! (workloads by kind and state, sessions, sandboxes by state, nodes by
//! state), the gauges refreshed by a background round
//! ([`crate::Core::refresh_gauges`]) so that a scrape only encodes.
//!
//! Every label takes its value from a bounded set: kinds, statuses, paths,
//! phases, backends, runtimes, operations, error kinds, states. No run,
//! agent or sandbox id and no tenant's text is ever a label.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::engine::EngineErrorKind;

/// The bounds of every latency histogram, in seconds: 1 ms to 5 min.
const BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// A run as its counters see it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// `code` or `tool`.
    pub kind: String,
    /// `cold` or `pooled`.
    pub path: String,
    /// The backend that ran it (`docker`, `swarm`, `oci`, …).
    pub backend: String,
    /// What ran it (`docker`, `runc`, `runsc`, …).
    pub runtime: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunEndLabels {
    kind: String,
    path: String,
    backend: String,
    runtime: String,
    status: String,
}

/// The phases of a run, as README.md defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    /// From the request to a slot: admission, the image's check, the record.
    Admission,
    /// From the slot until the workload runs (its container started, or a
    /// warm member handed the run).
    Start,
    /// From running to its end (exit, timeout, cancel, OOM).
    Execution,
    /// From the request to the stored final record.
    Total,
}

impl RunPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Admission => "admission",
            RunPhase::Start => "start",
            RunPhase::Execution => "execution",
            RunPhase::Total => "total",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
    kind: String,
    path: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    backend: &'static str,
    operation: &'static str,
    /// `ok`, or the error's kind (`not_found`, `unavailable`, …).
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    backend: &'static str,
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabels {
    backend: String,
    kind: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    state: String,
    availability: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// What exists now, as one refresh round found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// (backend, kind, state) → berth's workloads in that state.
    pub workloads: Vec<((String, String, String), i64)>,
    pub sessions: i64,
    /// Sandbox records by state.
    pub sandboxes: Vec<(String, i64)>,
    /// (state, availability) → nodes.
    pub nodes: Vec<((String, String), i64)>,
}

/// berth's own numbers, in one registry (prefix `berth`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs_started: Family<RunLabels, Counter>,
    runs_finished: Family<RunEndLabels, Counter>,
    run_phases: Histograms<PhaseLabels>,
    engine_calls: Family<CallLabels, Counter>,
    engine_latency: Histograms<OperationLabels>,
    workloads: Family<WorkloadLabels, Gauge>,
    sessions: Gauge,
    sandboxes: Family<StateLabels, Gauge>,
    nodes: Family<NodeLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("berth");
        let runs_started = Family::<RunLabels, Counter>::default();
        registry.register("runs_started", "Runs whose workload started", runs_started.clone());
        let runs_finished = Family::<RunEndLabels, Counter>::default();
        registry.register("runs_finished", "Runs that ended, by how", runs_finished.clone());
        let run_phases: Histograms<PhaseLabels> = Family::new_with_constructor(histogram);
        registry.register_with_unit(
            "run_phase",
            "How long each phase of a run took",
            Unit::Seconds,
            run_phases.clone(),
        );
        let engine_calls = Family::<CallLabels, Counter>::default();
        registry.register("engine_calls", "Calls to an engine, by operation and outcome", engine_calls.clone());
        let engine_latency: Histograms<OperationLabels> = Family::new_with_constructor(histogram);
        registry.register_with_unit(
            "engine_call",
            "How long a call to an engine took",
            Unit::Seconds,
            engine_latency.clone(),
        );
        let workloads = Family::<WorkloadLabels, Gauge>::default();
        registry.register("workloads", "berth's workloads on its engines, by kind and state", workloads.clone());
        let sessions = Gauge::default();
        registry.register("sessions", "Sessions open", sessions.clone());
        let sandboxes = Family::<StateLabels, Gauge>::default();
        registry.register("sandboxes", "Sandbox records, by state", sandboxes.clone());
        let nodes = Family::<NodeLabels, Gauge>::default();
        registry.register("nodes", "A cluster's nodes, by state and availability", nodes.clone());
        // A gauge of 1 rather than OpenMetrics' info type, which the
        // Prometheus text parsers (promtool's among them) refuse.
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "The berth that serves", build);
        Metrics {
            registry,
            runs_started,
            runs_finished,
            run_phases,
            engine_calls,
            engine_latency,
            workloads,
            sessions,
            sandboxes,
            nodes,
        }
    }
}

impl Metrics {
    /// The registry to encode.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn run_started(&self, run: &RunLabels) {
        self.runs_started.get_or_create(run).inc();
    }

    /// A run's end, with how long each of its phases took (a run that never
    /// ran has no start or execution).
    pub(crate) fn run_finished(&self, run: &RunLabels, status: &str, phases: &[(RunPhase, Duration)]) {
        let end = RunEndLabels {
            kind: run.kind.clone(),
            path: run.path.clone(),
            backend: run.backend.clone(),
            runtime: run.runtime.clone(),
            status: status.to_owned(),
        };
        self.runs_finished.get_or_create(&end).inc();
        for (phase, took) in phases {
            let labels = PhaseLabels { phase: phase.as_str(), kind: run.kind.clone(), path: run.path.clone() };
            self.run_phases.get_or_create(&labels).observe(took.as_secs_f64());
        }
    }

    pub(crate) fn engine_call(
        &self,
        backend: &'static str,
        operation: &'static str,
        took: Duration,
        error: Option<EngineErrorKind>,
    ) {
        let outcome = error.map_or("ok", EngineErrorKind::as_str);
        self.engine_calls.get_or_create(&CallLabels { backend, operation, outcome }).inc();
        self.engine_latency.get_or_create(&OperationLabels { backend, operation }).observe(took.as_secs_f64());
    }

    /// Sets the gauges to what a refresh round found; a label set that is
    /// gone reads 0 rather than its last value.
    pub(crate) fn set_gauges(&self, found: &Gauges) {
        self.workloads.clear();
        for ((backend, kind, state), n) in &found.workloads {
            let labels = WorkloadLabels { backend: backend.clone(), kind: kind.clone(), state: state.clone() };
            self.workloads.get_or_create(&labels).set(*n);
        }
        self.sessions.set(found.sessions);
        self.sandboxes.clear();
        for (state, n) in &found.sandboxes {
            self.sandboxes.get_or_create(&StateLabels { state: state.clone() }).set(*n);
        }
        self.nodes.clear();
        for ((state, availability), n) in &found.nodes {
            let labels = NodeLabels { state: state.clone(), availability: availability.clone() };
            self.nodes.get_or_create(&labels).set(*n);
        }
    }
}

/// The metrics shared by the core's parts.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn text(m: &Metrics) -> String {
        let mut out = String::new();
        encode(&mut out, m.registry()).unwrap();
        out
    }

    fn run() -> RunLabels {
        RunLabels { kind: "code".into(), path: "cold".into(), backend: "docker".into(), runtime: "docker".into() }
    }

    #[test]
    fn a_finished_run_counts_once_by_status_and_observes_each_phase_it_had() {
        let m = Metrics::default();
        m.run_started(&run());
        let phases = [(RunPhase::Admission, Duration::from_millis(2)), (RunPhase::Total, Duration::from_millis(300))];
        m.run_finished(&run(), "succeeded", &phases);
        let out = text(&m);
        assert!(out.contains(
            "berth_runs_started_total{kind=\"code\",path=\"cold\",backend=\"docker\",runtime=\"docker\"} 1\n"
        ));
        assert!(out.contains("berth_runs_finished_total{kind=\"code\",path=\"cold\",backend=\"docker\",runtime=\"docker\",status=\"succeeded\"} 1\n"), "{out}");
        assert!(
            out.contains("berth_run_phase_seconds_count{phase=\"total\",kind=\"code\",path=\"cold\"} 1\n"),
            "{out}"
        );
        assert!(!out.contains("phase=\"execution\""), "{out}");
        assert!(out.contains("berth_build_info{version=\""), "{out}");
    }

    #[test]
    fn an_engine_call_counts_by_outcome_and_a_gauge_set_gone_reads_nothing() {
        let m = Metrics::default();
        m.engine_call("docker", "create", Duration::from_millis(5), None);
        m.engine_call("docker", "create", Duration::from_millis(5), Some(EngineErrorKind::NotFound));
        let out = text(&m);
        assert!(out.contains("berth_engine_calls_total{backend=\"docker\",operation=\"create\",outcome=\"ok\"} 1\n"));
        assert!(out.contains("outcome=\"not_found\"} 1\n"), "{out}");
        assert!(out.contains("berth_engine_call_seconds_count{backend=\"docker\",operation=\"create\"} 2\n"));
        let one = Gauges { sandboxes: vec![("running".into(), 2)], ..Gauges::default() };
        m.set_gauges(&one);
        assert!(text(&m).contains("berth_sandboxes{state=\"running\"} 2\n"));
        m.set_gauges(&Gauges::default());
        assert!(!text(&m).contains("berth_sandboxes{state=\"running\"}"));
    }
}
