//! The conformance suite on PostgreSQL and MySQL/MariaDB servers. Built only with the `it`
//! feature (`cargo xtask it store` sets it and the URLs); every test gets its own database,
//! created by the store from the base URL's database name.
//!
//! PIKOCI_TEST_POSTGRES_URL and PIKOCI_TEST_MYSQL_URL must be set and reachable: a missing or
//! unreachable server fails the tests, it never skips them.

mod conformance;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};
use conformance::{Fixture, conformance_suite};

/// A suffix unique to this test process, so that runs never share a database.
fn run_id() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| format!("{:08x}", rand::random::<u32>()))
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> anyhow::Result<(String, String)> {
    let (scheme, rest) = url.split_once("://").context("the URL has no scheme")?;
    let path_start = rest.find('/').context("the URL names no database")?;
    let (authority, path) = rest.split_at(path_start);
    let (base, query) = match path[1..].split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (&path[1..], String::new()),
    };
    if base.is_empty() {
        bail!("the URL names no database");
    }
    Ok((
        base.to_owned(),
        format!("{scheme}://{authority}/{name}{query}"),
    ))
}

/// The URL of a database for `test` on the server named by the environment variable `var`,
/// not created yet, and its name.
fn fresh_database(var: &str, test: &str) -> anyhow::Result<(String, String)> {
    let base = std::env::var(var).with_context(|| {
        format!("{var} is not set: run `cargo xtask it store`, which checks the servers, creates a database and sets this variable")
    })?;
    let mut hasher = DefaultHasher::new();
    test.hash(&mut hasher);
    let (base_name, _) = with_database(&base, "x").with_context(|| format!("{var}={base}"))?;
    let name = format!("{base_name}_{}_{:08x}", run_id(), hasher.finish() as u32);
    let (_, url) = with_database(&base, &name)?;
    Ok((url, name))
}

/// Opens a fresh database for `test` on the server named by the environment variable `var`.
async fn open_server(var: &str, test: &str) -> anyhow::Result<Fixture> {
    let (url, name) = fresh_database(var, test)?;
    Fixture::open(&url, true, None)
        .await
        .with_context(|| format!("the server in {var} is unreachable or refused to create {name}"))
}

/// Servers started at the same moment on a new database: each one connects, and the
/// migrations run once.
async fn servers_started_together_migrate_once(var: &str, test: &str) -> anyhow::Result<()> {
    let (url, name) = fresh_database(var, test)?;
    let mut servers = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        servers.push(tokio::spawn(
            async move { pikoci_store::connect(&url).await },
        ));
    }
    let mut stores = Vec::new();
    for server in servers {
        stores.push(
            server
                .await?
                .with_context(|| format!("a server starting on the new database {name}"))?,
        );
    }
    let known = pikoci_store::SqlStore::known_migrations();
    for store in stores {
        assert_eq!(store.applied_migrations().await?, known);
        store.close().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_started_together_migrate_postgres_once() -> anyhow::Result<()> {
    servers_started_together_migrate_once("PIKOCI_TEST_POSTGRES_URL", "migrate-together").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_started_together_migrate_mysql_once() -> anyhow::Result<()> {
    servers_started_together_migrate_once("PIKOCI_TEST_MYSQL_URL", "migrate-together").await
}

async fn open_postgres(test: &str) -> anyhow::Result<Fixture> {
    open_server("PIKOCI_TEST_POSTGRES_URL", test).await
}

async fn open_mysql(test: &str) -> anyhow::Result<Fixture> {
    open_server("PIKOCI_TEST_MYSQL_URL", test).await
}

mod postgres {
    use super::*;
    conformance_suite!(open_postgres);
}

mod mysql {
    use super::*;
    conformance_suite!(open_mysql);
}

#[test]
fn database_names_are_replaced() -> anyhow::Result<()> {
    assert_eq!(
        with_database(
            "postgres://u@127.0.0.1:5432/pikoci_it_1?sslmode=disable",
            "x"
        )?,
        (
            "pikoci_it_1".to_owned(),
            "postgres://u@127.0.0.1:5432/x?sslmode=disable".to_owned()
        )
    );
    assert!(with_database("mysql://root@127.0.0.1:3306", "x").is_err());
    Ok(())
}
