//! Containers started by `docker run` (or `podman run`). Killing the CLI does not stop its
//! container: the container belongs to the engine (dockerd, or podman's conmon), which keeps it
//! running. So each container such an invocation starts gets a label naming the run, and a
//! cancelled run kills and removes whatever carries that label. A runner that belongs to a
//! worker also labels it with the worker's id and run, so that a worker starting on this
//! machine removes what a killed worker left (see `reaper`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pikoci_core::engine::Invocation;
use pikoci_core::engine::env::Inherit;
use tokio::process::Command;

use crate::WorkerMark;

/// The label put on every container a run starts.
const LABEL: &str = "pikoci.run";

/// The label naming the worker whose runner started a container.
const WORKER_LABEL: &str = "pikoci.worker";

/// The label holding the token of the worker run that started a container: what the reaper
/// goes by.
const WORKER_RUN_LABEL: &str = "pikoci.worker-run";

/// How long each cleanup command may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of a failing CLI's error output kept in a message.
const MAX_ERROR_CHARS: usize = 300;

/// The container CLIs whose `run` starts a container that outlives the CLI.
const CLIS: &[&str] = &["docker", "podman"];

/// The containers of one `docker run` invocation.
pub(crate) struct Containers {
    cli: Cli,
    filter: String,
}

/// Labels the container `invocation` starts, when it is a `docker run` (or `podman run`):
/// `--label pikoci.run=<unique id>` goes right after `run`, and `--label pikoci.worker=<id>
/// --label pikoci.worker-run=<run token>` after it when the runner belongs to a worker.
pub(crate) fn label(
    invocation: &mut Invocation,
    worker: Option<&WorkerMark>,
) -> Option<Containers> {
    let cli = Path::new(&invocation.program).file_name()?.to_str()?;
    if !CLIS.contains(&cli) || invocation.args.first().map(String::as_str) != Some("run") {
        return None;
    }
    let value = format!("{LABEL}={}", unique_id());
    let mut labels = vec!["--label".to_owned(), value.clone()];
    if let Some(worker) = worker {
        labels.extend([
            "--label".to_owned(),
            format!("{WORKER_LABEL}={}", worker.id),
            "--label".to_owned(),
            format!("{WORKER_RUN_LABEL}={}", worker.run),
        ]);
    }
    invocation.args.splice(1..1, labels);
    Some(Containers {
        cli: Cli {
            program: invocation.program.clone(),
            env: invocation.env.clone(),
            inherit: invocation.inherit,
            workdir: Some(invocation.workdir.clone()),
        },
        filter: format!("label={value}"),
    })
}

impl Containers {
    /// Kills and removes the run's containers (there is at most one, or none when the CLI was
    /// killed before it created it). Failures are ignored: the container may be gone already.
    pub(crate) async fn remove(&self) {
        let _ = self.cli.kill_and_remove_filtered(&self.filter).await;
    }
}

/// Kills and removes, with every container CLI on this machine, the containers whose
/// `pikoci.worker-run` label is one of `runs`; returns their ids, and what failed. A CLI that
/// is not installed is no failure.
pub(crate) async fn remove_of_runs(runs: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let mut removed = Vec::new();
    let mut problems = Vec::new();
    for program in CLIS {
        let cli = Cli {
            program: (*program).to_owned(),
            env: BTreeMap::new(),
            inherit: Inherit::Step,
            workdir: None,
        };
        // One filter per run: every version of docker and podman filters on a label's value.
        for run in runs {
            match cli
                .kill_and_remove_filtered(&format!("label={WORKER_RUN_LABEL}={run}"))
                .await
            {
                Ok(ids) => {
                    for id in ids {
                        // `docker` may be podman behind a wrapper: the same container twice.
                        if !removed.contains(&id) {
                            removed.push(id);
                        }
                    }
                }
                // Not installed: no other run needs asking.
                Err(CliError::Absent) => break,
                Err(CliError::Failed(problem)) => problems.push(problem),
            }
        }
    }
    (removed, problems)
}

/// Why a container CLI command gave no answer.
#[derive(Debug)]
enum CliError {
    /// The CLI is not installed.
    Absent,
    /// It failed (or timed out): what happened.
    Failed(String),
}

/// A container CLI, run with a given environment. No `Debug`: `env` holds secrets.
struct Cli {
    program: String,
    env: BTreeMap<String, String>,
    inherit: Inherit,
    workdir: Option<PathBuf>,
}

impl Cli {
    /// Kills and removes the containers `filter` selects; returns their ids.
    async fn kill_and_remove_filtered(&self, filter: &str) -> Result<Vec<String>, CliError> {
        let listed = self
            .run(&["ps", "--all", "--quiet", "--filter", filter])
            .await?;
        let ids = listed.split_whitespace().map(str::to_owned).collect();
        self.kill_and_remove(ids).await
    }

    /// Kills and removes the containers `ids`; returns them.
    async fn kill_and_remove(&self, ids: Vec<String>) -> Result<Vec<String>, CliError> {
        if ids.is_empty() {
            return Ok(ids);
        }
        // `kill` first: `rm --force` would wait for the image's stop timeout (and a shell as
        // PID 1 ignores SIGTERM), `kill` sends SIGKILL. It fails for a container that is not
        // running any more, which `rm` removes all the same.
        let mut kill = vec!["kill"];
        kill.extend(ids.iter().map(String::as_str));
        let _ = self.run(&kill).await;
        let mut remove = vec!["rm", "--force"];
        remove.extend(ids.iter().map(String::as_str));
        self.run(&remove).await?;
        Ok(ids)
    }

    /// Runs the CLI with `args`; its stdout when it succeeds.
    async fn run(&self, args: &[&str]) -> Result<String, CliError> {
        let mut command = Command::new(&self.program);
        crate::set_environment(&mut command, self.inherit, &self.env);
        if let Some(workdir) = &self.workdir {
            command.current_dir(workdir);
        }
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let what = || format!("`{} {}`", self.program, args.join(" "));
        match tokio::time::timeout(CLEANUP_TIMEOUT, output).await {
            Ok(Ok(output)) if output.status.success() => {
                Ok(String::from_utf8_lossy(&output.stdout).into_owned())
            }
            Ok(Ok(output)) => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let stderr: String = stderr.trim().chars().take(MAX_ERROR_CHARS).collect();
                Err(CliError::Failed(format!(
                    "{} failed ({}): {stderr}",
                    what(),
                    output.status
                )))
            }
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => Err(CliError::Absent),
            Ok(Err(error)) => Err(CliError::Failed(format!("cannot run {}: {error}", what()))),
            Err(_) => Err(CliError::Failed(format!(
                "{} did not answer within {CLEANUP_TIMEOUT:?}",
                what()
            ))),
        }
    }
}

/// An id no other run of any process on this machine uses.
fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(program: &str, args: &[&str]) -> Invocation {
        Invocation {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: BTreeMap::new(),
            inherit: Inherit::Step,
            workdir: PathBuf::from("/tmp"),
        }
    }

    #[test]
    fn docker_run_gets_a_label_after_run() {
        let mut docker = invocation("docker", &["run", "--rm", "alpine", "true"]);
        let containers = label(&mut docker, None).expect("docker run is labelled");
        assert_eq!(docker.args[..2], ["run", "--label"]);
        assert!(docker.args[2].starts_with("pikoci.run="));
        assert_eq!(docker.args[3..], ["--rm", "alpine", "true"]);
        assert_eq!(containers.filter, format!("label={}", docker.args[2]));
    }

    #[test]
    fn a_workers_runner_also_labels_the_worker_and_its_run() {
        let mut docker = invocation("docker", &["run", "--rm", "alpine", "true"]);
        let mark = WorkerMark {
            id: "box-1".into(),
            run: "0123abcd".into(),
        };
        label(&mut docker, Some(&mark)).expect("docker run is labelled");
        assert_eq!(docker.args[..2], ["run", "--label"]);
        assert!(docker.args[2].starts_with("pikoci.run="));
        assert_eq!(
            docker.args[3..7],
            [
                "--label",
                "pikoci.worker=box-1",
                "--label",
                "pikoci.worker-run=0123abcd"
            ]
        );
        assert_eq!(docker.args[7..], ["--rm", "alpine", "true"]);
    }

    #[test]
    fn podman_by_path_is_a_container_cli_too() {
        let mut podman = invocation("/usr/bin/podman", &["run", "alpine"]);
        assert!(label(&mut podman, None).is_some());
    }

    #[test]
    fn other_commands_are_left_alone() {
        for (program, args) in [
            ("docker", &["ps"][..]),
            ("docker", &[][..]),
            ("/bin/sh", &["run"][..]),
            ("dockerish", &["run"][..]),
        ] {
            let mut other = invocation(program, args);
            let mark = WorkerMark {
                id: "w".into(),
                run: "r".into(),
            };
            assert!(
                label(&mut other, Some(&mark)).is_none(),
                "{program} {args:?}"
            );
            assert_eq!(other.args, args);
        }
    }

    #[test]
    fn every_run_gets_its_own_label() {
        let mut first = invocation("docker", &["run", "x"]);
        let mut second = invocation("docker", &["run", "x"]);
        label(&mut first, None);
        label(&mut second, None);
        assert_ne!(first.args[2], second.args[2]);
    }
}
