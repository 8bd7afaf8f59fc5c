//! `pikoci pipelines list|get|set|delete|pause|unpause|expose|hide`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::Context;
use pikoci_client::model::{Changes, Diagnostic, Pipeline as PipelineView, PipelineSet};
use pikoci_config::{HttpFetcher, Loaded, SourceFile, Vars};
use pikoci_core::{Origin, Pipeline, VariableValue};
use serde_json::{Value, json};

use super::table::{self, render};
use super::{Exit, Remote, Session, UsageError};
use crate::validate::VarArgs;

/// `pikoci pipelines ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct PipelinesArgs {
    #[command(flatten)]
    remote: Remote,

    #[command(subcommand)]
    command: PipelinesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PipelinesCommand {
    /// List the team's pipelines with the status of their jobs' latest builds.
    List,
    /// Show a pipeline: its jobs and resources (--config: print its file as set).
    Get {
        /// The pipeline.
        pipeline: String,
        /// Print the pipeline file as set, nothing else.
        #[arg(long)]
        config: bool,
    },
    /// Set a pipeline from a file: validates it here, shows what changes (jobs, resources,
    /// types added, removed, changed) and asks before applying.
    Set {
        /// The pipeline's name.
        pipeline: String,
        /// The pipeline file (HCL).
        #[arg(value_name = "PIPELINE.hcl")]
        pipeline_file: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        /// Apply without asking.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Show what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a pipeline with its builds, logs and versions.
    Delete {
        /// The pipeline.
        pipeline: String,
        /// Delete without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Rename a pipeline; its jobs, builds, resources and secrets go with it. Webhook URLs
    /// stay the same; anything that names the pipeline (scripts, bookmarks) needs the new name.
    Rename {
        /// The pipeline.
        pipeline: String,
        /// Its new name.
        new_name: String,
    },
    /// Pause every job of a pipeline: no build starts until it is unpaused.
    Pause {
        /// The pipeline.
        pipeline: String,
    },
    /// Unpause a pipeline.
    Unpause {
        /// The pipeline.
        pipeline: String,
    },
    /// Make a pipeline visible to people outside its team.
    Expose {
        /// The pipeline.
        pipeline: String,
    },
    /// Make a pipeline visible to its team only.
    Hide {
        /// The pipeline.
        pipeline: String,
    },
}

/// Runs `pikoci pipelines`.
pub(crate) fn run(args: PipelinesArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        match args.command {
            PipelinesCommand::List => list(&session).await,
            PipelinesCommand::Get { pipeline, config } => get(&session, &pipeline, config).await,
            PipelinesCommand::Set {
                pipeline,
                pipeline_file: file,
                vars,
                yes,
                dry_run,
            } => set(&session, &pipeline, &file, &vars, yes, dry_run).await,
            PipelinesCommand::Delete { pipeline, yes } => delete(&session, &pipeline, yes).await,
            PipelinesCommand::Rename { pipeline, new_name } => {
                rename(&session, &pipeline, &new_name).await
            }
            PipelinesCommand::Pause { pipeline } => flag(&session, &pipeline, "pause").await,
            PipelinesCommand::Unpause { pipeline } => flag(&session, &pipeline, "unpause").await,
            PipelinesCommand::Expose { pipeline } => flag(&session, &pipeline, "expose").await,
            PipelinesCommand::Hide { pipeline } => flag(&session, &pipeline, "hide").await,
        }
    })
}

async fn list(session: &Session) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .get_all(&session.team_path(&["pipelines"]))
        .await
        .with_context(|| format!("cannot list the pipelines of team {}", session.team))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let pipelines: Vec<PipelineView> = answer.parse()?;
    if pipelines.is_empty() {
        session.print(&format!(
            "team {} has no pipelines: set one with `pikoci pipelines set NAME FILE`\n",
            session.team
        ))?;
        return Ok(Exit::Ok);
    }
    let mut rows = vec![header(&["NAME", "PAUSED", "PUBLIC", "JOBS", "UPDATED"])];
    for pipeline in &pipelines {
        let jobs: Vec<String> = pipeline
            .jobs
            .iter()
            .map(|job| {
                let status = job
                    .latest_build
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |b| session.status(&b.status));
                format!("{} {status}", job.name)
            })
            .collect();
        rows.push(vec![
            pipeline.name.clone(),
            yes_no(pipeline.paused),
            yes_no(pipeline.public),
            jobs.join(", "),
            table::time(Some(&pipeline.updated_at)),
        ]);
    }
    session.print(&render(&rows))?;
    Ok(Exit::Ok)
}

async fn get(session: &Session, name: &str, config_only: bool) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .get(&session.team_path(&["pipelines", name]))
        .await
        .with_context(|| format!("cannot read pipeline {name}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let pipeline: PipelineView = answer.parse()?;
    if config_only {
        let mut text = pipeline.config.unwrap_or_default();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        session.print(&text)?;
        return Ok(Exit::Ok);
    }
    let mut out = format!(
        "pipeline {} (team {}): {}{}, updated {}\n\n",
        pipeline.name,
        pipeline.team,
        if pipeline.paused { "paused" } else { "running" },
        if pipeline.public { ", public" } else { "" },
        table::time(Some(&pipeline.updated_at)),
    );
    let mut jobs = vec![header(&["JOB", "PAUSED", "LATEST", "STATUS", "DURATION"])];
    for job in &pipeline.jobs {
        let latest = job.latest_build.as_ref();
        jobs.push(vec![
            job.name.clone(),
            yes_no(job.paused),
            latest.map_or_else(|| "-".to_owned(), |b| b.number.clone()),
            latest.map_or_else(|| "-".to_owned(), |b| session.status(&b.status)),
            table::duration(latest.and_then(|b| b.duration_ms)),
        ]);
    }
    out.push_str(&render(&jobs));
    let resources = pipeline.resources.unwrap_or_default();
    if !resources.is_empty() {
        out.push('\n');
        let mut rows = vec![header(&["RESOURCE", "CHECK EVERY", "LAST CHECK", "PINNED"])];
        for resource in &resources {
            rows.push(vec![
                resource.canonical.clone(),
                resource.check_interval.clone(),
                super::resources::last_check(session, resource.last_check.as_ref()),
                resource
                    .pinned_version_id
                    .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            ]);
        }
        out.push_str(&render(&rows));
    }
    session.print(&out)?;
    Ok(Exit::Ok)
}

/// What a set changes, by kind of block.
#[derive(Debug, Default)]
struct Diff {
    kinds: Vec<(&'static str, Changes)>,
}

impl Diff {
    fn is_empty(&self) -> bool {
        self.kinds.iter().all(|(_, changes)| {
            changes.added.is_empty() && changes.updated.is_empty() && changes.removed.is_empty()
        })
    }
}

/// The changes between two lists of named things (each name computed once).
fn changes<T: PartialEq>(old: &[T], new: &[T], key: impl Fn(&T) -> String) -> Changes {
    let old: BTreeMap<String, &T> = old.iter().map(|item| (key(item), item)).collect();
    let new: BTreeMap<String, &T> = new.iter().map(|item| (key(item), item)).collect();
    let mut changes = Changes::default();
    for (name, item) in &new {
        match old.get(name) {
            None => changes.added.push(name.clone()),
            Some(before) if before != item => changes.updated.push(name.clone()),
            Some(_) => {}
        }
    }
    changes.removed = old
        .keys()
        .filter(|name| !new.contains_key(*name))
        .cloned()
        .collect();
    changes
}

/// The changes between two lists of types, leaving out the builtins when `builtins` is false
/// (every pipeline has them: they are no news in a new one).
fn type_changes<T: PartialEq>(
    old: &[T],
    new: &[T],
    builtins: bool,
    name: impl Fn(&T) -> (&str, &Origin),
) -> Changes {
    fn keep<'a, T>(
        items: &'a [T],
        builtins: bool,
        name: &impl Fn(&T) -> (&str, &Origin),
    ) -> Vec<&'a T> {
        items
            .iter()
            .filter(|item| builtins || *name(item).1 != Origin::Builtin)
            .collect()
    }
    changes(
        &keep(old, builtins, &name),
        &keep(new, builtins, &name),
        |item| name(item).0.to_owned(),
    )
}

/// Every difference between what the server runs and what the file defines; builtin types are
/// compared only when `builtins` (not for a new pipeline).
fn diff(old: &Pipeline, new: &Pipeline, builtins: bool) -> Diff {
    Diff {
        kinds: vec![
            ("jobs", changes(&old.jobs, &new.jobs, |j| j.name.clone())),
            (
                "resources",
                changes(&old.resources, &new.resources, |r| r.canonical()),
            ),
            (
                "resource types",
                type_changes(&old.resource_types, &new.resource_types, builtins, |t| {
                    (&t.name, &t.origin)
                }),
            ),
            (
                "runner types",
                type_changes(&old.runner_types, &new.runner_types, builtins, |t| {
                    (&t.name, &t.origin)
                }),
            ),
            (
                "secret types",
                type_changes(&old.secret_types, &new.secret_types, builtins, |t| {
                    (&t.name, &t.origin)
                }),
            ),
            (
                "service types",
                type_changes(&old.service_types, &new.service_types, builtins, |t| {
                    (&t.name, &t.origin)
                }),
            ),
            (
                "notification types",
                type_changes(
                    &old.notification_types,
                    &new.notification_types,
                    builtins,
                    |t| (&t.name, &t.origin),
                ),
            ),
            (
                "notifications",
                changes(&old.notifications, &new.notifications, |n| {
                    format!("{}.{}", n.type_name, n.name)
                }),
            ),
            (
                "variables",
                changes(&old.variables, &new.variables, |v| v.name.clone()),
            ),
        ],
    }
}

/// The diff as people read it: `+` added, `~` changed, `-` removed.
fn render_diff(session: &Session, diff: &Diff) -> String {
    let mut out = String::new();
    for (kind, changes) in &diff.kinds {
        let lines: Vec<String> = changes
            .added
            .iter()
            .map(|name| session.paint(&format!("  + {name}"), "32"))
            .chain(
                changes
                    .updated
                    .iter()
                    .map(|name| session.paint(&format!("  ~ {name}"), "33")),
            )
            .chain(
                changes
                    .removed
                    .iter()
                    .map(|name| session.paint(&format!("  - {name}"), "31")),
            )
            .collect();
        if !lines.is_empty() {
            out.push_str(&format!("{kind}:\n{}\n", lines.join("\n")));
        }
    }
    out
}

/// `{"applied": false, "changes": {kind: {"added", "updated", "removed"}}}`: what `--json`
/// prints when nothing was set.
fn not_applied(diff: &Diff) -> Value {
    let changes: serde_json::Map<String, Value> = diff
        .kinds
        .iter()
        .map(|(kind, changes)| {
            (
                (*kind).to_owned(),
                json!({
                    "added": changes.added,
                    "updated": changes.updated,
                    "removed": changes.removed,
                }),
            )
        })
        .collect();
    json!({ "applied": false, "changes": changes })
}

/// The vars to send: the values given (file, then `--var`), typed as the pipeline declares
/// them.
fn given_vars(loaded: &Loaded) -> Value {
    let mut vars = serde_json::Map::new();
    for variable in &loaded.pipeline.variables {
        if let VariableValue::Given { value } = &variable.value {
            vars.insert(variable.name.clone(), value.clone());
        }
    }
    Value::Object(vars)
}

/// Loads a pipeline file the way the server does (on a blocking thread: sources may be
/// fetched).
async fn load(file: SourceFile, vars: Vars) -> anyhow::Result<Result<Loaded, String>> {
    tokio::task::spawn_blocking(move || {
        pikoci_config::load(&file, &vars, &HttpFetcher::default())
            .map_err(|diagnostics| diagnostics.render(false))
    })
    .await
    .context("the validation stopped")
}

async fn set(
    session: &Session,
    name: &str,
    path: &std::path::Path,
    var_args: &VarArgs,
    yes: bool,
    dry_run: bool,
) -> anyhow::Result<Exit> {
    let vars = var_args
        .read()
        .map_err(|err| UsageError(format!("{err:#}")))?;
    let file = pikoci_config::read_source(path).map_err(|err| {
        UsageError(format!(
            "cannot read pipeline file {}: {err}",
            path.display()
        ))
    })?;
    let text = file.text().to_owned();
    let file_name = file.name().to_owned();
    let loaded = match load(file, vars).await? {
        Ok(loaded) => loaded,
        Err(rendered) => {
            crate::output::stderr(&format!(
                "{rendered}{}: the pipeline is not valid; nothing was set\n",
                path.display()
            ))?;
            return Ok(Exit::Failed);
        }
    };
    let vars = given_vars(&loaded);
    let pipeline_path = session.team_path(&["pipelines", name]);
    let current = match session.client.get(&pipeline_path).await {
        Ok(answer) => Some(answer.parse::<PipelineView>()?),
        Err(err) if err.code() == Some("not_found") => None,
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!("cannot read pipeline {name}")));
        }
    };
    let mut summary = String::new();
    let mut changed: Option<Diff> = None;
    match &current {
        None => {
            let p = &loaded.pipeline;
            summary.push_str(&format!(
                "pipeline {name} is new in team {}: {} job{}, {} resource{}\n",
                session.team,
                p.jobs.len(),
                plural(p.jobs.len()),
                p.resources.len(),
                plural(p.resources.len())
            ));
            let diff = diff(&Pipeline::default(), &loaded.pipeline, false);
            summary.push_str(&render_diff(session, &diff));
            changed = Some(diff);
        }
        Some(pipeline) => {
            let old_text = pipeline.config.clone().unwrap_or_default();
            let old_vars = pipeline.vars.clone().unwrap_or_else(|| json!({}));
            let mut old_given = Vars::new();
            if let Some(map) = old_vars.as_object() {
                for (var, value) in map {
                    old_given.insert(var.clone(), pikoci_config::VarValue::Json(value.clone()));
                }
            }
            let old = load(
                SourceFile::new(format!("{name}.hcl"), old_text.clone()),
                old_given,
            )
            .await?;
            match old {
                Ok(old) => {
                    let diff = diff(&old.pipeline, &loaded.pipeline, true);
                    if diff.is_empty() {
                        if old_text == text && old_vars == vars {
                            session.print(&format!(
                                "pipeline {name} is already set to {}: nothing to change\n",
                                path.display()
                            ))?;
                            if session.json {
                                session.print_json(&not_applied(&diff))?;
                            }
                            return Ok(Exit::Ok);
                        }
                        summary.push_str(&format!(
                            "pipeline {name}: the file's text changes, not what it defines\n"
                        ));
                    } else {
                        summary.push_str(&format!("pipeline {name} in team {}:\n", session.team));
                        summary.push_str(&render_diff(session, &diff));
                    }
                    changed = Some(diff);
                }
                Err(_) => summary.push_str(&format!(
                    "pipeline {name}: the file on the server no longer validates here, so no \
                     comparison; it will be replaced\n"
                )),
            }
        }
    }
    if !loaded.warnings.items().is_empty() {
        summary.push_str(&loaded.warnings.render(false));
    }
    session.print(&summary)?;
    if dry_run {
        session.print("dry run: nothing was set\n")?;
        if session.json {
            session.print_json(&not_applied(&changed.unwrap_or_default()))?;
        }
        return Ok(Exit::Ok);
    }
    if !yes
        && !confirm(
            "apply these changes?",
            "--yes to apply without asking, or --dry-run to only see the changes",
        )?
    {
        session.print("nothing was set\n")?;
        return Ok(Exit::Failed);
    }
    let answer = session
        .client
        .post(
            &session.team_path(&["pipelines"]),
            &json!({"name": name, "config": text, "vars": vars, "file_name": file_name}),
        )
        .await
        .with_context(|| format!("the server did not set pipeline {name}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let set: PipelineSet = answer.parse()?;
    session.print(&format!(
        "pipeline {name} {}: {} job{} ({} added, {} changed, {} removed), {} resource{}\n",
        if set.created { "created" } else { "updated" },
        set.pipeline.jobs.len(),
        plural(set.pipeline.jobs.len()),
        set.jobs.added.len(),
        set.jobs.updated.len(),
        set.jobs.removed.len(),
        set.pipeline.resources.as_ref().map_or(0, Vec::len),
        plural(set.pipeline.resources.as_ref().map_or(0, Vec::len)),
    ))?;
    if set.pipeline.paused {
        session.print(&format!(
            "it is paused: unpause it with `pikoci pipelines unpause {name}`\n"
        ))?;
    }
    Ok(Exit::Ok)
}

/// Asks on the terminal; refuses to guess when there is none, and says what to add instead
/// (`flags`: "--yes to ...").
pub(crate) fn confirm(question: &str, flags: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "standard input is not a terminal, so there is nobody to ask: add {flags}"
        ))
        .into());
    }
    // On stderr: stdout may be a file or a pipe, and the question must be seen.
    crate::output::stderr(&format!("{question} [y/N] "))?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

async fn delete(session: &Session, name: &str, yes: bool) -> anyhow::Result<Exit> {
    if !yes
        && !confirm(
            &format!(
                "delete pipeline {name} of team {} with all its builds and logs?",
                session.team
            ),
            "--yes to delete without asking",
        )?
    {
        session.print("nothing was deleted\n")?;
        return Ok(Exit::Failed);
    }
    let answer = session
        .client
        .delete(&session.team_path(&["pipelines", name]))
        .await
        .with_context(|| format!("cannot delete pipeline {name}"))?;
    session.done(&answer.data, &format!("deleted pipeline {name}"))
}

async fn rename(session: &Session, name: &str, new_name: &str) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .put(
            &session.team_path(&["pipelines", name]),
            &json!({ "name": new_name }),
        )
        .await
        .with_context(|| format!("cannot rename pipeline {name} to {new_name}"))?;
    session.done(
        &answer.data,
        &format!("renamed pipeline {name} to {new_name}"),
    )
}

async fn flag(session: &Session, name: &str, action: &str) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .post(&session.team_path(&["pipelines", name, action]), &json!({}))
        .await
        .with_context(|| format!("cannot {action} pipeline {name}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let done = match action {
        "pause" => "paused",
        "unpause" => "unpaused",
        "expose" => "public",
        _ => "private",
    };
    session.print(&format!("pipeline {name} is {done}\n"))?;
    Ok(Exit::Ok)
}

/// The diagnostics of an `invalid_pipeline` answer, as `pikoci validate` prints them.
pub(crate) fn render_diagnostics(details: &Value) -> String {
    let diagnostics: Vec<Diagnostic> = serde_json::from_value(details.clone()).unwrap_or_default();
    let mut out = String::new();
    for diagnostic in diagnostics {
        let place = match (&diagnostic.file, diagnostic.line, diagnostic.column) {
            (Some(file), Some(line), Some(column)) => format!("{file}:{line}:{column}: "),
            (Some(file), _, _) => format!("{file}: "),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  {place}{}: {}\n",
            diagnostic.severity, diagnostic.message
        ));
        if let Some(help) = diagnostic.help {
            out.push_str(&format!("    help: {help}\n"));
        }
    }
    out.trim_end().to_owned()
}

pub(crate) fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

pub(crate) fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_owned()
}

pub(crate) fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}
