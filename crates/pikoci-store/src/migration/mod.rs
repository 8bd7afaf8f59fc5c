//! The schema, as an ordered list of forward-only migrations shared by every backend.
//!
//! Applied migrations are recorded in `pikoci_migrations`; running the list again applies only
//! the missing ones. To change the schema, add a module `mNNNN_what.rs` and append it to
//! [`Migrator::migrations`]; never edit a migration that has shipped.

mod lock;
mod m0001_initial;
mod m0002_dispatch;
mod m0003_claim;
mod m0004_secrets;
mod m0005_step_parent;
mod m0006_accounts;
mod m0007_worker_keys;
mod m0008_audit_log;
mod m0009_single_sign_on;
mod m0010_pin_comments;

pub(crate) use lock::MigrationLock;

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

/// The project's migrations, in order.
#[derive(Debug)]
pub(crate) struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_dispatch::Migration),
            Box::new(m0003_claim::Migration),
            Box::new(m0004_secrets::Migration),
            Box::new(m0005_step_parent::Migration),
            Box::new(m0006_accounts::Migration),
            Box::new(m0007_worker_keys::Migration),
            Box::new(m0008_audit_log::Migration),
            Box::new(m0009_single_sign_on::Migration),
            Box::new(m0010_pin_comments::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "pikoci_migrations".into_iden()
    }
}

/// Column types that differ between backends: MySQL's `TEXT` and `BLOB` stop at 64 KiB.
struct Types {
    mysql: bool,
}

impl Types {
    fn new(backend: DbBackend) -> Types {
        Types {
            mysql: backend == DbBackend::MySql,
        }
    }

    /// Unlimited text (JSON documents, pipeline files, check logs).
    fn long_text(&self, name: &'static str) -> ColumnDef {
        let mut col = ColumnDef::new(name);
        if self.mysql {
            col.custom("longtext");
        } else {
            col.text();
        }
        col
    }

    /// Unlimited bytes (compressed log chunks).
    fn long_blob(&self, name: &'static str) -> ColumnDef {
        let mut col = ColumnDef::new(name);
        if self.mysql {
            col.custom("longblob");
        } else {
            col.blob();
        }
        col
    }

    /// A table statement with the options every table gets (exact, case-sensitive comparisons
    /// and 4-byte UTF-8 on MySQL).
    fn table(&self, name: &'static str) -> TableCreateStatement {
        let mut table = Table::create();
        table.table(name);
        if self.mysql {
            table
                .engine("InnoDB")
                .character_set("utf8mb4")
                .collate("utf8mb4_bin");
        }
        table
    }
}

/// An auto-increment 64-bit primary key named `id`.
fn id() -> ColumnDef {
    ColumnDef::new("id")
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

/// A non-null 64-bit integer (ids of other rows, times in milliseconds).
fn big(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

/// A nullable 64-bit integer.
fn big_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().to_owned()
}

/// A non-null 32-bit integer with a default.
fn int(name: &'static str, default: i32) -> ColumnDef {
    ColumnDef::new(name)
        .integer()
        .not_null()
        .default(default)
        .to_owned()
}

/// A non-null boolean with a default.
fn flag(name: &'static str, default: bool) -> ColumnDef {
    ColumnDef::new(name)
        .boolean()
        .not_null()
        .default(default)
        .to_owned()
}

/// A non-null bounded string.
fn string(name: &'static str, len: u32) -> ColumnDef {
    ColumnDef::new(name).string_len(len).not_null().to_owned()
}

/// A nullable bounded string.
fn string_null(name: &'static str, len: u32) -> ColumnDef {
    ColumnDef::new(name).string_len(len).null().to_owned()
}

/// A foreign key from `table.column` to `target.id` that deletes the row with its parent.
fn cascade(
    table: &'static str,
    column: &'static str,
    target: &'static str,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_{column}"))
        .from(table, column)
        .to(target, "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

/// An index over `columns` of `table`, unique or not.
fn index(table: &'static str, columns: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index
        .name(format!(
            "{}_{table}_{}",
            if unique { "ux" } else { "ix" },
            columns.join("_")
        ))
        .table(table);
    for column in columns {
        index.col(*column);
    }
    if unique {
        index.unique();
    }
    index
}
