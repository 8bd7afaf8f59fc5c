//! `…/{pc}/jobs`: jobs, pausing them, and manual triggers.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::builds::place;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::paging::{NameMeta, NamePage, Order};
use super::pipelines::latest_build;
use super::scope::{self, JobPath, JobScope, PipelinePath};
use super::views::{BuildPlace, BuildView, JobView};
use super::{Data, Page, data};
use crate::Server;

/// `GET …/{pc}/jobs?after=&limit=`: the pipeline's jobs in declaration order, each with its
/// latest build, a page at a time.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/jobs", tag = "jobs", summary = "List a pipeline's jobs", params(PipelinePath, NamePage),
    responses((status = 200, description = "The pipeline's jobs in declaration order, a page at a time.", body = Page<Vec<JobView>, NameMeta>)))]
pub(crate) async fn list(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelinePath>,
    ApiQuery(page): ApiQuery<NamePage>,
) -> ApiResult<Json<Page<Vec<JobView>, NameMeta>>> {
    let scope = scope::pipeline(&server, &path.tc, &path.pc).await?;
    let jobs = server.store().jobs(scope.pipeline.id).await?;
    let (jobs, meta) = page.cut(jobs, Order::Declared, |job| &job.name)?;
    let resources = server.store().resources(scope.pipeline.id).await?;
    let mut views = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let place = BuildPlace {
            team: &scope.team.name,
            pipeline: &scope.pipeline.name,
            job: &job.name,
            resources: &resources,
        };
        let latest = latest_build(&server, job.id, place).await?;
        views.push(JobView::new(
            &scope.team.name,
            &scope.pipeline.name,
            job,
            latest,
        ));
    }
    Ok(Json(Page { data: views, meta }))
}

/// `GET …/jobs/{jn}`: the job with its latest build.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}", tag = "jobs", summary = "Get a job", params(JobPath),
    responses((status = 200, description = "The job with its latest build.", body = Data<JobView>)))]
pub(crate) async fn get(
    State(server): State<Server>,
    ApiPath(path): ApiPath<JobPath>,
) -> ApiResult<Json<Data<JobView>>> {
    let scope = scope::job(&server, &path).await?;
    Ok(data(view(&server, &scope).await?))
}

async fn view(server: &Server, scope: &JobScope) -> ApiResult<JobView> {
    let resources = server.store().resources(scope.pipeline.id).await?;
    let latest = latest_build(server, scope.job.id, place(scope, &resources)).await?;
    Ok(JobView::new(
        &scope.team.name,
        &scope.pipeline.name,
        &scope.job,
        latest,
    ))
}

/// `POST …/jobs/{jn}/pause`: the job, paused (it starts no builds).
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/pause", tag = "jobs", summary = "Pause a job", params(JobPath),
    responses((status = 200, description = "The job, paused: it starts no builds.", body = Data<JobView>)))]
pub(crate) async fn pause(
    state: State<Server>,
    path: ApiPath<JobPath>,
) -> ApiResult<Json<Data<JobView>>> {
    set_paused(state, path, true).await
}

/// `POST …/jobs/{jn}/unpause`: the job, unpaused.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/unpause", tag = "jobs", summary = "Unpause a job", params(JobPath),
    responses((status = 200, description = "The job, unpaused.", body = Data<JobView>)))]
pub(crate) async fn unpause(
    state: State<Server>,
    path: ApiPath<JobPath>,
) -> ApiResult<Json<Data<JobView>>> {
    set_paused(state, path, false).await
}

async fn set_paused(
    State(server): State<Server>,
    ApiPath(path): ApiPath<JobPath>,
    paused: bool,
) -> ApiResult<Json<Data<JobView>>> {
    let mut scope = scope::job(&server, &path).await?;
    server.store().set_job_paused(scope.job.id, paused).await?;
    scope.job = server.store().job_by_id(scope.job.id).await?;
    Ok(data(view(&server, &scope).await?))
}

/// `{"input_values"?: {"name": value}}`: values of the job's inputs; strings, numbers and bools
/// are accepted and passed on as text (`3`, `true`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TriggerJob)]
pub(crate) struct TriggerBody {
    /// Values of the job's inputs by name: strings, numbers or bools.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, InputValue>)]
    input_values: BTreeMap<String, serde_json::Value>,
}

/// `POST …/jobs/{jn}/trigger`: 201 with the new build (summary); 400 listing every problem
/// with the inputs.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/trigger", tag = "jobs", summary = "Trigger a job", params(JobPath),
    request_body(content = Option<TriggerBody>, description = "May be empty: no input values."),
    responses(
        (status = 201, description = "The new build (summary).", body = Data<BuildView>),
        (status = 409, description = "The job cannot be triggered now (`conflict`), e.g. its pipeline was removed.", body = ErrorBody<'_>),
    ))]
pub(crate) async fn trigger(
    State(server): State<Server>,
    ApiPath(path): ApiPath<JobPath>,
    ApiJson(body): ApiJson<TriggerBody>,
) -> ApiResult<(StatusCode, Json<Data<BuildView>>)> {
    let inputs = input_texts(body.input_values)?;
    let scope = scope::job(&server, &path).await?;
    let build = server.trigger_job(scope.job.id, inputs).await?;
    tracing::info!(job = %scope.job.name, build = %build.number, "job triggered through the API");
    let resources = server.store().resources(scope.pipeline.id).await?;
    Ok((
        StatusCode::CREATED,
        data(BuildView::summary(place(&scope, &resources), &build)),
    ))
}

/// The value of an input, for the OpenAPI document: a string, a number or a bool.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[expect(
    dead_code,
    reason = "a description for the OpenAPI document, never built"
)]
pub(crate) enum InputValue {
    String(String),
    Number(f64),
    Bool(bool),
}

/// Input values as the text a user would type.
fn input_texts(values: BTreeMap<String, serde_json::Value>) -> ApiResult<BTreeMap<String, String>> {
    let mut texts = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, value) in values {
        let text = match value {
            serde_json::Value::String(text) => text,
            serde_json::Value::Number(number) => number.to_string(),
            serde_json::Value::Bool(flag) => flag.to_string(),
            other => {
                let found = match other {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Array(_) => "an array",
                    _ => "an object",
                };
                problems.push(format!(
                    "input \"{}\" is {found}: give a string, a number or a bool",
                    name.escape_debug()
                ));
                continue;
            }
        };
        texts.insert(name, text);
    }
    if problems.is_empty() {
        Ok(texts)
    } else {
        Err(ApiError::invalid(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_values_become_text() {
        let values = serde_json::from_value(serde_json::json!({
            "env": "prod", "replicas": 3, "ratio": 0.5, "dry_run": true
        }))
        .unwrap();
        let texts = input_texts(values).unwrap();
        assert_eq!(texts["env"], "prod");
        assert_eq!(texts["replicas"], "3");
        assert_eq!(texts["ratio"], "0.5");
        assert_eq!(texts["dry_run"], "true");
        let values = serde_json::from_value(serde_json::json!({
            "a": null, "b": [1], "c": {"x": 1}, "d": "ok"
        }))
        .unwrap();
        let error = input_texts(values).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let message = format!("{error:?}");
        for part in [
            "\\\"a\\\" is null",
            "\\\"b\\\" is an array",
            "\\\"c\\\" is an object",
        ] {
            assert!(message.contains(part), "{message}");
        }
    }
}
