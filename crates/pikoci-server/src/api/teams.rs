//! `/teams`.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use pikoci_core::store::{BuildFilter, BuildStatus, Role};
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::paging::{NameMeta, NamePage, Order};
use super::scope::{self, TeamPath};
use super::views::{Deleted, TeamView};
use super::{Data, Page, data};
use crate::Server;
use crate::auth::Caller;

/// The team every server has from its start, and clients use by default.
const MAIN_TEAM: &str = "main";

/// `GET /teams?after=&limit=`: the teams the caller is a member of (every team for a global
/// admin) by name, a page at a time.
#[utoipa::path(get, path = "/teams", tag = "teams", summary = "List the teams", params(NamePage),
    responses((status = 200, description = "The teams by name, a page at a time.", body = Page<Vec<TeamView>, NameMeta>)))]
pub(crate) async fn list(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiQuery(page): ApiQuery<NamePage>,
) -> ApiResult<Json<Page<Vec<TeamView>, NameMeta>>> {
    let mut teams = server.store().list_teams().await?;
    if let Some(visible) = caller.account().and_then(|account| account.visible_teams()) {
        teams.retain(|team| visible.contains(&team.name));
    }
    let (teams, meta) = page.cut(teams, Order::ByName, |team| &team.name)?;
    Ok(Json(Page {
        data: teams.iter().map(TeamView::new).collect(),
        meta,
    }))
}

/// `{"name"}`: a canonical name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTeam {
    /// Lowercase letters, digits, `-` and `_`.
    #[schema(
        pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$",
        example = "platform"
    )]
    name: String,
}

/// `POST /teams` `{"name"}`: 201 with the team; 409 when the name is taken.
#[utoipa::path(post, path = "/teams", tag = "teams", summary = "Create a team", request_body = CreateTeam,
    responses(
        (status = 201, description = "The team, created.", body = Data<TeamView>),
        (status = 409, description = "A team has that name (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn create(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateTeam>,
) -> ApiResult<(StatusCode, Json<Data<TeamView>>)> {
    let now = server.clock().now();
    let team = server.store().create_team(&body.name, now).await?;
    // Its creator is its first admin, so that the team has one to manage it.
    if let Some(account) = caller.account() {
        server
            .accounts()
            .set_member(team.id, account.user.id, Role::Admin, now)
            .await?;
    }
    tracing::info!(team = %team.name, by = caller.name(), "team created");
    Ok((StatusCode::CREATED, data(TeamView::new(&team))))
}

/// `GET /teams/{tc}`: the team.
#[utoipa::path(get, path = "/teams/{tc}", tag = "teams", summary = "Get a team", params(TeamPath),
    responses((status = 200, description = "The team.", body = Data<TeamView>)))]
pub(crate) async fn get(
    State(server): State<Server>,
    ApiPath(path): ApiPath<TeamPath>,
) -> ApiResult<Json<Data<TeamView>>> {
    let team = scope::team(&server, &path.tc).await?;
    Ok(data(TeamView::new(&team)))
}

/// `DELETE /teams/{tc}`: `{"deleted": "<name>"}`; its pipelines with their builds, logs,
/// resources and versions, its secrets, its trigger streams and the workers registered for it
/// go with it. Team `main` is kept (every server has it; clients default to it), and a team
/// with builds running is kept until they end (409).
#[utoipa::path(delete, path = "/teams/{tc}", tag = "teams", summary = "Delete a team and everything it owns", params(TeamPath),
    responses((status = 200, description = "The team and everything it owned, deleted.", body = Data<Deleted>)))]
pub(crate) async fn delete(
    State(server): State<Server>,
    ApiPath(path): ApiPath<TeamPath>,
) -> ApiResult<Json<Data<Deleted>>> {
    let team = scope::team(&server, &path.tc).await?;
    if team.name == MAIN_TEAM {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "team main is kept: every server has it and clients default to it (delete its \
             pipelines instead)",
        ));
    }
    for pipeline in server.store().list_pipelines(team.id).await? {
        let running = server
            .store()
            .list_builds(&BuildFilter {
                pipeline_id: Some(pipeline.id),
                statuses: vec![BuildStatus::Assigned, BuildStatus::Started],
                limit: 1,
                ..BuildFilter::default()
            })
            .await?;
        if let Some(build) = running.first() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "pipeline {} of team {} has a build running (build {} is {}): cancel it or \
                     wait for it, then delete the team",
                    pipeline.name,
                    team.name,
                    build.number,
                    build.status.as_str()
                ),
            ));
        }
    }
    server.store().delete_team(team.id).await?;
    tracing::info!(team = %team.name, "team deleted");
    Ok(data(Deleted { deleted: team.name }))
}
