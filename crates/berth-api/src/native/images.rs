//! Images over HTTP: a pull whose progress streams back as it goes, so a
//! client can show a bar before it asks for a workload of an image that
//! may be missing (a run or an agent of a missing image pulls it too, but
//! says nothing until it is there).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::follow::{self, FollowEvent, Format};
use super::{AppState, Body, Tenant};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/images/pull", post(pull_image))
}

/// An image to pull.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullBody {
    /// `name[:tag]` or `name@digest`.
    pub image: String,
    /// Pull even when the image is there (a tag that may have moved).
    /// Default false: an image that is there answers at once.
    #[serde(default)]
    pub refresh: bool,
}

/// Pulls an image for the engine of tool runs and agents, streaming its
/// progress: `progress` events (a layer, its status, bytes so far of how
/// many), then `pulled`, or `error` if the pull failed partway. A
/// reference that is malformed or names nothing is answered before the
/// stream, with the error shape. NDJSON, or SSE for `Accept:
/// text/event-stream`.
#[utoipa::path(post, path = "/v1/images/pull", request_body = PullBody,
    responses((status = 200, body = FollowEvent, description = "NDJSON or SSE of `progress` events, then `pulled`"),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn pull_image(
    State(s): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Body(body): Body<PullBody>,
) -> Result<Response, ApiError> {
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::choose(None, accept).map_err(ApiError::bad_request)?;
    let progress = s.core.pull_image(&tenant, &body.image, body.refresh).await?;
    let events = progress
        .map(|step| match step {
            Ok(p) => FollowEvent::Progress { layer: p.layer, status: p.status, current: p.current, total: p.total },
            Err(e) => FollowEvent::Error { message: e.to_string() },
        })
        .boxed();
    let image = body.image;
    let end = Box::pin(async move { FollowEvent::Pulled { image } });
    Ok(follow::respond(events, end, format, s.keepalive))
}
