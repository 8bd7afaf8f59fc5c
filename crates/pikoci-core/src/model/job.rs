//! Jobs and their plans.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Command, Params, ResourceRef, ValueType};
use crate::condition::Condition;

/// `job "<name>"`, or one instance of a `for_each`/`matrix` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job name; for instances `<base>--<slug of key>`.
    pub name: String,
    /// For instances: the base name and the original key.
    pub instance_of: Option<JobInstance>,
    /// Most builds of this job running at once (0 = unlimited).
    pub concurrency: u32,
    /// Jobs sharing a serial group never run at the same time.
    pub serial_groups: Vec<String>,
    /// Worker tags the job's builds require.
    pub tags: Vec<String>,
    /// Wall-clock limit for the plan.
    pub timeout: Option<Duration>,
    /// A failed build ends `warning` instead of `failed`.
    pub allow_failure: bool,
    /// A new build cancels the older unfinished builds of the job.
    pub interruptible: bool,
    /// Builds of this job cannot be retried.
    pub disable_retry: bool,
    /// The steps, in source order.
    pub plan: Vec<Step>,
    /// Job-level hooks.
    pub hooks: Hooks,
    /// `notify` steps run when a version triggers this job (before builds are created).
    pub on_trigger: Vec<NotifyStep>,
    /// Manual approval gate.
    pub approval: Option<Approval>,
    /// Values asked for on manual triggers.
    pub inputs: Vec<Input>,
}

impl Job {
    /// A job named `name` with no steps, hooks or inputs and default settings.
    pub fn new(name: impl Into<String>) -> Job {
        Job {
            name: name.into(),
            instance_of: None,
            concurrency: 0,
            serial_groups: Vec::new(),
            tags: Vec::new(),
            timeout: None,
            allow_failure: false,
            interruptible: false,
            disable_retry: false,
            plan: Vec::new(),
            hooks: Hooks::default(),
            on_trigger: Vec::new(),
            approval: None,
            inputs: Vec::new(),
        }
    }

    /// Every step of the plan, depth first: `in_parallel` children and every `if` branch
    /// included (hooks not included). This is the list triggering and `passed` look at.
    pub fn flat_steps(&self) -> Vec<&Step> {
        fn walk<'a>(steps: &'a [Step], out: &mut Vec<&'a Step>) {
            for step in steps {
                out.push(step);
                match &step.kind {
                    StepKind::InParallel(group) => walk(&group.steps, out),
                    StepKind::If(chain) => {
                        for branch in &chain.branches {
                            walk(&branch.steps, out);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.plan, &mut out);
        out
    }

    /// Every `get` step of the plan (see [`Job::flat_steps`]).
    pub fn gets(&self) -> impl Iterator<Item = &GetStep> {
        self.flat_steps()
            .into_iter()
            .filter_map(|step| match &step.kind {
                StepKind::Get(get) => Some(get),
                _ => None,
            })
    }
}

/// Which `for_each`/`matrix` group a job instance belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInstance {
    /// The name of the `job` block.
    pub base: String,
    /// The instance key as written (before slugging).
    pub key: String,
}

/// One entry of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What the step does.
    pub kind: StepKind,
    /// Limit per attempt (`None` = none).
    pub timeout: Option<Duration>,
    /// How many times to try (at least 1).
    pub attempts: u32,
    /// Step-level hooks.
    pub hooks: Hooks,
}

impl Step {
    /// A step with no timeout, one attempt and no hooks.
    pub fn new(kind: StepKind) -> Step {
        Step {
            kind,
            timeout: None,
            attempts: 1,
            hooks: Hooks::default(),
        }
    }

    /// The step's display name: resource name for get/put, task name, notification name, ...
    pub fn name(&self) -> String {
        match &self.kind {
            StepKind::Get(get) => get.resource.name.clone(),
            StepKind::Task(task) => task.name.clone(),
            StepKind::Put(put) => put.resource.name.clone(),
            StepKind::Notify(notify) => notify.notification.name.clone(),
            StepKind::Service(service) => service.service_type.clone(),
            StepKind::InParallel(_) => "in_parallel".to_owned(),
            StepKind::If(chain) => chain
                .branches
                .first()
                .and_then(|b| b.label.clone())
                .unwrap_or_else(|| "if".to_owned()),
        }
    }

    /// The step type as users write it (`get`, `task`, ...).
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            StepKind::Get(_) => "get",
            StepKind::Task(_) => "task",
            StepKind::Put(_) => "put",
            StepKind::Notify(_) => "notify",
            StepKind::Service(_) => "service",
            StepKind::InParallel(_) => "in_parallel",
            StepKind::If(_) => "if",
        }
    }
}

/// The kinds of steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKind {
    /// Fetch a version of a resource.
    Get(GetStep),
    /// Run a command.
    Task(TaskStep),
    /// Publish to a resource.
    Put(PutStep),
    /// Send a notification.
    Notify(NotifyStep),
    /// Start a service for the rest of the build.
    Service(ServiceStep),
    /// Run steps concurrently.
    InParallel(ParallelStep),
    /// Run the first branch whose condition holds.
    If(IfChain),
}

/// `get "<type>" "<name>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetStep {
    /// The resource.
    pub resource: ResourceRef,
    /// New versions of the resource trigger the job.
    pub trigger: bool,
    /// Only versions that went through all these jobs (instance names, bases expanded).
    pub passed: Vec<String>,
}

/// `task "<name>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStep {
    /// The task name.
    pub name: String,
    /// The `run` block.
    pub run: Command,
    /// Paths (relative to the work directory) that must exist before the task runs.
    pub inputs: Vec<String>,
    /// Paths that must exist after the task succeeded.
    pub outputs: Vec<String>,
}

/// `put "<type>" "<name>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutStep {
    /// The resource.
    pub resource: ResourceRef,
    /// Put parameters, passed to `push` as `$put_<key>`.
    pub params: Params,
}

/// `notify "<type>" "<name>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyStep {
    /// The notification.
    pub notification: NotificationRef,
    /// Overrides the notification's message.
    pub message: Option<String>,
    /// Passed to the notify command as `$notify_<key>`.
    pub params: Params,
}

/// A reference to a notification by type and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NotificationRef {
    /// The notification type name.
    pub type_name: String,
    /// The notification name.
    pub name: String,
}

impl std::fmt::Display for NotificationRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.type_name, self.name)
    }
}

/// `service "<service_type>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStep {
    /// The service type.
    pub service_type: String,
    /// Per-job parameter overrides.
    pub overrides: Params,
}

/// `in_parallel { ... }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParallelStep {
    /// Most steps running at once (0 = unlimited).
    pub limit: u32,
    /// The first failure cancels the other steps.
    pub fail_fast: bool,
    /// The steps.
    pub steps: Vec<Step>,
}

/// An `if` / `else_if` / `else` chain: one plan step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IfChain {
    /// The branches in order; an `else` can only be last.
    pub branches: Vec<Branch>,
}

/// One branch of an [`IfChain`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    /// `if`, `else_if` or `else`.
    pub kind: BranchKind,
    /// The block label (optional on `else`).
    pub label: Option<String>,
    /// The condition (`None` for `else`).
    pub condition: Option<Condition>,
    /// The steps run when the branch is selected.
    pub steps: Vec<Step>,
}

/// The kind of an [`IfChain`] branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchKind {
    /// The first branch.
    If,
    /// A further conditional branch.
    ElseIf,
    /// The fallback branch.
    Else,
}

/// Hooks of a job, a step or a group, each list in source order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Hooks {
    /// Run after success.
    pub on_success: Vec<Hook>,
    /// Run after failure.
    pub on_failure: Vec<Hook>,
    /// Run after cancellation (and job timeout).
    pub on_cancel: Vec<Hook>,
    /// Always run, last.
    pub ensure: Vec<Hook>,
}

impl Hooks {
    /// Whether there are no hooks at all.
    pub fn is_empty(&self) -> bool {
        self.on_success.is_empty()
            && self.on_failure.is_empty()
            && self.on_cancel.is_empty()
            && self.ensure.is_empty()
    }

    /// Every hook with its kind, in the order kinds are declared above.
    pub fn iter(&self) -> impl Iterator<Item = (HookKind, &Hook)> {
        let kinds = [
            (HookKind::OnSuccess, &self.on_success),
            (HookKind::OnFailure, &self.on_failure),
            (HookKind::OnCancel, &self.on_cancel),
            (HookKind::Ensure, &self.ensure),
        ];
        kinds
            .into_iter()
            .flat_map(|(kind, hooks)| hooks.iter().map(move |hook| (kind, hook)))
    }

    /// The hooks of one kind.
    pub fn of_kind_mut(&mut self, kind: HookKind) -> &mut Vec<Hook> {
        match kind {
            HookKind::OnSuccess => &mut self.on_success,
            HookKind::OnFailure => &mut self.on_failure,
            HookKind::OnCancel => &mut self.on_cancel,
            HookKind::Ensure => &mut self.ensure,
        }
    }
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// `on_success`.
    OnSuccess,
    /// `on_failure`.
    OnFailure,
    /// `on_cancel`.
    OnCancel,
    /// `ensure`.
    Ensure,
}

impl HookKind {
    /// The block name.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::OnSuccess => "on_success",
            HookKind::OnFailure => "on_failure",
            HookKind::OnCancel => "on_cancel",
            HookKind::Ensure => "ensure",
        }
    }

    /// Parses a block name.
    pub fn parse(name: &str) -> Option<HookKind> {
        match name {
            "on_success" => Some(HookKind::OnSuccess),
            "on_failure" => Some(HookKind::OnFailure),
            "on_cancel" => Some(HookKind::OnCancel),
            "ensure" => Some(HookKind::Ensure),
            _ => None,
        }
    }
}

/// One hook block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum Hook {
    /// Labeled form: one runner command (`on_failure "exec" { ... }`).
    Command(Command),
    /// Unlabeled form: `put`, `notify` and `task` steps run in order.
    Steps {
        /// The steps.
        steps: Vec<Step>,
    },
}

/// `approve "<label>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// What is being approved.
    pub label: String,
    /// Distinct approvals needed (at least 1).
    pub approvals: u32,
    /// The build is rejected when nobody decides within this time.
    pub timeout: Option<Duration>,
    /// Notifications for approvers.
    pub notify: Vec<NotifyStep>,
}

/// `input "<name>"`: a value asked for on manual triggers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// The name (`INPUT_<name>`).
    pub name: String,
    /// The value type.
    pub value_type: ValueType,
    /// Shown to the person triggering.
    pub description: Option<String>,
    /// Used when no value is given; `None` makes the input required on manual triggers.
    pub default: Option<String>,
    /// Allowed values (string inputs only).
    pub options: Vec<String>,
    /// Several options may be chosen (comma-separated).
    pub multiple: bool,
}
