//! `/teams/{tc}/secrets` and `/teams/{tc}/pipelines/{pc}/secrets`: the entries of the built-in
//! store `pikoci`. Values of `secret` entries go in and never come out; `plain` entries are
//! listed with their value.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pikoci_core::secrets::{Scope, Secret, SecretError, SecretKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::paging::{NameMeta, NamePage, Order};
use super::scope::{self, PipelinePath, TeamPath};
use super::views::Deleted;
use super::{Data, Page, data};
use crate::{Server, ServerError};

/// `/teams/{tc}/secrets/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TeamSecretPath {
    /// The team's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "main")]
    tc: String,
    /// The entry's name.
    name: String,
}

/// `/teams/{tc}/pipelines/{pc}/secrets/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct PipelineSecretPath {
    /// The team's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "main")]
    tc: String,
    /// The pipeline's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "hello")]
    pc: String,
    /// The entry's name.
    name: String,
}

/// `{"name", "value", "kind"?}`: `kind` is `secret` (the default) or `plain`. `Debug` leaves
/// the value out.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetSecret {
    /// The entry's name, as pipelines refer to it.
    name: String,
    /// The value.
    value: String,
    /// `secret` (the default: never shown again, masked in logs) or `plain` (shown).
    #[serde(default)]
    kind: Option<String>,
}

impl std::fmt::Debug for SetSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetSecret")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// One entry: `{"name", "kind", "value"?}`; the value of `plain` entries only.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SecretEntry)]
pub(crate) struct SecretView {
    name: String,
    /// `secret` or `plain`.
    kind: &'static str,
    /// The value of a `plain` entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    value: Option<String>,
}

/// The scope of a team path (the team must exist).
async fn team_scope(server: &Server, tc: &str) -> ApiResult<Scope> {
    let team = scope::team(server, tc).await?;
    Ok(Scope::team(&team.name))
}

/// The scope of a pipeline path (the pipeline must exist).
async fn pipeline_scope(server: &Server, tc: &str, pc: &str) -> ApiResult<Scope> {
    let found = scope::pipeline(server, tc, pc).await?;
    Ok(Scope::pipeline(&found.team.name, &found.pipeline.name))
}

fn secret_error(error: SecretError) -> ApiError {
    ApiError::from(ServerError::new(error.kind(), error.full_message()))
}

async fn list(
    server: &Server,
    scope: &Scope,
    page: &NamePage,
) -> ApiResult<Json<Page<Vec<SecretView>, NameMeta>>> {
    let entries = server.secrets().list(scope).await.map_err(secret_error)?;
    let (entries, meta) = page.cut(entries, Order::ByName, |entry| &entry.name)?;
    Ok(Json(Page {
        data: entries
            .into_iter()
            .map(|entry| SecretView {
                name: entry.name,
                kind: entry.kind.as_str(),
                value: entry.plain_value,
            })
            .collect(),
        meta,
    }))
}

async fn set(
    server: &Server,
    scope: &Scope,
    body: SetSecret,
) -> ApiResult<(StatusCode, Json<Data<SecretView>>)> {
    let kind = match body.kind.as_deref() {
        None => SecretKind::Secret,
        Some(kind) => SecretKind::parse(kind).ok_or_else(|| {
            ApiError::invalid(format!(
                "unknown kind \"{}\": use \"secret\" (never shown again, masked in logs) or \"plain\" (a visible value)",
                kind.escape_debug()
            ))
        })?,
    };
    let value = Secret::new(body.value);
    let created = server
        .secrets()
        .set(scope, &body.name, kind, &value)
        .await
        .map_err(secret_error)?;
    tracing::info!(scope = ?scope, name = %body.name, kind = kind.as_str(), created, "secret set");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = SecretView {
        name: body.name,
        kind: kind.as_str(),
        value: (kind == SecretKind::Plain).then(|| value.into_exposed()),
    };
    Ok((status, data(view)))
}

async fn delete(server: &Server, scope: &Scope, name: &str) -> ApiResult<Json<Data<Deleted>>> {
    let deleted = server
        .secrets()
        .delete(scope, name)
        .await
        .map_err(secret_error)?;
    if !deleted {
        return Err(ApiError::not_found(format!(
            "there is no secret \"{}\" here",
            name.escape_debug()
        )));
    }
    tracing::info!(scope = ?scope, name, "secret deleted");
    Ok(data(Deleted {
        deleted: name.to_owned(),
    }))
}

/// `GET /teams/{tc}/secrets`: the team's entries by name.
#[utoipa::path(get, path = "/teams/{tc}/secrets", tag = "secrets", summary = "List the team's secrets", params(TeamPath, NamePage),
    responses((status = 200, description = "The team's entries by name, a page at a time.", body = Page<Vec<SecretView>, NameMeta>)))]
pub(crate) async fn list_team(
    State(server): State<Server>,
    ApiPath(path): ApiPath<TeamPath>,
    ApiQuery(page): ApiQuery<NamePage>,
) -> ApiResult<Json<Page<Vec<SecretView>, NameMeta>>> {
    list(&server, &team_scope(&server, &path.tc).await?, &page).await
}

/// `POST /teams/{tc}/secrets {"name", "value", "kind"?}`: 201 when created, 200 when replaced.
#[utoipa::path(post, path = "/teams/{tc}/secrets", tag = "secrets", summary = "Set a team secret", params(TeamPath), request_body = SetSecret,
    responses(
        (status = 201, description = "The entry, created.", body = Data<SecretView>),
        (status = 200, description = "The entry, replaced.", body = Data<SecretView>),
        (status = 409, description = "The entry exists with the other kind (`conflict`): delete it first.", body = ErrorBody<'_>),
        (status = 501, description = "A `secret` entry, and the server has no `--secret-key` (`unsupported`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn set_team(
    State(server): State<Server>,
    ApiPath(path): ApiPath<TeamPath>,
    ApiJson(body): ApiJson<SetSecret>,
) -> ApiResult<(StatusCode, Json<Data<SecretView>>)> {
    set(&server, &team_scope(&server, &path.tc).await?, body).await
}

/// `DELETE /teams/{tc}/secrets/{name}`: 404 when there is none.
#[utoipa::path(delete, path = "/teams/{tc}/secrets/{name}", tag = "secrets", summary = "Delete a team secret", params(TeamSecretPath),
    responses((status = 200, description = "The entry, deleted.", body = Data<Deleted>)))]
pub(crate) async fn delete_team(
    State(server): State<Server>,
    ApiPath(path): ApiPath<TeamSecretPath>,
) -> ApiResult<Json<Data<Deleted>>> {
    delete(&server, &team_scope(&server, &path.tc).await?, &path.name).await
}

/// `GET /teams/{tc}/pipelines/{pc}/secrets`: the pipeline's own entries (not the team's).
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/secrets", tag = "secrets", summary = "List the pipeline's own secrets", params(PipelinePath, NamePage),
    responses((status = 200, description = "The pipeline's own entries by name (not the team's), a page at a time.", body = Page<Vec<SecretView>, NameMeta>)))]
pub(crate) async fn list_pipeline(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelinePath>,
    ApiQuery(page): ApiQuery<NamePage>,
) -> ApiResult<Json<Page<Vec<SecretView>, NameMeta>>> {
    list(
        &server,
        &pipeline_scope(&server, &path.tc, &path.pc).await?,
        &page,
    )
    .await
}

/// `POST /teams/{tc}/pipelines/{pc}/secrets`: as for a team.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/secrets", tag = "secrets", summary = "Set a pipeline secret", params(PipelinePath), request_body = SetSecret,
    responses(
        (status = 201, description = "The entry, created.", body = Data<SecretView>),
        (status = 200, description = "The entry, replaced.", body = Data<SecretView>),
        (status = 409, description = "The entry exists with the other kind (`conflict`): delete it first.", body = ErrorBody<'_>),
        (status = 501, description = "A `secret` entry, and the server has no `--secret-key` (`unsupported`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn set_pipeline(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelinePath>,
    ApiJson(body): ApiJson<SetSecret>,
) -> ApiResult<(StatusCode, Json<Data<SecretView>>)> {
    set(
        &server,
        &pipeline_scope(&server, &path.tc, &path.pc).await?,
        body,
    )
    .await
}

/// `DELETE /teams/{tc}/pipelines/{pc}/secrets/{name}`.
#[utoipa::path(delete, path = "/teams/{tc}/pipelines/{pc}/secrets/{name}", tag = "secrets", summary = "Delete a pipeline secret", params(PipelineSecretPath),
    responses((status = 200, description = "The entry, deleted.", body = Data<Deleted>)))]
pub(crate) async fn delete_pipeline(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelineSecretPath>,
) -> ApiResult<Json<Data<Deleted>>> {
    delete(
        &server,
        &pipeline_scope(&server, &path.tc, &path.pc).await?,
        &path.name,
    )
    .await
}
