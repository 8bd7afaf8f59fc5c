//! Running one command of a build: runner lookup, template expansion, attempts and timeouts,
//! output streamed to the step's log (masked) and optionally captured.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::runner::{Invocation, OutputLine, OutputSink, RunOutcome};
use super::template;
use super::{Build, Event, StepId};
use crate::Command;

/// How a command (all its attempts) ended. No `Debug`: the captured output is not masked.
pub(super) struct Ran {
    /// `Ok` when the last attempt succeeded; otherwise why it failed.
    pub(super) result: Result<(), String>,
    /// The captured output of the last attempt (only when asked for).
    pub(super) output: String,
    /// The run was stopped by `cancel` (not by its own timeout).
    pub(super) cancelled: bool,
}

impl Build {
    /// Expands `command` for its runner with `params` (everything the use passes).
    /// `Ok(None)`: the command is a no-op.
    pub(super) fn invocation(
        &self,
        command: &Command,
        params: &BTreeMap<String, String>,
    ) -> Result<Option<Invocation>, String> {
        let runner = self
            .spec
            .pipeline
            .runner_type(&command.runner)
            .ok_or_else(|| format!("runner \"{}\" not found", command.runner))?;
        let mut merged: BTreeMap<String, String> = command
            .params
            .iter()
            .map(|(k, v)| (k.clone(), self.substitute(v)))
            .collect();
        merged.extend(params.iter().map(|(k, v)| (k.clone(), self.substitute(v))));
        let args: Vec<String> = command.args.iter().map(|a| self.substitute(a)).collect();
        template::prepare(runner, &args, &merged, &self.workdir, &|name| {
            super::env::Inherit::Step.var(name)
        })
    }

    /// Runs `command` up to `attempts` times (each attempt limited by `timeout`), logging to
    /// step `id`. With `capture`, the last attempt's output is returned too.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_command(
        &self,
        id: StepId,
        command: &Command,
        params: &BTreeMap<String, String>,
        attempts: u32,
        timeout: Option<Duration>,
        cancel: &CancellationToken,
        capture: bool,
    ) -> Ran {
        let invocation = match self.invocation(command, params) {
            Ok(Some(invocation)) => invocation,
            Ok(None) => {
                return Ran {
                    result: Ok(()),
                    output: String::new(),
                    cancelled: false,
                };
            }
            Err(error) => {
                self.log(id, &error);
                return Ran {
                    result: Err(error),
                    output: String::new(),
                    cancelled: false,
                };
            }
        };
        let attempts = attempts.max(1);
        let mut last = Ran {
            result: Ok(()),
            output: String::new(),
            cancelled: false,
        };
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.log(id, format!("\n--- attempt {attempt}/{attempts} ---"));
            }
            last = self
                .run_once(id, invocation.clone(), timeout, cancel, capture)
                .await;
            if last.result.is_ok() || last.cancelled {
                break;
            }
        }
        last
    }

    /// Runs one invocation once.
    pub(super) async fn run_once(
        &self,
        id: StepId,
        invocation: Invocation,
        timeout: Option<Duration>,
        cancel: &CancellationToken,
        capture: bool,
    ) -> Ran {
        let captured = Arc::new(Mutex::new(String::new()));
        let sink = self.sink.clone();
        let masker = self.masker.clone();
        let capture_into = captured.clone();
        let output: OutputSink = Arc::new(move |line: OutputLine| {
            // What a command prints for the engine (versions) is its stdout; its stderr is only
            // shown, so a warning on stderr cannot corrupt the versions.
            if capture && line.stream == super::Stream::Stdout {
                let mut text = capture_into.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line.text);
                text.push('\n');
            }
            sink.emit(Event::Output {
                id,
                stream: Some(line.stream),
                text: masker.mask(&line.text),
                at: line.at,
            });
        });
        let env_names: Vec<String> = invocation
            .env
            .keys()
            .filter(|k| !template::RUNNER_INTERNAL.contains(&k.as_str()))
            .cloned()
            .collect();
        let attempt_cancel = cancel.child_token();
        let run = self.runner.run(invocation, output, attempt_cancel.clone());
        let (outcome, timed_out) = match timeout {
            Some(limit) => {
                tokio::pin!(run);
                tokio::select! {
                    outcome = &mut run => (outcome, false),
                    () = tokio::time::sleep(limit) => {
                        attempt_cancel.cancel();
                        (run.await, true)
                    }
                }
            }
            None => (run.await, false),
        };
        let output = std::mem::take(&mut *captured.lock().unwrap_or_else(|e| e.into_inner()));
        let result = if timed_out {
            let message = format!(
                "step timed out after {}",
                timeout.map(crate::duration::format).unwrap_or_default()
            );
            self.log(id, format!("\n{message}"));
            Err(message)
        } else if outcome.success() {
            Ok(())
        } else if outcome == RunOutcome::Cancelled {
            Err("cancelled".to_owned())
        } else {
            let error = outcome.describe();
            self.log(
                id,
                format!(
                    "\n{error}\n\n--- Available environment variables ---\n{}",
                    env_names.join("\n")
                ),
            );
            Err(error)
        };
        Ran {
            cancelled: !timed_out && outcome == RunOutcome::Cancelled,
            result,
            output,
        }
    }
}
