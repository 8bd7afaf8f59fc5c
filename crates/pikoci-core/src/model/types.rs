//! The pluggable abstractions: resource, runner, secret, service and notification types, and the
//! resources and notifications built on them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::schedule::CheckInterval;

/// String parameters, sorted by name.
pub type Params = BTreeMap<String, String>;

/// Where a type definition came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// Written inline in the pipeline file.
    Inline,
    /// Taken from a `source` URL (`pikoci://NAME` or `http(s)://`).
    Source {
        /// The `source` attribute as written.
        url: String,
    },
    /// A builtin used without being declared.
    Builtin,
}

/// A runner command block: `<kind> "<runner>" { args = [...]  key = "value" ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The runner that executes the command (the block label).
    pub runner: String,
    /// The `args` list, spliced verbatim where the runner template says `$args`.
    pub args: Vec<String>,
    /// Every other attribute, as a string parameter.
    pub params: Params,
}

/// A type-level runner override: `runner "<name>" { ... }` inside a type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerOverride {
    /// The runner every `exec` command of the type is moved to.
    pub runner: String,
    /// Extra runner flags (for `docker`: extra `docker run` flags).
    pub args: Vec<String>,
    /// Parameters merged over each command's parameters.
    pub params: Params,
}

/// `runner_type "<name>"`: a command template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerType {
    /// The runner name.
    pub name: String,
    /// Where the definition came from.
    pub origin: Origin,
    /// The program, a template expanded against the command's parameters.
    pub path: String,
    /// The argument templates (`$args` and `$env` are special, see the runner docs).
    pub args: Vec<String>,
}

/// `resource_type "<name>"`: how to check, pull and push versions of a kind of resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceType {
    /// The type name.
    pub name: String,
    /// Where the definition came from.
    pub origin: Origin,
    /// Parameter names accepted from resources.
    pub params: Vec<String>,
    /// Whether resources of this type get a `$CACHE_DIR`.
    pub cache: bool,
    /// Finds new versions.
    pub check: Option<Command>,
    /// Fetches a version into the work directory (`get` steps).
    pub pull: Option<Command>,
    /// Publishes from the work directory (`put` steps).
    pub push: Option<Command>,
    /// Moves every command of the type to another runner.
    pub runner_override: Option<RunnerOverride>,
}

/// `resource "<type>" "<name>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// The resource type name.
    pub type_name: String,
    /// The resource name.
    pub name: String,
    /// Parameters, passed to the type's commands as `$param_<key>` when the type declares them.
    pub params: Params,
    /// When to check for new versions.
    pub check_interval: CheckInterval,
    /// Worker tags that checks of this resource require.
    pub tags: Vec<String>,
    /// Overrides the type's `cache` when set.
    pub cache: Option<bool>,
}

impl Resource {
    /// The canonical name, `<type>.<name>`.
    pub fn canonical(&self) -> String {
        format!("{}.{}", self.type_name, self.name)
    }

    /// A reference to this resource.
    pub fn reference(&self) -> ResourceRef {
        ResourceRef {
            type_name: self.type_name.clone(),
            name: self.name.clone(),
        }
    }

    /// The directory a `get` fills, relative to the build's work directory: the `name` param,
    /// or the resource's name. An error when it would leave the work directory.
    pub fn work_dir_name(&self) -> Result<&str, String> {
        let name = self.params.get("name").unwrap_or(&self.name);
        match Resource::work_dir_name_problem(name) {
            Some(problem) => Err(format!(
                "resource \"{}\": the name param {problem}",
                self.canonical()
            )),
            None => Ok(name),
        }
    }

    /// Why `name` cannot name a directory inside the work directory (absolute, or climbing
    /// out with `..`), or `None` when it can.
    pub fn work_dir_name_problem(name: &str) -> Option<&'static str> {
        let path = std::path::Path::new(name);
        if path.has_root() || path.is_absolute() {
            Some("must be a path relative to the work directory, not an absolute one")
        } else if path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            Some("must stay inside the work directory: remove \"..\"")
        } else {
            None
        }
    }
}

/// A reference to a resource by type and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceRef {
    /// The resource type name.
    pub type_name: String,
    /// The resource name.
    pub name: String,
}

impl std::fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.type_name, self.name)
    }
}

/// `secret_type "<name>"`: where secret values come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretType {
    /// The type name.
    pub name: String,
    /// Where the definition came from.
    pub origin: Origin,
    /// Informational list of parameter names.
    pub params: Vec<String>,
    /// Configuration attributes, passed to `get` as `$param_<key>` (may hold secret placeholders).
    pub config: Params,
    /// The command that prints the secret data; `None` for types implemented natively
    /// (`vault`, `file`, `env`).
    pub get: Option<Command>,
    /// Moves the `get` command to another runner.
    pub runner_override: Option<RunnerOverride>,
}

/// `service_type "<name>"`: a service started before a job's steps and always stopped after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceType {
    /// The type name.
    pub name: String,
    /// Where the definition came from.
    pub origin: Origin,
    /// Parameter names accepted as per-job overrides.
    pub params: Vec<String>,
    /// Starts the service.
    pub start: Command,
    /// Polled until the service is ready.
    pub ready_check: Option<ReadyCheck>,
    /// Stops the service.
    pub stop: Command,
    /// Moves every command of the type to another runner.
    pub runner_override: Option<RunnerOverride>,
}

/// A service's readiness probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyCheck {
    /// The probe command; exit status 0 means ready.
    pub command: Command,
    /// Time between probes (default 1 s).
    pub interval: Duration,
    /// Give up after this long (default 60 s).
    pub timeout: Duration,
}

/// `notification_type "<name>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationType {
    /// The type name.
    pub name: String,
    /// Where the definition came from.
    pub origin: Origin,
    /// Accepted notification parameter names.
    pub params: Vec<String>,
    /// Sends the notification.
    pub notify: Option<Command>,
    /// Moves the `notify` command to another runner.
    pub runner_override: Option<RunnerOverride>,
}

/// `notification "<type>" "<name>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The notification type name.
    pub type_name: String,
    /// The notification name.
    pub name: String,
    /// Parameters, filtered by the type's `params` at run time.
    pub params: Params,
    /// The default message (runtime `$VARS` are expanded when sent).
    pub message: Option<String>,
    /// Build outcomes that send this notification automatically (empty: only `notify` steps).
    pub on: Vec<NotificationEvent>,
    /// Which jobs the automatic dispatch applies to.
    pub jobs: JobFilter,
}

impl Notification {
    /// The canonical name, `<type>.<name>`.
    pub fn canonical(&self) -> String {
        format!("{}.{}", self.type_name, self.name)
    }
}

/// A build outcome that can send a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationEvent {
    /// The build succeeded.
    Success,
    /// The build failed.
    Failure,
    /// The build was cancelled.
    Cancel,
    /// Any of the above.
    All,
}

impl NotificationEvent {
    /// Parses an event name as written in `on = [...]`.
    pub fn parse(name: &str) -> Option<NotificationEvent> {
        match name {
            "success" => Some(NotificationEvent::Success),
            "failure" => Some(NotificationEvent::Failure),
            "cancel" => Some(NotificationEvent::Cancel),
            "all" => Some(NotificationEvent::All),
            _ => None,
        }
    }
}

/// The jobs a notification applies to; names are job instance names (bases already expanded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "jobs", rename_all = "snake_case")]
pub enum JobFilter {
    /// Every job.
    All,
    /// Only these jobs.
    Only(Vec<String>),
    /// Every job except these.
    Except(Vec<String>),
}

impl JobFilter {
    /// Whether the filter lets this job through.
    pub fn matches(&self, job: &str) -> bool {
        match self {
            JobFilter::All => true,
            JobFilter::Only(jobs) => jobs.iter().any(|j| j == job),
            JobFilter::Except(jobs) => !jobs.iter().any(|j| j == job),
        }
    }
}
