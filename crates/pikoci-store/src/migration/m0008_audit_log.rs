//! The audit log: who did what in a team.

use sea_orm_migration::prelude::*;

use super::{Types, big, cascade, id, index, string, string_null};

/// Adds `audit_log`.
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_audit_log"
    }
}

// The trait's signature elides the lifetime; spelling it out breaks the async-trait expansion.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let t = Types::new(manager.get_database_backend());
        manager
            .create_table(
                t.table("audit_log")
                    .col(id())
                    .col(big("team_id"))
                    .col(string("actor", 255))
                    .col(string("action", 64))
                    .col(string("target_type", 32))
                    .col(string("target_name", 767))
                    .col(string_null("pipeline", 255))
                    // A JSON object.
                    .col(t.long_text("details").not_null().to_owned())
                    .col(big("created_at"))
                    .foreign_key(&mut cascade("audit_log", "team_id", "teams"))
                    .to_owned(),
            )
            .await?;
        // Pages of a team's log are read by id; the filters narrow them.
        manager
            .create_index(index("audit_log", &["team_id", "id"], false))
            .await?;
        manager
            .create_index(index("audit_log", &["team_id", "created_at"], false))
            .await?;
        Ok(())
    }
}
