//! The built-in secret store (`secret "pikoci"`): entries of a team and of a pipeline, and the
//! key each worker announces for the store values sealed to it.

use sea_orm_migration::prelude::*;

use super::{Types, big, cascade, id, index, string, string_null};

/// Adds `team_secrets`, `pipeline_secrets` and `workers.sealing_key`.
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_secrets"
    }
}

// The trait's signature elides the lifetime; spelling it out breaks the async-trait expansion.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let t = Types::new(manager.get_database_backend());
        manager
            .alter_table(
                Table::alter()
                    .table("workers")
                    .add_column(string_null("sealing_key", 64))
                    .to_owned(),
            )
            .await?;
        // Two tables rather than one with a nullable pipeline: a unique index over a NULL
        // column does not make (team, name) unique on every backend.
        for (table, owner, parent) in [
            ("team_secrets", "team_id", "teams"),
            ("pipeline_secrets", "pipeline_id", "pipelines"),
        ] {
            manager
                .create_table(
                    t.table(table)
                        .col(id())
                        .col(big(owner))
                        .col(string("name", 256))
                        .col(string("kind", 16))
                        // A `secret` entry's AES-256-GCM ciphertext, or a `plain` entry's UTF-8.
                        .col(t.long_blob("value").not_null())
                        .col(big("created_at"))
                        .col(big("updated_at"))
                        .foreign_key(&mut cascade(table, owner, parent))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(table, &[owner, "name"], true))
                .await?;
        }
        Ok(())
    }
}
