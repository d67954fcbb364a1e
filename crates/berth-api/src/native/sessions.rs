//! Sessions over HTTP: a group of agents, runs and relics with a private
//! network. Created by naming it (its network is made then), read with what
//! belongs to it, and ended, which removes its containers and its network.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::relics::RelicView;
use super::{AppState, Body, Path, Query, Tenant};
use berth_core::sessions::SessionCleanup;
use berth_core::spec::labels;
use berth_core::Session;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions", post(create_session).get(list_sessions))
        .route("/v1/sessions/{id}", get(get_session).delete(end_session))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    /// 1 to 64 of `[A-Za-z0-9_.-]`.
    pub session_id: String,
}

/// A container of a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub container_id: String,
    pub name: String,
    /// `agent`, `tool`, `code` or `relic`.
    pub kind: Option<String>,
    pub status: String,
}

/// A session and what belongs to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub session_id: String,
    /// Its private network, when it has one.
    pub network_id: Option<String>,
    pub network_name: Option<String>,
    pub containers: Vec<MemberView>,
    pub relics: Vec<RelicView>,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        SessionView {
            session_id: s.id,
            network_id: s.network.as_ref().map(|n| n.id.clone()),
            network_name: s.network.map(|n| n.name),
            containers: s
                .containers
                .into_iter()
                .map(|c| MemberView {
                    kind: c.labels.get(labels::KIND).cloned(),
                    container_id: c.handle.id.0,
                    name: c.name,
                    status: c.phase.as_str().into(),
                })
                .collect(),
            relics: s.relics.into_iter().map(RelicView::from).collect(),
        }
    }
}

/// Opens a session: its private network is made now (or found).
#[utoipa::path(post, path = "/v1/sessions", request_body = SessionBody,
    responses((status = 201, body = SessionView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_session(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Body(body): Body<SessionBody>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.core.open_session(&tenant, &body.session_id).await?.into())))
}

/// The caller's sessions: those with a network or a relic.
#[utoipa::path(get, path = "/v1/sessions", responses((status = 200, body = Vec<String>)))]
pub async fn list_sessions(State(s): State<AppState>, Tenant(tenant): Tenant) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(s.core.sessions(&tenant).await?))
}

/// One of the caller's sessions, with its containers and relics.
#[utoipa::path(get, path = "/v1/sessions/{id}", params(("id" = String, Path)),
    responses((status = 200, body = SessionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_session(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(s.core.session(&tenant, &id).await?.into()))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EndQuery {
    /// Also remove running containers (otherwise a session with any is refused with 409).
    #[serde(default)]
    pub force: bool,
}

/// What ending a session removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct CleanupView {
    pub containers_removed: Vec<String>,
    pub networks_removed: Vec<String>,
}

impl From<SessionCleanup> for CleanupView {
    fn from(c: SessionCleanup) -> Self {
        CleanupView { containers_removed: c.containers_removed, networks_removed: c.networks_removed }
    }
}

/// Ends a session: its containers, its network; its relics are marked stopped.
#[utoipa::path(delete, path = "/v1/sessions/{id}", params(("id" = String, Path), EndQuery),
    responses((status = 200, body = CleanupView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn end_session(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<EndQuery>,
) -> Result<Json<CleanupView>, ApiError> {
    let cleanup = s.core.end_session(&tenant, &id, q.force).await?;
    Ok(Json(cleanup.into()))
}
