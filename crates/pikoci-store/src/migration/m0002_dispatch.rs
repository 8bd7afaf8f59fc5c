//! What the server's dispatcher needs beyond the first schema: whether a worker runs only
//! tagged work (`exclusive`) and takes no new work (`draining`), a deduplication key on trigger
//! events (a redelivered `put` must not add a second event), and the votes on builds waiting
//! for approval.

use sea_orm_migration::prelude::*;

use super::{Types, big, cascade, flag, id, index, string};

/// Adds the worker flags, the trigger event key and the approval votes.
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_dispatch"
    }
}

// The trait's signature elides the lifetime; spelling it out breaks the async-trait expansion.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let t = Types::new(manager.get_database_backend());
        // One column per statement: SQLite alters one thing at a time.
        let columns = [
            ("workers", flag("exclusive", false)),
            ("workers", flag("draining", false)),
            (
                "trigger_events",
                ColumnDef::new("dedupe_key")
                    .string_len(64)
                    .null()
                    .to_owned(),
            ),
        ];
        for (table, mut column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                t.table("approval_votes")
                    .col(id())
                    .col(big("build_id"))
                    .col(string("voter", 255))
                    .col(big("created_at"))
                    .foreign_key(&mut cascade("approval_votes", "build_id", "builds"))
                    .to_owned(),
            )
            .await?;
        for index in [
            index("trigger_events", &["team_id", "dedupe_key"], true),
            index("approval_votes", &["build_id", "voter"], true),
        ] {
            manager.create_index(index).await?;
        }
        Ok(())
    }
}
