//! The enclosing step of a build step (`in_parallel`, `if`), so that a build's steps can be
//! shown as the tree they ran as.

use sea_orm_migration::prelude::*;

/// Adds `build_steps.parent`.
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_step_parent"
    }
}

// The trait's signature elides the lifetime; spelling it out breaks the async-trait expansion.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // MySQL commits each ALTER on its own: a run stopped after it must be able to run again.
        if manager.has_column("build_steps", "parent").await? {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table("build_steps")
                    .add_column(ColumnDef::new("parent").integer().null())
                    .to_owned(),
            )
            .await
    }
}
