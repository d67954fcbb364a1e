//! The console: a page served by berth that shows what it runs (runs,
//! agents, relics and sessions, sandboxes, pools, nodes), a latency chart
//! and a selected run's or agent's output live.
//!
//! This module owns the page's three files (compiled in: the page loads
//! nothing from anywhere else) and the trade of a bearer token for a pass
//! in an HttpOnly, SameSite=Strict cookie. The page reads the native API
//! with that cookie; a pass is honoured for reads only (GET and HEAD, no
//! WebSocket upgrades), so a page of another site can change nothing even
//! if a browser sent it along. Everything it shows comes from the native
//! API's own routes: the console adds no view of its own.

pub mod passes;

use std::time::Instant;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};

use crate::native::error::ApiError;
use crate::native::{AppState, Body, Tenant};
use passes::{COOKIE, PASS_LIFETIME};

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/console.js");
const STYLE: &str = include_str!("page/console.css");

/// The page may load and reach only what berth serves.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(page))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
        .route("/console/login", post(login))
        .route("/console/logout", post(logout))
        .route("/console/whoami", get(whoami))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (CONTENT_SECURITY_POLICY, POLICY),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    token: String,
}

#[derive(Debug, Serialize)]
struct Whoami {
    tenant: String,
}

/// Trades a bearer token of the server's `[tokens]` for a pass in a cookie.
/// With no tokens configured every caller is the default tenant and no
/// cookie is needed.
async fn login(State(s): State<AppState>, jar: CookieJar, Body(body): Body<Login>) -> Result<Response, ApiError> {
    if s.tokens.0.is_empty() {
        return Ok(Json(Whoami { tenant: crate::native::DEFAULT_TENANT.into() }).into_response());
    }
    let tenant = s
        .tokens
        .tenant(&body.token)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "no such token"))?;
    let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    s.passes.lock().expect("the pass table is never poisoned").issue(key.clone(), tenant.clone(), Instant::now());
    let cookie =
        Cookie::build((COOKIE, key)).http_only(true).same_site(SameSite::Strict).path("/").max_age(cookie_lifetime());
    Ok((jar.add(cookie), Json(Whoami { tenant })).into_response())
}

fn cookie_lifetime() -> time::Duration {
    time::Duration::seconds(PASS_LIFETIME.as_secs() as i64)
}

/// Ends the caller's pass and clears its cookie.
async fn logout(State(s): State<AppState>, jar: CookieJar) -> Response {
    if let Some(c) = jar.get(COOKIE) {
        s.passes.lock().expect("the pass table is never poisoned").revoke(c.value());
    }
    let gone = Cookie::build((COOKIE, "")).http_only(true).same_site(SameSite::Strict).path("/");
    (StatusCode::NO_CONTENT, jar.remove(gone)).into_response()
}

/// Who the caller is, by token or pass: the page asks before it shows
/// anything, and offers a login on a 401.
async fn whoami(Tenant(tenant): Tenant) -> Json<Whoami> {
    Json(Whoami { tenant })
}

/// Whether a request may be served on a pass: a read, carrying no token of
/// its own, that is not a WebSocket upgrade.
pub fn reads_on_pass(parts: &Parts) -> bool {
    (parts.method == Method::GET || parts.method == Method::HEAD)
        && !parts.headers.contains_key(axum::http::header::AUTHORIZATION)
        && !parts.headers.contains_key(axum::http::header::UPGRADE)
}

/// The tenant of the pass a request's cookie carries, if any holds.
pub fn tenant_of_pass(headers: &HeaderMap, state: &AppState) -> Option<String> {
    let jar = CookieJar::from_headers(headers);
    let key = jar.get(COOKIE)?.value().to_owned();
    state.passes.lock().expect("the pass table is never poisoned").tenant(&key, Instant::now())
}
