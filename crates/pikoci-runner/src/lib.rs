//! Runs commands as local processes: the [`Runner`] that `pikoci run` and workers use. Every
//! runner type (`exec`, `shell`, `docker`, or a pipeline's own) ends up here as a program with
//! arguments, once the engine has expanded its template.
//!
//! Each process runs in its own process group. Cancellation (and the engine's timeouts, which
//! cancel) kills the whole group, so no grandchild outlives its step; so does the end of the
//! step's main process, so a step cannot leave background processes behind. On Linux a step's
//! main process is also killed by the kernel when this process dies, even by SIGKILL (see
//! `spawner`). stdout and stderr are read line by line as they are written and passed on in the
//! order they arrive.
//!
//! A process inherits only part of this process's environment, as its invocation says
//! ([`Inherit`]): the worker's own configuration never reaches a step.
//!
//! A container started by `docker run` is not in the process group (the container engine runs
//! it), so cancelling such a run also kills and removes its container (see `container`).
//!
//! A runner that belongs to a worker ([`ProcessRunner::for_worker`]) marks every process and
//! container it starts with the worker's id and the token of its run. Each worker running on
//! a machine holds a [`WorkerLock`] on its name, with its run token in the file, and
//! [`ProcessRunner::reap_leftovers`] kills what the dead runs of the machine (those whose lock
//! nobody holds any more) left behind, an earlier run of its own name included (see `reaper`).

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod container;
pub mod native;
mod reaper;
mod spawner;
mod worker_lock;

pub use reaper::{RUN_MARKER, Reaped, WORKER_MARKER};
pub use spawner::{enable_launcher, hide_from_steps, launcher_enabled};
pub use worker_lock::{WorkerLock, WorkerLockError};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use pikoci_core::ErrorKind;
use pikoci_core::engine::env::Inherit;
use pikoci_core::engine::{
    Invocation, OutputLine, OutputSink, RunOutcome, Runner, RunnerError, Stream,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long output still arriving after the process ended is waited for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest line passed on as one; longer lines are split (protects memory).
const MAX_LINE: usize = 1024 * 1024;

/// Runs invocations as child processes of this process.
#[derive(Debug, Clone, Default)]
pub struct ProcessRunner {
    /// The worker run it runs for: its processes and containers are marked with it.
    worker: Option<WorkerMark>,
}

/// What a worker's processes and containers are marked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerMark {
    /// The worker's name.
    pub(crate) id: String,
    /// The token of its run (see [`WorkerLock::run`]).
    pub(crate) run: String,
}

impl ProcessRunner {
    /// A runner that marks nothing (`pikoci run`).
    pub fn new() -> ProcessRunner {
        ProcessRunner::default()
    }

    /// The runner of the worker run `lock` holds: every process it starts has
    /// [`WORKER_MARKER`]`=<id>` and [`RUN_MARKER`]`=<run token>` in its environment, every
    /// container its `docker run` starts the labels `pikoci.worker=<id>` and
    /// `pikoci.worker-run=<run token>`.
    pub fn for_worker(lock: &WorkerLock) -> ProcessRunner {
        ProcessRunner {
            worker: Some(WorkerMark {
                id: lock.id().to_owned(),
                run: lock.run().to_owned(),
            }),
        }
    }

    /// The worker it runs for, if any.
    pub fn worker(&self) -> Option<&str> {
        self.worker.as_ref().map(|mark| mark.id.as_str())
    }

    /// Kills the processes and removes the containers that dead workers of this machine left
    /// (workers killed with SIGKILL): whatever carries the run token of the earlier run of
    /// `lock`'s name, or of a worker whose [`WorkerLock`] file next to `lock`'s nobody holds,
    /// whatever its name; those lock files are removed. Live workers' runs are left alone,
    /// and so are this process, its ancestors and its descendants. Call it when the worker
    /// starts, with its own lock, before it takes work.
    pub async fn reap_leftovers(lock: &WorkerLock) -> Reaped {
        reaper::reap(lock).await
    }
}

#[async_trait::async_trait]
impl Runner for ProcessRunner {
    async fn run(
        &self,
        invocation: Invocation,
        output: OutputSink,
        cancel: CancellationToken,
    ) -> RunOutcome {
        // Stopped before it started (a hook of an aborted build): nothing is started, so
        // nothing can run even for the instant before the kill.
        if cancel.is_cancelled() {
            return RunOutcome::Cancelled;
        }
        let mut invocation = invocation;
        let containers = container::label(&mut invocation, self.worker.as_ref());
        let mut child = match spawn(&invocation, self.worker.as_ref()).await {
            Ok(child) => child,
            Err(err) => {
                return RunOutcome::SpawnFailed(spawn_error(
                    format!("cannot run \"{}\"", invocation.program),
                    err,
                ));
            }
        };
        let group = child.id().map(|pid| nix::unistd::Pid::from_raw(pid as i32));
        let (lines, mut received) = mpsc::unbounded_channel::<OutputLine>();
        let readers = [
            child
                .stdout
                .take()
                .map(|out| tokio::spawn(read_lines(out, Stream::Stdout, lines.clone()))),
            child
                .stderr
                .take()
                .map(|err| tokio::spawn(read_lines(err, Stream::Stderr, lines.clone()))),
        ];
        drop(lines);
        let forward = async {
            while let Some(line) = received.recv().await {
                output(line);
            }
        };
        let wait = async {
            tokio::select! {
                status = child.wait() => (status, false),
                () = cancel.cancelled() => {
                    kill_group(group);
                    (child.wait().await, true)
                }
            }
        };
        tokio::pin!(forward, wait);
        // Lines are passed on while the process runs, not when it ends.
        let mut forwarded = false;
        let (status, cancelled) = loop {
            tokio::select! {
                ended = &mut wait => break ended,
                () = &mut forward, if !forwarded => forwarded = true,
            }
        };
        // Whatever the main process left running in its group goes too.
        kill_group(group);
        if !forwarded {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, forward).await;
        }
        for reader in readers.into_iter().flatten() {
            reader.abort();
        }
        if cancelled {
            if let Some(containers) = &containers {
                containers.remove().await;
            }
            return RunOutcome::Cancelled;
        }
        match status {
            Ok(status) => exit_outcome(status),
            Err(err) => RunOutcome::SpawnFailed(spawn_error(
                format!("failed to wait for \"{}\"", invocation.program),
                err,
            )),
        }
    }
}

/// A [`RunnerError`] saying `message`, of the kind the OS error tells, caused by `error`.
fn spawn_error(message: String, error: std::io::Error) -> RunnerError {
    let kind = match error.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        std::io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
        _ => ErrorKind::Unavailable,
    };
    RunnerError::new(kind, message).with_source(error)
}

/// Starts `invocation`, marked as `worker`'s when it is given.
async fn spawn(invocation: &Invocation, worker: Option<&WorkerMark>) -> std::io::Result<Child> {
    let program = if invocation.program.contains('/') && !invocation.program.starts_with('/') {
        invocation.workdir.join(&invocation.program)
    } else {
        PathBuf::from(&invocation.program)
    };
    let mut env = environment(invocation.inherit, &invocation.env);
    // Last, so that no parameter of the pipeline can name another worker or run.
    if let Some(worker) = worker {
        env.insert(WORKER_MARKER.into(), worker.id.clone().into());
        env.insert(RUN_MARKER.into(), worker.run.clone().into());
    }
    spawner::spawn(spawner::Process {
        program,
        args: invocation.args.clone(),
        env,
        workdir: invocation.workdir.clone(),
    })
    .await
}

/// The whole environment of a process: what `inherit` lets through of this process's own
/// environment (a step never sees `PIKOCI_SECRET_KEY` or the worker's database URL, nor the
/// password in a proxy's URL), then `env`.
fn environment(inherit: Inherit, env: &BTreeMap<String, String>) -> BTreeMap<OsString, OsString> {
    let mut all = BTreeMap::new();
    for (name, value) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && let Some(value) = inherit.inherited(name, &value)
        {
            all.insert(OsString::from(name), value);
        }
    }
    for (name, value) in env {
        all.insert(name.into(), value.into());
    }
    all
}

/// Gives `command` the whole [`environment`] and nothing else.
fn set_environment(command: &mut Command, inherit: Inherit, env: &BTreeMap<String, String>) {
    command.env_clear().envs(environment(inherit, env));
}

/// Sends SIGKILL to a whole process group (ignoring a group that is already gone).
fn kill_group(group: Option<nix::unistd::Pid>) {
    if let Some(group) = group {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    }
}

fn exit_outcome(status: std::process::ExitStatus) -> RunOutcome {
    if let Some(code) = status.code() {
        return RunOutcome::Exited(code);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return RunOutcome::Signaled(signal);
        }
    }
    RunOutcome::Exited(-1)
}

/// Reads `pipe` line by line (a last line without a newline counts), sending each line on.
async fn read_lines(
    pipe: impl AsyncRead + Unpin,
    stream: Stream,
    lines: mpsc::UnboundedSender<OutputLine>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buffer)
            .await;
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if buffer.ends_with(b"\n") {
                    buffer.pop();
                    if buffer.ends_with(b"\r") {
                        buffer.pop();
                    }
                }
                let line = OutputLine {
                    stream,
                    text: String::from_utf8_lossy(&buffer).into_owned(),
                    at: SystemTime::now(),
                };
                if lines.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
