//! Worker tokens: the global one (global admins read it; it changes with the server's
//! `--worker-token` only) and each team's (the team's admins read and regenerate it). A worker
//! token lets a worker take builds, with the secrets they read, so reading or regenerating one
//! takes a login session.

use axum::Json;
use axum::extract::{Extension, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiResult;
use super::extract::ApiPath;
use super::scope::{self, TeamPath};
use super::{Data, data};
use crate::Server;
use crate::auth::Caller;

/// `{"token", "scope"}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct WorkerTokenView {
    /// The token: give it to workers as `PIKOCI_WORKER_TOKEN`.
    #[schema(
        example = "pkw_main.9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )]
    token: String,
    /// `global`, or the team's name.
    scope: String,
}

impl std::fmt::Debug for WorkerTokenView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerTokenView")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

fn view(token: pikoci_core::secrets::Secret, scope: &str) -> Json<Data<WorkerTokenView>> {
    data(WorkerTokenView {
        token: token.into_exposed(),
        scope: scope.to_owned(),
    })
}

/// `GET /worker-token`: the global worker token (made when the server has none).
#[utoipa::path(get, path = "/worker-token", tag = "workers", summary = "Get the global worker token",
    responses((status = 200, description = "The token.", body = Data<WorkerTokenView>)))]
pub(crate) async fn global(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Data<WorkerTokenView>>> {
    let token = server.worker_token(None).await?;
    tracing::info!(by = caller.name(), "global worker token read");
    Ok(view(token, "global"))
}

/// `GET /teams/{tc}/worker-token`: the team's worker token (made when it has none).
#[utoipa::path(get, path = "/teams/{tc}/worker-token", tag = "workers", summary = "Get a team's worker token",
    params(TeamPath),
    responses((status = 200, description = "The token.", body = Data<WorkerTokenView>)))]
pub(crate) async fn team(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<TeamPath>,
) -> ApiResult<Json<Data<WorkerTokenView>>> {
    let team = scope::team(&server, &path.tc).await?;
    let token = server.worker_token(Some(team.id)).await?;
    tracing::info!(team = %team.name, by = caller.name(), "team worker token read");
    Ok(view(token, &team.name))
}

/// `POST /teams/{tc}/worker-token`: a new worker token for the team; its workers holding the
/// old one are refused from now on.
#[utoipa::path(post, path = "/teams/{tc}/worker-token", tag = "workers", summary = "Regenerate a team's worker token",
    params(TeamPath),
    responses((status = 200, description = "The new token.", body = Data<WorkerTokenView>)))]
pub(crate) async fn regenerate_team(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<TeamPath>,
) -> ApiResult<Json<Data<WorkerTokenView>>> {
    let team = scope::team(&server, &path.tc).await?;
    let token = server.regenerate_worker_token(team.id).await?;
    tracing::warn!(team = %team.name, by = caller.name(), "team worker token regenerated: its workers holding the old one are refused");
    Ok(view(token, &team.name))
}
