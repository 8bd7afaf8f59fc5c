//! `/teams`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::error::ApiResult;
use super::extract::ApiJson;
use super::views::TeamView;
use super::{Data, data};
use crate::Server;

/// `GET /teams`: every team, by name.
pub(crate) async fn list(State(server): State<Server>) -> ApiResult<Json<Data<Vec<TeamView>>>> {
    let teams = server.store().list_teams().await?;
    Ok(data(teams.iter().map(TeamView::new).collect()))
}

/// `{"name"}`: a canonical name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTeam {
    name: String,
}

/// `POST /teams` `{"name"}`: 201 with the team; 409 when the name is taken.
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
