//! Which engine each kind of workload goes to.
//!
//! One shared engine by default; a serving binary may send one kind
//! elsewhere without a front end or another part of the core knowing, and
//! may add engines for sealed runs: code and tool runs with no network,
//! which an OCI runtime berth drives itself can run without the daemon.
//! [`Backends::route`] is the one rule for which engine a run's spec goes
//! to, and [`Backends::of_runtime`] finds it again from the run's record.

use std::sync::Arc;

use super::Engine;
use crate::spec::{ContainerSpec, Kind, Network};

/// Why a run's spec has no engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("runtime {asked:?} is not one of this server's: {known}")]
    Unknown { asked: String, known: String },
    #[error("runtime {0:?} runs only code and tool runs with no network and no ports")]
    NotSealed(String),
}

/// The engine of each workload kind.
#[derive(Clone)]
pub struct Backends {
    agent: Arc<dyn Engine>,
    tool: Arc<dyn Engine>,
    code: Arc<dyn Engine>,
    relic: Arc<dyn Engine>,
    sandbox: Arc<dyn Engine>,
    /// Engines of sealed runs, by their runtime; the first is the default.
    sealed: Vec<Arc<dyn Engine>>,
    /// The engine under another of its own runtimes (runsc registered in
    /// dockerd), for code and tool runs of any network that ask for it.
    /// The same engine as the kinds', so never walked apart.
    engine_runtimes: Vec<Arc<dyn Engine>>,
}

impl Backends {
    /// Every kind on `engine`.
    pub fn shared(engine: Arc<dyn Engine>) -> Self {
        Backends {
            agent: engine.clone(),
            tool: engine.clone(),
            code: engine.clone(),
            relic: engine.clone(),
            sandbox: engine,
            sealed: Vec::new(),
            engine_runtimes: Vec::new(),
        }
    }

    /// Adds an engine for sealed runs (code and tool runs with no network
    /// and no ports); the first one added takes them by default.
    pub fn with_sealed(mut self, engine: Arc<dyn Engine>) -> Self {
        self.sealed.push(engine);
        self
    }

    /// Adds the engine under another of its runtimes, for code and tool
    /// runs that ask for it by [`Engine::asked_as`] or [`Engine::runtime`].
    pub fn with_engine_runtime(mut self, engine: Arc<dyn Engine>) -> Self {
        self.engine_runtimes.push(engine);
        self
    }

    /// Whether `spec` needs nothing of an engine's networking.
    pub fn is_sealed(spec: &ContainerSpec) -> bool {
        matches!(spec.kind, Kind::Code | Kind::Tool) && spec.network == Network::None && spec.ports.is_empty()
    }

    /// The engine a run's `spec` goes to: the one of the runtime it asks
    /// for (berth's own runtime when the run is sealed, else the engine
    /// under that runtime), else the default sealed engine when it is
    /// sealed, else its kind's engine.
    pub fn route(&self, spec: &ContainerSpec) -> Result<&Arc<dyn Engine>, RouteError> {
        let own = self.of(spec.kind);
        let Some(asked) = spec.runtime.as_deref() else {
            return Ok(match self.sealed.first() {
                Some(sealed) if Self::is_sealed(spec) => sealed,
                _ => own,
            });
        };
        if own.runtime() == asked {
            return Ok(own);
        }
        let sealed = self.sealed.iter().find(|e| e.runtime() == asked);
        let runs = matches!(spec.kind, Kind::Code | Kind::Tool);
        let engine = self.engine_runtimes.iter().find(|e| e.runtime() == asked || e.asked_as() == asked);
        match (sealed, engine) {
            (Some(sealed), _) if Self::is_sealed(spec) => Ok(sealed),
            (_, Some(engine)) if runs => Ok(engine),
            (Some(_), _) => Err(RouteError::NotSealed(asked.to_owned())),
            _ => Err(RouteError::Unknown { asked: asked.to_owned(), known: self.runtimes(spec.kind).join(", ") }),
        }
    }

    /// The engine of runtime `runtime` for workloads of `kind` (what a
    /// record names); the kind's engine when it names none or one gone.
    pub fn of_runtime(&self, kind: Kind, runtime: Option<&str>) -> &Arc<dyn Engine> {
        let own = self.of(kind);
        match runtime {
            Some(name) if own.runtime() != name => {
                self.sealed.iter().chain(&self.engine_runtimes).find(|e| e.runtime() == name).unwrap_or(own)
            }
            _ => own,
        }
    }

    /// The runtimes a run of `kind` may ask for.
    pub fn runtimes(&self, kind: Kind) -> Vec<&str> {
        let mut names = vec![self.of(kind).runtime()];
        if matches!(kind, Kind::Code | Kind::Tool) {
            names.extend(self.sealed.iter().chain(&self.engine_runtimes).map(|e| e.runtime()));
        }
        names
    }

    /// The engines of sealed runs, the default first.
    pub fn sealed(&self) -> &[Arc<dyn Engine>] {
        &self.sealed
    }

    /// Sends workloads of `kind` to `engine`.
    pub fn with(mut self, kind: Kind, engine: Arc<dyn Engine>) -> Self {
        *self.slot(kind) = engine;
        self
    }

    fn slot(&mut self, kind: Kind) -> &mut Arc<dyn Engine> {
        match kind {
            Kind::Agent => &mut self.agent,
            Kind::Tool => &mut self.tool,
            Kind::Code => &mut self.code,
            Kind::Relic => &mut self.relic,
            Kind::Sandbox => &mut self.sandbox,
        }
    }

    /// The engine of workloads of `kind`.
    pub fn of(&self, kind: Kind) -> &Arc<dyn Engine> {
        match kind {
            Kind::Agent => &self.agent,
            Kind::Tool => &self.tool,
            Kind::Code => &self.code,
            Kind::Relic => &self.relic,
            Kind::Sandbox => &self.sandbox,
        }
    }

    /// The engine that holds the long-lived workloads and the session
    /// networks: the one berth names in its health and plans.
    pub fn primary(&self) -> &Arc<dyn Engine> {
        &self.agent
    }

    /// The same backends with each engine passed through `wrap` once,
    /// however many kinds share it (so the shared stay shared).
    pub fn map(self, mut wrap: impl FnMut(Arc<dyn Engine>) -> Arc<dyn Engine>) -> Backends {
        let mut done: Vec<(Arc<dyn Engine>, Arc<dyn Engine>)> = Vec::new();
        let mut one = |engine: Arc<dyn Engine>| {
            if let Some((_, wrapped)) = done.iter().find(|(seen, _)| Arc::ptr_eq(seen, &engine)) {
                return wrapped.clone();
            }
            let wrapped = wrap(engine.clone());
            done.push((engine, wrapped.clone()));
            wrapped
        };
        Backends {
            agent: one(self.agent),
            tool: one(self.tool),
            code: one(self.code),
            relic: one(self.relic),
            sandbox: one(self.sandbox),
            sealed: self.sealed.into_iter().map(&mut one).collect(),
            engine_runtimes: self.engine_runtimes.into_iter().map(&mut one).collect(),
        }
    }

    /// Each engine once, the primary first: what a sweep over every
    /// workload berth made walks.
    pub fn distinct(&self) -> Vec<&Arc<dyn Engine>> {
        let mut out: Vec<&Arc<dyn Engine>> = Vec::new();
        for engine in [&self.agent, &self.relic, &self.sandbox, &self.tool, &self.code].into_iter().chain(&self.sealed)
        {
            if !out.iter().any(|seen| Arc::ptr_eq(seen, engine)) {
                out.push(engine);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;

    #[test]
    fn a_mapped_engine_shared_by_every_kind_is_wrapped_once() {
        let main: Arc<dyn Engine> = Arc::new(FakeEngine::new());
        let other: Arc<dyn Engine> = Arc::new(FakeEngine::new());
        let mut wrapped = 0;
        let mapped = Backends::shared(main).with(Kind::Agent, other).map(|e| {
            wrapped += 1;
            e
        });
        assert_eq!((wrapped, mapped.distinct().len()), (2, 2));
    }

    #[test]
    fn a_shared_engine_is_walked_once_and_a_kind_sent_elsewhere_is_walked_too() {
        let main: Arc<dyn Engine> = Arc::new(FakeEngine::new());
        let other: Arc<dyn Engine> = Arc::new(FakeEngine::new());
        let shared = Backends::shared(main.clone());
        assert_eq!(shared.distinct().len(), 1);
        let split = shared.with(Kind::Code, other.clone());
        assert!(Arc::ptr_eq(split.of(Kind::Code), &other));
        assert!(Arc::ptr_eq(split.of(Kind::Tool), &main));
        assert!(Arc::ptr_eq(split.primary(), &main));
        assert_eq!(split.distinct().len(), 2);
    }

    fn run_spec(kind: Kind, network: Network, runtime: Option<&str>) -> ContainerSpec {
        let mut req = crate::policy::ContainerRequest::new(kind, "berth-run-x", "busybox:1.35");
        req.cmd = Some(vec!["true".into()]);
        let mut spec = crate::policy::Policy::default().admit(req).unwrap();
        spec.network = network;
        spec.runtime = runtime.map(str::to_owned);
        spec
    }

    #[test]
    fn a_sealed_run_goes_to_the_sealed_engine_and_a_networked_one_stays_on_its_kinds() {
        let main: Arc<dyn Engine> = Arc::new(FakeEngine::new());
        let sealed: Arc<dyn Engine> = Arc::new(FakeEngine::new().with_runtime("runc"));
        let b = Backends::shared(main.clone()).with_sealed(sealed.clone());
        assert!(Arc::ptr_eq(b.route(&run_spec(Kind::Code, Network::None, None)).unwrap(), &sealed));
        assert!(Arc::ptr_eq(b.route(&run_spec(Kind::Tool, Network::Bridge, None)).unwrap(), &main));
        assert!(Arc::ptr_eq(b.route(&run_spec(Kind::Code, Network::None, Some("fake"))).unwrap(), &main));
        assert!(Arc::ptr_eq(b.of_runtime(Kind::Code, Some("runc")), &sealed));
        assert!(Arc::ptr_eq(b.of_runtime(Kind::Code, None), &main));
        assert_eq!(b.distinct().len(), 2);
    }

    #[test]
    fn a_runtime_not_served_or_not_fit_for_the_run_is_refused() {
        let main: Arc<dyn Engine> = Arc::new(FakeEngine::new());
        let sealed: Arc<dyn Engine> = Arc::new(FakeEngine::new().with_runtime("runc"));
        let b = Backends::shared(main).with_sealed(sealed);
        assert_eq!(
            b.route(&run_spec(Kind::Code, Network::None, Some("kata"))).err(),
            Some(RouteError::Unknown { asked: "kata".into(), known: "fake, runc".into() })
        );
        assert_eq!(
            b.route(&run_spec(Kind::Tool, Network::Bridge, Some("runc"))).err(),
            Some(RouteError::NotSealed("runc".into()))
        );
    }

    #[test]
    fn a_runtime_asked_by_a_networked_run_goes_to_the_engine_under_it_and_a_sealed_one_to_berths() {
        let main: Arc<dyn Engine> = Arc::new(FakeEngine::new());
        let runsc: Arc<dyn Engine> = Arc::new(FakeEngine::new().with_runtime("runsc"));
        let engine_runsc: Arc<dyn Engine> = Arc::new(FakeEngine::new().with_runtime("docker-runsc").asked_as("runsc"));
        let b = Backends::shared(main.clone()).with_sealed(runsc.clone()).with_engine_runtime(engine_runsc.clone());
        assert!(Arc::ptr_eq(b.route(&run_spec(Kind::Code, Network::None, Some("runsc"))).unwrap(), &runsc));
        assert!(Arc::ptr_eq(b.route(&run_spec(Kind::Tool, Network::Bridge, Some("runsc"))).unwrap(), &engine_runsc));
        assert!(Arc::ptr_eq(
            b.route(&run_spec(Kind::Code, Network::None, Some("docker-runsc"))).unwrap(),
            &engine_runsc
        ));
        assert!(Arc::ptr_eq(b.of_runtime(Kind::Tool, Some("docker-runsc")), &engine_runsc));
        assert!(Arc::ptr_eq(b.of_runtime(Kind::Tool, Some("runsc")), &runsc));
        assert_eq!(b.runtimes(Kind::Code), ["fake", "runsc", "docker-runsc"]);
        assert_eq!(b.runtimes(Kind::Agent), ["fake"]);
        assert_eq!(b.distinct().len(), 2, "the engine under another runtime is the kinds' engine");
        assert_eq!(
            b.route(&run_spec(Kind::Agent, Network::Bridge, Some("runsc"))).err(),
            Some(RouteError::NotSealed("runsc".into()))
        );
    }
}
