//! `pikoci jobs list|trigger|pause|unpause` and `pikoci builds
//! list|get|watch|logs|report|mark-warning|cancel|retry|approve|reject`.

use std::collections::BTreeMap;

use anyhow::Context;
use pikoci_client::BuildEvent;
use pikoci_client::model::{Build, Job, LogChunk, PageMeta, Step};
use serde_json::{Value, json};

use super::files::{self, Saved};
use super::pipelines::{header, yes_no};
use super::table::{self, render};
use super::{Exit, Remote, Session, UsageError};
use crate::output;

/// `pikoci jobs ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct JobsArgs {
    #[command(flatten)]
    remote: Remote,

    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum JobsCommand {
    /// List a pipeline's jobs with their latest builds.
    List {
        /// The pipeline.
        pipeline: String,
    },
    /// Start a build of a job now.
    Trigger {
        /// The job, as PIPELINE/JOB.
        job: String,
        /// A value for one of the job's inputs: NAME=VALUE. Repeatable.
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        /// Follow the build's output until it finishes, and exit with its status.
        #[arg(long, short = 'w')]
        watch: bool,
    },
    /// Pause a job: it starts no builds until unpaused.
    Pause {
        /// The job, as PIPELINE/JOB.
        job: String,
    },
    /// Unpause a job.
    Unpause {
        /// The job, as PIPELINE/JOB.
        job: String,
    },
}

/// `pikoci builds ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct BuildsArgs {
    #[command(flatten)]
    remote: Remote,

    #[command(subcommand)]
    command: BuildsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BuildsCommand {
    /// List a job's builds (PIPELINE/JOB) or a whole pipeline's (PIPELINE), newest first.
    List {
        /// The job, as PIPELINE/JOB, or a pipeline.
        job: String,
        /// Only builds in these statuses, comma-separated: failed,errored.
        #[arg(long, value_name = "STATUS,...")]
        status: Option<String>,
        /// Only builds created at or after this time (RFC 3339: 2026-12-03T08:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only builds older than this build id (`--json` shows ids): the next page.
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show a build: its status, its steps, and why it is pending.
    Get {
        /// The build, as PIPELINE/JOB/NUMBER.
        build: String,
    },
    /// Follow a build's output live until it finishes, and exit with its status (0
    /// succeeded, 1 failed, 4 cancelled, 5 errored). Survives dropped connections.
    Watch {
        /// The build, as PIPELINE/JOB/NUMBER.
        build: String,
    },
    /// Print a build's output.
    Logs {
        /// The build, as PIPELINE/JOB/NUMBER.
        build: String,
        /// Only the output of this step.
        #[arg(long, value_name = "NAME")]
        step: Option<String>,
        /// Only the output of the steps that failed.
        #[arg(long)]
        failed: bool,
        /// This attempt (from 1) instead of the latest.
        #[arg(long, value_name = "N")]
        attempt: Option<u32>,
    },
    /// Save a build's report: the build, its steps and the output of every attempt, as one
    /// JSON file to keep or attach to a bug report.
    Report {
        /// The build, as PIPELINE/JOB/NUMBER.
        build: String,
        /// Where to write it (`-` for standard output); the server's name for it
        /// (build-report-NUMBER.json) in the current directory by default.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Replace the file when it exists.
        #[arg(long)]
        force: bool,
    },
    /// Mark a failed build as a warning: the jobs downstream take it as passed.
    MarkWarning {
        /// The build, as PIPELINE/JOB/NUMBER.
        build: String,
    },
    /// Cancel a build.
    Cancel {
        /// The build, as PIPELINE/JOB/NUMBER.
        build: String,
    },
    /// Run a finished build again with the same inputs and versions (as N.1, N.2, ...).
    Retry {
        /// The build, as PIPELINE/JOB/NUMBER.
        build: String,
        /// Follow the new build until it finishes, and exit with its status.
        #[arg(long, short = 'w')]
        watch: bool,
    },
    /// Approve a build waiting for an approval.
    Approve {
        /// The build, as PIPELINE/JOB/NUMBER.
        build: String,
        /// A word for the log.
        #[arg(long, short = 'm')]
        message: Option<String>,
    },
    /// Reject a build waiting for an approval: it is cancelled with the reason.
    Reject {
        /// The build, as PIPELINE/JOB/NUMBER.
        build: String,
        /// Why (required).
        #[arg(long, short = 'm')]
        message: String,
    },
}

/// `PIPELINE/JOB`.
fn job_path(session: &Session, job: &str) -> anyhow::Result<(String, String)> {
    match job.split_once('/') {
        Some((pipeline, name)) if !pipeline.is_empty() && !name.is_empty() => Ok((
            session.team_path(&["pipelines", pipeline, "jobs", name]),
            job.to_owned(),
        )),
        _ => Err(UsageError(format!(
            "\"{job}\" does not name a job: write PIPELINE/JOB, e.g. hello/test"
        ))
        .into()),
    }
}

/// `PIPELINE/JOB/NUMBER`.
fn build_path(session: &Session, build: &str) -> anyhow::Result<String> {
    let parsed = build
        .rsplit_once('/')
        .and_then(|(job, number)| Some((job.split_once('/')?, number)));
    match parsed {
        Some(((pipeline, job), number))
            if !pipeline.is_empty() && !job.is_empty() && !number.is_empty() =>
        {
            Ok(session.team_path(&["pipelines", pipeline, "jobs", job, "builds", number]))
        }
        _ => Err(UsageError(format!(
            "\"{build}\" does not name a build: write PIPELINE/JOB/NUMBER, e.g. hello/test/3"
        ))
        .into()),
    }
}

/// Runs `pikoci jobs`.
pub(crate) fn run_jobs(args: JobsArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        match args.command {
            JobsCommand::List { pipeline } => list_jobs(&session, &pipeline).await,
            JobsCommand::Trigger { job, inputs, watch } => {
                trigger(&session, &job, &inputs, watch).await
            }
            JobsCommand::Pause { job } => pause_job(&session, &job, "pause").await,
            JobsCommand::Unpause { job } => pause_job(&session, &job, "unpause").await,
        }
    })
}

/// Runs `pikoci builds`.
pub(crate) fn run_builds(args: BuildsArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        match args.command {
            BuildsCommand::List {
                job,
                status,
                since,
                before,
                limit,
            } => {
                let mut query = vec![("limit", limit.to_string())];
                query.extend(status.map(|status| ("status", status)));
                query.extend(since.map(|since| ("since", since)));
                query.extend(before.map(|before| ("before", before.to_string())));
                list_builds(&session, &job, query).await
            }
            BuildsCommand::Get { build } => get(&session, &build).await,
            BuildsCommand::Watch { build } => {
                let path = build_path(&session, &build)?;
                watch(&session, &path, &build).await
            }
            BuildsCommand::Logs {
                build,
                step,
                failed,
                attempt,
            } => logs(&session, &build, step.as_deref(), failed, attempt).await,
            BuildsCommand::Report {
                build,
                output,
                force,
            } => report(&session, &build, output.as_deref(), force).await,
            BuildsCommand::Cancel { build } => act(&session, &build, "cancel", json!({})).await,
            BuildsCommand::MarkWarning { build } => {
                act(&session, &build, "warning", json!({})).await
            }
            BuildsCommand::Retry {
                build,
                watch: follow,
            } => retry(&session, &build, follow).await,
            BuildsCommand::Approve { build, message } => {
                act(&session, &build, "approve", json!({ "message": message })).await
            }
            BuildsCommand::Reject { build, message } => {
                act(&session, &build, "reject", json!({ "message": message })).await
            }
        }
    })
}

async fn list_jobs(session: &Session, pipeline: &str) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .get_all(&session.team_path(&["pipelines", pipeline, "jobs"]))
        .await
        .with_context(|| format!("cannot list the jobs of pipeline {pipeline}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let jobs: Vec<Job> = answer.parse()?;
    let mut rows = vec![header(&[
        "JOB", "PAUSED", "LATEST", "STATUS", "STARTED", "DURATION",
    ])];
    for job in &jobs {
        let latest = job.latest_build.as_ref();
        rows.push(vec![
            job.name.clone(),
            yes_no(job.paused),
            latest.map_or_else(|| "-".to_owned(), |b| b.number.clone()),
            latest.map_or_else(|| "-".to_owned(), |b| session.status(&b.status)),
            table::time(latest.and_then(|b| b.started_at.as_deref())),
            table::duration(latest.and_then(|b| b.duration_ms)),
        ]);
    }
    session.print(&render(&rows))?;
    Ok(Exit::Ok)
}

async fn trigger(
    session: &Session,
    job: &str,
    inputs: &[String],
    follow: bool,
) -> anyhow::Result<Exit> {
    let (path, name) = job_path(session, job)?;
    let mut values = serde_json::Map::new();
    for input in inputs {
        let Some((key, value)) = input.split_once('=') else {
            return Err(UsageError(format!(
                "invalid --input \"{input}\": write NAME=VALUE, e.g. --input environment=staging"
            ))
            .into());
        };
        values.insert(key.trim().to_owned(), Value::String(value.to_owned()));
    }
    let answer = session
        .client
        .post(
            &format!("{path}/trigger"),
            &json!({ "input_values": values }),
        )
        .await
        .with_context(|| format!("cannot trigger job {name}"))?;
    let build: Build = answer.parse()?;
    if session.json && !follow {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let label = format!("{}/{}/{}", build.pipeline, build.job, build.number);
    if !follow {
        session.print(&format!(
            "started build {label}: follow it with `pikoci builds watch {label}`\n"
        ))?;
        return Ok(Exit::Ok);
    }
    session.print(&format!("started build {label}\n"))?;
    let path = format!("{path}/builds/{}", build.number);
    watch(session, &path, &label).await
}

async fn pause_job(session: &Session, job: &str, action: &str) -> anyhow::Result<Exit> {
    let (path, name) = job_path(session, job)?;
    let answer = session
        .client
        .post(&format!("{path}/{action}"), &json!({}))
        .await
        .with_context(|| format!("cannot {action} job {name}"))?;
    session.done(&answer.data, &format!("job {name} is {action}d"))
}

async fn list_builds(
    session: &Session,
    job: &str,
    query: Vec<(&str, String)>,
) -> anyhow::Result<Exit> {
    // A job's builds, or a whole pipeline's.
    let (path, name) = match job.split_once('/') {
        Some(_) => {
            let (path, name) = job_path(session, job)?;
            (path, format!("job {name}"))
        }
        None => (
            session.team_path(&["pipelines", job]),
            format!("pipeline {job}"),
        ),
    };
    print_builds(session, &format!("{path}/builds"), &name, query).await
}

/// Prints the page of builds at `path` (of `name`: "job hello/test").
pub(crate) async fn print_builds(
    session: &Session,
    path: &str,
    name: &str,
    query: Vec<(&str, String)>,
) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .get_with(path, &query)
        .await
        .with_context(|| format!("cannot list the builds of {name}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let builds: Vec<Build> = answer.parse()?;
    if builds.is_empty() {
        session.print(&format!("{name} has no builds here\n"))?;
        return Ok(Exit::Ok);
    }
    let mut rows = vec![header(&[
        "BUILD", "STATUS", "CREATED", "STARTED", "DURATION", "WORKER",
    ])];
    for build in &builds {
        rows.push(vec![
            format!("{}/{}", build.job, build.number),
            session.status(&build.status),
            table::time(Some(&build.created_at)),
            table::time(build.started_at.as_deref()),
            table::duration(build.duration_ms),
            build.worker.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let mut out = render(&rows);
    let meta: PageMeta = answer
        .meta
        .and_then(|meta| serde_json::from_value(meta).ok())
        .unwrap_or_default();
    if let (true, Some(before)) = (meta.has_more, meta.next_before) {
        out.push_str(&format!(
            "(older builds not shown: --before {before} shows the next page)\n"
        ));
    }
    session.print(&out)?;
    Ok(Exit::Ok)
}

async fn get(session: &Session, build: &str) -> anyhow::Result<Exit> {
    let path = build_path(session, build)?;
    let answer = session
        .client
        .get(&path)
        .await
        .with_context(|| format!("cannot read build {build}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let build: Build = answer.parse()?;
    let mut out = format!(
        "build {}/{}/{}: {}\n",
        build.pipeline,
        build.job,
        build.number,
        session.status(&build.status)
    );
    if let Some(reason) = &build.pending_reason {
        out.push_str(&format!("pending because: {reason}\n"));
    }
    if let Some(error) = &build.error {
        out.push_str(&format!("error: {error}\n"));
    }
    out.push_str(&format!(
        "created {}, started {}, finished {}, took {}{}\n",
        table::time(Some(&build.created_at)),
        table::time(build.started_at.as_deref()),
        table::time(build.finished_at.as_deref()),
        table::duration(build.duration_ms),
        build
            .worker
            .as_ref()
            .map(|w| format!(", on {w}"))
            .unwrap_or_default(),
    ));
    let steps: Vec<&Step> = build
        .steps
        .iter()
        .flatten()
        .filter(|step| step.attempt == build.attempt)
        .collect();
    if !steps.is_empty() {
        out.push('\n');
        let mut rows = vec![header(&["STEP", "TYPE", "STATUS", "DURATION"])];
        for step in &steps {
            let depth = depth(&steps, step);
            rows.push(vec![
                format!("{}{}", "  ".repeat(depth), step.name),
                step.kind.clone(),
                session.status(&step.status),
                table::duration(step.duration_ms),
            ]);
        }
        out.push_str(&render(&rows));
    }
    session.print(&out)?;
    Ok(Exit::Ok)
}

/// How deep a step is nested (in parallel, if, hooks).
fn depth(steps: &[&Step], step: &Step) -> usize {
    let mut depth = 0;
    let mut parent = step.parent;
    while let Some(index) = parent {
        depth += 1;
        parent = steps
            .iter()
            .find(|s| s.index == index)
            .and_then(|s| s.parent);
        if depth > 64 {
            break;
        }
    }
    depth
}

/// Follows a build to its end, printing its output with a line per step started; the exit
/// status of how it ended.
async fn watch(session: &Session, path: &str, label: &str) -> anyhow::Result<Exit> {
    let mut events = session.client.events(path);
    let mut steps: BTreeMap<(u32, u32), String> = BTreeMap::new();
    let mut current: Option<(u32, u32)> = None;
    let mut reason: Option<String> = None;
    let mut last: Option<Build> = None;
    loop {
        let event = events
            .next()
            .await
            .with_context(|| format!("lost build {label}"))?;
        let Some(event) = event else { break };
        match event {
            BuildEvent::Status(build) => {
                for step in build.steps.iter().flatten() {
                    steps.insert((step.attempt, step.index), step.name.clone());
                }
                if build.pending_reason != reason {
                    reason.clone_from(&build.pending_reason);
                    if let Some(reason) = &reason {
                        session.print(&session.paint(&format!("pending: {reason}\n"), "36"))?;
                    }
                }
                if build.status == "waiting_for_approval"
                    && last.as_ref().is_none_or(|b| b.status != build.status)
                {
                    session.print(&session.paint(
                        &format!(
                            "waiting for an approval: `pikoci builds approve {label}` (or reject)\n"
                        ),
                        "36",
                    ))?;
                }
                last = Some(*build);
            }
            BuildEvent::Log(chunk) => {
                if session.json {
                    let mut line = log_json(&chunk);
                    line["event"] = "log".into();
                    session.print_json_line(&line)?;
                    continue;
                }
                let key = (chunk.attempt, chunk.step);
                if current != Some(key) {
                    current = Some(key);
                    let name = steps
                        .get(&key)
                        .cloned()
                        .unwrap_or_else(|| format!("step {}", chunk.step));
                    session.print(&session.paint(&format!("── {name}\n"), "1"))?;
                }
                session.print(&chunk.text)?;
            }
            BuildEvent::End { status } => {
                let took = last
                    .as_ref()
                    .map(|b| table::duration(b.duration_ms))
                    .unwrap_or_else(|| "-".to_owned());
                let error = last
                    .as_ref()
                    .and_then(|b| b.error.clone())
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                if session.json {
                    session.print_json_line(&json!({"event": "end", "status": status}))?;
                } else {
                    session.print(&format!(
                        "build {label} {} in {took}{error}\n",
                        session.status(&status)
                    ))?;
                }
                return Ok(Exit::of_build(&status));
            }
        }
    }
    Err(anyhow::anyhow!(
        "the stream of build {label} ended before the build did"
    ))
}

async fn report(
    session: &Session,
    build: &str,
    output: Option<&std::path::Path>,
    force: bool,
) -> anyhow::Result<Exit> {
    let path = build_path(session, build)?;
    let download = session
        .client
        .download(&format!("{path}/report"))
        .await
        .with_context(|| format!("cannot read the report of build {build}"))?;
    let number = build.rsplit('/').next().unwrap_or(build);
    let (saved, bytes) = files::save(
        download,
        output,
        &format!("build-report-{number}.json"),
        force,
    )
    .await
    .with_context(|| format!("cannot save the report of build {build}"))?;
    if let Saved::File(file) = saved {
        let line = format!(
            "saved the report of build {build} to {} ({})\n",
            file.display(),
            files::size(bytes)
        );
        // Not on stdout with --json: the command prints no JSON.
        output::stderr(&line)?;
    }
    Ok(Exit::Ok)
}

fn log_json(chunk: &LogChunk) -> Value {
    json!({"attempt": chunk.attempt, "step": chunk.step, "seq": chunk.seq, "text": chunk.text})
}

async fn logs(
    session: &Session,
    build: &str,
    step: Option<&str>,
    failed: bool,
    attempt: Option<u32>,
) -> anyhow::Result<Exit> {
    let path = build_path(session, build)?;
    if step.is_none() && !failed && !session.json {
        let query: Vec<_> = attempt
            .map(|attempt| ("attempt", attempt.to_string()))
            .into_iter()
            .collect();
        let text = session
            .client
            .text(&format!("{path}/logs"), &query)
            .await
            .with_context(|| format!("cannot read the log of build {build}"))?;
        session.print(&text)?;
        return Ok(Exit::Ok);
    }
    let detail: Build = session
        .client
        .get(&path)
        .await
        .with_context(|| format!("cannot read build {build}"))?
        .parse()?;
    let attempt = attempt.unwrap_or(detail.attempt);
    let steps: Vec<&Step> = detail
        .steps
        .iter()
        .flatten()
        .filter(|s| s.attempt == attempt)
        .collect();
    let wanted: Vec<u32> = steps
        .iter()
        .filter(|s| step.is_none_or(|name| s.name == name))
        .filter(|s| !failed || matches!(s.status.as_str(), "failed" | "errored"))
        .map(|s| s.index)
        .collect();
    if let Some(name) = step
        && !steps.iter().any(|s| s.name == name)
    {
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        return Err(UsageError(format!(
            "build {build} has no step \"{name}\" in attempt {attempt}; its steps: {}",
            names.join(", ")
        ))
        .into());
    }
    // The attempt whose steps were filtered, even when it is the latest: a build that ran
    // again meanwhile has another latest attempt.
    let query = vec![
        ("attempt", attempt.to_string()),
        ("format", "json".to_owned()),
    ];
    let chunks: Vec<LogChunk> = session
        .client
        .get_with(&format!("{path}/logs"), &query)
        .await
        .with_context(|| format!("cannot read the log of build {build}"))?
        .parse()?;
    let chunks: Vec<&LogChunk> = chunks.iter().filter(|c| wanted.contains(&c.step)).collect();
    if session.json {
        session.print_json(&Value::Array(chunks.iter().map(|c| log_json(c)).collect()))?;
        return Ok(Exit::Ok);
    }
    let mut out = String::new();
    let mut current = None;
    for chunk in chunks {
        if failed && current != Some(chunk.step) {
            current = Some(chunk.step);
            let name = steps
                .iter()
                .find(|s| s.index == chunk.step)
                .map_or("?", |s| s.name.as_str());
            out.push_str(&session.paint(&format!("── {name}\n"), "1"));
        }
        out.push_str(&chunk.text);
    }
    if failed && wanted.is_empty() {
        out.push_str(&format!("no step of build {build} failed\n"));
    }
    session.print(&out)?;
    Ok(Exit::Ok)
}

async fn act(session: &Session, build: &str, action: &str, body: Value) -> anyhow::Result<Exit> {
    let path = build_path(session, build)?;
    let answer = session
        .client
        .post(&format!("{path}/{action}"), &body)
        .await
        .with_context(|| {
            let doing = if action == "warning" {
                "mark as a warning"
            } else {
                action
            };
            format!("cannot {doing} build {build}")
        })?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let after: Build = answer.parse()?;
    let state = match &after.cancel_deadline {
        Some(deadline) if !after.is_finished() => format!(
            "being cancelled: its worker stops it, or the server marks it cancelled at {}",
            table::time(Some(deadline))
        ),
        _ => session.status(&after.status),
    };
    session.print(&format!("build {build} is {state}\n"))?;
    Ok(Exit::Ok)
}

async fn retry(session: &Session, build: &str, follow: bool) -> anyhow::Result<Exit> {
    let path = build_path(session, build)?;
    let answer = session
        .client
        .post(&format!("{path}/retry"), &json!({}))
        .await
        .with_context(|| format!("cannot retry build {build}"))?;
    let retry: Build = answer.parse()?;
    let label = format!("{}/{}/{}", retry.pipeline, retry.job, retry.number);
    if !follow {
        if session.json {
            session.print_json(&answer.data)?;
        } else {
            session.print(&format!(
                "started build {label}: follow it with `pikoci builds watch {label}`\n"
            ))?;
        }
        return Ok(Exit::Ok);
    }
    session.print(&format!("started build {label}\n"))?;
    let retry_path = build_path(session, &label)?;
    watch(session, &retry_path, &label).await
}
