//! `cargo xtask it store`: the `Store` conformance suite against the machine's PostgreSQL and
//! MariaDB. Each run creates its own databases (`pikoci_it_<id>`, and one per test below it,
//! which the store itself creates) and drops them afterwards, whatever the outcome.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// A database server the suite needs.
#[derive(Clone)]
struct Server {
    name: &'static str,
    addr: &'static str,
    /// How to start it when it is down (from `../shared/ENVIRONMENT.md`).
    start: &'static str,
    /// The admin client and its arguments before the SQL.
    client: &'static [&'static str],
    /// The Debian package with the client.
    client_package: &'static str,
    /// The environment variable the tests read, and the URL prefix (without database).
    env: &'static str,
    url: &'static str,
    /// SQL that lists databases whose name starts with a prefix (`{}` is the escaped prefix).
    list_sql: &'static str,
    /// SQL that creates one database (`{}` is its name).
    create_sql: &'static str,
    /// SQL that drops one database (`{}` is its name).
    drop_sql: &'static str,
}

static SERVERS: [Server; 2] = [
    Server {
        name: "PostgreSQL",
        addr: "127.0.0.1:5432",
        start: "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        client: &[
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
        ],
        client_package: "postgresql-client",
        env: "PIKOCI_TEST_POSTGRES_URL",
        url: "postgres://postgres@127.0.0.1:5432",
        list_sql: "SELECT datname FROM pg_database WHERE datname LIKE '{}%'",
        create_sql: "CREATE DATABASE \"{}\"",
        drop_sql: "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
    },
    Server {
        name: "MariaDB",
        addr: "127.0.0.1:3306",
        start: "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
        client: &[
            "mariadb",
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            "-N",
            "-B",
            "-e",
        ],
        client_package: "mariadb-client",
        env: "PIKOCI_TEST_MYSQL_URL",
        url: "mysql://root@127.0.0.1:3306",
        list_sql: "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '{}%'",
        create_sql: "CREATE DATABASE `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        drop_sql: "DROP DATABASE IF EXISTS `{}`",
    },
];

/// Runs the suite.
pub(crate) fn run() -> anyhow::Result<()> {
    with_databases(|env| {
        crate::cargo_with_env(
            &[
                "test",
                "--locked",
                "-p",
                "pikoci-store",
                "--features",
                "it",
                "--test",
                "servers",
            ],
            env,
        )
    })
}

/// `cargo xtask bench store`: the store benchmarks on all four backends, side by side.
pub(crate) fn bench() -> anyhow::Result<()> {
    with_databases(|env| {
        crate::cargo_with_env(
            &[
                "bench",
                "--locked",
                "-p",
                "pikoci-store",
                "--bench",
                "store",
            ],
            env,
        )
    })
}

/// Checks both servers, creates a fresh database on each, runs `work` with the environment
/// variables that name them, and drops every database of the run afterwards, whatever `work`
/// returned. (`cargo bench -p pikoci-store --bench store` runs the same way.)
pub(crate) fn with_databases(
    work: impl FnOnce(&[(&str, &str)]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for server in SERVERS.iter() {
        check_reachable(server)?;
    }
    let prefix = unique_prefix();
    let mut created = Vec::new();
    let result = create_databases(&prefix, &mut created).and_then(|env| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        work(&env)
    });
    let cleanup = created
        .iter()
        .map(|server| drop_databases(server, &prefix))
        .collect::<anyhow::Result<Vec<()>>>();
    result?;
    cleanup?;
    Ok(())
}

/// Creates the database `prefix` on every server; returns the variables that name them.
fn create_databases(
    prefix: &str,
    created: &mut Vec<&'static Server>,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut env = Vec::new();
    for server in SERVERS.iter() {
        sql(server, &server.create_sql.replace("{}", prefix)).with_context(|| {
            format!(
                "failed to create the test database {prefix} on {}",
                server.name
            )
        })?;
        created.push(server);
        env.push((server.env, format!("{}/{prefix}", server.url)));
    }
    Ok(env)
}

fn check_reachable(server: &Server) -> anyhow::Result<()> {
    let addr: SocketAddr = server.addr.parse().context("a valid address")?;
    if TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_err() {
        bail!(
            "{name} is not reachable at {addr}: the store suite needs it (see ../shared/ENVIRONMENT.md); \
             start it with `{start}`",
            name = server.name,
            addr = server.addr,
            start = server.start
        );
    }
    Ok(())
}

/// A database name prefix unique to this run.
fn unique_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    format!("pikoci_it_{:08x}", mixed as u32 ^ (mixed >> 32) as u32)
}

/// Runs one SQL statement with the server's admin client; returns its output lines.
fn sql(server: &Server, statement: &str) -> anyhow::Result<Vec<String>> {
    let (program, args) = server.client.split_first().context("a client command")?;
    let output = Command::new(program)
        .args(args)
        .arg(statement)
        .output()
        .with_context(|| {
            format!(
                "failed to run `{program}` (install it with `apt-get install -y {}`)",
                server.client_package
            )
        })?;
    if !output.status.success() {
        bail!(
            "`{program}` failed on {}: {}",
            server.name,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect())
}

/// Drops every database whose name starts with `prefix`.
fn drop_databases(server: &Server, prefix: &str) -> anyhow::Result<()> {
    let escaped = prefix.replace('_', "\\_");
    let names = sql(server, &server.list_sql.replace("{}", &escaped))?;
    for name in &names {
        if !name.starts_with(prefix) {
            continue;
        }
        sql(server, &server.drop_sql.replace("{}", name)).with_context(|| {
            format!("failed to drop the test database {name} on {}", server.name)
        })?;
    }
    eprintln!(
        "dropped {} test database(s) on {}",
        names.len(),
        server.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_server_is_named_with_its_start_command() {
        let down = Server {
            addr: "127.0.0.1:1",
            ..SERVERS[1].clone()
        };
        let err = check_reachable(&down).unwrap_err().to_string();
        assert!(
            err.contains("MariaDB is not reachable at 127.0.0.1:1"),
            "{err}"
        );
        assert!(err.contains("start-stop-daemon"), "{err}");
    }

    #[test]
    fn run_prefixes_are_valid_database_names() {
        let prefix = unique_prefix();
        assert!(
            prefix.starts_with("pikoci_it_") && prefix.len() == 18,
            "{prefix}"
        );
        assert!(
            prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        );
    }
}
