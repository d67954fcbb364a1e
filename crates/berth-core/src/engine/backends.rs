//! Which engine each kind of workload goes to.
//!
//! One shared engine by default; a serving binary may send one kind
//! elsewhere (code runs straight to an OCI runtime, say) without a front
//! end or another part of the core knowing.

use std::sync::Arc;

use super::Engine;
use crate::spec::Kind;

/// The engine of each workload kind.
#[derive(Clone)]
pub struct Backends {
    agent: Arc<dyn Engine>,
    tool: Arc<dyn Engine>,
    code: Arc<dyn Engine>,
    relic: Arc<dyn Engine>,
    sandbox: Arc<dyn Engine>,
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
        }
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

    /// Each engine once, the primary first: what a sweep over every
    /// workload berth made walks.
    pub fn distinct(&self) -> Vec<&Arc<dyn Engine>> {
        let mut out: Vec<&Arc<dyn Engine>> = Vec::new();
        for engine in [&self.agent, &self.relic, &self.sandbox, &self.tool, &self.code] {
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
}
