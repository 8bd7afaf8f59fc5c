//! `/teams`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::paging::{NameMeta, NamePage, Order};
use super::views::TeamView;
use super::{Data, Page, data};
use crate::Server;

/// `GET /teams?after=&limit=`: the teams by name, a page at a time.
#[utoipa::path(get, path = "/teams", tag = "teams", summary = "List the teams", params(NamePage),
    responses((status = 200, description = "The teams by name, a page at a time.", body = Page<Vec<TeamView>, NameMeta>)))]
pub(crate) async fn list(
    State(server): State<Server>,
    ApiQuery(page): ApiQuery<NamePage>,
) -> ApiResult<Json<Page<Vec<TeamView>, NameMeta>>> {
    let teams = server.store().list_teams().await?;
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
    ApiJson(body): ApiJson<CreateTeam>,
) -> ApiResult<(StatusCode, Json<Data<TeamView>>)> {
    let team = server
        .store()
        .create_team(&body.name, server.clock().now())
        .await?;
    tracing::info!(team = %team.name, "team created");
    Ok((StatusCode::CREATED, data(TeamView::new(&team))))
}
