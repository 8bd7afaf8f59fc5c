//! The assignment's snapshot: everything a worker needs to run a build, so that workers never
//! read the store.

use std::collections::{BTreeMap, HashMap};

use pikoci_core::protocol::BuildSnapshot;
use pikoci_core::store::{Build, BuildVersion, StoreError, VersionUse};

use crate::Server;
use crate::scheduling::distinct_gets;

/// Why a snapshot could not be built.
#[derive(Debug)]
pub(crate) enum SnapshotError {
    /// The build cannot run (a get without a version, a pipeline that is gone): it errors.
    Invalid(String),
    /// The store failed: try again later.
    Store(StoreError),
}

impl From<StoreError> for SnapshotError {
    fn from(err: StoreError) -> SnapshotError {
        if err.kind() == pikoci_core::ErrorKind::NotFound {
            SnapshotError::Invalid(err.to_string())
        } else {
            SnapshotError::Store(err)
        }
    }
}

impl Server {
    /// The snapshot of a claimed build. The versions are those recorded when the build was
    /// created; a get without one (the build was claimed between its creation and the
    /// recording of its versions) is resolved now, by the same rules, and recorded.
    pub(crate) async fn snapshot(&self, build: &Build) -> Result<BuildSnapshot, SnapshotError> {
        let store = &self.inner.store;
        let job = store.job_by_id(build.job_id).await?;
        let pipeline = store.pipeline_by_id(build.pipeline_id).await?;
        let team = store.team_by_id(build.team_id).await?;
        let recorded: HashMap<_, _> = store
            .build_versions(build.id)
            .await?
            .into_iter()
            .filter(|v| v.usage == VersionUse::Get)
            .map(|v| (v.resource_id, v.version_id))
            .collect();
        let mut versions = BTreeMap::new();
        let mut jobs = None;
        for get in distinct_gets(&job) {
            let resource = store.resource(pipeline.id, &get.resource).await?;
            let version_id = match recorded.get(&resource.id) {
                Some(id) => *id,
                None => {
                    if jobs.is_none() {
                        jobs = Some(store.jobs(pipeline.id).await?);
                    }
                    let all = jobs.as_deref().unwrap_or_default();
                    match self.resolve_get(&pipeline, get, build.trigger, all).await? {
                        Ok((_, id)) => {
                            let used = BuildVersion {
                                resource_id: resource.id,
                                version_id: id,
                                step_name: get.resource.name.clone(),
                                usage: VersionUse::Get,
                            };
                            store.record_build_versions(build.id, &[used]).await?;
                            id
                        }
                        Err(problem) => return Err(SnapshotError::Invalid(problem)),
                    }
                }
            };
            let version = store.version_by_id(version_id).await?;
            versions.insert(resource.canonical(), version.version);
        }
        let inputs = match &build.inputs {
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        Ok(BuildSnapshot {
            team: team.name,
            pipeline_id: pipeline.id,
            pipeline: pipeline.name.clone(),
            job: job.name.clone(),
            build_number: build.number.to_string(),
            model: BuildSnapshot::prune(&pipeline.model, &job.name),
            inputs,
            versions,
        })
    }
}
