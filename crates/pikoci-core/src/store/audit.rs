//! The audit log: who did what in a team, kept forever (deleted with the team), append-only.
//!
//! A change is recorded by the store, in the transaction of the change itself, when someone is
//! acting: [`acting_as`] runs a future with an actor (a user's name, or [`SYSTEM`]), and the
//! store's changes listed in [`actions`] made within it are recorded under that name. What the
//! server does on its own (automatic builds, checks, leases) runs outside any actor and is not
//! recorded.

use std::future::Future;

use chrono::{DateTime, Utc};

use super::AuditId;

/// The actor of what the server does by its own configuration (`--pipeline-config`).
pub const SYSTEM: &str = "system";

/// The actions recorded: `pipeline.*`, `job.*`, `build.*`, `resource.*`, `member.*`,
/// `secret.*`, `worker_token.regenerated`.
pub mod actions {
    /// A pipeline was created.
    pub const PIPELINE_CREATED: &str = "pipeline.created";
    /// A pipeline's configuration or variables changed.
    pub const PIPELINE_UPDATED: &str = "pipeline.updated";
    /// A pipeline was deleted.
    pub const PIPELINE_DELETED: &str = "pipeline.deleted";
    /// A pipeline was paused.
    pub const PIPELINE_PAUSED: &str = "pipeline.paused";
    /// A pipeline was unpaused.
    pub const PIPELINE_UNPAUSED: &str = "pipeline.unpaused";
    /// A pipeline was made public.
    pub const PIPELINE_EXPOSED: &str = "pipeline.exposed";
    /// A public pipeline was made private again.
    pub const PIPELINE_HIDDEN: &str = "pipeline.hidden";
    /// A pipeline was renamed (`details.from` is the old name).
    pub const PIPELINE_RENAMED: &str = "pipeline.renamed";
    /// A build was made by hand.
    pub const JOB_TRIGGERED: &str = "job.triggered";
    /// A job was paused.
    pub const JOB_PAUSED: &str = "job.paused";
    /// A job was unpaused.
    pub const JOB_UNPAUSED: &str = "job.unpaused";
    /// A build was cancelled by hand (`details.build`).
    pub const JOB_CANCELLED: &str = "job.cancelled";
    /// A finished build was retried (`details.build`, and `details.retry` the new number).
    pub const JOB_RETRIED: &str = "job.retried";
    /// A user approved a build waiting for approval.
    pub const BUILD_APPROVED: &str = "build.approved";
    /// A user rejected a build waiting for approval (`details.reason`).
    pub const BUILD_REJECTED: &str = "build.rejected";
    /// A failed build was marked as a warning.
    pub const BUILD_MARKED_WARNING: &str = "build.marked_warning";
    /// A version of a resource was pinned (`details.version`, the version's id, and
    /// `details.comment`, why).
    pub const RESOURCE_PINNED: &str = "resource.pinned";
    /// A resource's pin was removed (`details.comment`, why).
    pub const RESOURCE_UNPINNED: &str = "resource.unpinned";
    /// A check of a resource was asked for by hand.
    pub const RESOURCE_CHECK_TRIGGERED: &str = "resource.check_triggered";
    /// A user got a role in the team.
    pub const MEMBER_ADDED: &str = "member.added";
    /// A member's role changed.
    pub const MEMBER_ROLE_CHANGED: &str = "member.role_changed";
    /// A member left the team.
    pub const MEMBER_REMOVED: &str = "member.removed";
    /// An entry of the secret store was set (created or replaced).
    pub const SECRET_CREATED: &str = "secret.created";
    /// An entry of the secret store was deleted.
    pub const SECRET_DELETED: &str = "secret.deleted";
    /// The team's worker token was regenerated.
    pub const WORKER_TOKEN_REGENERATED: &str = "worker_token.regenerated";
}

tokio::task_local! {
    static ACTOR: Option<String>;
}

/// Runs `work` with `actor` as who does what it changes (see the module's documentation).
pub async fn acting_as<F: Future>(actor: impl Into<String>, work: F) -> F::Output {
    ACTOR.scope(Some(actor.into()), work).await
}

/// Runs `work` as the server on its own, even within someone's action: what follows from an
/// action without being it (the checks a trigger event asks for) is not recorded as theirs.
pub async fn on_its_own<F: Future>(work: F) -> F::Output {
    ACTOR.scope(None, work).await
}

/// Who does what the current task changes, if someone does.
pub fn actor() -> Option<String> {
    ACTOR.try_with(Clone::clone).ok().flatten()
}

/// One entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Its id: a larger id is a newer entry.
    pub id: AuditId,
    /// Who: a user's name, or [`SYSTEM`].
    pub actor: String,
    /// What: one of [`actions`].
    pub action: String,
    /// On what kind of thing: `pipeline`, `job`, `member`, `secret`, `worker_token`.
    pub target_type: String,
    /// Its name (`ci`, `ci/test`, `alice`, `ci/DEPLOY_KEY`, or the team's).
    pub target_name: String,
    /// The pipeline it is about, if any.
    pub pipeline: Option<String>,
    /// More about it (a JSON object: a role, a build number); never a secret's value.
    pub details: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Which entries to read, newest first: all filters hold. `before` and `after` page by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// By this actor only.
    pub user: Option<String>,
    /// Not by this actor.
    pub exclude_user: Option<String>,
    /// This action only.
    pub action: Option<String>,
    /// Not this action.
    pub exclude_action: Option<String>,
    /// About this pipeline only.
    pub pipeline: Option<String>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Before this time.
    pub until: Option<DateTime<Utc>>,
    /// Older than this entry.
    pub before: Option<AuditId>,
    /// Newer than this entry (the oldest of them first, then returned newest first).
    pub after: Option<AuditId>,
    /// At most this many.
    pub limit: u32,
}
