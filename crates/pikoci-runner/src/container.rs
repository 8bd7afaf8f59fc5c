//! Containers started by `docker run` (or `podman run`). Killing the CLI does not stop its
//! container: the container belongs to the engine (dockerd, or podman's conmon), which keeps it
//! running. So each container such an invocation starts gets a label naming the run, and a
//! cancelled run kills and removes whatever carries that label.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pikoci_core::engine::Invocation;
use pikoci_core::engine::env::Inherit;
use tokio::process::Command;

/// The label put on every container a run starts.
const LABEL: &str = "pikoci.run";

/// How long each cleanup command may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The container CLIs whose `run` starts a container that outlives the CLI.
const CLIS: &[&str] = &["docker", "podman"];

/// The containers of one `docker run` invocation. No `Debug`: `env` holds secrets.
pub(crate) struct Containers {
    program: String,
    env: BTreeMap<String, String>,
    inherit: Inherit,
    workdir: PathBuf,
    filter: String,
}

/// Labels the container `invocation` starts, when it is a `docker run` (or `podman run`):
/// `--label pikoci.run=<unique id>` goes right after `run`.
pub(crate) fn label(invocation: &mut Invocation) -> Option<Containers> {
    let cli = Path::new(&invocation.program).file_name()?.to_str()?;
    if !CLIS.contains(&cli) || invocation.args.first().map(String::as_str) != Some("run") {
        return None;
    }
    let value = format!("{LABEL}={}", unique_id());
    invocation
        .args
        .splice(1..1, ["--label".to_owned(), value.clone()]);
    Some(Containers {
        program: invocation.program.clone(),
        env: invocation.env.clone(),
        inherit: invocation.inherit,
        workdir: invocation.workdir.clone(),
        filter: format!("label={value}"),
    })
}

impl Containers {
    /// Kills and removes the run's containers (there is at most one, or none when the CLI was
    /// killed before it created it). Failures are ignored: the container may be gone already.
    pub(crate) async fn remove(&self) {
        let Some(listed) = self
            .cli(&["ps", "--all", "--quiet", "--filter", &self.filter])
            .await
        else {
            return;
        };
        let ids: Vec<&str> = listed.split_whitespace().collect();
        if ids.is_empty() {
            return;
        }
        // `kill` first: `rm --force` would wait for the image's stop timeout (and a shell as
        // PID 1 ignores SIGTERM), `kill` sends SIGKILL.
        let mut kill = vec!["kill"];
        kill.extend(&ids);
        self.cli(&kill).await;
        let mut remove = vec!["rm", "--force"];
        remove.extend(&ids);
        self.cli(&remove).await;
    }

    /// Runs the CLI with `args` as the invocation would have; its stdout when it succeeds.
    async fn cli(&self, args: &[&str]) -> Option<String> {
        let mut command = Command::new(&self.program);
        crate::set_environment(&mut command, self.inherit, &self.env);
        let output = command
            .args(args)
            .current_dir(&self.workdir)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(CLEANUP_TIMEOUT, output).await {
            Ok(Ok(output)) if output.status.success() => {
                Some(String::from_utf8_lossy(&output.stdout).into_owned())
            }
            _ => None,
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
        let containers = label(&mut docker).expect("docker run is labelled");
        assert_eq!(docker.args[..2], ["run", "--label"]);
        assert!(docker.args[2].starts_with("pikoci.run="));
        assert_eq!(docker.args[3..], ["--rm", "alpine", "true"]);
        assert_eq!(containers.filter, format!("label={}", docker.args[2]));
    }

    #[test]
    fn podman_by_path_is_a_container_cli_too() {
        let mut podman = invocation("/usr/bin/podman", &["run", "alpine"]);
        assert!(label(&mut podman).is_some());
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
            assert!(label(&mut other).is_none(), "{program} {args:?}");
            assert_eq!(other.args, args);
        }
    }

    #[test]
    fn every_run_gets_its_own_label() {
        let mut first = invocation("docker", &["run", "x"]);
        let mut second = invocation("docker", &["run", "x"]);
        label(&mut first);
        label(&mut second);
        assert_ne!(first.args[2], second.args[2]);
    }
}
