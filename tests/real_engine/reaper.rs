//! Lifetimes: expired agents are reaped from their labels, renewals in the
//! store win over the labels, and expiries are capped.

use test_support as support;

use std::sync::Arc;
use std::time::Duration;

use berth_core::agents::{Agents, PortRange};
use berth_core::context::Context;
use berth_core::lifetime::reaper::{Reaper, ReaperError};
use berth_core::model::ids::{Clock, FixedClock, RandomIds};
use berth_core::policy::Policy;
use berth_core::store::Store;
use berth_docker::DockerBackend;

fn definition(id: &str, expires_at: chrono::DateTime<chrono::Utc>) -> berth_core::agents::AgentDefinition {
    berth_core::agents::AgentDefinition { expires_at: Some(expires_at), ..support::sleeping_agent(id) }
}

#[tokio::test]
async fn expired_agents_are_reaped_and_renewed_ones_are_kept() {
    let backend = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));
    let store = Arc::new(Store::in_memory().unwrap());
    let clock = Arc::new(FixedClock::at(chrono::Utc::now()));
    let agents = Agents::new(
        &Context::new(backend.clone(), Policy::default(), store.clone(), Arc::new(RandomIds), clock.clone()),
        PortRange::default(),
    );
    let reaper = Reaper::new(
        &Context::new(backend.clone(), Policy::default(), store.clone(), std::sync::Arc::new(RandomIds), clock.clone()),
        Duration::from_secs(24 * 3600),
    );

    let pid = std::process::id();
    let soon = clock.now() + chrono::Duration::minutes(10);
    let (short, renewed) = (format!("reap-short-{pid}"), format!("reap-renewed-{pid}"));
    for id in [&short, &renewed] {
        agents.define(definition(id, soon)).unwrap();
        agents.start("t1", id).await.unwrap();
    }
    assert!(reaper.sweep().await.unwrap().iter().all(|n| !n.contains(&pid.to_string())), "nothing expired yet");

    reaper.renew("t1", &renewed, clock.now() + chrono::Duration::hours(2)).unwrap();
    clock.advance(chrono::Duration::minutes(30));
    let removed = reaper.sweep().await.unwrap();
    let engine_name = |id: &str| agents.get("t1", id).unwrap().container_name;
    assert!(removed.contains(&engine_name(&short)), "{removed:?}");
    assert!(!removed.contains(&engine_name(&renewed)), "{removed:?}");
    assert!(agents.state("t1", &renewed).await.unwrap().running());
    agents.remove("t1", &renewed).await.unwrap();
    agents.remove("t1", &short).await.unwrap();

    assert!(matches!(
        reaper.renew("t1", &renewed, clock.now() + chrono::Duration::days(30)),
        Err(ReaperError::TooLong { .. })
    ));
    assert!(matches!(
        reaper.renew("t1", &renewed, clock.now() - chrono::Duration::seconds(1)),
        Err(ReaperError::Past(_))
    ));
}

#[tokio::test]
async fn an_agent_that_would_outlive_the_maximum_lifetime_is_refused() {
    let backend = Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()));
    let store = Arc::new(Store::in_memory().unwrap());
    let clock = Arc::new(FixedClock::at(chrono::Utc::now()));
    let agents = Agents::new(
        &Context::new(backend, Policy::default(), store, Arc::new(RandomIds), clock.clone()),
        PortRange::default(),
    );
    let err = agents.define(definition("too-long", clock.now() + chrono::Duration::days(365))).unwrap_err();
    assert!(matches!(err, berth_core::agents::AgentError::Policy(ref v) if v.field == "expires_at"), "{err:?}");
}
