//! Turning path parameters into stored things: `{tc}` team, `{pc}` pipeline, `{jn}` job,
//! `{bn}` build number (`3`, `3.1`), `{rc}` resource (`type.name`).

use pikoci_core::ResourceRef;
use pikoci_core::store::{Build, BuildNumber, StoredJob, StoredPipeline, StoredResource, Team};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult};
use crate::Server;

/// `/teams/{tc}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TeamPath {
    /// The team's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "main")]
    pub(crate) tc: String,
}

/// `/teams/{tc}/pipelines/{pc}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct PipelinePath {
    /// The team's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "main")]
    pub(crate) tc: String,
    /// The pipeline's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "hello")]
    pub(crate) pc: String,
}

/// `/teams/{tc}/pipelines/{pc}/jobs/{jn}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct JobPath {
    /// The team's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "main")]
    pub(crate) tc: String,
    /// The pipeline's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "hello")]
    pub(crate) pc: String,
    /// The job's name.
    #[param(example = "test")]
    pub(crate) jn: String,
}

/// `/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct BuildPath {
    /// The team's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "main")]
    pub(crate) tc: String,
    /// The pipeline's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "hello")]
    pub(crate) pc: String,
    /// The job's name.
    #[param(example = "test")]
    pub(crate) jn: String,
    /// The build's number: `3`, or `3.1` for a retry of build 3.
    #[param(pattern = "^[0-9]*[1-9][0-9]*(\\.[0-9]*[1-9][0-9]*)?$", example = "1")]
    pub(crate) bn: String,
}

/// `/teams/{tc}/pipelines/{pc}/resources/{rc}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ResourcePath {
    /// The team's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "main")]
    pub(crate) tc: String,
    /// The pipeline's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "hello")]
    pub(crate) pc: String,
    /// The resource as `type.name`.
    #[param(pattern = "^[^.]+\\..+$", example = "cron.every-hour")]
    pub(crate) rc: String,
}

/// `/teams/{tc}/pipelines/{pc}/resources/{rc}/versions/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct VersionPath {
    /// The team's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "main")]
    pub(crate) tc: String,
    /// The pipeline's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "hello")]
    pub(crate) pc: String,
    /// The resource as `type.name`.
    #[param(pattern = "^[^.]+\\..+$", example = "cron.every-hour")]
    pub(crate) rc: String,
    /// The version's id.
    pub(crate) id: i64,
}

impl VersionPath {
    /// The path of the version's resource.
    pub(crate) fn resource(&self) -> ResourcePath {
        ResourcePath {
            tc: self.tc.clone(),
            pc: self.pc.clone(),
            rc: self.rc.clone(),
        }
    }
}

/// A pipeline with its team.
#[derive(Debug)]
pub(crate) struct PipelineScope {
    pub(crate) team: Team,
    pub(crate) pipeline: StoredPipeline,
}

/// A job with its pipeline.
#[derive(Debug)]
pub(crate) struct JobScope {
    pub(crate) team: Team,
    pub(crate) pipeline: StoredPipeline,
    pub(crate) job: StoredJob,
}

/// A resource with its pipeline.
#[derive(Debug)]
pub(crate) struct ResourceScope {
    pub(crate) team: Team,
    pub(crate) pipeline: StoredPipeline,
    pub(crate) resource: StoredResource,
}

/// The team named `tc`.
pub(crate) async fn team(server: &Server, tc: &str) -> ApiResult<Team> {
    Ok(server.store().team(tc).await?)
}

/// The pipeline of a path.
pub(crate) async fn pipeline(server: &Server, tc: &str, pc: &str) -> ApiResult<PipelineScope> {
    let team = team(server, tc).await?;
    let pipeline = server
        .store()
        .pipeline(team.id, pc)
        .await
        .map_err(|error| {
            named_not_found(error, || {
                format!(
                    "team \"{}\" has no pipeline \"{}\"",
                    team.name,
                    pc.escape_debug()
                )
            })
        })?;
    Ok(PipelineScope { team, pipeline })
}

/// The job of a path.
pub(crate) async fn job(server: &Server, path: &JobPath) -> ApiResult<JobScope> {
    let PipelineScope { team, pipeline } = pipeline(server, &path.tc, &path.pc).await?;
    let job = server
        .store()
        .job(pipeline.id, &path.jn)
        .await
        .map_err(|error| named_not_found(error, || no_such("job", &path.jn, &pipeline.name)))?;
    Ok(JobScope {
        team,
        pipeline,
        job,
    })
}

/// The job and build of a path.
pub(crate) async fn build(server: &Server, path: &BuildPath) -> ApiResult<(JobScope, Build)> {
    let number: BuildNumber = path.bn.parse().map_err(ApiError::invalid)?;
    let scope = job(
        server,
        &JobPath {
            tc: path.tc.clone(),
            pc: path.pc.clone(),
            jn: path.jn.clone(),
        },
    )
    .await?;
    let build = server
        .store()
        .build_by_number(scope.job.id, number)
        .await
        .map_err(|error| {
            named_not_found(error, || {
                format!("job \"{}\" has no build {number}", scope.job.name)
            })
        })?;
    Ok((scope, build))
}

/// The resource of a path.
pub(crate) async fn resource(server: &Server, path: &ResourcePath) -> ApiResult<ResourceScope> {
    let reference = parse_resource(&path.rc)?;
    let PipelineScope { team, pipeline } = pipeline(server, &path.tc, &path.pc).await?;
    let resource = server
        .store()
        .resource(pipeline.id, &reference)
        .await
        .map_err(|error| {
            named_not_found(error, || no_such("resource", &path.rc, &pipeline.name))
        })?;
    Ok(ResourceScope {
        team,
        pipeline,
        resource,
    })
}

/// `type.name`.
fn parse_resource(rc: &str) -> ApiResult<ResourceRef> {
    match rc.split_once('.') {
        Some((type_name, name)) if !type_name.is_empty() && !name.is_empty() => Ok(ResourceRef {
            type_name: type_name.to_owned(),
            name: name.to_owned(),
        }),
        _ => Err(ApiError::invalid(format!(
            "invalid resource \"{}\": name a resource as <type>.<name>, e.g. git.repo",
            rc.escape_debug()
        ))),
    }
}

fn no_such(what: &str, name: &str, pipeline: &str) -> String {
    format!(
        "pipeline \"{pipeline}\" has no {what} \"{}\"",
        name.escape_debug()
    )
}

/// A store error, with a message naming what the user asked for when it is a `NotFound`.
fn named_not_found(
    error: pikoci_core::store::StoreError,
    message: impl FnOnce() -> String,
) -> ApiError {
    if error.kind() == pikoci_core::ErrorKind::NotFound {
        ApiError::not_found(message())
    } else {
        ApiError::from(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_type_dot_name() {
        let reference = parse_resource("git.repo").unwrap();
        assert_eq!(
            (reference.type_name.as_str(), reference.name.as_str()),
            ("git", "repo")
        );
        for bad in ["git", ".repo", "git.", ""] {
            let error = parse_resource(bad).unwrap_err();
            assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
