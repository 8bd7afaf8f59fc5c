//! Database settings as the server's flags give them: a URL, or the upstream-style system, host,
//! port, user, password and name.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use pikoci_core::store::{StoreError, StoreResult};

use crate::Backend;

/// The database settings of a server (`--db-system`, `--db-url`, `--db-host`, ...).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DbConfig {
    /// `--db-system`: `mem` (default), `sqlite`, `postgres` or `mysql`.
    pub system: Option<Backend>,
    /// `--db-url`: wins over every other setting.
    pub url: Option<String>,
    /// `--db-host` (postgres, mysql).
    pub host: Option<String>,
    /// `--db-port` (default 5432 for postgres, 3306 for mysql).
    pub port: Option<u16>,
    /// `--db-user` (postgres, mysql).
    pub user: Option<String>,
    /// `--db-password` (postgres, mysql; may be empty).
    pub password: Option<String>,
    /// `--db-name`: the database (default `pikoci`), or the file path for sqlite (default
    /// `$XDG_DATA_HOME/pikoci/pikoci.db`).
    pub name: Option<String>,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("system", &self.system)
            .field("url", &self.url.as_deref().map(pikoci_core::redact::url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("name", &self.name)
            .finish()
    }
}

impl FromStr for Backend {
    type Err = StoreError;

    fn from_str(name: &str) -> StoreResult<Backend> {
        match name {
            "mem" => Ok(Backend::Mem),
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "mysql" | "mariadb" => Ok(Backend::Mysql),
            other => Err(StoreError::invalid_input(format!(
                "unknown database system \"{other}\": use mem, sqlite, postgres or mysql"
            ))),
        }
    }
}

impl DbConfig {
    /// The URL these settings describe.
    pub fn url(&self) -> StoreResult<String> {
        if let Some(url) = &self.url {
            let backend = Backend::from_url(url)?;
            if let Some(system) = self.system
                && system != backend
            {
                return Err(StoreError::invalid_input(format!(
                    "--db-system is {} but --db-url is a {} URL",
                    system.as_str(),
                    backend.as_str()
                )));
            }
            return Ok(url.clone());
        }
        match self.system.unwrap_or(Backend::Mem) {
            Backend::Mem => Ok("mem".to_owned()),
            Backend::Sqlite => {
                let path = match &self.name {
                    Some(name) => PathBuf::from(name),
                    None => default_sqlite_path()?,
                };
                Ok(format!("sqlite://{}", path.display()))
            }
            backend @ (Backend::Postgres | Backend::Mysql) => self.server_url(backend),
        }
    }

    fn server_url(&self, backend: Backend) -> StoreResult<String> {
        let required = |value: &Option<String>, flag: &str| match value.as_deref() {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(StoreError::invalid_input(format!(
                "--db-system {} needs {flag} (or --db-url)",
                backend.as_str()
            ))),
        };
        let host = required(&self.host, "--db-host")?;
        let user = required(&self.user, "--db-user")?;
        let (scheme, default_port) = match backend {
            Backend::Postgres => ("postgres", 5432),
            _ => ("mysql", 3306),
        };
        let port = self.port.unwrap_or(default_port);
        let password = match self.password.as_deref() {
            Some(p) if !p.is_empty() => format!(":{}", pikoci_core::percent::encode(p)),
            _ => String::new(),
        };
        let name = self.name.as_deref().unwrap_or("pikoci");
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        Ok(format!(
            "{scheme}://{}{password}@{host}:{port}/{}",
            pikoci_core::percent::encode(&user),
            pikoci_core::percent::encode(name)
        ))
    }
}

/// `$XDG_DATA_HOME/pikoci/pikoci.db`, or `~/.local/share/pikoci/pikoci.db`.
fn default_sqlite_path() -> StoreResult<PathBuf> {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .ok_or_else(|| {
            StoreError::invalid_input(
                "no place for the SQLite database: set --db-name, XDG_DATA_HOME or HOME",
            )
        })?;
    Ok(data_home.join("pikoci").join("pikoci.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(system: Backend) -> DbConfig {
        DbConfig {
            system: Some(system),
            ..DbConfig::default()
        }
    }

    #[test]
    fn upstream_settings_become_urls() {
        let mut pg = config(Backend::Postgres);
        pg.host = Some("db.local".into());
        pg.user = Some("ci".into());
        pg.password = Some("p@ss:w/rd".into());
        assert_eq!(
            pg.url().unwrap(),
            "postgres://ci:p%40ss%3Aw%2Frd@db.local:5432/pikoci"
        );
        let mut my = config(Backend::Mysql);
        my.host = Some("127.0.0.1".into());
        my.port = Some(3307);
        my.user = Some("root".into());
        my.name = Some("ci".into());
        assert_eq!(my.url().unwrap(), "mysql://root@127.0.0.1:3307/ci");
        my.host = Some("::1".into());
        assert_eq!(my.url().unwrap(), "mysql://root@[::1]:3307/ci");
        assert_eq!(DbConfig::default().url().unwrap(), "mem");
        let mut lite = config(Backend::Sqlite);
        lite.name = Some("/var/lib/pikoci/ci.db".into());
        assert_eq!(lite.url().unwrap(), "sqlite:///var/lib/pikoci/ci.db");
    }

    #[test]
    fn missing_or_contradictory_settings_are_named() {
        let err = config(Backend::Mysql).url().unwrap_err();
        assert!(err.to_string().contains("--db-host"), "{err}");
        let mut both = config(Backend::Postgres);
        both.url = Some("mysql://root@h/x".into());
        let err = both.url().unwrap_err();
        assert!(err.to_string().contains("mysql URL"), "{err}");
        assert!("oracle".parse::<Backend>().is_err());
        assert_eq!("postgresql".parse::<Backend>().unwrap(), Backend::Postgres);
    }

    #[test]
    fn debug_hides_the_password() {
        let mut pg = config(Backend::Postgres);
        pg.password = Some("hunter2".into());
        pg.url = Some("postgres://u:hunter2@h/d".into());
        let shown = format!("{pg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
