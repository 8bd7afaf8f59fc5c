//! Who pinned a resource, when and why.

use sea_orm_migration::prelude::*;

use super::{big_null, string_null};

/// Adds `resources.pin_comment`, `resources.pinned_by` and `resources.pinned_at`. Pins made
/// before keep their version, with no comment, author or time.
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_pin_comments"
    }
}

// The trait's signature elides the lifetime; spelling it out breaks the async-trait expansion.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement, skipping those already added: SQLite alters one thing at a
        // time, and MySQL commits each one, so a migration cut short is run again from the top.
        for (name, mut column) in [
            // At most `MAX_PIN_COMMENT` (1,000) characters; MySQL and PostgreSQL count
            // characters, not bytes.
            ("pin_comment", string_null("pin_comment", 1000)),
            ("pinned_by", string_null("pinned_by", 255)),
            ("pinned_at", big_null("pinned_at")),
        ] {
            if manager.has_column("resources", name).await? {
                continue;
            }
            manager
                .alter_table(
                    Table::alter()
                        .table("resources")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
