//! The keys that sign what servers and workers say on the broker.

use sea_orm_migration::prelude::*;

use super::{Types, big, big_null, cascade, id, index, string};

/// Adds `worker_keys`.
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_worker_keys"
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
                t.table("worker_keys")
                    .col(id())
                    // `server`, `global` or `team:<team id>`.
                    .col(string("scope", 64))
                    // A team key's team, so that the key goes with it.
                    .col(big_null("team_id"))
                    // The key as the server wrote it: sealed with the secret store's master key
                    // when one is configured (see the server's `worker_keys`).
                    .col(string("value", 512))
                    .col(big("created_at"))
                    .col(big("updated_at"))
                    .foreign_key(&mut cascade("worker_keys", "team_id", "teams"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("worker_keys", &["scope"], true))
            .await?;
        manager
            .create_index(index("worker_keys", &["team_id"], false))
            .await?;
        Ok(())
    }
}
