//! The JSON shapes of the API, apart from the store's records so that either can change alone.
//!
//! Conventions: ids are numbers; names are the canonical names used in paths; build numbers are
//! strings (`"3"`, `"3.1"`); timestamps are RFC 3339 UTC strings with milliseconds
//! (`"2026-01-02T03:04:05.678Z"`), `null` when unknown; durations are integer milliseconds in
//! fields ending with `_ms`. Optional parts of a detailed view are left out of list views rather
//! than sent as `null`.

use chrono::{DateTime, SecondsFormat, Utc};
use pikoci_core::store::{
    Build, BuildStep, BuildVersion, ChangeSet, ResourceVersion, StoredJob, StoredPipeline,
    StoredResource, Team, Worker,
};
use serde::Serialize;
use utoipa::ToSchema;

/// A time as the API shows it.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn millis(duration: chrono::Duration) -> i64 {
    duration.num_milliseconds().max(0)
}

fn std_millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `{"id", "name", "created_at"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Team)]
pub(crate) struct TeamView {
    id: i64,
    name: String,
    created_at: String,
}

impl TeamView {
    pub(crate) fn new(team: &Team) -> Self {
        TeamView {
            id: team.id.0,
            name: team.name.clone(),
            created_at: time(team.created_at),
        }
    }
}

/// A pipeline. In lists: `{"id", "team", "name", "paused", "public", "created_at", "updated_at",
/// "jobs": [JobSummary]}`; the detailed view adds `"config"` (the file as set), `"vars"` and
/// `"resources": [Resource]` (without webhook tokens).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Pipeline)]
pub(crate) struct PipelineView {
    id: i64,
    team: String,
    name: String,
    paused: bool,
    public: bool,
    created_at: String,
    updated_at: String,
    jobs: Vec<JobSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    config: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    vars: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    resources: Option<Vec<ResourceView>>,
}

impl PipelineView {
    /// The list view.
    pub(crate) fn summary(team: &str, pipeline: &StoredPipeline, jobs: Vec<JobSummary>) -> Self {
        PipelineView {
            id: pipeline.id.0,
            team: team.to_owned(),
            name: pipeline.name.clone(),
            paused: pipeline.paused,
            public: pipeline.public,
            created_at: time(pipeline.created_at),
            updated_at: time(pipeline.updated_at),
            jobs,
            config: None,
            vars: None,
            resources: None,
        }
    }

    /// The detailed view.
    pub(crate) fn detailed(
        team: &str,
        pipeline: &StoredPipeline,
        jobs: Vec<JobSummary>,
        resources: Vec<ResourceView>,
    ) -> Self {
        PipelineView {
            config: Some(pipeline.config.clone()),
            vars: Some(pipeline.vars.clone()),
            resources: Some(resources),
            ..PipelineView::summary(team, pipeline, jobs)
        }
    }
}

/// `{"name", "paused", "latest_build": Build | null}`: a job in a pipeline's views.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JobSummary)]
pub(crate) struct JobSummary {
    name: String,
    paused: bool,
    #[schema(required = true)]
    latest_build: Option<BuildView>,
}

impl JobSummary {
    pub(crate) fn new(job: &StoredJob, latest_build: Option<BuildView>) -> Self {
        JobSummary {
            name: job.name.clone(),
            paused: job.paused,
            latest_build,
        }
    }
}

/// What setting a pipeline did: `{"pipeline": Pipeline (detailed), "created": bool,
/// "jobs": Changes, "resources": Changes, "warnings": [Diagnostic]}`, with
/// Changes = `{"added": [name], "updated": [name], "removed": [name]}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PipelineSet)]
pub(crate) struct PipelineSetView {
    pub(crate) pipeline: PipelineView,
    pub(crate) created: bool,
    pub(crate) jobs: ChangesView,
    pub(crate) resources: ChangesView,
    pub(crate) warnings: Vec<super::error::DiagnosticView>,
}

/// Names added, updated and removed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Changes)]
pub(crate) struct ChangesView {
    added: Vec<String>,
    updated: Vec<String>,
    removed: Vec<String>,
}

impl ChangesView {
    pub(crate) fn new(changes: &ChangeSet) -> Self {
        ChangesView {
            added: changes.added.clone(),
            updated: changes.updated.clone(),
            removed: changes.removed.clone(),
        }
    }
}

/// A job: `{"id", "team", "pipeline", "name", "position", "paused", "created_at", "tags",
/// "concurrency" (0: unlimited), "serial_groups", "timeout_ms", "allow_failure",
/// "interruptible", "disable_retry", "approval": {"label", "approvals", "timeout_ms"} | null,
/// "inputs": [{"name", "type", "description", "default", "options", "multiple"}],
/// "gets": [{"resource": "type.name", "trigger", "passed": [job]}], "puts": ["type.name"],
/// "instance_of": {"base"} | null, "latest_build": Build | null}` (`puts`: the resources the
/// job's steps and hooks put, once each, in name order; `instance_of`: the `for_each` or
/// `matrix` job this one is an instance of; its key as written is left out, since it may be a
/// variable's value and public pipelines show their jobs).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Job)]
pub(crate) struct JobView {
    id: i64,
    team: String,
    pipeline: String,
    name: String,
    position: u32,
    paused: bool,
    created_at: String,
    tags: Vec<String>,
    concurrency: u32,
    serial_groups: Vec<String>,
    #[schema(required = true)]
    timeout_ms: Option<u64>,
    allow_failure: bool,
    interruptible: bool,
    disable_retry: bool,
    #[schema(required = true)]
    approval: Option<ApprovalView>,
    inputs: Vec<InputView>,
    gets: Vec<GetView>,
    puts: Vec<String>,
    #[schema(required = true)]
    instance_of: Option<InstanceView>,
    #[schema(required = true)]
    latest_build: Option<BuildView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JobInstance)]
struct InstanceView {
    /// The name of the `job` block.
    base: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Approval)]
struct ApprovalView {
    label: String,
    approvals: u32,
    #[schema(required = true)]
    timeout_ms: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Input)]
struct InputView {
    name: String,
    /// `string`, `number` or `bool`.
    #[serde(rename = "type")]
    value_type: &'static str,
    #[schema(required = true)]
    description: Option<String>,
    #[schema(required = true)]
    default: Option<String>,
    options: Vec<String>,
    multiple: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JobGet)]
struct GetView {
    resource: String,
    trigger: bool,
    passed: Vec<String>,
}

impl JobView {
    pub(crate) fn new(
        team: &str,
        pipeline: &str,
        job: &StoredJob,
        latest_build: Option<BuildView>,
    ) -> Self {
        let model = &job.model;
        JobView {
            id: job.id.0,
            team: team.to_owned(),
            pipeline: pipeline.to_owned(),
            name: job.name.clone(),
            position: job.position,
            paused: job.paused,
            created_at: time(job.created_at),
            tags: model.tags.clone(),
            concurrency: model.concurrency,
            serial_groups: model.serial_groups.clone(),
            timeout_ms: model.timeout.map(std_millis),
            allow_failure: model.allow_failure,
            interruptible: model.interruptible,
            disable_retry: model.disable_retry,
            approval: model.approval.as_ref().map(|approval| ApprovalView {
                label: approval.label.clone(),
                approvals: approval.approvals,
                timeout_ms: approval.timeout.map(std_millis),
            }),
            inputs: model
                .inputs
                .iter()
                .map(|input| InputView {
                    name: input.name.clone(),
                    value_type: input.value_type.as_str(),
                    description: input.description.clone(),
                    default: input.default.clone(),
                    options: input.options.clone(),
                    multiple: input.multiple,
                })
                .collect(),
            gets: model
                .gets()
                .map(|get| GetView {
                    resource: get.resource.to_string(),
                    trigger: get.trigger,
                    passed: get.passed.clone(),
                })
                .collect(),
            puts: puts(model).into_iter().collect(),
            instance_of: model.instance_of.as_ref().map(|instance| InstanceView {
                base: instance.base.clone(),
            }),
            latest_build,
        }
    }
}

/// The resources `job` puts, in its steps and in hooks (a trigger fired `on_success`, a status
/// in `ensure`), once each.
pub(crate) fn puts(job: &pikoci_core::Job) -> std::collections::BTreeSet<String> {
    use pikoci_core::{Hook, Hooks, StepKind};
    fn hook_puts(hooks: &Hooks, puts: &mut std::collections::BTreeSet<String>) {
        for (_, hook) in hooks.iter() {
            if let Hook::Steps { steps } = hook {
                for step in steps {
                    if let StepKind::Put(put) = &step.kind {
                        puts.insert(put.resource.to_string());
                    }
                }
            }
        }
    }
    let mut puts = std::collections::BTreeSet::new();
    hook_puts(&job.hooks, &mut puts);
    for step in job.flat_steps() {
        hook_puts(&step.hooks, &mut puts);
        if let StepKind::Put(put) = &step.kind {
            puts.insert(put.resource.to_string());
        }
    }
    puts
}

/// A build. Summary (lists, `latest_build`): `{"id", "team", "pipeline", "job", "number": "3.1",
/// "retry_of": "3" | null, "status", "error", "inputs", "trigger": {"resource", "version_id"} |
/// null, "attempt", "worker", "requeues", "cancel_deadline", "created_at", "started_at",
/// "finished_at", "duration_ms"}` (`cancel_deadline`: set while a cancel waits for the worker,
/// the time at which the server marks the build cancelled itself). The detailed view adds `"steps": [Step]` (every attempt's, by attempt then
/// index), `"versions": [{"resource", "version_id", "step", "usage": "get"|"put"}]` and, for
/// pending builds, `"pending_reason"`.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[schema(as = Build)]
pub(crate) struct BuildView {
    id: i64,
    team: String,
    pipeline: String,
    job: String,
    number: String,
    #[schema(required = true)]
    retry_of: Option<String>,
    /// `pending`, `waiting_for_approval`, `assigned`, `started` (not finished), `succeeded`,
    /// `failed`, `cancelled`, `warning`, `errored` (finished).
    status: &'static str,
    #[schema(required = true)]
    error: Option<String>,
    inputs: serde_json::Value,
    #[schema(required = true)]
    trigger: Option<TriggerView>,
    attempt: u32,
    #[schema(required = true)]
    worker: Option<String>,
    requeues: u32,
    #[schema(required = true)]
    cancel_deadline: Option<String>,
    created_at: String,
    #[schema(required = true)]
    started_at: Option<String>,
    #[schema(required = true)]
    finished_at: Option<String>,
    #[schema(required = true)]
    duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    steps: Option<Vec<StepView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    versions: Option<Vec<BuildVersionView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pending_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[schema(as = BuildTrigger)]
struct TriggerView {
    #[schema(required = true)]
    resource: Option<String>,
    version_id: i64,
}

/// Where a build sits: the names of its team, pipeline and job, and the canonical names of the
/// pipeline's resources (to name a trigger's resource).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuildPlace<'a> {
    /// The team's name.
    pub(crate) team: &'a str,
    /// The pipeline's name.
    pub(crate) pipeline: &'a str,
    /// The job's name.
    pub(crate) job: &'a str,
    /// The pipeline's resources.
    pub(crate) resources: &'a [StoredResource],
}

impl BuildView {
    /// Its status.
    pub(crate) fn status(&self) -> &'static str {
        self.status
    }

    /// The summary.
    pub(crate) fn summary(place: BuildPlace<'_>, build: &Build) -> Self {
        BuildView {
            id: build.id.0,
            team: place.team.to_owned(),
            pipeline: place.pipeline.to_owned(),
            job: place.job.to_owned(),
            number: build.number.to_string(),
            retry_of: build
                .number
                .is_retry()
                .then(|| build.number.number.to_string()),
            status: build.status.as_str(),
            error: build.error.clone(),
            inputs: build.inputs.clone(),
            trigger: build.trigger.map(|trigger| TriggerView {
                resource: place
                    .resources
                    .iter()
                    .find(|r| r.id == trigger.resource_id)
                    .map(StoredResource::canonical),
                version_id: trigger.version_id.0,
            }),
            attempt: build.dispatch.attempt,
            worker: build.dispatch.worker_id.clone(),
            requeues: build.dispatch.requeues,
            cancel_deadline: build
                .dispatch
                .cancel_deadline
                .filter(|_| build.status.is_active())
                .map(time),
            created_at: time(build.created_at),
            started_at: build.started_at.map(time),
            finished_at: build.finished_at.map(time),
            duration_ms: build
                .started_at
                .zip(build.finished_at)
                .map(|(start, end)| millis(end - start)),
            steps: None,
            versions: None,
            pending_reason: None,
        }
    }

    /// The detailed view.
    pub(crate) fn detailed(
        place: BuildPlace<'_>,
        build: &Build,
        steps: &[BuildStep],
        versions: &[BuildVersion],
        pending_reason: Option<String>,
    ) -> Self {
        BuildView {
            steps: Some(steps.iter().map(StepView::new).collect()),
            versions: Some(
                versions
                    .iter()
                    .map(|used| BuildVersionView {
                        resource: place
                            .resources
                            .iter()
                            .find(|r| r.id == used.resource_id)
                            .map(StoredResource::canonical),
                        version_id: used.version_id.0,
                        step: used.step_name.clone(),
                        usage: used.usage.as_str(),
                    })
                    .collect(),
            ),
            pending_reason,
            ..BuildView::summary(place, build)
        }
    }
}

/// A step of one attempt: `{"attempt", "index", "parent", "name", "type", "status",
/// "started_at", "finished_at", "duration_ms"}`; `parent` is the index of the enclosing step
/// (`in_parallel`, `if`, the step a hook belongs to) or null.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[schema(as = Step)]
pub(crate) struct StepView {
    attempt: u32,
    index: u32,
    #[schema(required = true)]
    parent: Option<u32>,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    /// `started`, `succeeded`, `failed`, `cancelled`, `warning`, `errored`, `skipped`.
    status: &'static str,
    #[schema(required = true)]
    started_at: Option<String>,
    #[schema(required = true)]
    finished_at: Option<String>,
    #[schema(required = true)]
    duration_ms: Option<i64>,
}

impl StepView {
    pub(crate) fn new(step: &BuildStep) -> Self {
        StepView {
            attempt: step.attempt,
            index: step.step,
            parent: step.parent,
            name: step.name.clone(),
            kind: step.kind.clone(),
            status: step.status.as_str(),
            started_at: step.started_at.map(time),
            finished_at: step.finished_at.map(time),
            duration_ms: step.duration().map(millis),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[schema(as = BuildVersion)]
struct BuildVersionView {
    #[schema(required = true)]
    resource: Option<String>,
    version_id: i64,
    step: String,
    /// `get` or `put`.
    usage: &'static str,
}

/// A resource: `{"id", "team", "pipeline", "type", "name", "canonical": "type.name",
/// "check_interval", "tags", "pinned_version_id", "pin_comment", "pinned_by", "pinned_at",
/// "next_check_at", "created_at",
/// "last_check": {"finished_at", "succeeded", "error", "log"} | null,
/// "check_in_progress": {"worker", "attempt", "expires_at"} | null}`; the detailed view adds
/// `"webhook_token"`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Resource)]
pub(crate) struct ResourceView {
    id: i64,
    team: String,
    pipeline: String,
    #[serde(rename = "type")]
    type_name: String,
    name: String,
    canonical: String,
    check_interval: String,
    tags: Vec<String>,
    #[schema(required = true)]
    pinned_version_id: Option<i64>,
    /// Why the resource is pinned (`""`: no comment; `null`: not pinned).
    #[schema(required = true)]
    pin_comment: Option<String>,
    /// Who pinned it (`null`: not pinned, or pinned before pins recorded it).
    #[schema(required = true)]
    pinned_by: Option<String>,
    /// When (`null`: not pinned, or pinned before pins recorded it).
    #[schema(required = true)]
    pinned_at: Option<String>,
    #[schema(required = true)]
    next_check_at: Option<String>,
    created_at: String,
    #[schema(required = true)]
    last_check: Option<CheckView>,
    #[schema(required = true)]
    check_in_progress: Option<CheckLeaseView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    webhook_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Check)]
struct CheckView {
    finished_at: String,
    succeeded: bool,
    #[schema(required = true)]
    error: Option<String>,
    log: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CheckInProgress)]
struct CheckLeaseView {
    worker: String,
    attempt: u32,
    expires_at: String,
}

impl ResourceView {
    /// The list view (no webhook token).
    pub(crate) fn summary(team: &str, pipeline: &str, resource: &StoredResource) -> Self {
        ResourceView {
            id: resource.id.0,
            team: team.to_owned(),
            pipeline: pipeline.to_owned(),
            type_name: resource.model.type_name.clone(),
            name: resource.model.name.clone(),
            canonical: resource.canonical(),
            check_interval: resource.model.check_interval.spec().to_owned(),
            tags: resource.model.tags.clone(),
            pinned_version_id: resource.pinned_version().map(|v| v.0),
            pin_comment: resource.pin.as_ref().map(|pin| pin.comment.clone()),
            pinned_by: resource.pin.as_ref().and_then(|pin| pin.by.clone()),
            pinned_at: resource.pin.as_ref().and_then(|pin| pin.at.map(time)),
            next_check_at: resource.next_check_at.map(time),
            created_at: time(resource.created_at),
            last_check: resource.last_check.as_ref().map(|check| CheckView {
                finished_at: time(check.finished_at),
                succeeded: check.error.is_none(),
                error: check.error.clone(),
                log: check.log.clone(),
            }),
            check_in_progress: resource.check_lease.as_ref().map(|lease| CheckLeaseView {
                worker: lease.worker_id.clone(),
                attempt: lease.attempt,
                expires_at: time(lease.expires_at),
            }),
            webhook_token: None,
        }
    }

    /// The detailed view, with the webhook token.
    pub(crate) fn detailed(team: &str, pipeline: &str, resource: &StoredResource) -> Self {
        ResourceView {
            webhook_token: Some(resource.webhook_token.clone()),
            ..ResourceView::summary(team, pipeline, resource)
        }
    }
}

/// A resource version: `{"id", "resource": "type.name", "version": {...}, "metadata",
/// "created_at", "pinned"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Version)]
pub(crate) struct VersionView {
    id: i64,
    resource: String,
    version: serde_json::Value,
    metadata: serde_json::Value,
    created_at: String,
    pinned: bool,
}

impl VersionView {
    pub(crate) fn new(resource: &StoredResource, version: &ResourceVersion) -> Self {
        VersionView {
            id: version.id.0,
            resource: resource.canonical(),
            version: version.version.clone(),
            metadata: version.metadata.clone(),
            created_at: time(version.created_at),
            pinned: resource.pinned_version() == Some(version.id),
        }
    }
}

/// A worker: `{"id", "team": name | null (global), "tags", "slots", "running", "version",
/// "hostname", "first_seen_at", "last_heartbeat_at", "state": "running" | "draining" |
/// "lost"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Worker)]
pub(crate) struct WorkerView {
    id: String,
    #[schema(required = true)]
    team: Option<String>,
    tags: Vec<String>,
    slots: u32,
    running: u32,
    version: String,
    hostname: String,
    first_seen_at: String,
    last_heartbeat_at: String,
    /// `running`, `draining` (takes no new work) or `lost` (no heartbeat lately).
    state: &'static str,
}

impl WorkerView {
    pub(crate) fn new(worker: &Worker, team: Option<String>, state: &'static str) -> Self {
        WorkerView {
            id: worker.worker_id.clone(),
            team,
            tags: worker.tags.clone(),
            slots: worker.slots,
            running: worker.running,
            version: worker.version.clone(),
            hostname: worker.hostname.clone(),
            first_seen_at: time(worker.first_seen_at),
            last_heartbeat_at: time(worker.last_heartbeat_at),
            state,
        }
    }
}

/// `{"has_more", "next_before": id | null}`: the `meta` of a page; pass `next_before` as
/// `?before=` for the next (older) page.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PageMeta)]
pub(crate) struct PageMeta {
    pub(crate) has_more: bool,
    #[schema(required = true)]
    pub(crate) next_before: Option<i64>,
}

/// `{"deleted": name}`: what a `DELETE` removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Deleted {
    pub(crate) deleted: String,
}
