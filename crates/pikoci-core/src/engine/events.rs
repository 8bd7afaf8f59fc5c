//! What the engine reports while it runs a build.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::runner::Stream;

/// Identifies a step within one build (in order of starting).
pub type StepId = u32;

/// The final state of a step or build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It worked.
    Succeeded,
    /// It failed (a job with `allow_failure` ends `Warning` instead).
    Failed,
    /// It failed, but the job allows failure.
    Warning,
    /// It was cancelled.
    Cancelled,
    /// It did not run (an unselected `if` branch, a `put` in a local run).
    Skipped,
}

impl Status {
    /// The lowercase name (`succeeded`, ...), as in `BUILD_STATUS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Warning => "warning",
            Status::Cancelled => "cancelled",
            Status::Skipped => "skipped",
        }
    }

    /// Whether this counts as success (`succeeded`, `warning`, `skipped`).
    pub fn is_ok(self) -> bool {
        matches!(self, Status::Succeeded | Status::Warning | Status::Skipped)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a recorded step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepType {
    /// `get`.
    Get,
    /// `task`.
    Task,
    /// `put`.
    Put,
    /// `notify`.
    Notify,
    /// A service's start, ready check or stop.
    Service,
    /// `in_parallel`.
    InParallel,
    /// An `if` chain.
    If,
    /// One branch of an `if` chain.
    Branch,
    /// A runner hook.
    Hook,
}

impl StepType {
    /// The name shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            StepType::Get => "get",
            StepType::Task => "task",
            StepType::Put => "put",
            StepType::Notify => "notify",
            StepType::Service => "service",
            StepType::InParallel => "in_parallel",
            StepType::If => "if",
            StepType::Branch => "branch",
            StepType::Hook => "hook",
        }
    }
}

/// One thing that happened during a build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A step started.
    StepStarted {
        /// The step.
        id: StepId,
        /// The enclosing step (`in_parallel`, `if`), if any.
        parent: Option<StepId>,
        /// What kind of step.
        step_type: StepType,
        /// Its name (`compile`, `compile:on_failure`, `pg:start`, ...).
        name: String,
    },
    /// A line of a step's log: process output or a message from the engine.
    Output {
        /// The step.
        id: StepId,
        /// The pipe, or `None` for lines the engine writes itself.
        stream: Option<Stream>,
        /// The line, secrets masked.
        text: String,
        /// When it was produced.
        at: SystemTime,
    },
    /// A step finished.
    StepFinished {
        /// The step.
        id: StepId,
        /// How it ended.
        status: Status,
        /// How long it took.
        duration: Duration,
        /// Why it failed, if it did.
        error: Option<String>,
    },
    /// A `put` (or a check) produced new versions of a resource.
    Versions {
        /// The resource, `type.name`.
        resource: String,
        /// The versions, oldest first.
        versions: Vec<serde_json::Value>,
    },
    /// A step exported a variable (`GET_*`, `TASK_*`) for later steps.
    Exported {
        /// The step.
        id: StepId,
        /// The variable name.
        name: String,
        /// Its value, secrets masked.
        value: String,
    },
    /// A `put` to a `trigger` resource: the server turns it into a trigger event.
    Trigger {
        /// The resource, `trigger.<name>`.
        resource: String,
        /// The put parameters (the event's payload).
        params: std::collections::BTreeMap<String, String>,
    },
    /// A `get` used this version of a resource (recorded for `passed`).
    VersionUsed {
        /// The resource, `type.name`.
        resource: String,
        /// The version.
        version: serde_json::Value,
    },
    /// The build finished.
    BuildFinished {
        /// The final status.
        status: Status,
        /// How long the build took.
        duration: Duration,
        /// Why it failed, if it did.
        error: Option<String>,
    },
}

/// Receives events as they happen; must not block.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Handles one event.
    fn emit(&self, event: Event);
}
