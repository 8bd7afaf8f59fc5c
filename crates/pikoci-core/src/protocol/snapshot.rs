//! What an assignment carries: everything a worker needs, so that workers never read the store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Pipeline;
use crate::store::PipelineId;

/// One build, ready to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildSnapshot {
    /// The team's name (`BUILD_TEAM_NAME`).
    pub team: String,
    /// The pipeline's id.
    pub pipeline_id: PipelineId,
    /// The pipeline's name (`BUILD_PIPELINE_NAME`).
    pub pipeline: String,
    /// The job's name.
    pub job: String,
    /// The build number (`3`, `3.1`).
    pub build_number: String,
    /// The pipeline model, reduced to this job ([`BuildSnapshot::prune`]).
    pub model: Pipeline,
    /// The job's inputs, resolved.
    pub inputs: BTreeMap<String, String>,
    /// The version each `get` uses, by resource canonical name.
    pub versions: BTreeMap<String, serde_json::Value>,
}

impl BuildSnapshot {
    /// The pipeline as a build of `job` needs it: without the other jobs.
    pub fn prune(pipeline: &Pipeline, job: &str) -> Pipeline {
        let mut model = pipeline.clone();
        model.jobs.retain(|j| j.name == job);
        model
    }
}

/// One resource check, ready to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSnapshot {
    /// The team's name.
    pub team: String,
    /// The pipeline's id.
    pub pipeline_id: PipelineId,
    /// The pipeline's name.
    pub pipeline: String,
    /// The resource, `type.name`.
    pub resource: String,
    /// The pipeline model, reduced to what the check uses ([`CheckSnapshot::prune`]).
    pub model: Pipeline,
    /// The newest version known (`None` on the first check).
    pub newest: Option<serde_json::Value>,
}

impl CheckSnapshot {
    /// The pipeline as a check of `resource` (canonical name) needs it: no jobs, no
    /// notifications, only this resource and its type.
    pub fn prune(pipeline: &Pipeline, resource: &str) -> Pipeline {
        let mut model = pipeline.clone();
        model.jobs.clear();
        model.notifications.clear();
        model.notification_types.clear();
        model.service_types.clear();
        model.resources.retain(|r| r.canonical() == resource);
        let type_name = model.resources.first().map(|r| r.type_name.clone());
        model
            .resource_types
            .retain(|t| Some(&t.name) == type_name.as_ref());
        model
    }
}
