//! The validated pipeline: what a pipeline file means, with every name resolved and every default
//! applied. Produced by `pikoci-config`, executed by the engine, stored by the server.

mod inputs;
mod job;
mod types;

pub use inputs::TriggerKind;
pub use job::*;
pub use types::*;

use serde::{Deserialize, Serialize};

/// A validated pipeline: every block of the file, with names resolved, sources fetched, `for_each`
/// and `matrix` jobs expanded into instances, and builtin types that the pipeline uses included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Pipeline {
    /// Declared variables with their resolved values (or secret bindings), in declaration order.
    pub variables: Vec<Variable>,
    /// Resource types used or declared by the pipeline (declared ones shadow builtins).
    pub resource_types: Vec<ResourceType>,
    /// Resources, in declaration order.
    pub resources: Vec<Resource>,
    /// Runner types: the ones the pipeline declares plus every builtin runner.
    pub runner_types: Vec<RunnerType>,
    /// Secret types used or declared by the pipeline.
    pub secret_types: Vec<SecretType>,
    /// Service types declared by the pipeline.
    pub service_types: Vec<ServiceType>,
    /// Notification types declared by the pipeline.
    pub notification_types: Vec<NotificationType>,
    /// Notifications, in declaration order.
    pub notifications: Vec<Notification>,
    /// Jobs: regular jobs in declaration order, then `for_each`/`matrix` instances group by group.
    pub jobs: Vec<Job>,
}

impl Pipeline {
    /// The job with this (instance) name.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|job| job.name == name)
    }

    /// The resource with this type and name.
    pub fn resource(&self, reference: &ResourceRef) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.type_name == reference.type_name && r.name == reference.name)
    }

    /// The resource type with this name.
    pub fn resource_type(&self, name: &str) -> Option<&ResourceType> {
        self.resource_types.iter().find(|t| t.name == name)
    }

    /// The runner type with this name.
    pub fn runner_type(&self, name: &str) -> Option<&RunnerType> {
        self.runner_types.iter().find(|t| t.name == name)
    }

    /// The secret type with this name (`None` for the built-in store `pikoci`).
    pub fn secret_type(&self, name: &str) -> Option<&SecretType> {
        self.secret_types.iter().find(|t| t.name == name)
    }

    /// The service type with this name.
    pub fn service_type(&self, name: &str) -> Option<&ServiceType> {
        self.service_types.iter().find(|t| t.name == name)
    }

    /// The notification type with this name.
    pub fn notification_type(&self, name: &str) -> Option<&NotificationType> {
        self.notification_types.iter().find(|t| t.name == name)
    }

    /// The notification with this type and name.
    pub fn notification(&self, reference: &NotificationRef) -> Option<&Notification> {
        self.notifications
            .iter()
            .find(|n| n.type_name == reference.type_name && n.name == reference.name)
    }
}

/// The value type of a variable (and of a job input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// A string.
    String,
    /// A number (integer or decimal).
    Number,
    /// `true` or `false`.
    Bool,
}

impl ValueType {
    /// The name used in pipeline files.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Number => "number",
            ValueType::Bool => "bool",
        }
    }

    /// Parses a type name as written in a pipeline file.
    pub fn parse(name: &str) -> Option<ValueType> {
        match name {
            "string" => Some(ValueType::String),
            "number" => Some(ValueType::Number),
            "bool" => Some(ValueType::Bool),
            _ => None,
        }
    }
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A declared variable and where its value came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variable {
    /// The name (`var.<name>`).
    pub name: String,
    /// The declared type.
    pub value_type: ValueType,
    /// The value used when the pipeline was evaluated.
    pub value: VariableValue,
}

/// Where a variable's value came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum VariableValue {
    /// From the vars file or a `--var` override.
    Given {
        /// The value, as JSON.
        value: serde_json::Value,
    },
    /// From the `default` attribute.
    Default {
        /// The value, as JSON.
        value: serde_json::Value,
    },
    /// Bound to a secret, resolved at run time; the pipeline holds its placeholder.
    Secret(SecretRef),
}

/// A reference to one secret value, resolved at run time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretRef {
    /// The secret type (a declared `secret_type`, a builtin, or the store `pikoci`).
    pub secret_type: String,
    /// The path within the secret type (may be empty).
    pub path: String,
    /// The key within the secret at that path.
    pub key: String,
}

impl SecretRef {
    /// The prefix of every secret placeholder.
    pub const PLACEHOLDER_PREFIX: &'static str = "__pikoci_secret:";

    /// The placeholder string that stands for this secret in the evaluated pipeline.
    pub fn placeholder(&self) -> String {
        format!(
            "{}{}:{}:{}__",
            Self::PLACEHOLDER_PREFIX,
            self.secret_type,
            self.path,
            self.key
        )
    }
}
