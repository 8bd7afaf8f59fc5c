//! A scripted runner: engine tests run whole builds without processes, recording their events
//! with `pikoci_core::testing::Recorder`.
//!
//! Commands are written `path = "step"  args = ["directive; directive"]`, directives being:
//! `print:TEXT`, `warn:TEXT` (to stderr), `env:NAME` (prints `NAME=<value>`), `export:K=V` (appends to
//! `$PIKOCI_OUTPUT`), `touch:PATH` (creates a file in the work directory), `exit:N`, `fail`,
//! `hang` (runs until cancelled). Other programs just succeed, printing nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use pikoci_config::{HttpFetcher, SourceFile, Vars};
use pikoci_core::Pipeline;
use pikoci_core::engine::{
    BuildControl, BuildResult, BuildSpec, Engine, Invocation, LocalRun, OutputLine, OutputSink,
    RunOutcome, Runner, Status, Stream,
};
use pikoci_core::testing::Recorder;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub(crate) struct ScriptedRunner {
    pub(crate) invocations: Mutex<Vec<Invocation>>,
    /// Signalled each time a command starts to `hang`, so a test can act while it runs.
    pub(crate) hanging: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl Runner for ScriptedRunner {
    async fn run(
        &self,
        invocation: Invocation,
        output: OutputSink,
        cancel: CancellationToken,
    ) -> RunOutcome {
        self.invocations.lock().unwrap().push(invocation.clone());
        if invocation.program != "step" {
            return RunOutcome::Exited(0);
        }
        let script = invocation.args.join(" ");
        let print = |text: String| {
            output(OutputLine {
                stream: Stream::Stdout,
                text,
                at: SystemTime::now(),
            });
        };
        for directive in script.split(';').map(str::trim).filter(|d| !d.is_empty()) {
            let (verb, rest) = directive.split_once(':').unwrap_or((directive, ""));
            match verb {
                "print" => print(rest.to_owned()),
                "warn" => output(OutputLine {
                    stream: Stream::Stderr,
                    text: rest.to_owned(),
                    at: SystemTime::now(),
                }),
                "env" => print(format!(
                    "{rest}={}",
                    invocation.env.get(rest).cloned().unwrap_or_default()
                )),
                "export" => {
                    let file = invocation
                        .env
                        .get("PIKOCI_OUTPUT")
                        .expect("PIKOCI_OUTPUT is set for tasks");
                    let mut text = std::fs::read_to_string(file).unwrap_or_default();
                    text.push_str(rest);
                    text.push('\n');
                    std::fs::write(file, text).unwrap();
                }
                "touch" => {
                    let path = invocation.workdir.join(rest);
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, "").unwrap();
                }
                "exit" => return RunOutcome::Exited(rest.parse().unwrap()),
                "fail" => return RunOutcome::Exited(1),
                "hang" => {
                    self.hanging.notify_one();
                    cancel.cancelled().await;
                    return RunOutcome::Cancelled;
                }
                other => panic!("unknown directive {other:?} in {script:?}"),
            }
        }
        RunOutcome::Exited(0)
    }
}

pub(crate) fn pipeline(hcl: &str) -> Pipeline {
    let vars = Vars::new();
    match pikoci_config::load(
        &SourceFile::new("test.hcl", hcl),
        &vars,
        &HttpFetcher::default(),
    ) {
        Ok(loaded) => loaded.pipeline,
        Err(diagnostics) => panic!("test pipeline is invalid:\n{diagnostics}"),
    }
}

pub(crate) struct Run {
    pub(crate) result: BuildResult,
    pub(crate) events: Arc<Recorder>,
    pub(crate) runner: Arc<ScriptedRunner>,
    _dirs: tempfile::TempDir,
}

impl Run {
    /// The value of an environment variable in the `n`th invocation whose args contain `needle`.
    pub(crate) fn env_of(&self, needle: &str, name: &str) -> Option<String> {
        self.runner
            .invocations
            .lock()
            .unwrap()
            .iter()
            .find(|i| i.args.join(" ").contains(needle))
            .and_then(|i| i.env.get(name).cloned())
    }

    pub(crate) fn status(&self) -> Status {
        self.result.status
    }
}

pub(crate) struct Options {
    pub(crate) local: bool,
    pub(crate) versions: BTreeMap<String, serde_json::Value>,
    pub(crate) secrets: pikoci_core::secrets::ResolvedSecrets,
    pub(crate) inputs: BTreeMap<String, String>,
    pub(crate) control: BuildControl,
    pub(crate) runner: Arc<ScriptedRunner>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            local: true,
            versions: BTreeMap::new(),
            secrets: Default::default(),
            inputs: BTreeMap::new(),
            control: BuildControl::default(),
            runner: Arc::default(),
        }
    }
}

pub(crate) async fn run(hcl: &str, job: &str) -> Run {
    run_with(hcl, job, Options::default()).await
}

pub(crate) async fn run_with(hcl: &str, job: &str, options: Options) -> Run {
    run_pipeline(pipeline(hcl), job, options).await
}

/// Runs `job` of a pipeline built (or altered) by the test itself.
pub(crate) async fn run_pipeline(pipeline: Pipeline, job: &str, options: Options) -> Run {
    let dirs = tempfile::tempdir().unwrap();
    let runner = options.runner;
    let events = Arc::new(Recorder::default());
    let engine = Engine::new(runner.clone(), events.clone());
    let spec = BuildSpec {
        pipeline: Arc::new(pipeline),
        job: job.to_owned(),
        team: "main".to_owned(),
        pipeline_name: "demo".to_owned(),
        build_number: "7".to_owned(),
        inputs: options.inputs,
        versions: options.versions,
        secrets: options.secrets,
        local: options.local.then(LocalRun::default),
        work_root: dirs.path().join("work"),
        cache_root: Some(dirs.path().join("cache")),
    };
    let result = engine.run(spec, options.control).await;
    Run {
        result,
        events,
        runner,
        _dirs: dirs,
    }
}

/// A task block running `directives` with the scripted runner.
pub(crate) fn task(name: &str, directives: &str) -> String {
    format!(
        "task \"{name}\" {{\n  run \"exec\" {{\n    path = \"step\"\n    args = [\"{directives}\"]\n  }}\n}}\n"
    )
}
