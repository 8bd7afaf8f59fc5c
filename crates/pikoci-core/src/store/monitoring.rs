//! What the server reports for monitoring (`/metrics`) from its store.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::BuildStatus;

/// A check counts as lagging once it has been due for longer than this.
pub const CHECK_LAG: Duration = Duration::from_secs(10);

/// Figures read from the database at each scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreGauges {
    /// How many builds each job has in each status that is not finished (pending, waiting for
    /// approval, assigned, started); statuses without builds are left out.
    pub builds: Vec<JobBuildCount>,
    /// When the oldest pending build whose job and pipeline are not paused was created
    /// (`None`: none).
    pub oldest_pending: Option<DateTime<Utc>>,
    /// The resources' checks.
    pub checks: CheckGauges,
}

/// How many builds of one job are in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobBuildCount {
    /// The team's name.
    pub team: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The job's name.
    pub job: String,
    pub status: BuildStatus,
    pub count: u64,
}

/// The resources' checks at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckGauges {
    /// Due and not claimed (also those whose claim's lease lapsed).
    pub due: u64,
    /// Claimed, their lease running.
    pub running: u64,
    /// Of the due ones, those due (or whose lease lapsed) for longer than [`CHECK_LAG`].
    pub lagging: u64,
}

/// What a store did since it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStatistics {
    /// Statements sent to the database (queries and changes, each statement of a transaction).
    pub statements: u64,
    /// Of those, the ones the database answered with an error (or lost on the way).
    pub failed: u64,
    /// Builds this store moved to each finished status (succeeded, failed, cancelled, warning,
    /// errored), in the order of [`BuildStatus::ALL`]; statuses none reached are left out.
    pub finished: Vec<(BuildStatus, u64)>,
}
