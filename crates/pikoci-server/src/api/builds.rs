//! Builds: `…/jobs/{jn}/builds`, `…/builds/{bn}` and what users do with one (cancel, retry,
//! approve, reject), and its log.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use pikoci_core::ErrorKind;
use pikoci_core::store::{
    Build, BuildFilter, BuildId, BuildStatus, LogChunk, LogPosition, StoredResource, VersionId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::scope::{self, BuildPath, JobPath, JobScope, PipelinePath, PipelineScope, VersionPath};
use super::views::{BuildPlace, BuildView, PageMeta};
use super::{Data, Page, cut_page, data, page_limit};
use crate::Server;
use crate::auth::Caller;

/// `?before=<build id>&limit=<1..500, default 50>&status=<status>[,<status>…]&since=<time>`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct BuildsQuery {
    /// Builds older than this build id: `meta.next_before` of the previous page.
    before: Option<i64>,
    /// The page's size, 1 to 500 (50 when not given).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Only builds in these statuses, comma-separated: `failed,errored`.
    #[param(
        pattern = "^\\s*(pending|waiting_for_approval|assigned|started|succeeded|failed|cancelled|warning|errored)\\s*(,\\s*(pending|waiting_for_approval|assigned|started|succeeded|failed|cancelled|warning|errored)\\s*)*$",
        example = "failed,errored"
    )]
    status: Option<String>,
    /// Only builds created at or after this time (RFC 3339: `2026-12-03T08:00:00Z`).
    #[param(format = DateTime, example = "2026-12-03T08:00:00Z")]
    since: Option<String>,
    /// Only this job's builds, in a pipeline's list (a job's list is the job's already, and
    /// refuses it).
    #[param(example = "test")]
    job: Option<String>,
}

impl BuildsQuery {
    /// The store's filter for these parameters (the page read one longer, to know whether
    /// more follow); the page's size.
    fn filter(&self) -> ApiResult<(BuildFilter, u32)> {
        let limit = page_limit(self.limit)?;
        let statuses = match &self.status {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|name| {
                    BuildStatus::parse(name.trim()).ok_or_else(|| {
                        ApiError::invalid(format!(
                            "unknown build status \"{}\": use one of {}",
                            name.escape_debug(),
                            BuildStatus::ALL.map(BuildStatus::as_str).join(", ")
                        ))
                    })
                })
                .collect::<ApiResult<_>>()?,
        };
        let since = match &self.since {
            None => None,
            Some(text) => Some(
                chrono::DateTime::parse_from_rfc3339(text.trim())
                    .map_err(|error| {
                        ApiError::invalid(format!(
                            "since=\"{}\" is not an RFC 3339 time ({error}): write \
                             2026-12-03T08:00:00Z",
                            text.escape_debug()
                        ))
                    })?
                    .with_timezone(&chrono::Utc),
            ),
        };
        let filter = BuildFilter {
            job_id: None,
            pipeline_id: None,
            statuses,
            before: self.before.map(BuildId),
            since,
            used_version: None,
            limit: limit + 1,
        };
        Ok((filter, limit))
    }
}

/// `GET …/jobs/{jn}/builds`: the job's builds, newest first (summaries), with
/// `meta: {has_more, next_before}`.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds", tag = "builds", summary = "List a job's builds", params(JobPath, BuildsQuery),
    responses((status = 200, description = "A page of the job's builds, newest first.", body = Page<Vec<BuildView>, PageMeta>)))]
pub(crate) async fn list(
    State(server): State<Server>,
    ApiPath(path): ApiPath<JobPath>,
    ApiQuery(query): ApiQuery<BuildsQuery>,
) -> ApiResult<Json<Page<Vec<BuildView>>>> {
    if query.job.is_some() {
        return Err(ApiError::invalid(
            "?job= filters a pipeline's builds (…/pipelines/{pc}/builds?job=); this list is \
             one job's already",
        ));
    }
    let (mut filter, limit) = query.filter()?;
    let scope = scope::job(&server, &path).await?;
    filter.job_id = Some(scope.job.id);
    let mut builds = server.store().list_builds(&filter).await?;
    let (has_more, next_before) = cut_page(&mut builds, limit, |b| b.id.0);
    let resources = server.store().resources(scope.pipeline.id).await?;
    let place = place(&scope, &resources);
    Ok(Json(Page {
        meta: PageMeta {
            has_more,
            next_before,
        },
        data: builds
            .iter()
            .map(|build| BuildView::summary(place, build))
            .collect(),
    }))
}

/// `GET …/{pc}/builds`: the pipeline's builds, every job's (or `?job=`'s), newest first.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/builds", tag = "builds", summary = "List a pipeline's builds", params(PipelinePath, BuildsQuery),
    responses((status = 200, description = "A page of the pipeline's builds, newest first.", body = Page<Vec<BuildView>, PageMeta>)))]
pub(crate) async fn list_pipeline(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelinePath>,
    ApiQuery(query): ApiQuery<BuildsQuery>,
) -> ApiResult<Json<Page<Vec<BuildView>>>> {
    let scope = scope::pipeline(&server, &path.tc, &path.pc).await?;
    pipeline_builds(&server, &scope, &query, None).await
}

/// `GET …/resources/{rc}/versions/{id}/builds`: the builds that used a version (a `get` of it,
/// or the `put` that made it), newest first, with the filters of a pipeline's list: where a
/// version went.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/resources/{rc}/versions/{id}/builds", tag = "builds", summary = "List the builds that used a version", params(VersionPath, BuildsQuery),
    responses((status = 200, description = "A page of the builds that used the version, newest first.", body = Page<Vec<BuildView>, PageMeta>)))]
pub(crate) async fn list_version(
    State(server): State<Server>,
    ApiPath(path): ApiPath<VersionPath>,
    ApiQuery(query): ApiQuery<BuildsQuery>,
) -> ApiResult<Json<Page<Vec<BuildView>>>> {
    let found = scope::resource(&server, &path.resource()).await?;
    let version = match server.store().version_by_id(VersionId(path.id)).await {
        Ok(version) if version.resource_id == found.resource.id => version,
        Ok(_) => return Err(no_version(&path)),
        Err(error) if error.kind() == ErrorKind::NotFound => return Err(no_version(&path)),
        Err(error) => return Err(error.into()),
    };
    let scope = PipelineScope {
        team: found.team,
        pipeline: found.pipeline,
    };
    pipeline_builds(&server, &scope, &query, Some(version.id)).await
}

fn no_version(path: &VersionPath) -> ApiError {
    ApiError::not_found(format!(
        "resource {} has no version {} (`…/resources/{}/versions` lists them)",
        path.rc, path.id, path.rc
    ))
}

/// A page of a pipeline's builds, as `query` and `used_version` filter them.
async fn pipeline_builds(
    server: &Server,
    scope: &PipelineScope,
    query: &BuildsQuery,
    used_version: Option<VersionId>,
) -> ApiResult<Json<Page<Vec<BuildView>>>> {
    let (mut filter, limit) = query.filter()?;
    filter.used_version = used_version;
    let jobs = server.store().jobs(scope.pipeline.id).await?;
    match &query.job {
        Some(name) => {
            let job = jobs.iter().find(|job| job.name == *name).ok_or_else(|| {
                ApiError::not_found(format!(
                    "pipeline \"{}\" has no job \"{}\"",
                    scope.pipeline.name,
                    name.escape_debug()
                ))
            })?;
            filter.job_id = Some(job.id);
        }
        None => filter.pipeline_id = Some(scope.pipeline.id),
    }
    let mut builds = server.store().list_builds(&filter).await?;
    let (has_more, next_before) = cut_page(&mut builds, limit, |b| b.id.0);
    let data = summaries(server, &scope.team.name, &scope.pipeline, &jobs, &builds).await?;
    Ok(Json(Page {
        meta: PageMeta {
            has_more,
            next_before,
        },
        data,
    }))
}

/// Summaries of builds of jobs of `pipeline` (of team `team`).
pub(crate) async fn summaries(
    server: &Server,
    team: &str,
    pipeline: &pikoci_core::store::StoredPipeline,
    jobs: &[pikoci_core::store::StoredJob],
    builds: &[Build],
) -> ApiResult<Vec<BuildView>> {
    let resources = server.store().resources(pipeline.id).await?;
    Ok(builds
        .iter()
        .map(|build| {
            let job = jobs
                .iter()
                .find(|job| job.id == build.job_id)
                .map_or("", |job| job.name.as_str());
            let place = BuildPlace {
                team,
                pipeline: &pipeline.name,
                job,
                resources: &resources,
            };
            BuildView::summary(place, build)
        })
        .collect())
}

/// `GET …/builds/{bn}`: the build with the steps of every attempt, the versions it used and,
/// when it is pending, why it does not run yet.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}", tag = "builds", summary = "Get a build", params(BuildPath),
    responses((status = 200, description = "The build with its steps, the versions it used and, when pending, why.", body = Data<BuildView>)))]
pub(crate) async fn get(
    State(server): State<Server>,
    ApiPath(path): ApiPath<BuildPath>,
) -> ApiResult<Json<Data<BuildView>>> {
    let (scope, build) = scope::build(&server, &path).await?;
    let resources = server.store().resources(scope.pipeline.id).await?;
    let view = detailed_view(&server, place(&scope, &resources), &build).await?;
    Ok(data(view))
}

/// `{"status", "pending_reason"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PendingReason {
    /// The build's status.
    status: &'static str,
    /// Why the dispatcher did not start it the last time it tried (`no live worker with tags
    /// [gpu]`, `concurrency limit 1 reached (build 12 running)`, `pipeline paused`...); null
    /// when it is not pending, or was not tried yet.
    #[schema(required = true)]
    pending_reason: Option<String>,
}

/// `GET …/builds/{bn}/pending_reason`: why a build does not run yet, in short.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/pending_reason", tag = "builds", summary = "Why a build is pending",
    params(BuildPath),
    responses((status = 200, description = "The build's status and, while it is pending, why.", body = Data<PendingReason>)))]
pub(crate) async fn pending_reason(
    State(server): State<Server>,
    ApiPath(path): ApiPath<BuildPath>,
) -> ApiResult<Json<Data<PendingReason>>> {
    let (_, build) = scope::build(&server, &path).await?;
    let pending_reason = if build.status == BuildStatus::Pending {
        server.pending_reason(build.id)
    } else {
        None
    };
    Ok(data(PendingReason {
        status: build.status.as_str(),
        pending_reason,
    }))
}

/// The detailed view of a build.
pub(crate) async fn detailed_view(
    server: &Server,
    place: BuildPlace<'_>,
    build: &Build,
) -> ApiResult<BuildView> {
    let steps = server.store().build_steps(build.id).await?;
    let versions = server.store().build_versions(build.id).await?;
    let pending_reason = if build.status == BuildStatus::Pending {
        server.pending_reason(build.id)
    } else {
        None
    };
    Ok(BuildView::detailed(
        place,
        build,
        &steps,
        &versions,
        pending_reason,
    ))
}

/// Where a build of this job sits.
pub(crate) fn place<'a>(scope: &'a JobScope, resources: &'a [StoredResource]) -> BuildPlace<'a> {
    BuildPlace {
        team: &scope.team.name,
        pipeline: &scope.pipeline.name,
        job: &scope.job.name,
        resources,
    }
}

/// A build as the summary of an operation's result.
async fn summary(server: &Server, scope: &JobScope, build: &Build) -> ApiResult<BuildView> {
    let resources = server.store().resources(scope.pipeline.id).await?;
    Ok(BuildView::summary(place(scope, &resources), build))
}

/// `POST …/builds/{bn}/cancel`: the build (summary), cancelled or being cancelled.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/cancel", tag = "builds", summary = "Cancel a build", params(BuildPath),
    responses((status = 200, description = "The build (summary), cancelled or being cancelled.", body = Data<BuildView>)))]
pub(crate) async fn cancel(
    State(server): State<Server>,
    ApiPath(path): ApiPath<BuildPath>,
) -> ApiResult<Json<Data<BuildView>>> {
    let (scope, build) = scope::build(&server, &path).await?;
    let build = server.cancel_build(build.id).await?;
    Ok(data(summary(&server, &scope, &build).await?))
}

/// `POST …/builds/{bn}/retry`: 201 with the new build (`N.1`, summary).
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/retry", tag = "builds", summary = "Retry a build", params(BuildPath),
    responses(
        (status = 201, description = "The new build, `N.1` (summary), with the same inputs and versions.", body = Data<BuildView>),
        (status = 409, description = "The build cannot be retried (`conflict`): not finished, or its job disables retries.", body = ErrorBody<'_>),
    ))]
pub(crate) async fn retry(
    State(server): State<Server>,
    ApiPath(path): ApiPath<BuildPath>,
) -> ApiResult<(StatusCode, Json<Data<BuildView>>)> {
    let (scope, build) = scope::build(&server, &path).await?;
    let retry = server.retry_build(build.id).await?;
    Ok((
        StatusCode::CREATED,
        data(summary(&server, &scope, &retry).await?),
    ))
}

/// `POST …/builds/{bn}/warning`: marks a failed build as a warning (its jobs downstream take
/// it as passed, and are looked at again at once); the build (summary).
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/warning", tag = "builds", summary = "Mark a failed build as a warning", params(BuildPath),
    responses(
        (status = 200, description = "The build (summary), now `warning`.", body = Data<BuildView>),
        (status = 409, description = "The build did not fail (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn mark_warning(
    State(server): State<Server>,
    ApiPath(path): ApiPath<BuildPath>,
) -> ApiResult<Json<Data<BuildView>>> {
    let (scope, build) = scope::build(&server, &path).await?;
    let marked = server.mark_build_warning(build.id).await?;
    Ok(data(summary(&server, &scope, &marked).await?))
}

/// `{"message"?}` of an approval (not stored yet: the service records the approver only).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Approve)]
pub(crate) struct ApproveBody {
    /// A word for the log.
    #[serde(default)]
    message: Option<String>,
}

/// `POST …/builds/{bn}/approve` `{"message"?}`: the build (summary).
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/approve", tag = "builds", summary = "Approve a build", params(BuildPath),
    request_body(content = Option<ApproveBody>, description = "May be empty."),
    responses(
        (status = 200, description = "The build (summary), approved.", body = Data<BuildView>),
        (status = 409, description = "The build does not wait for an approval (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn approve(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<BuildPath>,
    ApiJson(body): ApiJson<ApproveBody>,
) -> ApiResult<Json<Data<BuildView>>> {
    let (scope, build) = scope::build(&server, &path).await?;
    tracing::info!(build = %build.id, user = caller.name(), message = body.message.as_deref().unwrap_or(""), "build approved");
    let build = server.approve_build(build.id, caller.name()).await?;
    Ok(data(summary(&server, &scope, &build).await?))
}

/// `{"message"}` of a rejection: why (required).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Reject)]
pub(crate) struct RejectBody {
    /// Why: required, not blank.
    #[schema(pattern = "\\S")]
    message: String,
}

/// `POST …/builds/{bn}/reject` `{"message"}`: the build (summary), cancelled with the reason.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/reject", tag = "builds", summary = "Reject a build", params(BuildPath), request_body = RejectBody,
    responses(
        (status = 200, description = "The build (summary), cancelled with the reason.", body = Data<BuildView>),
        (status = 409, description = "The build does not wait for an approval (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn reject(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<BuildPath>,
    ApiJson(body): ApiJson<RejectBody>,
) -> ApiResult<Json<Data<BuildView>>> {
    if body.message.trim().is_empty() {
        return Err(ApiError::invalid(
            "a rejection needs a message saying why: {\"message\": \"...\"}",
        ));
    }
    let (scope, build) = scope::build(&server, &path).await?;
    let build = server
        .reject_build(build.id, caller.name(), &body.message)
        .await?;
    Ok(data(summary(&server, &scope, &build).await?))
}

/// `?attempt=<n>&format=text|json`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogQuery {
    /// The attempt (from 1); the latest when not given.
    #[param(minimum = 1)]
    attempt: Option<u32>,
    /// `text` (the default) or `json`.
    #[param(pattern = "^(text|json)$")]
    format: Option<String>,
}

/// One chunk in the JSON form of a log: `{"attempt", "step", "seq", "text", "created_at"}`
/// (`created_at`: when the worker sent it, the time of its lines).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LogChunk)]
pub(crate) struct ChunkView {
    attempt: u32,
    step: u32,
    seq: u64,
    text: String,
    created_at: String,
}

/// Chunks read from the store at once: the most of a log held in memory while it is sent.
const LOG_PAGE: u32 = 200;

/// `GET …/builds/{bn}/logs?attempt=&format=`: the output of one attempt (the latest by
/// default), steps in order and each step's chunks in `seq` order. `format=text` (the default)
/// answers `text/plain; charset=utf-8` with the output as printed; `format=json` answers
/// `{"data": [{"attempt", "step", "seq", "text"}], "meta": {"attempt"}}`. The text of the
/// latest attempt starts with the server's notes about earlier ones (why the build ran again).
/// The log is read and sent a page of chunks at a time, so a long log is never held whole;
/// to follow a running build use `…/events`.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/logs", tag = "builds", summary = "Read a build's log", params(BuildPath, LogQuery),
    responses((status = 200, description = "The attempt's output: as printed (`format=text`), or its chunks (`format=json`, `meta: {\"attempt\"}`).",
        content(
            (String = "text/plain"),
            (Page<Vec<ChunkView>, LogMeta> = "application/json"),
        ))))]
pub(crate) async fn logs(
    State(server): State<Server>,
    ApiPath(path): ApiPath<BuildPath>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<Response> {
    let json = match query.format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unknown log format \"{}\": use text or json",
                other.escape_debug()
            )));
        }
    };
    let (_, build) = scope::build(&server, &path).await?;
    let attempt = query.attempt.unwrap_or(build.dispatch.attempt);
    // What the server noted about earlier attempts (a lost worker) comes first in the text of
    // the latest one: why the build ran again is part of its story. Notes are a few lines.
    let mut notes = Vec::new();
    if query.attempt.is_none() && !json {
        for earlier in 1..attempt {
            let mut from = LogPosition {
                step: crate::SERVER_NOTES_STEP,
                seq: 0,
            };
            loop {
                let page = server
                    .store()
                    .read_attempt_log(build.id, earlier, from, LOG_PAGE)
                    .await?;
                let Some(last) = page.last() else { break };
                from = LogPosition::after(last);
                let complete = page.len() < LOG_PAGE as usize;
                notes.extend(page.into_iter().flat_map(|chunk| chunk.data));
                if complete {
                    break;
                }
            }
        }
    }
    let pages = LogPages::start(server, build.id, attempt..=attempt).await?;
    let (content_type, body) = if json {
        ("application/json", json_log(pages, attempt))
    } else {
        ("text/plain; charset=utf-8", text_log(pages, notes))
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// The logs of a range of attempts, one after the other, read a page at a time.
struct LogPages {
    server: Server,
    build: BuildId,
    /// The attempt being read, and the last one to read.
    attempt: u32,
    last: u32,
    /// Where the next page of `attempt` starts; `None` once it was read whole.
    from: Option<LogPosition>,
    /// A page read and not sent yet.
    ready: Option<Vec<LogChunk>>,
}

impl LogPages {
    /// The pages of `attempts`. The first page is read before answering, so that a store that
    /// fails is an error status rather than a cut response.
    async fn start(
        server: Server,
        build: BuildId,
        attempts: std::ops::RangeInclusive<u32>,
    ) -> ApiResult<LogPages> {
        let mut pages = LogPages {
            server,
            build,
            attempt: *attempts.start(),
            last: *attempts.end(),
            from: Some(LogPosition::default()),
            ready: None,
        };
        pages.ready = Some(pages.read().await?);
        Ok(pages)
    }

    /// The next page of the current attempt (empty once it was read whole), moving to the next
    /// attempt after the last page of one.
    async fn read(&mut self) -> Result<Vec<LogChunk>, pikoci_core::store::StoreError> {
        let Some(from) = self.from else {
            return Ok(Vec::new());
        };
        let page = self
            .server
            .store()
            .read_attempt_log(self.build, self.attempt, from, LOG_PAGE)
            .await?;
        self.from = match page.last() {
            Some(last) if page.len() == LOG_PAGE as usize => Some(LogPosition::after(last)),
            _ if self.attempt < self.last => {
                self.attempt += 1;
                Some(LogPosition::default())
            }
            _ => None,
        };
        Ok(page)
    }

    /// The next page, `None` after the last one. A store error ends the response early (the
    /// client sees a cut connection, not a complete log).
    async fn next(&mut self) -> Option<Result<Vec<LogChunk>, std::io::Error>> {
        loop {
            let page = match self.ready.take() {
                Some(page) => page,
                None if self.from.is_none() => return None,
                None => match self.read().await {
                    Ok(page) => page,
                    Err(err) => {
                        tracing::warn!(build = %self.build, attempt = self.attempt, error = %err, "a log could not be read to its end");
                        self.from = None;
                        return Some(Err(std::io::Error::other(err.to_string())));
                    }
                },
            };
            // An attempt without output, or one whose last page was exactly full.
            if !page.is_empty() {
                return Some(Ok(page));
            }
        }
    }
}

/// The text of an attempt: `notes` first, then every chunk as printed.
fn text_log(pages: LogPages, notes: Vec<u8>) -> Body {
    let notes = (!notes.is_empty()).then(|| Ok(Bytes::from(lossy(notes))));
    let chunks = futures::stream::unfold(pages, |mut pages| async move {
        let page = pages.next().await?;
        let bytes = page.map(|chunks| {
            let text: Vec<u8> = chunks.into_iter().flat_map(|chunk| chunk.data).collect();
            Bytes::from(lossy(text))
        });
        Some((bytes, pages))
    });
    Body::from_stream(futures::stream::iter(notes).chain(chunks))
}

/// The JSON form of an attempt, written as it is read.
fn json_log(pages: LogPages, attempt: u32) -> Body {
    let open = futures::stream::once(async { Ok(Bytes::from_static(b"{\"data\":[")) });
    let close = futures::stream::once(async move {
        let mut out = b"],\"meta\":".to_vec();
        // A number always serialises.
        let _ = serde_json::to_writer(&mut out, &LogMeta { attempt });
        out.push(b'}');
        Ok(Bytes::from(out))
    });
    Body::from_stream(open.chain(json_chunks(pages)).chain(close))
}

/// The chunks of `pages` as the elements of a JSON array (without its brackets), written as
/// they are read.
fn json_chunks(
    pages: LogPages,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    // The state holds whether no chunk was written yet (no comma before the first one).
    futures::stream::unfold((pages, true), |(mut pages, none_yet)| async move {
        let page = pages.next().await?;
        let mut at_start = none_yet;
        let bytes = page.map(|chunks| {
            let mut out = Vec::new();
            for chunk in chunks {
                if !std::mem::take(&mut at_start) {
                    out.push(b',');
                }
                let view = ChunkView {
                    attempt: chunk.attempt,
                    step: chunk.step,
                    seq: chunk.seq,
                    text: lossy(chunk.data),
                    created_at: super::views::time(chunk.created_at),
                };
                // A view of strings and numbers always serialises.
                let _ = serde_json::to_writer(&mut out, &view);
            }
            Bytes::from(out)
        });
        Some((bytes, (pages, at_start)))
    })
}

/// A build's report: what a user keeps or attaches to a bug report. Every field but `logs`
/// is a snapshot; `logs` is written last, as it is read.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BuildReport {
    /// The version of the server that wrote the report.
    pikoci_version: &'static str,
    /// When the report was written (RFC 3339).
    generated_at: String,
    /// The build in detail: steps of every attempt, the versions it used, why it is pending.
    build: BuildView,
    /// The output of every attempt, in order: attempt, then step, then `seq`.
    logs: Vec<ChunkView>,
}

/// `GET …/builds/{bn}/report`: the build and the output of every attempt as one JSON download
/// (`build-report-<bn>.json`), read and sent a page of log at a time.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/report", tag = "builds", summary = "Download a build's report",
    params(BuildPath),
    responses((status = 200, description = "The build and its whole output, as a file to save.", body = BuildReport,
        headers(("Content-Disposition" = String, description = "`attachment; filename=\"build-report-<bn>.json\"`")))))]
pub(crate) async fn report(
    State(server): State<Server>,
    ApiPath(path): ApiPath<BuildPath>,
) -> ApiResult<Response> {
    let (scope, build) = scope::build(&server, &path).await?;
    let resources = server.store().resources(scope.pipeline.id).await?;
    let view = detailed_view(&server, place(&scope, &resources), &build).await?;
    let head = BuildReport {
        pikoci_version: env!("CARGO_PKG_VERSION"),
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        build: view,
        logs: Vec::new(),
    };
    // The report with no logs ends `"logs":[]}`: the chunks go between the brackets.
    let mut open = serde_json::to_vec(&head).map_err(|err| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("failed to write the report of build {}: {err}", path.bn),
        )
    })?;
    debug_assert!(open.ends_with(b"[]}"), "logs is BuildReport's last field");
    open.truncate(open.len().saturating_sub(2));
    let pages = LogPages::start(server, build.id, 1..=build.dispatch.attempt.max(1)).await?;
    let body = futures::stream::once(async move { Ok(Bytes::from(open)) })
        .chain(json_chunks(pages))
        .chain(futures::stream::once(async {
            Ok(Bytes::from_static(b"]}"))
        }));
    let disposition = format!("attachment; filename=\"build-report-{}.json\"", path.bn);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Text from bytes, invalid UTF-8 replaced.
fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

/// The `meta` of a log in JSON: `{"attempt"}`, the attempt shown.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogMeta {
    attempt: u32,
}
