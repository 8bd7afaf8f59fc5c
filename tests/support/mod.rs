//! What the end-to-end tests share: the `pikoci` binary in a clean environment, files, and
//! reading a running child's output with a deadline.

#![allow(
    dead_code,
    reason = "each test target uses its own part of this module"
)]

pub(crate) mod git;
pub(crate) mod server;
pub(crate) mod webdriver;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `pikoci` binary, with no setting of the caller's environment that could change what it
/// does (vars files, colours, a reachable secret backend).
pub(crate) fn pikoci() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pikoci"));
    for name in [
        "NO_COLOR",
        "PIKOCI_VARS",
        "PIKOCI_PIPELINE_CONFIG",
        "PIKOCI_WORK_DIR",
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    // Nor any other PikoCI setting (a database or broker of the machine running the tests).
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PIKOCI_") {
            command.env_remove(name);
        }
    }
    command
}

/// Output bytes as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A path in the repository, e.g. `examples/hello.hcl`.
pub(crate) fn repo(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .display()
        .to_string()
}

/// Writes `contents` to `dir/name` and returns the path.
pub(crate) fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

/// How long a test waits for a child's output before it gives up: a deadline against a hang,
/// not a measure of speed.
const PATIENCE: Duration = Duration::from_secs(120);

/// The lines a child writes, read on a thread so that waiting for them can end.
pub(crate) struct Lines {
    lines: mpsc::Receiver<String>,
    seen: String,
}

impl Lines {
    /// Reads `stream` (a child's stdout or stderr) line by line.
    pub(crate) fn new(stream: impl Read + Send + 'static) -> Lines {
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            lines,
            seen: String::new(),
        }
    }

    /// Waits for a line containing `needle`; kills `child` and fails the test if the stream
    /// ends first or nothing comes for too long.
    pub(crate) fn wait_for(&mut self, needle: &str, child: &mut Child) -> &str {
        let deadline = Instant::now() + PATIENCE;
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                }
                Err(error) => {
                    let _ = child.kill();
                    panic!("no {needle:?} in the output ({error}):\n{}", self.seen);
                }
            }
        }
        &self.seen
    }

    /// Everything read so far, without waiting: the lines seen and those that arrived since.
    #[allow(dead_code)] // the chaos suite's diagnostics
    pub(crate) fn so_far(&mut self) -> &str {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        &self.seen
    }

    /// Everything up to the end of the stream; kills `child` and fails the test if it does not
    /// end.
    pub(crate) fn rest(&mut self, child: &mut Child) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut rest = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    rest.push_str(&line);
                    rest.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return rest,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("the output never ended:\n{}{rest}", self.seen);
                }
            }
        }
    }
}

/// The `p` quantile (0 to 1) of `sorted`, a non-empty sorted list (benchmarks).
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Runs `sql` on the PostgreSQL database at `url` with `psql`; its unaligned output
/// (benchmarks that read the database's statistics).
pub(crate) fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-Atc", sql])
        .output()
        .expect("psql runs (install postgresql-client)");
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
