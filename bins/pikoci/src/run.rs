//! `pikoci run`: one job on this machine, no server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use pikoci_config::{HttpFetcher, SourceFile};
use pikoci_core::engine::{BuildControl, BuildSpec, Engine, LocalRun, Status};
use pikoci_core::{Pipeline, TriggerKind, VariableValue};
use pikoci_runner::ProcessRunner;

/// The flags of `pikoci run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The pipeline file (HCL).
    #[arg(long, short = 'p', value_name = "FILE", env = "PIKOCI_PIPELINE_CONFIG")]
    pipeline_config: PathBuf,

    /// The job to run. Without it, the jobs of the pipeline are listed.
    #[arg(long, short = 'j', value_name = "NAME")]
    job: Option<String>,

    /// Set a variable, overriding the vars file: NAME=VALUE. Repeatable. A secret-bound variable
    /// given this way needs no secret store.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,

    /// Read variable values from a JSON file holding one object, e.g. {"image": "alpine"}.
    #[arg(long = "vars", short = 'v', value_name = "FILE", env = "PIKOCI_VARS")]
    vars_file: Option<PathBuf>,

    /// Use a local directory instead of fetching a resource: TYPE.NAME=DIR. Repeatable. The
    /// directory is copied into the build's work directory, where the resource would be pulled.
    #[arg(long = "resource", value_name = "TYPE.NAME=DIR")]
    resources: Vec<String>,

    /// Give a job input: NAME=VALUE. Repeatable. Inputs without a default must be given.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    inputs: Vec<String>,

    /// Where builds' work directories and resource caches live [default: $XDG_CACHE_HOME/pikoci,
    /// or ~/.cache/pikoci].
    #[arg(long, value_name = "DIR", env = "PIKOCI_WORK_DIR")]
    work_dir: Option<PathBuf>,

    /// Print without colour (also when NO_COLOR is set or stdout is not a terminal).
    #[arg(long)]
    no_color: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let vars = crate::validate::read_vars(args.vars_file.as_deref(), &args.vars)?;
    let text = std::fs::read(&args.pipeline_config).with_context(|| {
        format!(
            "cannot read pipeline file {}",
            args.pipeline_config.display()
        )
    })?;
    let file = SourceFile::from_bytes(args.pipeline_config.display().to_string(), text);
    let pipeline = match pikoci_config::load(&file, &vars, &HttpFetcher::default()) {
        Ok(loaded) => {
            if !loaded.warnings.items().is_empty() {
                eprint!(
                    "{}",
                    loaded.warnings.render(crate::stderr_color(args.no_color))
                );
            }
            loaded.pipeline
        }
        Err(diagnostics) => {
            eprint!("{}", diagnostics.render(crate::stderr_color(args.no_color)));
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
    let secrets = check_secrets(&pipeline, &job_name, &root)?;
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
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    let status = runtime.block_on(execute(spec, &job_name, crate::stdout_color(args.no_color)));
    Ok(match status {
        Status::Succeeded | Status::Warning | Status::Skipped => ExitCode::SUCCESS,
        Status::Failed | Status::Cancelled => ExitCode::from(crate::EXIT_INVALID),
    })
}

/// Runs the build; Ctrl-C cancels it (hooks and service stops still run), a second Ctrl-C
/// aborts those too.
async fn execute(spec: BuildSpec, job: &str, color: bool) -> Status {
    let engine = Engine::new(
        Arc::new(ProcessRunner::new()),
        Arc::new(crate::render::Terminal::new(job, color)),
    )
    .with_native_checks(Arc::new(pikoci_runner::native::GitChecks::new()));
    let control = BuildControl::default();
    let signals = {
        let control = control.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\ncancelling: the running step is stopped, then cancel hooks run (Ctrl-C again to abort them)"
                );
                control.cancel.cancel();
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\naborting");
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
        dirs.insert(resource, PathBuf::from(dir));
    }
    Ok(dirs)
}

/// Resolves the secret-bound variables the job uses through their secret types, from this
/// machine (a variable given with --var is no longer secret-bound, so nothing is looked up for
/// it). Returns what the engine substitutes and masks.
fn check_secrets(
    pipeline: &Pipeline,
    job: &str,
    work_root: &std::path::Path,
) -> anyhow::Result<pikoci_core::secrets::ResolvedSecrets> {
    use pikoci_core::secrets::{ResolveFailure, resolve, used_by_job};
    use pikoci_secrets::{ExecSource, Registry};

    let used = used_by_job(pipeline, job);
    if used.is_empty() {
        return Ok(Default::default());
    }
    // Secret types' get commands run in a work directory of their own.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let workdir = work_root.join(format!("secrets-{nanos:x}-{}", std::process::id()));
    let registry = Registry::builtins().with_exec(ExecSource::new(
        Arc::new(ProcessRunner::new()),
        pipeline.runner_types.clone(),
        &workdir,
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let result = runtime.block_on(resolve(
        pipeline,
        used.iter().map(String::as_str),
        &registry,
    ));
    let _ = std::fs::remove_dir_all(&workdir);
    let error = match result {
        Ok(resolved) => return Ok(resolved),
        Err(error) => error,
    };
    let describe = |failure: &ResolveFailure| {
        let binding = failure.variable.as_ref().and_then(|name| {
            pipeline
                .variables
                .iter()
                .find(|v| &v.name == name)
                .and_then(|v| match &v.value {
                    VariableValue::Secret(secret) => Some(format!(
                        "{name} (secret \"{}\", key \"{}\")",
                        secret.secret_type, secret.key
                    )),
                    _ => None,
                })
        });
        match binding {
            Some(binding) => format!("  {binding}: {}", failure.error),
            None => format!("  {}", failure.error),
        }
    };
    let lines: Vec<String> = error.failures.iter().map(describe).collect();
    bail!(
        "cannot look up the secrets job \"{job}\" uses; give a variable's value with --var NAME=VALUE to skip its lookup:\n{}",
        lines.join("\n")
    )
}

fn default_work_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("pikoci"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache/pikoci")),
        None => bail!("neither XDG_CACHE_HOME nor HOME is set: give a directory with --work-dir"),
    }
}
