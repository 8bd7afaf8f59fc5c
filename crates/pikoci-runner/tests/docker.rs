//! The builtin `docker` runner against a real container engine, through the real engine and
//! `ProcessRunner`: pipelines are loaded from HCL and run as `pikoci run` runs them.
//!
//! `cargo xtask it runner` runs this suite: it puts a `docker` command on `PATH` (podman behind
//! a wrapper script), builds a small busybox image and names it in `PIKOCI_TEST_DOCKER_IMAGE`.
//! Without that variable every test fails, saying so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pikoci_config::{HttpFetcher, SourceFile, Vars};
use pikoci_core::Pipeline;
use pikoci_core::engine::env::Inherit;
use pikoci_core::engine::{
    BuildControl, BuildResult, BuildSpec, Engine, Invocation, LocalRun, OutputLine, Runner, Status,
};
use pikoci_core::testing::Recorder;
use pikoci_runner::{ProcessRunner, WorkerLock};
use tokio_util::sync::CancellationToken;

/// How long a container may take to appear or to go away.
const CONTAINER_DEADLINE: Duration = Duration::from_secs(60);

/// The image the tests run, from `cargo xtask it runner`.
fn image() -> String {
    std::env::var("PIKOCI_TEST_DOCKER_IMAGE").unwrap_or_else(|_| {
        panic!(
            "PIKOCI_TEST_DOCKER_IMAGE is not set: this suite needs a container engine and a test \
             image; run it with `cargo xtask it runner`, which provides both"
        )
    })
}

/// The pipeline text with `IMAGE` replaced by the test image and `LABEL` by `label`.
fn pipeline_text(template: &str, label: &str) -> String {
    template.replace("IMAGE", &image()).replace("LABEL", label)
}

/// A label value no other test run uses, to find this test's containers with `docker ps`.
fn unique_label() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "run-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn pipeline(hcl: &str) -> Pipeline {
    match pikoci_config::load(
        &SourceFile::new("docker-test.hcl", hcl),
        &Vars::new(),
        &HttpFetcher::default(),
    ) {
        Ok(loaded) => loaded.pipeline,
        Err(diagnostics) => panic!("test pipeline is invalid:\n{diagnostics}\n{hcl}"),
    }
}

struct Finished {
    result: BuildResult,
    events: Arc<Recorder>,
}

impl Finished {
    fn assert_succeeded(&self) {
        assert_eq!(
            self.result.status,
            Status::Succeeded,
            "{:?}\n{:#?}",
            self.result.error,
            self.events.events()
        );
    }
}

/// Runs job `test` of `hcl` locally with the real process runner.
async fn run(hcl: String, control: BuildControl) -> Finished {
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let events = Arc::new(Recorder::default());
    let engine = Engine::new(Arc::new(ProcessRunner::new()), events.clone());
    let spec = BuildSpec {
        pipeline: Arc::new(pipeline(&hcl)),
        job: "test".to_owned(),
        team: "main".to_owned(),
        pipeline_name: "docker-suite".to_owned(),
        build_number: "42".to_owned(),
        inputs: BTreeMap::from([("target".to_owned(), "staging".to_owned())]),
        versions: BTreeMap::new(),
        secrets: Default::default(),
        local: Some(LocalRun::default()),
        work_root: dirs.path().join("work"),
        cache_root: Some(dirs.path().join("cache")),
    };
    let result = engine.run(spec, control).await;
    Finished { result, events }
}

/// The ids of every container (running or not) labelled `pikoci-test=<label>`.
async fn containers(label: &str) -> Vec<String> {
    let output = tokio::process::Command::new("docker")
        .args(["ps", "--all", "--quiet", "--filter"])
        .arg(format!("label=pikoci-test={label}"))
        .output()
        .await
        .expect("`docker` runs (cargo xtask it runner puts it on PATH)");
    assert!(
        output.status.success(),
        "docker ps failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Removes the containers labelled with its label when dropped, so that a failing test does not
/// leave them running (the assertions come first).
struct RemoveContainers(String);

impl Drop for RemoveContainers {
    fn drop(&mut self) {
        // `kill` first: `rm --force` waits for a shell as PID 1 to ignore SIGTERM.
        let script = r#"ids=$(docker ps --all --quiet --filter "label=pikoci-test=$1")
            [ -z "$ids" ] || { docker kill $ids; docker rm --force $ids; }"#;
        let _ = std::process::Command::new("/bin/sh")
            .args(["-c", script, "sh", &self.0])
            .output();
    }
}

/// Polls `docker ps` until the containers labelled `label` are present (or gone).
async fn wait_for_containers(label: &str, present: bool) {
    let deadline = Instant::now() + CONTAINER_DEADLINE;
    loop {
        let found = containers(label).await;
        if found.is_empty() != present {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "containers labelled pikoci-test={label} still {} after {CONTAINER_DEADLINE:?}: {found:?}",
            if present { "absent" } else { "present" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn output_of_the_container_is_the_step_log() {
    let hcl = pipeline_text(
        r#"
job "test" {
  task "hello" {
    run "docker" {
      image = "IMAGE"
      cmd   = "echo \"hello from $PWD\"; echo to-stderr >&2"
    }
  }
}
"#,
        "",
    );
    let finished = run(hcl, BuildControl::default()).await;
    finished.assert_succeeded();
    let log = finished.events.log("hello");
    assert!(log.contains("hello from /workdir"), "{log}");
    assert!(log.contains("to-stderr"), "{log}");
}

#[tokio::test]
async fn the_work_directory_is_shared_with_the_host() {
    let hcl = pipeline_text(
        r#"
job "test" {
  task "host-writes" {
    run "exec" {
      path = "/bin/sh"
      args = ["-ec", "echo written-on-host > from-host.txt"]
    }
  }
  task "container" {
    run "docker" {
      image = "IMAGE"
      cmd   = "echo \"container read $(cat from-host.txt)\"; echo written-in-container > from-container.txt"
    }
  }
  task "host-reads" {
    run "exec" {
      path = "/bin/sh"
      args = ["-ec", "echo \"host read $(cat from-container.txt)\""]
    }
  }
}
"#,
        "",
    );
    let finished = run(hcl, BuildControl::default()).await;
    finished.assert_succeeded();
    let container = finished.events.log("container");
    assert!(
        container.contains("container read written-on-host"),
        "{container}"
    );
    let host = finished.events.log("host-reads");
    assert!(host.contains("host read written-in-container"), "{host}");
}

#[tokio::test]
async fn build_metadata_params_and_exports_are_forwarded() {
    let hcl = pipeline_text(
        r#"
job "test" {
  task "first" {
    run "exec" {
      path = "/bin/sh"
      args = ["-ec", "echo COLOUR=blue > $PIKOCI_OUTPUT"]
    }
  }
  task "show" {
    run "docker" {
      image    = "IMAGE"
      greeting = "hello there"
      cmd      = <<-EOT
        echo "build=$BUILD_NUMBER job=$BUILD_JOB_NAME pipeline=$BUILD_PIPELINE_NAME team=$BUILD_TEAM_NAME"
        echo "input=$INPUT_target colour=$TASK_FIRST_COLOUR greeting=$greeting"
        echo "workdir=$${WORKDIR:-unset} image=$${image:-unset} cmd=$${cmd:-unset}"
      EOT
    }
  }
}
"#,
        "",
    );
    let finished = run(hcl, BuildControl::default()).await;
    finished.assert_succeeded();
    let log = finished.events.log("show");
    for expected in [
        "build=42 job=test pipeline=docker-suite team=main",
        "input=staging colour=blue greeting=hello there",
        // Runner-internal keys configure the runner and are not forwarded.
        "workdir=unset image=unset cmd=unset",
    ] {
        assert!(log.contains(expected), "{expected:?} not in:\n{log}");
    }
}

#[tokio::test]
async fn exports_written_in_the_container_reach_later_steps() {
    let hcl = pipeline_text(
        r#"
job "test" {
  task "emit" {
    run "docker" {
      image = "IMAGE"
      cmd   = <<-EOT
        echo "output file: $PIKOCI_OUTPUT"
        echo GREETING=hi > $PIKOCI_OUTPUT
        echo 'dotted.key = two words' >> $PIKOCI_OUTPUT
      EOT
    }
  }
  task "read" {
    run "exec" {
      path = "/bin/sh"
      args = ["-ec", "echo \"greeting=$TASK_EMIT_GREETING dotted=$TASK_EMIT_DOTTED_KEY\""]
    }
  }
}
"#,
        "",
    );
    let finished = run(hcl, BuildControl::default()).await;
    finished.assert_succeeded();
    let emit = finished.events.log("emit");
    assert!(
        emit.contains("output file: /workdir/.pikoci-output-"),
        "{emit}"
    );
    let read = finished.events.log("read");
    assert!(read.contains("greeting=hi dotted=two words"), "{read}");
}

#[tokio::test]
async fn a_failing_command_fails_the_step_with_its_exit_status() {
    let hcl = pipeline_text(
        r#"
job "test" {
  task "fails" {
    run "docker" {
      image = "IMAGE"
      cmd   = "echo before; exit 3; echo after"
    }
  }
  task "never" {
    run "exec" { path = "true" }
  }
}
"#,
        "",
    );
    let finished = run(hcl, BuildControl::default()).await;
    assert_eq!(finished.result.status, Status::Failed);
    let (status, error) = finished.events.outcome("fails");
    assert_eq!(status, Status::Failed);
    assert_eq!(error.as_deref(), Some("exit status 3"));
    let log = finished.events.log("fails");
    assert!(log.contains("before"), "{log}");
    assert!(!log.contains("after"), "{log}");
    assert_eq!(finished.events.started("never"), None);
}

#[tokio::test]
async fn extra_args_are_docker_run_flags() {
    let label = unique_label();
    let hcl = pipeline_text(
        r#"
job "test" {
  task "flags" {
    run "docker" {
      image = "IMAGE"
      args  = ["-e", "EXTRA=1", "--hostname", "pikoci-box", "--label", "pikoci-test=LABEL"]
      cmd   = "echo \"extra=$EXTRA host=$(hostname)\""
    }
  }
}
"#,
        &label,
    );
    let finished = run(hcl, BuildControl::default()).await;
    finished.assert_succeeded();
    let log = finished.events.log("flags");
    assert!(log.contains("extra=1 host=pikoci-box"), "{log}");
    // `--rm` comes from the runner: nothing is left behind.
    wait_for_containers(&label, false).await;
}

#[tokio::test]
async fn a_type_level_runner_override_runs_exec_commands_in_the_container() {
    let hcl = pipeline_text(
        r#"
resource_type "probe" {
  check "exec" {
    path = "/bin/sh"
    args = ["-ec", "test -d /workdir && echo \"[{\\\"dir\\\":\\\"$PWD\\\"}]\""]
  }
  pull "exec" {
    path = "/bin/sh"
    args = ["-ec", "echo \"pulled $version_dir in $PWD\" > pulled.txt"]
  }
  runner "docker" {
    image = "IMAGE"
  }
}

resource "probe" "box" {}

job "test" {
  get "probe" "box" {}
  task "after" {
    run "exec" {
      path = "/bin/sh"
      args = ["-ec", "cat pulled.txt; echo \"exported=$GET_BOX_DIR\""]
    }
  }
}
"#,
        "",
    );
    let finished = run(hcl, BuildControl::default()).await;
    finished.assert_succeeded();
    let log = finished.events.log("after");
    // Both the check (which found the version) and the pull ran in the container's /workdir.
    assert!(log.contains("pulled /workdir in /workdir"), "{log}");
    assert!(log.contains("exported=/workdir"), "{log}");
}

/// A task whose container runs until it is killed, labelled so `docker ps` finds it.
const HANGING_JOB: &str = r#"
job "test" {
  TIMEOUT
  task "hang" {
    run "docker" {
      image = "IMAGE"
      args  = ["--label", "pikoci-test=LABEL"]
      cmd   = "echo started; sleep 600"
    }
  }
}
"#;

#[tokio::test]
async fn cancelling_the_build_kills_the_container() {
    let label = unique_label();
    let _remove = RemoveContainers(label.clone());
    let hcl = pipeline_text(HANGING_JOB, &label).replace("TIMEOUT", "");
    let control = BuildControl::default();
    let build = tokio::spawn(run(hcl, control.clone()));
    wait_for_containers(&label, true).await;
    control.cancel.cancel();
    let finished = tokio::time::timeout(CONTAINER_DEADLINE, build)
        .await
        .expect("the build returns once cancelled")
        .expect("the build task does not panic");
    assert_eq!(finished.result.status, Status::Cancelled);
    assert_eq!(finished.events.outcome("hang").0, Status::Cancelled);
    wait_for_containers(&label, false).await;
}

#[tokio::test]
async fn a_job_timeout_kills_the_container() {
    let label = unique_label();
    let _remove = RemoveContainers(label.clone());
    // Long enough for the container to start on a busy machine; the test waits for it.
    let hcl = pipeline_text(HANGING_JOB, &label).replace("TIMEOUT", "timeout = \"10s\"");
    let build = tokio::spawn(run(hcl, BuildControl::default()));
    wait_for_containers(&label, true).await;
    let finished = tokio::time::timeout(CONTAINER_DEADLINE, build)
        .await
        .expect("the build returns once timed out")
        .expect("the build task does not panic");
    assert_eq!(finished.result.status, Status::Failed);
    assert_eq!(
        finished.result.error.as_deref(),
        Some("job timed out after 10s")
    );
    let log = finished.events.log("hang");
    assert!(log.contains("started"), "{log}");
    wait_for_containers(&label, false).await;
}

/// Starts, through the runner of `worker`, a container labelled `pikoci-test=<label>` that
/// runs until killed, then drops the run as a worker killed with SIGKILL would: the `docker`
/// CLI dies, no cleanup runs, and the container goes on.
async fn leave_a_container(worker: &WorkerLock, label: &str, workdir: &std::path::Path) {
    let invocation = Invocation {
        program: "docker".to_owned(),
        args: vec![
            "run".to_owned(),
            "--rm".to_owned(),
            "--label".to_owned(),
            format!("pikoci-test={label}"),
            image(),
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "sleep 600".to_owned(),
        ],
        env: BTreeMap::new(),
        inherit: Inherit::Step,
        workdir: workdir.to_path_buf(),
    };
    let runner = ProcessRunner::for_worker(worker);
    let run = tokio::spawn(async move {
        runner
            .run(
                invocation,
                Arc::new(|_: OutputLine| {}),
                CancellationToken::new(),
            )
            .await
    });
    wait_for_containers(label, true).await;
    run.abort();
    let _ = run.await;
}

#[tokio::test]
async fn a_starting_worker_removes_the_containers_dead_workers_left() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let locks = tempfile::tempdir().expect("a lock directory");
    let worker = unique_label();
    let earlier = WorkerLock::acquire(&worker, locks.path()).expect("the earlier run's lock");
    // A dead worker of another name: its lock file is there and nobody holds it.
    let dead = unique_label();
    let dead_lock = WorkerLock::acquire(&dead, locks.path()).expect("the dead worker's lock");
    // A live worker of the same name with another lock directory (another TMPDIR).
    let elsewhere = tempfile::tempdir().expect("another lock directory");
    let namesake = WorkerLock::acquire(&worker, elsewhere.path()).expect("the namesake's lock");
    let (mine, the_dead_ones, theirs) = (unique_label(), unique_label(), unique_label());
    let _remove = (
        RemoveContainers(mine.clone()),
        RemoveContainers(the_dead_ones.clone()),
        RemoveContainers(theirs.clone()),
    );
    leave_a_container(&earlier, &mine, dir.path()).await;
    leave_a_container(&dead_lock, &the_dead_ones, dir.path()).await;
    leave_a_container(&namesake, &theirs, dir.path()).await;
    let mut left = containers(&mine).await;
    assert_eq!(
        left.len(),
        1,
        "the container outlives the CLI that started it"
    );
    left.extend(containers(&the_dead_ones).await);
    left.sort();
    drop((earlier, dead_lock));
    let lock = WorkerLock::acquire(&worker, locks.path()).expect("the worker starts again");
    let reaped = ProcessRunner::reap_leftovers(&lock).await;
    let mut removed = reaped.containers.clone();
    removed.sort();
    assert_eq!(removed, left, "{reaped:?}");
    assert_eq!(reaped.dead_workers, [dead], "{reaped:?}");
    wait_for_containers(&mine, false).await;
    wait_for_containers(&the_dead_ones, false).await;
    assert_eq!(
        containers(&theirs).await.len(),
        1,
        "a live worker's container was removed"
    );
}
