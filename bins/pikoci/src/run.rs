//! `pikoci run`: one job on this machine, no server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use pikoci_config::HttpFetcher;
use pikoci_core::engine::{BuildControl, BuildSpec, Engine, LocalRun, Status};
use pikoci_core::{Hook, Hooks, Pipeline, Step, StepKind, TriggerKind};
use pikoci_runner::ProcessRunner;
use pikoci_worker::secrets::SecretLookup;

use crate::output;
use crate::render::Terminal;

/// The flags of `pikoci run`.
#[derive(Debug, clap::Args)]
#[command(override_usage = "pikoci run --pipeline-config <FILE> [--job <NAME>] [OPTIONS]")]
pub(crate) struct Args {
    /// The pipeline file (HCL).
    #[arg(
        long,
        short = 'p',
        value_name = "FILE",
        env = "PIKOCI_PIPELINE_CONFIG",
        hide_env_values = true
    )]
    pipeline_config: PathBuf,

    /// The job to run. Without it, nothing runs: the jobs of the pipeline are listed, and the
    /// exit status is 2.
    #[arg(long, short = 'j', value_name = "NAME")]
    job: Option<String>,

    #[command(flatten)]
    vars: crate::validate::VarArgs,

    /// Use a local directory instead of fetching a resource: TYPE.NAME=DIR. Repeatable. The
    /// directory is copied into the build's work directory, where a get of the resource would
    /// put its files. Every DIR must exist before the build starts.
    #[arg(long = "resource", value_name = "TYPE.NAME=DIR")]
    resources: Vec<String>,

    /// Give a job input: NAME=VALUE. Repeatable. Inputs without a default must be given.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    inputs: Vec<String>,

    /// Where builds' work directories and resource caches live [default: $XDG_CACHE_HOME/pikoci,
    /// or ~/.cache/pikoci].
    #[arg(
        long,
        value_name = "DIR",
        env = "PIKOCI_WORK_DIR",
        hide_env_values = true
    )]
    work_dir: Option<PathBuf>,

    /// Print without colour (also when NO_COLOR is set or stdout is not a terminal).
    #[arg(long)]
    no_color: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let vars = args.vars.read()?;
    let file = pikoci_config::read_source(&args.pipeline_config).with_context(|| {
        format!(
            "cannot read pipeline file {}",
            args.pipeline_config.display()
        )
    })?;
    let pipeline = match pikoci_config::load(&file, &vars, &HttpFetcher::default()) {
        Ok(loaded) => {
            if !loaded.warnings.items().is_empty() {
                output::stderr(&loaded.warnings.render(crate::stderr_color(args.no_color)))?;
            }
            loaded.pipeline
        }
        Err(diagnostics) => {
            output::stderr(&diagnostics.render(crate::stderr_color(args.no_color)))?;
            bail!("{} is not a valid pipeline", file.name());
        }
    };
    let Some(job_name) = args.job.clone() else {
        bail!("no job given: use --job NAME{}", job_list(&pipeline));
    };
    let Some(job) = pipeline.job(&job_name) else {
        let close =
            pikoci_core::name::closest(&job_name, pipeline.jobs.iter().map(|j| j.name.as_str()));
        let hint = close
            .map(|c| format!(" (did you mean \"{c}\"?)"))
            .unwrap_or_default();
        bail!(
            "job \"{job_name}\" not found in pipeline{hint}{}",
            job_list(&pipeline)
        );
    };
    let inputs = job
        .resolve_inputs(
            &pairs(&args.inputs, "--input", "NAME=VALUE")?,
            TriggerKind::Manual,
        )
        .map_err(|problems| anyhow::anyhow!("{}", problems.join("\n")))?;
    let resource_dirs = resource_dirs(&pipeline, &args.resources)?;
    let root = match args.work_dir {
        Some(dir) => dir,
        None => default_work_dir()?,
    };
    let approval_note = job.approval.as_ref().map(|approval| {
        format!(
            "skipping approval \"{}\" (local execution): you started this run yourself, so nobody else needs to approve it\n",
            approval.label
        )
    });
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    let secrets = runtime.block_on(check_secrets(
        &local_view(&pipeline, &job_name, &resource_dirs),
        &job_name,
        &root,
    ))?;
    if let Some(note) = approval_note {
        output::stdout(&note)?;
    }
    let spec = BuildSpec {
        pipeline: Arc::new(pipeline),
        job: job_name.clone(),
        team: "main".to_owned(),
        pipeline_name: "local".to_owned(),
        build_number: "1".to_owned(),
        inputs,
        versions: BTreeMap::new(),
        secrets,
        local: Some(LocalRun { resource_dirs }),
        work_root: root.clone(),
        cache_root: Some(root.join("cache")),
    };
    let terminal = Arc::new(Terminal::new(&job_name, crate::stdout_color(args.no_color)));
    let status = runtime.block_on(execute(spec, terminal.clone()));
    if let Some(error) = terminal.write_error() {
        bail!("the build ended {status}, but its output could not be written: {error}");
    }
    Ok(match status {
        Status::Succeeded | Status::Warning | Status::Skipped => ExitCode::SUCCESS,
        Status::Failed | Status::Cancelled => ExitCode::from(crate::EXIT_INVALID),
    })
}

/// Runs the build; Ctrl-C cancels it (hooks and service stops still run), a second Ctrl-C
/// aborts those too.
async fn execute(spec: BuildSpec, terminal: Arc<Terminal>) -> Status {
    let engine = Engine::new(Arc::new(ProcessRunner::new()), terminal)
        .with_native_checks(Arc::new(pikoci_runner::native::GitChecks::new()));
    let control = BuildControl::default();
    let signals = {
        let control = control.clone();
        tokio::spawn(async move {
            // The build is stopped whether or not these notes can be written.
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = output::stderr(
                    "\ncancelling: the running step is stopped, then cancel hooks run (Ctrl-C again to abort them)\n",
                );
                control.cancel.cancel();
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = output::stderr("\naborting\n");
                control.abort.cancel();
            }
        })
    };
    let result = engine.run(spec, control).await;
    signals.abort();
    result.status
}

fn job_list(pipeline: &Pipeline) -> String {
    if pipeline.jobs.is_empty() {
        return "; the pipeline has no jobs".to_owned();
    }
    let names: Vec<&str> = pipeline.jobs.iter().map(|j| j.name.as_str()).collect();
    format!("\nthe jobs are: {}", names.join(", "))
}

fn pairs(items: &[String], flag: &str, form: &str) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_owned(), value.to_owned()))
            }
            _ => bail!("invalid {flag} \"{item}\": expected {form}"),
        })
        .collect()
}

/// `--resource TYPE.NAME=DIR` values, checked against the pipeline's resources.
fn resource_dirs(
    pipeline: &Pipeline,
    items: &[String],
) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut dirs = BTreeMap::new();
    for (resource, dir) in pairs(items, "--resource", "TYPE.NAME=DIR")? {
        if !pipeline.resources.iter().any(|r| r.canonical() == resource) {
            let known: Vec<String> = pipeline.resources.iter().map(|r| r.canonical()).collect();
            let listed = if known.is_empty() {
                "the pipeline has no resources".to_owned()
            } else {
                format!("the resources are: {}", known.join(", "))
            };
            bail!(
                "resource \"{resource}\" not found in pipeline (use type.name format, e.g. git.my-repo); {listed}"
            );
        }
        let dir = PathBuf::from(dir);
        check_resource_dir(&resource, &dir)?;
        dirs.insert(resource, dir);
    }
    Ok(dirs)
}

/// A `--resource` directory must exist and be a directory: found before the first step runs,
/// not when the `get` does.
fn check_resource_dir(resource: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => bail!(
            "--resource {resource}: {} is not a directory; give the directory to use instead of fetching the resource",
            shown.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "--resource {resource}: {} does not exist; give the directory to use instead of fetching the resource",
            shown.display()
        ),
        Err(err) => bail!(
            "--resource {resource}: cannot read {}: {err}",
            shown.display()
        ),
    }
}

/// Resolves the secret-bound variables the job uses through their secret types, from this
/// machine (a variable given with --var is no longer secret-bound, so nothing is looked up for
/// it). Returns what the engine substitutes and masks.
async fn check_secrets(
    pipeline: &Pipeline,
    job: &str,
    work_root: &std::path::Path,
) -> anyhow::Result<pikoci_core::secrets::ResolvedSecrets> {
    let lookup = SecretLookup::new(Arc::new(ProcessRunner::new()), work_root);
    pikoci_worker::secrets::resolve_for_job(pipeline, job, &lookup)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "{}",
                error.with_hint("give a variable's value with --var NAME=VALUE to skip its lookup")
            )
        })
}

/// The pipeline as a local run of `job` sees it: without what a local run never does (put and
/// notify steps, the job's `on_trigger` and approval notifications, automatic notifications,
/// the types' `push`, the check and pull of a resource replaced by a `--resource` directory) and
/// without the resource and service types the job does not use, so that no secret is looked up
/// for them.
fn local_view(pipeline: &Pipeline, job: &str, overridden: &BTreeMap<String, PathBuf>) -> Pipeline {
    let mut view = pipeline.clone();
    view.notifications.clear();
    view.notification_types.clear();
    let Some(job) = view.jobs.iter_mut().find(|j| j.name == job) else {
        return view;
    };
    job.on_trigger.clear();
    job.approval = None;
    keep_local_steps(&mut job.plan);
    keep_local_hooks(&mut job.hooks);
    let gotten: BTreeSet<String> = job
        .gets()
        .filter(|g| !overridden.contains_key(&g.resource.to_string()))
        .map(|g| g.resource.type_name.clone())
        .collect();
    let services: BTreeSet<String> = job
        .flat_steps()
        .into_iter()
        .filter_map(|step| match &step.kind {
            StepKind::Service(service) => Some(service.service_type.clone()),
            _ => None,
        })
        .collect();
    view.resource_types.retain(|t| gotten.contains(&t.name));
    for resource_type in &mut view.resource_types {
        resource_type.push = None;
    }
    view.service_types.retain(|t| services.contains(&t.name));
    for resource in &mut view.resources {
        if overridden.contains_key(&resource.canonical()) {
            resource.params.clear();
        }
    }
    view
}

/// Drops the steps a local run skips (`put`, `notify`), at any depth.
fn keep_local_steps(steps: &mut Vec<Step>) {
    steps.retain(|step| !matches!(step.kind, StepKind::Put(_) | StepKind::Notify(_)));
    for step in steps {
        match &mut step.kind {
            StepKind::InParallel(group) => keep_local_steps(&mut group.steps),
            StepKind::If(chain) => {
                for branch in &mut chain.branches {
                    keep_local_steps(&mut branch.steps);
                }
            }
            _ => {}
        }
        keep_local_hooks(&mut step.hooks);
    }
}

fn keep_local_hooks(hooks: &mut Hooks) {
    for list in [
        &mut hooks.on_success,
        &mut hooks.on_failure,
        &mut hooks.on_cancel,
        &mut hooks.ensure,
    ] {
        for hook in list {
            if let Hook::Steps { steps } = hook {
                keep_local_steps(steps);
            }
        }
    }
}

pub(crate) fn default_work_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("pikoci"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache/pikoci")),
        None => bail!("neither XDG_CACHE_HOME nor HOME is set: give a directory with --work-dir"),
    }
}
