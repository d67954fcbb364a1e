//! The seed dialects: each seed system's documented HTTP API, served
//! unchanged on a listener of its own, as a thin adapter over the same core
//! as the native API (so a LAIS agent and a native agent are the same
//! records, limits and tenants).
//!
//! A dialect owns its wire shapes and its error shape (the FastAPI seeds
//! answer `{"detail": …}`), and reads its seed's environment variables
//! where they mean something to berth. It must not hold state of its own
//! or reach the engine except through the core.

pub mod coderunner;
pub mod cortex;
pub mod e2b;
pub mod lais;
pub mod spawner;
pub mod warder;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use crate::native::error::ApiError;
use crate::native::{AppState, Tenant};
use berth_core::agents::AgentRecord;

/// A seed whose API berth serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dialect {
    Lais,
    Cortex,
    Warder,
    Spawner,
    Coderunner,
}

impl Dialect {
    pub const ALL: [Dialect; 5] =
        [Dialect::Lais, Dialect::Cortex, Dialect::Warder, Dialect::Spawner, Dialect::Coderunner];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Lais => "lais",
            Dialect::Cortex => "cortex",
            Dialect::Warder => "warder",
            Dialect::Spawner => "spawner",
            Dialect::Coderunner => "coderunner",
        }
    }

    /// The seed's documented port. Warder's server runs on uvicorn's default
    /// (8000, which LAIS has), so berth puts it on 8001.
    pub fn default_port(self) -> u16 {
        match self {
            Dialect::Lais => 8000,
            Dialect::Cortex => 8086,
            Dialect::Warder => 8001,
            Dialect::Spawner => 7435,
            Dialect::Coderunner => 8080,
        }
    }

    /// The dialect's routes over the core.
    pub fn router(self, app: AppState, env: Arc<SeedEnv>) -> Router {
        let state = DialectState { app: app.clone(), env };
        let router = match self {
            Dialect::Lais => lais::routes(),
            Dialect::Cortex => cortex::routes(),
            Dialect::Warder => warder::routes(),
            Dialect::Spawner => spawner::routes(),
            Dialect::Coderunner => coderunner::routes(),
        };
        crate::native::layered(router.fallback(not_found).with_state(state), self.name(), &app)
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dialect::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown dialect {s:?}: one of {}", Dialect::ALL.map(Dialect::name).join(", ")))
    }
}

/// `NAME[=ADDR]`, as `--dialect` takes it: a dialect and where it listens
/// (its seed's port on loopback when no address is given).
pub fn parse_dialect_flag(text: &str) -> Result<(Dialect, std::net::SocketAddr), String> {
    let (name, addr) = match text.split_once('=') {
        Some((n, a)) => (n, Some(a)),
        None => (text, None),
    };
    let dialect: Dialect = name.trim().parse()?;
    let addr = match addr {
        Some(a) => a.trim().parse().map_err(|e| format!("dialect {name}: {a:?} is not an address ({e})"))?,
        None => std::net::SocketAddr::from(([127, 0, 0, 1], dialect.default_port())),
    };
    Ok((dialect, addr))
}

/// The seeds' environment variables that mean something to berth, with the
/// seeds' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedEnv {
    /// docker-spawner: `TIDEPOOL_AGENT_IMAGE`.
    pub tidepool_image: String,
    /// docker-spawner: `HOST_UID`, `HOST_GID`.
    pub host_uid: u32,
    pub host_gid: u32,
    /// docker-spawner: `TIDEPOOL_NETWORK`.
    pub tidepool_network: String,
    /// Warder: `AGENT_IMAGE`, `AGENT_NETWORK`.
    pub warder_image: String,
    pub warder_network: String,
    /// LAIS: `LAIS_RUNNER_IMAGE` (the seed's pre-built runner image) and
    /// `LAIS_AGENTS_DIR` (where generated agent code lives on the host).
    pub lais_image: String,
    pub lais_agents_dir: String,
}

impl SeedEnv {
    /// From a table of variables (the process's, or a test's).
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<SeedEnv, String> {
        let text = |k: &str, d: &str| vars.get(k).cloned().unwrap_or_else(|| d.to_owned());
        let number = |k: &str, d: u32| -> Result<u32, String> {
            vars.get(k).map(|v| v.trim().parse().map_err(|e| format!("{k}={v:?}: {e}"))).unwrap_or(Ok(d))
        };
        Ok(SeedEnv {
            tidepool_image: text("TIDEPOOL_AGENT_IMAGE", "tidepool-agent:latest"),
            host_uid: number("HOST_UID", 1000)?,
            host_gid: number("HOST_GID", 1000)?,
            tidepool_network: text("TIDEPOOL_NETWORK", "tidepool"),
            warder_image: text("AGENT_IMAGE", "warder/agent:latest"),
            warder_network: text("AGENT_NETWORK", "warder_network"),
            lais_image: text("LAIS_RUNNER_IMAGE", "laias/agent-runner:latest"),
            lais_agents_dir: text("LAIS_AGENTS_DIR", "/var/laias/agents"),
        })
    }

    pub fn from_process() -> Result<SeedEnv, String> {
        SeedEnv::from_vars(&std::env::vars().collect())
    }
}

impl Default for SeedEnv {
    fn default() -> Self {
        SeedEnv::from_vars(&BTreeMap::new()).expect("the defaults parse")
    }
}

/// What every dialect handler has: the core (through the native state) and
/// the seed's settings.
#[derive(Clone)]
pub struct DialectState {
    pub app: AppState,
    pub env: Arc<SeedEnv>,
}

/// An error as the FastAPI seeds answer it: `{"detail": "…"}`.
#[derive(Debug)]
pub struct Detail {
    pub status: StatusCode,
    pub detail: String,
}

impl Detail {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Detail {
        Detail { status, detail: detail.into() }
    }

    pub fn not_found(detail: impl Into<String>) -> Detail {
        Detail::new(StatusCode::NOT_FOUND, detail)
    }
}

impl IntoResponse for Detail {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "detail": self.detail }))).into_response()
    }
}

impl From<ApiError> for Detail {
    fn from(e: ApiError) -> Self {
        Detail { status: e.status, detail: e.message }
    }
}

/// The core's errors answer with the native API's statuses, in the seeds' shape.
impl From<berth_core::Error> for Detail {
    fn from(e: berth_core::Error) -> Self {
        ApiError::from(e).into()
    }
}

/// An engine error met inside a stream the core handed out.
impl From<berth_core::engine::EngineError> for Detail {
    fn from(e: berth_core::engine::EngineError) -> Self {
        ApiError::from(e).into()
    }
}

async fn not_found() -> Detail {
    Detail::not_found("Not Found")
}

/// The caller's tenant, as on the native API (bearer tokens when configured).
pub struct Caller(pub String);

impl FromRequestParts<DialectState> for Caller {
    type Rejection = Detail;

    async fn from_request_parts(parts: &mut Parts, state: &DialectState) -> Result<Self, Self::Rejection> {
        Ok(Caller(Tenant::from_headers(&parts.headers, &state.app.tokens)?.0))
    }
}

/// A JSON body whose rejections answer `{"detail"}` with 422, as FastAPI does.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Form<T> {
    type Rejection = Detail;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Form(v)),
            Err(r) => Err(Detail::new(StatusCode::UNPROCESSABLE_ENTITY, r.body_text())),
        }
    }
}

/// Query parameters whose rejections answer `{"detail"}` with 422.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Detail;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(Params(q.0)),
            Err(r) => Err(Detail::new(StatusCode::UNPROCESSABLE_ENTITY, r.body_text())),
        }
    }
}

/// An agent of the caller's, named by its id, its container's name, or
/// its container id (or a prefix of at least 12 characters of it).
pub fn find_agent(state: &DialectState, tenant: &str, key: &str) -> Result<AgentRecord, Detail> {
    state.app.core.find_agent(tenant, key).map_err(|e| match e.kind() {
        berth_core::ErrorKind::NotFound => Detail::not_found(format!("Container {key} not found")),
        _ => e.into(),
    })
}

/// A seed's named network (`AGENT_NETWORK`, `TIDEPOOL_NETWORK`), made when
/// missing as the seeds' set-up scripts do.
pub async fn ensure_named_network(state: &DialectState, name: &str) -> Result<(), Detail> {
    Ok(state.app.core.ensure_named_network(name).await?)
}

/// A container's resource use in the Python seeds' numbers (MiB and
/// percents with two places), for the caller to add its own fields to.
pub fn usage_numbers(u: &berth_core::engine::Usage) -> serde_json::Map<String, serde_json::Value> {
    let two = |x: f64| (x * 100.0).round() / 100.0;
    let percent = u.memory_percent().map(two);
    let serde_json::Value::Object(map) = serde_json::json!({
        "cpu_percent": u.cpu_percent.map(two),
        "memory_usage_mb": u.memory_used.map(mib),
        "memory_limit_mb": u.memory_limit.map(mib),
        "memory_percent": percent,
        "network_rx_bytes": u.net_rx,
        "network_tx_bytes": u.net_tx,
        "block_read_bytes": u.block_read,
        "block_write_bytes": u.block_write,
        "pids": u.pids,
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

/// Bytes as MiB, rounded to two places, as the Python seeds print them.
pub fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dialect_flag_names_a_dialect_and_optionally_where_it_listens() {
        assert_eq!(parse_dialect_flag("cortex"), Ok((Dialect::Cortex, "127.0.0.1:8086".parse().unwrap())));
        assert_eq!(parse_dialect_flag("lais=0.0.0.0:9000"), Ok((Dialect::Lais, "0.0.0.0:9000".parse().unwrap())));
        assert!(parse_dialect_flag("kubernetes").unwrap_err().contains("one of lais, cortex, warder"));
        assert!(parse_dialect_flag("spawner=nowhere").unwrap_err().contains("not an address"));
    }

    #[test]
    fn seed_variables_override_the_seeds_defaults_and_bad_numbers_are_refused() {
        let d = SeedEnv::default();
        assert_eq!(
            (d.tidepool_image.as_str(), d.host_uid, d.warder_network.as_str()),
            ("tidepool-agent:latest", 1000, "warder_network")
        );
        let vars = BTreeMap::from([
            ("HOST_UID".to_owned(), "501".to_owned()),
            ("AGENT_IMAGE".to_owned(), "me/agent:1".to_owned()),
        ]);
        let e = SeedEnv::from_vars(&vars).unwrap();
        assert_eq!((e.host_uid, e.warder_image.as_str()), (501, "me/agent:1"));
        let bad = BTreeMap::from([("HOST_GID".to_owned(), "staff".to_owned())]);
        assert!(SeedEnv::from_vars(&bad).unwrap_err().starts_with("HOST_GID"));
    }

    #[test]
    fn sizes_read_as_mebibytes_with_two_places() {
        assert_eq!(mib(100 * 1024 * 1024), 100.0);
        assert_eq!(mib(1536 * 1024), 1.5);
    }
}
