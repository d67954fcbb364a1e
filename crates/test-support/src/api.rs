//! An in-process client of berth's HTTP front ends, over the real engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use berth_api::native::{AppState, Tokens};
use berth_core::context::Context;
use berth_core::engine::Engine;
use berth_core::model::ids::{RandomIds, SystemClock};
use berth_core::policy::Policy;
use berth_core::store::Store;
use berth_core::{Core, Options};
use berth_docker::DockerBackend;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A backend over the engine at `DOCKER_HOST`, for a test to see for
/// itself what the core made, apart from the core.
pub fn engine() -> Arc<dyn Engine> {
    Arc::new(DockerBackend::new(engine_api::Docker::from_env().unwrap()))
}

/// The core over the docker backend with an in-memory store (and the
/// sandbox helper, where it has been built).
pub fn core_with(policy: Policy) -> Arc<Core> {
    let backend = engine();
    let store = Arc::new(Store::in_memory().unwrap());
    let mut options = Options::default();
    options.sandboxes.helper = helper_bytes().ok();
    Arc::new(Core::new(Context::new(backend, policy, store, Arc::new(RandomIds), Arc::new(SystemClock)), options))
}

/// Where the static sandbox helper is: `BERTH_SANDBOX_HELPER`, else where
/// `scripts/sandbox-helper.sh` builds it.
pub fn helper_path() -> std::path::PathBuf {
    match std::env::var_os("BERTH_SANDBOX_HELPER") {
        Some(p) => p.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/x86_64-unknown-linux-gnu/helper/berth-sandboxd"),
    }
}

fn helper_bytes() -> std::io::Result<Arc<Vec<u8>>> {
    std::fs::read(helper_path()).map(Arc::new)
}

/// The sandbox helper's bytes; a test of sandboxes fails (never skips)
/// without them.
pub fn sandbox_helper() -> Arc<Vec<u8>> {
    helper_bytes().unwrap_or_else(|e| {
        panic!("the sandbox helper {} is missing ({e}): run scripts/sandbox-helper.sh", helper_path().display())
    })
}

pub fn state(tokens: &[(&str, &str)]) -> AppState {
    let tokens: BTreeMap<String, String> = tokens.iter().map(|(t, n)| (t.to_string(), n.to_string())).collect();
    AppState::new(core_with(Policy::default()), Tokens(tokens))
}

pub struct Answer {
    pub status: StatusCode,
    pub json: Value,
    pub text: String,
    pub headers: axum::http::HeaderMap,
}

/// One request to `router`; the body is JSON when given.
pub async fn send(router: &Router, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    answer(router, req.body(body).unwrap()).await
}

/// One request, as built, to `router`: the answer with its body read.
pub async fn answer(router: &Router, request: Request<Body>) -> Answer {
    let res = router.clone().oneshot(request).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    Answer { status, json, text, headers }
}

/// A unique suffix for names of this test run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}
