//! Row identifiers: one type per table, so a build id is never passed where a job id belongs.

use serde::{Deserialize, Serialize};

macro_rules! row_id {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

row_id! {
    /// A team's id.
    TeamId,
    /// A pipeline's id.
    PipelineId,
    /// A job's id (stable across pipeline updates that keep the job's name).
    JobId,
    /// A resource's id (stable across pipeline updates that keep the resource's name).
    ResourceId,
    /// A resource version's id; ids grow with time, so a larger id is a newer version.
    VersionId,
    /// A build's id.
    BuildId,
    /// A trigger event's id; ids grow with time, so they work as a stream position.
    TriggerEventId,
    /// The position of a log chunk in its build's log; chunks are read back in cursor order.
    LogCursor,
    /// A user's id.
    UserId,
    /// An API token's id.
    ApiTokenId,
    /// An audit log entry's id; a larger id is a newer entry.
    AuditId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_plain_numbers() {
        assert_eq!(serde_json::to_string(&BuildId(42)).unwrap(), "42");
        assert_eq!(serde_json::from_str::<JobId>("7").unwrap(), JobId(7));
        assert_eq!(VersionId(3).to_string(), "3");
        assert!(LogCursor(1) < LogCursor(2));
    }
}
