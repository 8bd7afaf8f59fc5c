//! The `Store` on sea-orm, for every database PikoCI supports: `mem` (SQLite in memory),
//! `sqlite` (a file, WAL), `postgres` and `mysql` (MySQL and MariaDB), with one schema and one
//! set of migrations that run when a store is opened.
//!
//! ```no_run
//! # async fn open() -> pikoci_core::store::StoreResult<()> {
//! use std::sync::Arc;
//! use pikoci_core::store::Store;
//!
//! let store: Arc<dyn Store> = Arc::new(pikoci_store::connect("sqlite:///var/lib/pikoci/pikoci.db").await?);
//! # Ok(()) }
//! ```
//!
//! No sea-orm or driver type crosses the [`Store`](pikoci_core::store::Store) trait: errors carry
//! a kind and the driver's message as an opaque source.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod config;
mod connect;
mod entity;
mod error;
mod migration;
mod sql;

pub use config::DbConfig;
pub use connect::Backend;
pub use sql::SqlStore;

use pikoci_core::store::StoreResult;

/// Opens the database `url` names and migrates it: `mem`, `sqlite::memory:`, `sqlite://PATH`,
/// `postgres://USER:PASSWORD@HOST:PORT/NAME`, `mysql://USER:PASSWORD@HOST:PORT/NAME`. A
/// missing PostgreSQL or MySQL database, or SQLite file, is created.
pub async fn connect(url: &str) -> StoreResult<SqlStore> {
    SqlStore::connect(url).await
}

/// Opens the database that server settings describe (see [`DbConfig::url`]).
pub async fn connect_config(config: &DbConfig) -> StoreResult<SqlStore> {
    SqlStore::connect(&config.url()?).await
}
