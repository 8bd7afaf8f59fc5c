//! The `Runner` port: runs one process and streams its output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

/// One process to run. Arguments and environment hold substituted secrets, so `Debug` shows
/// the program, the number of arguments and the names of the variables only.
#[derive(Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The program: a path, or a name looked up on `PATH`. Relative paths with a `/` are taken
    /// relative to `workdir`.
    pub program: String,
    /// The arguments.
    pub args: Vec<String>,
    /// Environment variables set on top of what the process inherits.
    pub env: BTreeMap<String, String>,
    /// What the process inherits from the runner process's own environment.
    pub inherit: super::env::Inherit,
    /// The working directory.
    pub workdir: PathBuf,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("program", &self.program)
            .field("args", &self.args.len())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("inherit", &self.inherit)
            .field("workdir", &self.workdir)
            .finish()
    }
}

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of output, as it was read (before masking: `Debug` shows its length, not its text).
#[derive(Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// The pipe.
    pub stream: Stream,
    /// The text, without the line terminator (a last line without a newline is still a line).
    pub text: String,
    /// When it was read.
    pub at: SystemTime,
}

impl std::fmt::Debug for OutputLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputLine")
            .field("stream", &self.stream)
            .field("len", &self.text.len())
            .field("at", &self.at)
            .finish()
    }
}

/// Receives output lines as the process writes them.
pub type OutputSink = Arc<dyn Fn(OutputLine) + Send + Sync>;

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// It exited with this status code.
    Exited(i32),
    /// It was killed by a signal it did not expect (not by us).
    Signaled(i32),
    /// It could not be started.
    SpawnFailed(RunnerError),
    /// `cancel` fired: the whole process tree was killed.
    Cancelled,
}

impl RunOutcome {
    /// Whether the process exited with status 0.
    pub fn success(&self) -> bool {
        matches!(self, RunOutcome::Exited(0))
    }

    /// A description for logs: `exit status 1`, `killed by signal 9`, ...
    pub fn describe(&self) -> String {
        match self {
            RunOutcome::Exited(code) => format!("exit status {code}"),
            RunOutcome::Signaled(signal) => format!("killed by signal {signal}"),
            RunOutcome::SpawnFailed(why) => format!("failed to start: {}", why.full_message()),
            RunOutcome::Cancelled => "cancelled".to_owned(),
        }
    }
}

crate::error::port_error!(
    /// Why a [`Runner`] could not start a process: a kind ([`NotFound`](crate::ErrorKind::NotFound)
    /// for a missing program or work directory, [`PermissionDenied`](crate::ErrorKind::PermissionDenied)
    /// for one that may not be executed, ...), a message naming the program, and the OS error.
    RunnerError
);

/// Runs processes. Output lines go to `output` as they are read, stdout and stderr interleaved
/// in the order they arrive. When `cancel` fires, the process and every process it started are
/// killed before `run` returns [`RunOutcome::Cancelled`].
#[async_trait::async_trait]
pub trait Runner: Send + Sync + std::fmt::Debug {
    /// Runs `invocation` to completion or cancellation.
    async fn run(
        &self,
        invocation: Invocation,
        output: OutputSink,
        cancel: CancellationToken,
    ) -> RunOutcome;
}
