//! `pikoci validate`: check a pipeline file and summarise it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use pikoci_config::{HttpFetcher, Loaded, Vars};
use pikoci_core::{Origin, Pipeline};

use crate::output;

/// The flags of `pikoci validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The pipeline file (HCL).
    #[arg(value_name = "PIPELINE.hcl")]
    pipeline: PathBuf,

    #[command(flatten)]
    vars: VarArgs,

    /// Print diagnostics without colour (also when the NO_COLOR environment variable is set,
    /// or stderr is not a terminal).
    #[arg(long)]
    no_color: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let vars = args.vars.read()?;
    let file = pikoci_config::read_source(&args.pipeline)
        .with_context(|| format!("cannot read pipeline file {}", args.pipeline.display()))?;
    let color = crate::stderr_color(args.no_color);
    match pikoci_config::load(&file, &vars, &HttpFetcher::default()) {
        Ok(loaded) => {
            if !loaded.warnings.items().is_empty() {
                output::stderr(&loaded.warnings.render(color))?;
            }
            output::stdout(&summary(file.name(), &loaded))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            let errors = diagnostics.error_count();
            output::stderr(&format!(
                "{}{}: {errors} error{} found; the pipeline is not valid\n",
                diagnostics.render(color),
                file.name(),
                if errors == 1 { "" } else { "s" }
            ))?;
            Ok(ExitCode::from(crate::EXIT_INVALID))
        }
    }
}

/// The variable flags `validate` and `run` share.
#[derive(Debug, clap::Args)]
pub(crate) struct VarArgs {
    /// Set a variable, overriding the vars file: NAME=VALUE. Repeatable. The value is converted
    /// to the variable's declared type (number, bool). A secret-bound variable given this way is
    /// not looked up in its secret store.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    overrides: Vec<String>,

    /// Read variable values from a JSON file holding one object, e.g. {"image": "alpine"}.
    /// Values must have the declared type. --var wins over it.
    #[arg(
        long = "vars",
        short = 'v',
        value_name = "FILE",
        env = "PIKOCI_VARS",
        hide_env_values = true
    )]
    file: Option<PathBuf>,
}

impl VarArgs {
    /// Reads the vars file, then applies `--var` overrides.
    pub(crate) fn read(&self) -> anyhow::Result<Vars> {
        let mut vars = Vars::new();
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read vars file {}", path.display()))?;
            vars.add_json(&text)
                .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
        }
        for assignment in &self.overrides {
            vars.add_override(assignment).map_err(anyhow::Error::msg)?;
        }
        Ok(vars)
    }
}

fn summary(name: &str, loaded: &Loaded) -> String {
    let pipeline = &loaded.pipeline;
    let mut out = format!(
        "{name} is valid: {} job{}, {} resource{}\n",
        pipeline.jobs.len(),
        plural(pipeline.jobs.len()),
        pipeline.resources.len(),
        plural(pipeline.resources.len()),
    );
    let jobs: Vec<String> = pipeline
        .jobs
        .iter()
        .map(|j| {
            let steps = j.flat_steps().len();
            format!("{} ({steps} step{})", j.name, plural(steps))
        })
        .collect();
    push_line(&mut out, "jobs", &jobs);
    let resources: Vec<String> = pipeline.resources.iter().map(|r| r.canonical()).collect();
    push_line(&mut out, "resources", &resources);
    push_line(&mut out, "resource types", &used_types(pipeline));
    let runners: BTreeSet<String> = pipeline
        .jobs
        .iter()
        .flat_map(|j| j.flat_steps())
        .filter_map(|s| match &s.kind {
            pikoci_core::StepKind::Task(task) => Some(task.run.runner.clone()),
            _ => None,
        })
        .collect();
    push_line(
        &mut out,
        "runners used by tasks",
        &runners.into_iter().collect::<Vec<_>>(),
    );
    let services: Vec<String> = pipeline
        .service_types
        .iter()
        .map(|t| t.name.clone())
        .collect();
    push_line(&mut out, "service types", &services);
    let secrets: Vec<String> = pipeline
        .secret_types
        .iter()
        .map(|t| t.name.clone())
        .collect();
    push_line(&mut out, "secret types", &secrets);
    let notifications: Vec<String> = pipeline
        .notifications
        .iter()
        .map(|n| n.canonical())
        .collect();
    push_line(&mut out, "notifications", &notifications);
    let warnings = loaded.warnings.items().len();
    if warnings > 0 {
        out.push_str(&format!(
            "{warnings} warning{} (shown above)\n",
            plural(warnings)
        ));
    }
    out
}

fn used_types(pipeline: &Pipeline) -> Vec<String> {
    pipeline
        .resource_types
        .iter()
        .map(|t| match &t.origin {
            Origin::Builtin => format!("{} (builtin)", t.name),
            Origin::Source { url } => format!("{} ({url})", t.name),
            Origin::Inline => t.name.clone(),
        })
        .collect()
}

fn push_line(out: &mut String, label: &str, items: &[String]) {
    if !items.is_empty() {
        out.push_str(&format!("  {label}: {}\n", items.join(", ")));
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
