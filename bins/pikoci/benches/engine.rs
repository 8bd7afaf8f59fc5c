//! Engine overhead per no-op step: a job of 200 `exec` steps running `/bin/true`, against the
//! same 200 processes started by a shell script (spec: under 2 ms per step).
//!
//! Three ways of starting the same 200 processes, run in turn 20 times (after one untimed round):
//!
//! - `sh`: `/bin/sh` on a script of 200 `/bin/true` lines (the full path: a bare `true` is a shell
//!   builtin and would start no process at all);
//! - `pikoci run`: the release `pikoci` binary on a pipeline with one job of 200
//!   `task "step-N" { run "exec" { path = "/bin/true" } }` steps, output to a pipe, as a user runs
//!   it (start-up, parsing and rendering included);
//! - `engine`: `pikoci_core::engine::Engine` with `pikoci_runner::ProcessRunner` in this process,
//!   events discarded: the engine's own share, without the command-line tool around it.
//!
//! Reported: the median total of each, per step, and the difference per step from `sh`. The
//! figures are reported, never asserted. `cargo xtask bench engine` runs it (`cargo bench -p
//! pikoci --bench engine`).

// A command-line report: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pikoci_config::{HttpFetcher, SourceFile, Vars};
use pikoci_core::engine::{BuildControl, BuildSpec, Engine, Event, EventSink, LocalRun, Status};
use pikoci_runner::ProcessRunner;

const STEPS: usize = 200;
const ROUNDS: usize = 20;
const NOOP: &str = "/bin/true";
const JOB: &str = "noop";

/// The timed runs of one way of starting the processes.
struct Timings {
    name: &'static str,
    runs: Vec<Duration>,
}

impl Timings {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            runs: Vec::with_capacity(ROUNDS),
        }
    }

    /// Runs `run` once, keeping its time when `timed`.
    fn record(
        &mut self,
        timed: bool,
        run: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        run().with_context(|| format!("the {} run failed", self.name))?;
        if timed {
            self.runs.push(started.elapsed());
        }
        Ok(())
    }

    fn median(&self) -> Duration {
        let mut sorted = self.runs.clone();
        sorted.sort();
        sorted[sorted.len() / 2]
    }

    fn per_step(&self) -> Duration {
        self.median() / STEPS as u32
    }
}

fn main() -> anyhow::Result<()> {
    if !Path::new(NOOP).is_file() {
        bail!("{NOOP} is missing: the benchmark starts it {STEPS} times per run");
    }
    let dir = tempfile::tempdir().context("failed to create a temporary directory")?;
    let script = dir.path().join("noop.sh");
    std::fs::write(&script, shell_script()).context("failed to write the shell script")?;
    let pipeline = dir.path().join("noop.hcl");
    std::fs::write(&pipeline, pipeline_text()).context("failed to write the pipeline")?;
    let work = dir.path().join("work");
    let runtime = tokio::runtime::Runtime::new()?;
    let spec = build_spec(&pipeline, &work)?;

    eprintln!("timing {STEPS} no-op steps, {ROUNDS} runs each ...");
    let mut shell = Timings::new("sh");
    let mut cli = Timings::new("pikoci run");
    let mut engine = Timings::new("engine");
    // Interleaved, so that whatever else the machine does slows the three alike; round 0 warms
    // the caches and is not timed.
    for round in 0..=ROUNDS {
        let timed = round > 0;
        shell.record(timed, || run_shell(&script))?;
        cli.record(timed, || run_cli(&pipeline, &work))?;
        engine.record(timed, || runtime.block_on(run_engine(spec.clone())))?;
    }
    print_table(&shell, &[&shell, &cli, &engine]);
    Ok(())
}

fn shell_script() -> String {
    let mut script = String::from("set -e\n");
    for _ in 0..STEPS {
        script.push_str(NOOP);
        script.push('\n');
    }
    script
}

fn pipeline_text() -> String {
    let mut text = format!("job \"{JOB}\" {{\n");
    for n in 0..STEPS {
        text.push_str(&format!(
            "  task \"step-{n}\" {{\n    run \"exec\" {{\n      path = \"{NOOP}\"\n    }}\n  }}\n"
        ));
    }
    text.push_str("}\n");
    text
}

fn run_shell(script: &Path) -> anyhow::Result<()> {
    let status = Command::new("/bin/sh")
        .arg(script)
        .stdout(Stdio::null())
        .status()
        .context("failed to start /bin/sh")?;
    if !status.success() {
        bail!("/bin/sh {} failed ({status})", script.display());
    }
    Ok(())
}

fn run_cli(pipeline: &Path, work: &Path) -> anyhow::Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_pikoci"))
        .arg("run")
        .arg("--pipeline-config")
        .arg(pipeline)
        .args(["--job", JOB, "--no-color", "--work-dir"])
        .arg(work)
        .env_remove("PIKOCI_VARS")
        .output()
        .context("failed to start pikoci")?;
    if !out.status.success() {
        bail!(
            "pikoci run failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The build `pikoci run` makes of the pipeline, for the engine in this process.
fn build_spec(pipeline: &Path, work: &Path) -> anyhow::Result<BuildSpec> {
    let text = std::fs::read_to_string(pipeline)?;
    let file = SourceFile::new(pipeline.display().to_string(), text);
    let loaded = pikoci_config::load(&file, &Vars::new(), &HttpFetcher::default())
        .map_err(|diagnostics| anyhow::anyhow!("{}", diagnostics.render(false)))?;
    Ok(BuildSpec {
        pipeline: Arc::new(loaded.pipeline),
        job: JOB.to_owned(),
        team: "main".to_owned(),
        pipeline_name: "local".to_owned(),
        build_number: "1".to_owned(),
        inputs: BTreeMap::new(),
        versions: BTreeMap::new(),
        secrets: Default::default(),
        local: Some(LocalRun::default()),
        work_root: PathBuf::from(work),
        cache_root: None,
    })
}

/// Throws every event away: the engine's cost without a renderer.
#[derive(Debug)]
struct Discard;

impl EventSink for Discard {
    fn emit(&self, _event: Event) {}
}

async fn run_engine(spec: BuildSpec) -> anyhow::Result<()> {
    let engine = Engine::new(Arc::new(ProcessRunner::new()), Arc::new(Discard));
    let result = engine.run(spec, BuildControl::default()).await;
    if result.status != Status::Succeeded {
        bail!(
            "the build ended {}: {}",
            result.status,
            result.error.unwrap_or_default()
        );
    }
    Ok(())
}

fn print_table(baseline: &Timings, rows: &[&Timings]) {
    println!(
        "{:<12} {:>14} {:>20} {:>12} {:>20}",
        "",
        "total (median)",
        format!("range of {ROUNDS} runs"),
        "per step",
        "overhead per step"
    );
    let base = baseline.per_step().as_secs_f64();
    for timings in rows {
        let (min, max) = (
            timings.runs.iter().min().copied().unwrap_or_default(),
            timings.runs.iter().max().copied().unwrap_or_default(),
        );
        let overhead = (timings.per_step().as_secs_f64() - base) * 1000.0;
        println!(
            "{:<12} {:>14} {:>20} {:>12} {:>20}",
            timings.name,
            format!("{:.1?}", timings.median()),
            format!("{min:.1?} - {max:.1?}"),
            format!("{:.3?}", timings.per_step()),
            if std::ptr::eq(*timings, baseline) {
                "-".to_owned()
            } else {
                format!("{overhead:+.3} ms")
            },
        );
    }
}
