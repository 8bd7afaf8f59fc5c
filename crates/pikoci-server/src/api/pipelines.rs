//! `/teams/{tc}/pipelines`: setting, reading, pausing, exposing and deleting pipelines.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use pikoci_config::SourceFile;
use pikoci_core::store::{BuildFilter, JobId, StoredPipeline, Team};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, DiagnosticView, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::paging::{NameMeta, NamePage, Order};
use super::scope::{self, PipelinePath, PipelineScope, TeamPath};
use super::views::{
    BuildPlace, BuildView, ChangesView, Deleted, JobSummary, PipelineSetView, PipelineView,
    ResourceView,
};
use super::{Data, Page, data};
use crate::{PipelineSet, Server};

/// `GET /teams/{tc}/pipelines?after=&limit=`: the team's pipelines by name, each with its jobs
/// and their latest builds, a page at a time.
#[utoipa::path(get, path = "/teams/{tc}/pipelines", tag = "pipelines", summary = "List the team's pipelines", params(TeamPath, NamePage),
    responses((status = 200, description = "The team's pipelines by name, a page at a time.", body = Page<Vec<PipelineView>, NameMeta>)))]
pub(crate) async fn list(
    State(server): State<Server>,
    ApiPath(path): ApiPath<TeamPath>,
    ApiQuery(page): ApiQuery<NamePage>,
) -> ApiResult<Json<Page<Vec<PipelineView>, NameMeta>>> {
    let team = scope::team(&server, &path.tc).await?;
    let pipelines = server.store().list_pipelines(team.id).await?;
    let (pipelines, meta) = page.cut(pipelines, Order::ByName, |p| &p.name)?;
    let mut views = Vec::with_capacity(pipelines.len());
    for pipeline in &pipelines {
        let jobs = job_summaries(&server, &team, pipeline).await?;
        views.push(PipelineView::summary(&team.name, pipeline, jobs));
    }
    Ok(Json(Page { data: views, meta }))
}

/// `GET /teams/{tc}/pipelines/{pc}`: the pipeline with its file, vars, jobs and resources.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}", tag = "pipelines", summary = "Get a pipeline", params(PipelinePath),
    responses((status = 200, description = "The pipeline with its file, vars, jobs and resources.", body = Data<PipelineView>)))]
pub(crate) async fn get(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelinePath>,
) -> ApiResult<Json<Data<PipelineView>>> {
    let scope = scope::pipeline(&server, &path.tc, &path.pc).await?;
    Ok(data(detailed(&server, &scope.team, &scope.pipeline).await?))
}

/// The body of `POST /teams/{tc}/pipelines` and `PUT …/{pc}`.
///
/// `{"name", "config": "<HCL text>" | "config_base64": "<base64 of the file>", "vars"?: {...},
/// "public"?: bool, "file_name"?: "pipeline.hcl"}`. `file_name` names the file in diagnostics
/// (default `<name>.hcl`). For `PUT`, every field is optional: the stored file and vars are
/// kept when not given, and a `name` other than the pipeline's renames it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SetPipeline)]
pub(crate) struct SetPipelineBody {
    /// The pipeline's name: lowercase letters, digits, `-` and `_`. Required by `POST`; for
    /// `PUT`, a new name renames the pipeline.
    name: Option<String>,
    /// The pipeline file, HCL text.
    config: Option<String>,
    /// The pipeline file in base64 (instead of `config`).
    config_base64: Option<String>,
    /// Values of the file's `var`s, by name.
    vars: Option<serde_json::Value>,
    /// Whether people outside the team may see it.
    public: Option<bool>,
    /// The file's name in diagnostics (default `<name>.hcl`).
    file_name: Option<String>,
}

impl SetPipelineBody {
    /// The pipeline file given, from `config` or `config_base64`.
    fn text(&self) -> ApiResult<Option<String>> {
        match (&self.config, &self.config_base64) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "give the pipeline file as either \"config\" or \"config_base64\", not both",
            )),
            (Some(text), None) => Ok(Some(text.clone())),
            (None, Some(encoded)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|error| {
                        ApiError::invalid(format!("\"config_base64\" is not valid base64: {error}"))
                    })?;
                String::from_utf8(bytes).map(Some).map_err(|error| {
                    ApiError::invalid(format!(
                        "\"config_base64\" does not decode to UTF-8 text (invalid byte at offset \
                         {}): save the pipeline file as UTF-8",
                        error.utf8_error().valid_up_to()
                    ))
                })
            }
            (None, None) => Ok(None),
        }
    }
}

/// `POST /teams/{tc}/pipelines`: validates and sets a pipeline (created, or updated when it
/// exists): 201 when created, 200 when updated, with what changed (see `PipelineSetView`); a
/// file that does not validate is a 422 whose details are its diagnostics.
#[utoipa::path(post, path = "/teams/{tc}/pipelines", tag = "pipelines", summary = "Set a pipeline (create or update)", params(TeamPath),
    request_body = SetPipelineBody,
    responses(
        (status = 201, description = "The pipeline, created, with its warnings.", body = Data<PipelineSetView>),
        (status = 200, description = "The pipeline, updated: what changed, with its warnings.", body = Data<PipelineSetView>),
        (status = 422, description = "The file does not validate (`invalid_pipeline`); `details` lists its diagnostics (`[Diagnostic]`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn create(
    State(server): State<Server>,
    ApiPath(path): ApiPath<TeamPath>,
    ApiJson(body): ApiJson<SetPipelineBody>,
) -> ApiResult<(StatusCode, Json<Data<PipelineSetView>>)> {
    let Some(name) = body.name.clone() else {
        return Err(ApiError::invalid(
            "the pipeline needs a \"name\" (lowercase letters, digits, '-' and '_')",
        ));
    };
    let Some(text) = body.text()? else {
        return Err(ApiError::invalid(
            "the pipeline needs its file, as \"config\" (the HCL text) or \"config_base64\"",
        ));
    };
    let vars = body.vars.clone().unwrap_or(serde_json::Value::Null);
    let team = scope::team(&server, &path.tc).await?;
    let set = set(
        &server,
        &team,
        &name,
        body.file_name.as_deref(),
        &text,
        vars,
    )
    .await?;
    let status = if set.outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = set_view(&server, &team, set, body.public).await?;
    Ok((status, data(view)))
}

/// `PUT /teams/{tc}/pipelines/{pc}`: changes the file, the vars, the public flag or the name
/// of a pipeline that exists; same answer as `POST` (with no changes listed when neither the
/// file nor the vars were given). A new file is validated and stored first, then the pipeline
/// is renamed: a taken name is refused before anything changes, and a file that does not
/// validate leaves the name as it was.
#[utoipa::path(put, path = "/teams/{tc}/pipelines/{pc}", tag = "pipelines", summary = "Change a pipeline's file, vars, visibility or name", params(PipelinePath),
    request_body(content = Option<SetPipelineBody>, description = "Every field is optional; may be empty."),
    responses(
        (status = 200, description = "The pipeline, updated: what changed, with its warnings.", body = Data<PipelineSetView>),
        (status = 422, description = "The file does not validate (`invalid_pipeline`); `details` lists its diagnostics (`[Diagnostic]`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn update(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelinePath>,
    ApiJson(body): ApiJson<SetPipelineBody>,
) -> ApiResult<Json<Data<PipelineSetView>>> {
    let text = body.text()?;
    let PipelineScope { team, pipeline } = scope::pipeline(&server, &path.tc, &path.pc).await?;
    let old_name = pipeline.name.clone();
    let rename = body.name.as_deref().filter(|name| *name != old_name);
    if let Some(name) = rename {
        // Before the file is stored: a rename that cannot happen changes nothing.
        server.check_rename(&team.name, &old_name, name).await?;
    }
    let set = if text.is_some() || body.vars.is_some() {
        let text = text.unwrap_or_else(|| pipeline.config.clone());
        let vars = body.vars.clone().unwrap_or_else(|| pipeline.vars.clone());
        set(
            &server,
            &team,
            &pipeline.name,
            body.file_name.as_deref(),
            &text,
            vars,
        )
        .await?
    } else {
        PipelineSet {
            outcome: pikoci_core::store::SetPipelineOutcome {
                pipeline,
                created: false,
                jobs: Default::default(),
                resources: Default::default(),
            },
            warnings: Vec::new(),
        }
    };
    let set = match rename {
        Some(name) => {
            let renamed = server.rename_pipeline(&team.name, &old_name, name).await?;
            PipelineSet {
                outcome: pikoci_core::store::SetPipelineOutcome {
                    pipeline: renamed,
                    ..set.outcome
                },
                ..set
            }
        }
        None => set,
    };
    Ok(data(set_view(&server, &team, set, body.public).await?))
}

/// Validates and stores a pipeline; diagnostics are located in the text.
async fn set(
    server: &Server,
    team: &Team,
    name: &str,
    file_name: Option<&str>,
    text: &str,
    vars: serde_json::Value,
) -> ApiResult<PipelineSet> {
    let file_name = file_name.map_or_else(|| format!("{name}.hcl"), str::to_owned);
    server
        .set_pipeline(&team.name, name, &file_name, text, vars)
        .await
        .map_err(|error| ApiError::from_pipeline(error, &SourceFile::new(&file_name, text)))
}

/// The answer to a set: applies `public` first, then shows the pipeline as it is now.
async fn set_view(
    server: &Server,
    team: &Team,
    set: PipelineSet,
    public: Option<bool>,
) -> ApiResult<PipelineSetView> {
    let mut pipeline = set.outcome.pipeline;
    if let Some(public) = public
        && public != pipeline.public
    {
        server
            .store()
            .set_pipeline_public(pipeline.id, public)
            .await?;
        pipeline.public = public;
    }
    let file = SourceFile::new(format!("{}.hcl", pipeline.name), pipeline.config.clone());
    Ok(PipelineSetView {
        warnings: set
            .warnings
            .iter()
            .map(|d| DiagnosticView::new(d, Some(&file)))
            .collect(),
        pipeline: detailed(server, team, &pipeline).await?,
        created: set.outcome.created,
        jobs: ChangesView::new(&set.outcome.jobs),
        resources: ChangesView::new(&set.outcome.resources),
    })
}

/// `DELETE /teams/{tc}/pipelines/{pc}`: `{"deleted": "<name>"}`; its jobs, builds, logs,
/// resources and versions go with it.
#[utoipa::path(delete, path = "/teams/{tc}/pipelines/{pc}", tag = "pipelines", summary = "Delete a pipeline", params(PipelinePath),
    responses((status = 200, description = "The pipeline and everything of it, deleted.", body = Data<Deleted>)))]
pub(crate) async fn delete(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelinePath>,
) -> ApiResult<Json<Data<Deleted>>> {
    let scope = scope::pipeline(&server, &path.tc, &path.pc).await?;
    server.store().delete_pipeline(scope.pipeline.id).await?;
    tracing::info!(team = %scope.team.name, pipeline = %scope.pipeline.name, "pipeline deleted");
    Ok(data(Deleted {
        deleted: scope.pipeline.name,
    }))
}

/// `POST …/{pc}/pause`: the pipeline (summary) with every job paused.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/pause", tag = "pipelines", summary = "Pause a pipeline", params(PipelinePath),
    responses((status = 200, description = "The pipeline (summary), every job paused.", body = Data<PipelineView>)))]
pub(crate) async fn pause(
    state: State<Server>,
    path: ApiPath<PipelinePath>,
) -> ApiResult<Json<Data<PipelineView>>> {
    set_flag(state, path, Flag::Paused(true)).await
}

/// `POST …/{pc}/unpause`: the pipeline (summary) with every job unpaused.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/unpause", tag = "pipelines", summary = "Unpause a pipeline", params(PipelinePath),
    responses((status = 200, description = "The pipeline (summary), every job unpaused.", body = Data<PipelineView>)))]
pub(crate) async fn unpause(
    state: State<Server>,
    path: ApiPath<PipelinePath>,
) -> ApiResult<Json<Data<PipelineView>>> {
    set_flag(state, path, Flag::Paused(false)).await
}

/// `POST …/{pc}/expose`: the pipeline (summary), now public.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/expose", tag = "pipelines", summary = "Make a pipeline public", params(PipelinePath),
    responses((status = 200, description = "The pipeline (summary), now public.", body = Data<PipelineView>)))]
pub(crate) async fn expose(
    state: State<Server>,
    path: ApiPath<PipelinePath>,
) -> ApiResult<Json<Data<PipelineView>>> {
    set_flag(state, path, Flag::Public(true)).await
}

/// `POST …/{pc}/hide`: the pipeline (summary), now private.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/hide", tag = "pipelines", summary = "Make a pipeline private", params(PipelinePath),
    responses((status = 200, description = "The pipeline (summary), now private.", body = Data<PipelineView>)))]
pub(crate) async fn hide(
    state: State<Server>,
    path: ApiPath<PipelinePath>,
) -> ApiResult<Json<Data<PipelineView>>> {
    set_flag(state, path, Flag::Public(false)).await
}

enum Flag {
    Paused(bool),
    Public(bool),
}

async fn set_flag(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelinePath>,
    flag: Flag,
) -> ApiResult<Json<Data<PipelineView>>> {
    let PipelineScope { team, pipeline } = scope::pipeline(&server, &path.tc, &path.pc).await?;
    match flag {
        Flag::Paused(paused) => {
            server
                .store()
                .set_pipeline_paused(pipeline.id, paused)
                .await?
        }
        Flag::Public(public) => {
            server
                .store()
                .set_pipeline_public(pipeline.id, public)
                .await?
        }
    }
    let pipeline = server.store().pipeline_by_id(pipeline.id).await?;
    let jobs = job_summaries(&server, &team, &pipeline).await?;
    Ok(data(PipelineView::summary(&team.name, &pipeline, jobs)))
}

/// The detailed view of a pipeline.
async fn detailed(
    server: &Server,
    team: &Team,
    pipeline: &StoredPipeline,
) -> ApiResult<PipelineView> {
    let jobs = job_summaries(server, team, pipeline).await?;
    let resources = server.store().resources(pipeline.id).await?;
    let resources = resources
        .iter()
        .map(|resource| ResourceView::summary(&team.name, &pipeline.name, resource))
        .collect();
    Ok(PipelineView::detailed(
        &team.name, pipeline, jobs, resources,
    ))
}

/// Every job of a pipeline with its latest build.
async fn job_summaries(
    server: &Server,
    team: &Team,
    pipeline: &StoredPipeline,
) -> ApiResult<Vec<JobSummary>> {
    let jobs = server.store().jobs(pipeline.id).await?;
    let resources = server.store().resources(pipeline.id).await?;
    let mut summaries = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let place = BuildPlace {
            team: &team.name,
            pipeline: &pipeline.name,
            job: &job.name,
            resources: &resources,
        };
        let latest = latest_build(server, job.id, place).await?;
        summaries.push(JobSummary::new(job, latest));
    }
    Ok(summaries)
}

/// The newest build of a job (summary).
pub(crate) async fn latest_build(
    server: &Server,
    job: JobId,
    place: BuildPlace<'_>,
) -> ApiResult<Option<BuildView>> {
    let builds = server
        .store()
        .list_builds(&BuildFilter {
            job_id: Some(job),
            limit: 1,
            ..BuildFilter::default()
        })
        .await?;
    Ok(builds.first().map(|build| BuildView::summary(place, build)))
}

/// `{"config", "vars"?, "file_name"?}`: a pipeline file to validate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ValidatePipeline)]
pub(crate) struct ValidateBody {
    /// The pipeline file, HCL text.
    config: String,
    /// Values of the file's `var`s, by name; the stored pipeline's when not given.
    vars: Option<serde_json::Value>,
    /// The file's name in diagnostics (default `<pc>.hcl`).
    file_name: Option<String>,
}

/// `{"valid", "errors": [Diagnostic], "warnings": [Diagnostic]}`: what setting the file would
/// say, with the places of the diagnostics in it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Validation)]
pub(crate) struct ValidationView {
    /// No error: setting this file would succeed (as far as the file goes).
    valid: bool,
    errors: Vec<DiagnosticView>,
    warnings: Vec<DiagnosticView>,
}

/// `POST /teams/{tc}/pipelines/{pc}/validate` `{"config", "vars"?, "file_name"?}`: validates a
/// file as setting it as pipeline `{pc}` would (which need not exist yet), and stores nothing.
/// An invalid file is a 200 with `"valid": false`: the answer is the validation. What the
/// editor of the web UI calls as its user types.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/validate", tag = "pipelines", summary = "Validate a pipeline file without setting it", params(PipelinePath),
    request_body = ValidateBody,
    responses((status = 200, description = "The validation: its errors and warnings, each at its line.", body = Data<ValidationView>)))]
pub(crate) async fn validate(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelinePath>,
    ApiJson(body): ApiJson<ValidateBody>,
) -> ApiResult<Json<Data<ValidationView>>> {
    let team = scope::team(&server, &path.tc).await?;
    let vars = match body.vars {
        Some(vars) => vars,
        None => match server.store().pipeline(team.id, &path.pc).await {
            Ok(pipeline) => pipeline.vars,
            Err(error) if error.kind() == pikoci_core::ErrorKind::NotFound => {
                serde_json::Value::Null
            }
            Err(error) => return Err(error.into()),
        },
    };
    let file_name = body.file_name.unwrap_or_else(|| format!("{}.hcl", path.pc));
    let file = SourceFile::new(&file_name, &body.config);
    let view = |diagnostics: &[pikoci_config::Diagnostic], severity| {
        diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .map(|d| DiagnosticView::new(d, Some(&file)))
            .collect::<Vec<_>>()
    };
    use pikoci_config::Severity;
    let validation = match server
        .validate_pipeline(&path.pc, &file_name, &body.config, vars)
        .await
    {
        Ok((_, warnings)) => ValidationView {
            valid: true,
            errors: Vec::new(),
            warnings: view(&warnings, Severity::Warning),
        },
        Err(error) => match &error.diagnostics {
            Some(diagnostics) => ValidationView {
                valid: false,
                errors: view(diagnostics, Severity::Error),
                warnings: view(diagnostics, Severity::Warning),
            },
            None => return Err(error.into()),
        },
    };
    Ok(data(validation))
}
