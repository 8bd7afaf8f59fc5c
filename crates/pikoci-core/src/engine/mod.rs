//! The build engine: executes one build of one job, step by step, and reports everything it
//! does as [`Event`]s.
//!
//! The engine does not spawn processes itself: every command goes through the [`Runner`] port,
//! so tests drive it with a scripted runner and `pikoci-runner` gives it real processes. It is
//! the heart of both `pikoci run` (local mode: versions found by running checks, `put` and
//! `notify` skipped) and, later, the worker (versions given by the server).

mod cache_lock;
mod command;
pub mod env;
mod events;
mod exec;
mod local;
pub mod mask;
mod native;
mod runner;
mod services;
mod steps;
pub mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use events::{Event, EventSink, Status, StepId, StepType};
pub use native::{CheckRequest, NativeCheckError, NativeChecks};
pub use runner::{Invocation, OutputLine, OutputSink, RunOutcome, Runner, RunnerError, Stream};

use crate::{HookKind, Pipeline, ServiceType};
use mask::Masker;

/// Everything the engine needs to run one build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The pipeline the job belongs to.
    pub pipeline: Arc<Pipeline>,
    /// The job (instance) name.
    pub job: String,
    /// `BUILD_TEAM_NAME`.
    pub team: String,
    /// `BUILD_PIPELINE_NAME` (the pipeline's canonical name).
    pub pipeline_name: String,
    /// `BUILD_NUMBER`.
    pub build_number: String,
    /// Resolved job inputs, exposed as `INPUT_<name>`.
    pub inputs: BTreeMap<String, String>,
    /// The version each `get` uses, by resource canonical name (`type.name`). In local mode a
    /// resource without an entry is checked for its newest version.
    pub versions: BTreeMap<String, serde_json::Value>,
    /// Secret placeholders and the values they stand for (and whether each is masked).
    pub secrets: crate::secrets::ResolvedSecrets,
    /// `Some` for a local run (`pikoci run`).
    pub local: Option<LocalRun>,
    /// Where the build's work directory is created (and removed afterwards).
    pub work_root: PathBuf,
    /// Where resource caches live (`<root>/<team>/<pipeline>/<resource>/`); `None` disables
    /// caching.
    pub cache_root: Option<PathBuf>,
}

/// Options of a local run.
#[derive(Debug, Clone, Default)]
pub struct LocalRun {
    /// Resources (by canonical name) to copy from a local directory instead of pulling.
    pub resource_dirs: BTreeMap<String, PathBuf>,
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    /// The final status.
    pub status: Status,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Everything the engine needs to run one resource check.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    /// The pipeline the resource belongs to.
    pub pipeline: Arc<Pipeline>,
    /// The resource, `type.name`.
    pub resource: String,
    /// The team's name (part of the cache directory).
    pub team: String,
    /// The pipeline's name (part of the cache directory).
    pub pipeline_name: String,
    /// The newest version known, given to the check as `version_*` (`None` on the first check).
    pub newest: Option<serde_json::Value>,
    /// Secret placeholders and the values they stand for.
    pub secrets: crate::secrets::ResolvedSecrets,
    /// Where the check's work directory is created (and removed afterwards).
    pub work_root: PathBuf,
    /// Where resource caches live; `None` disables caching.
    pub cache_root: Option<PathBuf>,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The versions, oldest first, secrets masked (empty when the type has no check).
    pub versions: Vec<serde_json::Value>,
    /// Why the check failed, if it did.
    pub error: Option<String>,
}

/// Stops a running build. `cancel` is the normal way: the running step is killed, then
/// `on_cancel` and `ensure` hooks run and services are stopped. `abort` also kills those.
#[derive(Debug, Clone, Default)]
pub struct BuildControl {
    /// Cancel the build.
    pub cancel: CancellationToken,
    /// Stop everything now, hooks and service stops included.
    pub abort: CancellationToken,
}

/// Runs builds.
#[derive(Debug, Clone)]
pub struct Engine {
    runner: Arc<dyn Runner>,
    sink: Arc<dyn EventSink>,
    native: Option<Arc<dyn NativeChecks>>,
}

/// How long a service's `stop` may take.
const SERVICE_STOP_TIMEOUT: Duration = Duration::from_secs(30);

impl Engine {
    /// An engine running commands with `runner` and reporting to `sink`.
    pub fn new(runner: Arc<dyn Runner>, sink: Arc<dyn EventSink>) -> Engine {
        Engine {
            runner,
            sink,
            native: None,
        }
    }

    /// Lets `native` do the checks it knows how to do natively.
    pub fn with_native_checks(mut self, native: Arc<dyn NativeChecks>) -> Engine {
        self.native = Some(native);
        self
    }

    /// Runs one build to its end and reports its result (also sent as
    /// [`Event::BuildFinished`]).
    pub async fn run(&self, spec: BuildSpec, control: BuildControl) -> BuildResult {
        let started = Instant::now();
        let result = match self.prepare(spec, control) {
            Ok(build) => {
                let result = build.run().await;
                build.cleanup();
                result
            }
            Err(error) => BuildResult {
                status: Status::Failed,
                error: Some(error),
            },
        };
        self.sink.emit(Event::BuildFinished {
            status: result.status,
            duration: started.elapsed(),
            error: result.error.clone(),
        });
        result
    }

    /// Runs one resource check outside any build (a worker's check work) and returns the
    /// versions it found. Its output is reported as [`Event::Output`] of step 0.
    pub async fn check(&self, spec: CheckSpec, cancel: CancellationToken) -> CheckResult {
        let failed = |error: String| CheckResult {
            versions: Vec::new(),
            error: Some(error),
        };
        let pipeline = spec.pipeline.clone();
        let Some(resource) = pipeline
            .resources
            .iter()
            .find(|r| r.canonical() == spec.resource)
        else {
            return failed(format!(
                "resource \"{}\" not found in pipeline",
                spec.resource
            ));
        };
        let Some(resource_type) = pipeline.resource_type(&resource.type_name) else {
            return failed(format!(
                "resource type \"{}\" of resource \"{}\" not found in pipeline",
                resource.type_name, spec.resource
            ));
        };
        let build_spec = BuildSpec {
            pipeline: spec.pipeline.clone(),
            job: String::new(),
            team: spec.team,
            pipeline_name: spec.pipeline_name,
            build_number: String::new(),
            inputs: BTreeMap::new(),
            versions: BTreeMap::new(),
            secrets: spec.secrets,
            local: None,
            work_root: spec.work_root,
            cache_root: spec.cache_root,
        };
        let control = BuildControl {
            cancel,
            abort: CancellationToken::new(),
        };
        let build = match self.assemble(build_spec, crate::Job::new("check"), control) {
            Ok(build) => build,
            Err(error) => return failed(error),
        };
        let accepted = build.resource_params(0, resource, resource_type);
        let cache_dir = build.cache_dir(resource, resource_type);
        let cancel = build.job_cancel.clone();
        let found = build
            .check_versions(
                0,
                resource,
                resource_type,
                &accepted,
                cache_dir.as_ref(),
                spec.newest.as_ref(),
                &cancel,
            )
            .await;
        build.cleanup();
        match found {
            Ok(Some(versions)) => CheckResult {
                versions: versions
                    .into_iter()
                    .map(|v| build.masker.mask_json(v))
                    .collect(),
                error: None,
            },
            Ok(None) => {
                build.log(
                    0,
                    format!(
                        "resource type \"{}\" has no check: builds get an empty version",
                        resource_type.name
                    ),
                );
                CheckResult {
                    versions: Vec::new(),
                    error: None,
                }
            }
            Err(error) => failed(build.masker.mask(&error)),
        }
    }

    fn prepare(&self, spec: BuildSpec, control: BuildControl) -> Result<Build, String> {
        let job = spec
            .pipeline
            .job(&spec.job)
            .cloned()
            .ok_or_else(|| format!("job \"{}\" not found in pipeline", spec.job))?;
        self.assemble(spec, job, control)
    }

    fn assemble(
        &self,
        spec: BuildSpec,
        job: crate::Job,
        control: BuildControl,
    ) -> Result<Build, String> {
        let workdir = spec.work_root.join(new_build_dir_name());
        std::fs::create_dir_all(&workdir).map_err(|err| {
            format!(
                "failed to create the work directory {}: {err}",
                workdir.display()
            )
        })?;
        // `plain` store entries are substituted but not masked.
        let masker = Masker::new(spec.secrets.masked_values());
        let substitutions = spec.secrets.placeholders();
        // The plan runs under `job_cancel`: fired by a user cancel or by the job timeout.
        let job_cancel = control.cancel.child_token();
        Ok(Build {
            runner: self.runner.clone(),
            native: self.native.clone(),
            sink: self.sink.clone(),
            job,
            spec,
            workdir,
            masker,
            substitutions,
            control,
            job_cancel,
            timed_out: AtomicBool::new(false),
            next_step: AtomicU32::new(0),
            services: Mutex::new(Vec::new()),
        })
    }
}

/// A service started by the plan, to be stopped at the end.
#[derive(Debug, Clone)]
struct StartedService {
    /// The type's name, with `#2`, `#3`, ... for later services of the same type.
    label: String,
    service_type: ServiceType,
    overrides: crate::Params,
}

/// The state of one running build. `Debug` leaves out the secret substitutions.
struct Build {
    runner: Arc<dyn Runner>,
    native: Option<Arc<dyn NativeChecks>>,
    sink: Arc<dyn EventSink>,
    job: crate::Job,
    spec: BuildSpec,
    workdir: PathBuf,
    masker: Masker,
    /// Placeholder → value, from `spec.secrets`.
    substitutions: BTreeMap<String, String>,
    control: BuildControl,
    job_cancel: CancellationToken,
    timed_out: AtomicBool,
    next_step: AtomicU32,
    services: Mutex<Vec<StartedService>>,
}

impl std::fmt::Debug for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Build")
            .field("job", &self.job.name)
            .field("spec", &self.spec)
            .field("workdir", &self.workdir)
            .field("masker", &self.masker)
            .field("substitutions", &self.substitutions.len())
            .finish_non_exhaustive()
    }
}

impl Build {
    async fn run(&self) -> BuildResult {
        let mut exports = BTreeMap::new();
        let plan = self.job.plan.clone();
        let outcome = {
            let plan_run = self.run_steps(&plan, None, &mut exports, &self.job_cancel);
            tokio::pin!(plan_run);
            match self.job.timeout {
                Some(limit) => tokio::select! {
                    outcome = &mut plan_run => outcome,
                    () = tokio::time::sleep(limit) => {
                        self.timed_out.store(true, Ordering::SeqCst);
                        self.job_cancel.cancel();
                        // The running step sees the cancellation, is killed, runs its hooks.
                        plan_run.await
                    }
                },
                None => plan_run.await,
            }
        };
        self.stop_services().await;
        let (status, error) = if self.timed_out.load(Ordering::SeqCst) {
            let limit = self
                .job
                .timeout
                .map(crate::duration::format)
                .unwrap_or_default();
            (Status::Failed, Some(format!("job timed out after {limit}")))
        } else if self.control.cancel.is_cancelled() {
            (Status::Cancelled, Some("build cancelled".to_owned()))
        } else {
            match outcome {
                Ok(()) => (Status::Succeeded, None),
                Err(error) if self.job.allow_failure => (Status::Warning, Some(error)),
                Err(error) => (Status::Failed, Some(error)),
            }
        };
        // A job timeout stops the plan like a cancellation (`on_cancel`, then `ensure`), but the
        // hooks see the build's real status, `failed` (decision D15).
        let timed_out = self.timed_out.load(Ordering::SeqCst);
        let kinds: &[HookKind] = match status {
            _ if timed_out => &[HookKind::OnCancel, HookKind::Ensure],
            Status::Succeeded => &[HookKind::OnSuccess, HookKind::Ensure],
            Status::Cancelled => &[HookKind::OnCancel, HookKind::Ensure],
            _ => &[HookKind::OnFailure, HookKind::Ensure],
        };
        let hooks = self.job.hooks.clone();
        for kind in kinds {
            self.run_hooks(&hooks, *kind, None, None, Some(status), &exports)
                .await;
        }
        self.send_automatic_notifications(status, &exports).await;
        let error = error.map(|e| self.masker.mask(&e));
        BuildResult { status, error }
    }

    /// Stops every started service, in start order, each with a fresh deadline.
    async fn stop_services(&self) {
        let started: Vec<StartedService> =
            std::mem::take(&mut *self.services.lock().unwrap_or_else(|e| e.into_inner()));
        for service in started {
            self.stop_service(&service, SERVICE_STOP_TIMEOUT).await;
        }
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.workdir);
    }

    /// A new step id, and the `StepStarted` event.
    fn start_step(&self, parent: Option<StepId>, step_type: StepType, name: String) -> StepId {
        let id = self.next_step.fetch_add(1, Ordering::SeqCst);
        self.sink.emit(Event::StepStarted {
            id,
            parent,
            step_type,
            name,
        });
        id
    }

    fn finish_step(&self, id: StepId, status: Status, started: Instant, error: Option<String>) {
        let error = error.map(|e| self.masker.mask(&e));
        self.sink.emit(Event::StepFinished {
            id,
            status,
            duration: started.elapsed(),
            error,
        });
    }

    /// A log line written by the engine itself.
    fn log(&self, id: StepId, text: impl AsRef<str>) {
        for line in text.as_ref().split('\n') {
            self.sink.emit(Event::Output {
                id,
                stream: None,
                text: self.masker.mask(line),
                at: std::time::SystemTime::now(),
            });
        }
    }

    /// Build metadata every command gets: `BUILD_*` and `INPUT_*`.
    fn metadata(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([
            ("BUILD_NUMBER".to_owned(), self.spec.build_number.clone()),
            ("BUILD_JOB_NAME".to_owned(), self.spec.job.clone()),
            (
                "BUILD_PIPELINE_NAME".to_owned(),
                self.spec.pipeline_name.clone(),
            ),
            ("BUILD_TEAM_NAME".to_owned(), self.spec.team.clone()),
        ]);
        for (name, value) in &self.spec.inputs {
            env.insert(format!("INPUT_{name}"), value.clone());
        }
        env
    }

    /// Replaces secret placeholders by their values (longest first: a chained secret's
    /// placeholder embeds the placeholder of the secret it depends on).
    fn substitute(&self, text: &str) -> String {
        crate::secrets::substitute(text, &self.substitutions)
    }

    /// Whether the build (not just a group or a step) was cancelled or timed out.
    fn build_stopped(&self) -> bool {
        self.job_cancel.is_cancelled()
    }
}

/// A unique, time-ordered directory name for a build's work directory.
fn new_build_dir_name() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "build-{nanos:x}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{ResolvedSecrets, SecretValue};

    const SECRET: &str = "hunter2-very-secret";

    #[derive(Debug)]
    struct NoRunner;

    #[async_trait::async_trait]
    impl Runner for NoRunner {
        async fn run(&self, _: Invocation, _: OutputSink, _: CancellationToken) -> RunOutcome {
            RunOutcome::Exited(0)
        }
    }

    #[derive(Debug)]
    struct NoSink;

    impl EventSink for NoSink {
        fn emit(&self, _: Event) {}
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let work = std::env::temp_dir().join(new_build_dir_name());
        let mut secrets = ResolvedSecrets::default();
        secrets.insert("__pikoci_secret:pikoci::pw__", SecretValue::secret(SECRET));
        let pipeline = Pipeline {
            jobs: vec![crate::Job::new("a")],
            ..Pipeline::default()
        };
        let spec = BuildSpec {
            pipeline: Arc::new(pipeline),
            job: "a".to_owned(),
            team: "main".to_owned(),
            pipeline_name: "demo".to_owned(),
            build_number: "1".to_owned(),
            inputs: BTreeMap::new(),
            versions: BTreeMap::new(),
            secrets,
            local: None,
            work_root: work.clone(),
            cache_root: None,
        };
        let engine = Engine::new(Arc::new(NoRunner), Arc::new(NoSink));
        let build = engine
            .prepare(spec.clone(), BuildControl::default())
            .unwrap();
        let invocation = Invocation {
            program: "deploy".to_owned(),
            args: vec![format!("--password={SECRET}")],
            env: BTreeMap::from([("TOKEN".to_owned(), SECRET.to_owned())]),
            inherit: env::Inherit::Step,
            workdir: work.clone(),
        };
        let resource = crate::Resource {
            type_name: "git".to_owned(),
            name: "app".to_owned(),
            params: crate::Params::new(),
            check_interval: Default::default(),
            tags: Vec::new(),
            cache: None,
        };
        let resource_type = crate::ResourceType {
            name: "git".to_owned(),
            origin: crate::Origin::Inline,
            params: vec!["token".to_owned()],
            cache: false,
            check: None,
            pull: None,
            push: None,
            runner_override: None,
        };
        let check_params = BTreeMap::from([("param_token".to_owned(), SECRET.to_owned())]);
        let check = CheckRequest {
            resource: &resource,
            resource_type: &resource_type,
            params: &check_params,
            newest: None,
        };
        let line = OutputLine {
            stream: Stream::Stdout,
            text: format!("token={SECRET}"),
            at: std::time::SystemTime::now(),
        };
        let printed = [
            format!("{line:?}"),
            format!("{check:?}"),
            format!("{spec:?}"),
            format!("{build:?}"),
            format!("{:?}", build.masker),
            format!("{invocation:?}"),
        ];
        build.cleanup();
        let _ = std::fs::remove_dir_all(&work);
        for text in printed {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        // The masker still knows the secret.
        assert_eq!(build.masker.mask(SECRET), "***");
    }
}
