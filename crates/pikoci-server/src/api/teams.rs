//! `/teams`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::extract::ApiJson;
use super::views::TeamView;
use super::{Data, data};
use crate::Server;

/// `GET /teams`: every team, by name.
#[utoipa::path(get, path = "/teams", tag = "teams", summary = "List the teams",
    responses((status = 200, description = "Every team, by name.", body = Data<Vec<TeamView>>)))]
pub(crate) async fn list(State(server): State<Server>) -> ApiResult<Json<Data<Vec<TeamView>>>> {
    let teams = server.store().list_teams().await?;
    Ok(data(teams.iter().map(TeamView::new).collect()))
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
