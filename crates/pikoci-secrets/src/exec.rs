//! `secret_type` blocks with a `get` command: the command runs through the [`Runner`] port with
//! the runner templates (type-level runner overrides included) and prints the secret data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pikoci_core::ErrorKind;
use pikoci_core::RunnerType;
use pikoci_core::engine::env::Inherit;
use pikoci_core::engine::template;
use pikoci_core::engine::{Invocation, OutputLine, OutputSink, RunOutcome, Runner, Stream};
use pikoci_core::secrets::{SecretError, SecretRequest, SecretSource, SecretValues};
use tokio_util::sync::CancellationToken;

use crate::format::Format;
use crate::local::{EnvLookup, process_env};

/// How long a `get` command may run by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How many lines of the command's standard error an error message quotes.
const ERROR_LINES: usize = 20;

/// The most a `get` command may print, standard output and error together: what it prints is
/// held in memory until it ends. A command printing more is killed.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// Runs secret types' `get` commands.
///
/// Only standard output is parsed as secret data (standard error may carry progress messages);
/// when the command fails, the end of its standard error, never its standard output, goes into
/// the error.
#[derive(Clone)]
pub struct ExecSource {
    runner: Arc<dyn Runner>,
    runner_types: Vec<RunnerType>,
    workdir: PathBuf,
    process_env: EnvLookup,
    timeout: Duration,
    cancel: CancellationToken,
}

impl std::fmt::Debug for ExecSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSource")
            .field("runner", &self.runner)
            .field("workdir", &self.workdir)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ExecSource {
    /// Runs commands with `runner`, using the pipeline's `runner_types`, in `workdir` (created
    /// when missing).
    pub fn new(
        runner: Arc<dyn Runner>,
        runner_types: Vec<RunnerType>,
        workdir: impl Into<PathBuf>,
    ) -> ExecSource {
        ExecSource {
            runner,
            runner_types,
            workdir: workdir.into(),
            process_env: process_env(),
            timeout: DEFAULT_TIMEOUT,
            cancel: CancellationToken::new(),
        }
    }

    /// Limits each command to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> ExecSource {
        self.timeout = timeout;
        self
    }

    /// Kills running commands when `cancel` fires.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> ExecSource {
        self.cancel = cancel;
        self
    }

    /// Looks up names that are not parameters in `lookup` instead of the process environment.
    pub fn with_process_env(mut self, lookup: EnvLookup) -> ExecSource {
        self.process_env = lookup;
        self
    }

    /// The parameters of the `get` command (spec 10.7): the command's own, every config
    /// attribute as `param_<k>`, then `param_path` (the variable's path, made absolute).
    fn params(
        &self,
        request: &SecretRequest,
        command_params: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut params = command_params.clone();
        if let Some(definition) = &request.definition {
            for (key, value) in &definition.config {
                params.insert(format!("param_{key}"), value.clone());
            }
            if definition.runner_override.is_some() {
                // The override turned `path` into the runner's `cmd` (spec 10.6, step 5).
                params.remove("path");
            }
        }
        if !request.path.is_empty() {
            params.insert("param_path".to_owned(), absolute(&request.path));
        }
        params
    }
}

/// `path` made absolute against the process's working directory.
fn absolute(path: &str) -> String {
    let as_path = Path::new(path);
    if as_path.is_absolute() {
        return path.to_owned();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(as_path).display().to_string())
        .unwrap_or_else(|_| path.to_owned())
}

/// What a command printed, by stream. No `Debug`: standard output is the secret data.
#[derive(Default)]
struct Printed {
    stdout: String,
    stderr: Vec<String>,
    /// Bytes printed so far, line breaks included.
    bytes: usize,
    /// More than [`MAX_OUTPUT`] was printed: the command was killed and its output dropped.
    overflowed: bool,
}

#[async_trait::async_trait]
impl SecretSource for ExecSource {
    async fn fetch(&self, request: &SecretRequest) -> Result<SecretValues, SecretError> {
        let name = &request.secret_type;
        let definition = request.definition.as_ref();
        let Some(get) = definition.and_then(|d| d.get.as_ref()) else {
            return Err(SecretError::new(
                ErrorKind::Unsupported,
                format!("secret type \"{name}\" has no get command"),
            ));
        };
        let command =
            template::apply_override(get, definition.and_then(|d| d.runner_override.as_ref()));
        let runner = self
            .runner_types
            .iter()
            .find(|r| r.name == command.runner)
            .ok_or_else(|| {
                SecretError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "runner \"{}\" not found for secret type \"{name}\"",
                        command.runner
                    ),
                )
            })?;
        let params = self.params(request, &command.params);
        tokio::fs::create_dir_all(&self.workdir)
            .await
            .map_err(|err| {
                SecretError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "cannot create the work directory {}",
                        self.workdir.display()
                    ),
                )
                .with_source(err)
            })?;
        // The command reads secrets with the machine's credentials: it inherits everything but
        // the worker's own configuration (`PIKOCI_*`), and so does its template.
        let lookup = self.process_env.clone();
        let inherit = Inherit::SecretCommand;
        let invocation = template::prepare(runner, &command.args, &params, &self.workdir, &|n| {
            lookup(n).filter(|_| inherit.allows(n))
        })
        .map_err(|message| SecretError::new(ErrorKind::InvalidInput, message))?
        .map(|invocation| Invocation {
            inherit,
            ..invocation
        });
        let printed = Arc::new(Mutex::new(Printed::default()));
        if let Some(invocation) = invocation {
            let outcome = self.run(invocation, printed.clone()).await?;
            if printed.lock().unwrap_or_else(|e| e.into_inner()).overflowed {
                return Err(SecretError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the get command of secret type \"{name}\" printed more than {} MiB (standard output and error together) and was stopped: print only the secret data",
                        MAX_OUTPUT / (1024 * 1024)
                    ),
                ));
            }
            if !outcome.success() {
                let printed = printed.lock().unwrap_or_else(|e| e.into_inner());
                let skip = printed.stderr.len().saturating_sub(ERROR_LINES);
                let mut message = printed.stderr[skip..].join("\n");
                if !message.is_empty() {
                    message.push('\n');
                }
                message.push_str(&outcome.describe());
                let kind = match &outcome {
                    RunOutcome::SpawnFailed(error) => error.kind(),
                    _ => ErrorKind::Unavailable,
                };
                return Err(SecretError::new(kind, message));
            }
        }
        let stdout = std::mem::take(&mut printed.lock().unwrap_or_else(|e| e.into_inner()).stdout);
        let format = Format::select(
            request.config("format"),
            request.config("path"),
            Format::LastLineJson,
        )?;
        format.parse_values(&stdout, name)
    }
}

impl ExecSource {
    async fn run(
        &self,
        invocation: Invocation,
        printed: Arc<Mutex<Printed>>,
    ) -> Result<RunOutcome, SecretError> {
        let cancel = self.cancel.child_token();
        let stop = cancel.clone();
        let sink: OutputSink = Arc::new(move |line: OutputLine| {
            let mut printed = printed.lock().unwrap_or_else(|e| e.into_inner());
            if printed.overflowed {
                return;
            }
            printed.bytes += line.text.len() + 1;
            if printed.bytes > MAX_OUTPUT {
                printed.overflowed = true;
                printed.stdout = String::new();
                printed.stderr = Vec::new();
                stop.cancel();
                return;
            }
            match line.stream {
                Stream::Stdout => {
                    printed.stdout.push_str(&line.text);
                    printed.stdout.push('\n');
                }
                Stream::Stderr => printed.stderr.push(line.text),
            }
        });
        let run = self.runner.run(invocation, sink, cancel.clone());
        tokio::pin!(run);
        tokio::select! {
            outcome = &mut run => Ok(outcome),
            () = tokio::time::sleep(self.timeout) => {
                cancel.cancel();
                run.await;
                Err(SecretError::new(
                    ErrorKind::Timeout,
                    format!(
                        "the get command timed out after {}",
                        pikoci_core::duration::format(self.timeout)
                    ),
                ))
            }
        }
    }
}
