//! `pikoci resources list|check|versions|version-builds|add-version|trigger-version|pin|unpin|
//! webhook-url`, `pikoci triggers fire|list` and `pikoci workers list|prune|delete`.

use anyhow::Context;
use pikoci_client::model::{Check, Resource, Version, Worker};
use serde_json::json;

use super::pipelines::header;
use super::table::{self, render};
use super::{Exit, Remote, Session, UsageError};

/// `pikoci resources ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct ResourcesArgs {
    #[command(flatten)]
    remote: Remote,

    #[command(subcommand)]
    command: ResourcesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ResourcesCommand {
    /// List a pipeline's resources with their last check.
    List {
        /// The pipeline.
        pipeline: String,
    },
    /// Check a resource for new versions now.
    Check {
        /// The resource, as PIPELINE/TYPE.NAME.
        resource: String,
    },
    /// List a resource's versions, newest first.
    Versions {
        /// The resource, as PIPELINE/TYPE.NAME.
        resource: String,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Add a version by hand, as if a check had found it (a commit the check has not reached):
    /// a new version triggers the jobs a checked one would.
    AddVersion {
        /// The resource, as PIPELINE/TYPE.NAME.
        resource: String,
        /// The version's fields: NAME=VALUE, e.g. ref=4f1c2a9. At least one.
        #[arg(value_name = "NAME=VALUE", required = true)]
        fields: Vec<String>,
    },
    /// List the builds that used a version (got it, or put it), newest first.
    VersionBuilds {
        /// The resource, as PIPELINE/TYPE.NAME.
        resource: String,
        /// The version's id (see `pikoci resources versions`).
        #[arg(value_name = "VERSION_ID")]
        version_id: i64,
        /// Only builds older than this build id (`--json` shows ids): the next page.
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Build one of a resource's versions again: a build, with it, of each job it triggers.
    TriggerVersion {
        /// The resource, as PIPELINE/TYPE.NAME.
        resource: String,
        /// The version's id (see `pikoci resources versions`).
        #[arg(value_name = "VERSION_ID")]
        version_id: i64,
    },
    /// Pin a resource to one of its versions: builds use it until it is unpinned.
    Pin {
        /// The resource, as PIPELINE/TYPE.NAME.
        resource: String,
        /// The version's id (see `pikoci resources versions`).
        #[arg(value_name = "VERSION_ID")]
        version_id: i64,
        /// Why (at most 1,000 characters): shown with the pin and kept in the audit log.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Unpin a resource.
    Unpin {
        /// The resource, as PIPELINE/TYPE.NAME.
        resource: String,
        /// Why (at most 1,000 characters): kept in the audit log.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Print the URL that checks a resource when called (for a forge's webhook settings).
    WebhookUrl {
        /// The resource, as PIPELINE/TYPE.NAME.
        resource: String,
    },
}

/// `pikoci workers ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkersArgs {
    #[command(flatten)]
    remote: Remote,

    #[command(subcommand)]
    command: WorkersCommand,
}

#[derive(Debug, clap::Subcommand)]
enum WorkersCommand {
    /// List the workers: their state, slots, load and tags.
    List,
    /// Forget the lost workers (no heartbeat lately); one that comes back registers again.
    Prune,
    /// Forget one worker; if it is alive, it registers again with its next heartbeat.
    Delete {
        /// The worker's name (see `pikoci workers list`).
        worker: String,
    },
}

/// `pikoci triggers ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct TriggersArgs {
    #[command(flatten)]
    remote: Remote,

    #[command(subcommand)]
    command: TriggersCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TriggersCommand {
    /// Fire an event on a trigger stream: every `trigger` resource of the team with that name
    /// gets it as a new version (and triggers its jobs).
    Fire {
        /// The stream: the name of the team's `trigger` resources.
        name: String,
        /// A value the event carries: NAME=VALUE. Repeatable.
        #[arg(long = "value", short = 'v', value_name = "NAME=VALUE")]
        values: Vec<String>,
    },
    /// List a stream's events, oldest first.
    List {
        /// The stream.
        name: String,
        /// Only events newer than this event id: the next page.
        #[arg(long, value_name = "ID")]
        after: Option<i64>,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// Runs `pikoci triggers`.
pub(crate) fn run_triggers(args: TriggersArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        match args.command {
            TriggersCommand::Fire { name, values } => fire(&session, &name, &values).await,
            TriggersCommand::List { name, after, limit } => {
                events(&session, &name, after, limit).await
            }
        }
    })
}

/// `NAME=VALUE` arguments as a version's fields; `what` names them in errors.
fn version_fields(
    values: &[String],
    what: &str,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mut version = serde_json::Map::new();
    for value in values {
        let Some((key, text)) = value.split_once('=') else {
            return Err(UsageError(format!(
                "invalid {what} \"{value}\": write NAME=VALUE, e.g. ref=v1.2"
            ))
            .into());
        };
        version.insert(key.trim().to_owned(), text.into());
    }
    Ok(version)
}

async fn fire(session: &Session, name: &str, values: &[String]) -> anyhow::Result<Exit> {
    let version = version_fields(values, "--value")?;
    let answer = session
        .client
        .post(
            &session.team_path(&["triggers", name]),
            &json!({ "version": version }),
        )
        .await
        .with_context(|| format!("cannot fire trigger {name}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let readers = answer.data["readers"].as_u64().unwrap_or_default();
    if readers == 0 {
        session.print(&format!(
            "fired trigger {name} (event {}), but no resource of team {} reads it: a \
             `resource \"trigger\" \"{name}\"` in a pipeline would (a new one starts after the \
             events already fired)\n",
            answer.data["id"], session.team
        ))?;
    } else {
        session.print(&format!(
            "fired trigger {name} (event {}): {readers} resource{} reading it {} checked now\n",
            answer.data["id"],
            super::pipelines::plural(usize::try_from(readers).unwrap_or(usize::MAX)),
            if readers == 1 { "is" } else { "are" }
        ))?;
    }
    Ok(Exit::Ok)
}

async fn events(
    session: &Session,
    name: &str,
    after: Option<i64>,
    limit: u32,
) -> anyhow::Result<Exit> {
    let mut query = vec![("limit", limit.to_string())];
    query.extend(after.map(|after| ("after", after.to_string())));
    let answer = session
        .client
        .get_with(&session.team_path(&["triggers", name]), &query)
        .await
        .with_context(|| format!("cannot list the events of trigger {name}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let events = answer.data.as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        session.print(&format!("trigger {name} has no events\n"))?;
        return Ok(Exit::Ok);
    }
    let mut rows = vec![header(&["ID", "VERSION", "FIRED"])];
    for event in &events {
        rows.push(vec![
            event["id"].to_string(),
            event["version"].to_string(),
            table::time(event["created_at"].as_str()),
        ]);
    }
    let mut out = render(&rows);
    if let Some(next) = answer
        .meta
        .as_ref()
        .filter(|meta| meta["has_more"] == true)
        .and_then(|meta| meta["next_after"].as_i64())
    {
        out.push_str(&format!(
            "(newer events not shown: --after {next} shows the next page)\n"
        ));
    }
    session.print(&out)?;
    Ok(Exit::Ok)
}

/// `PIPELINE/TYPE.NAME`.
fn resource_path(session: &Session, resource: &str) -> anyhow::Result<String> {
    match resource.split_once('/') {
        Some((pipeline, canonical)) if !pipeline.is_empty() && canonical.contains('.') => {
            Ok(session.team_path(&["pipelines", pipeline, "resources", canonical]))
        }
        _ => Err(UsageError(format!(
            "\"{resource}\" does not name a resource: write PIPELINE/TYPE.NAME, e.g. \
             hello/git.repo"
        ))
        .into()),
    }
}

/// Runs `pikoci resources`.
pub(crate) fn run(args: ResourcesArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        match args.command {
            ResourcesCommand::List { pipeline } => list(&session, &pipeline).await,
            ResourcesCommand::Check { resource } => {
                act(&session, &resource, "check", json!({})).await
            }
            ResourcesCommand::Versions { resource, limit } => {
                versions(&session, &resource, limit).await
            }
            ResourcesCommand::AddVersion { resource, fields } => {
                add_version(&session, &resource, &fields).await
            }
            ResourcesCommand::VersionBuilds {
                resource,
                version_id,
                before,
                limit,
            } => {
                let path = resource_path(&session, &resource)?;
                let mut query = vec![("limit", limit.to_string())];
                query.extend(before.map(|before| ("before", before.to_string())));
                super::builds::print_builds(
                    &session,
                    &format!("{path}/versions/{version_id}/builds"),
                    &format!("version {version_id} of {resource}"),
                    query,
                )
                .await
            }
            ResourcesCommand::TriggerVersion {
                resource,
                version_id,
            } => trigger_version(&session, &resource, version_id).await,
            ResourcesCommand::Pin {
                resource,
                version_id,
                comment,
            } => {
                let mut body = json!({ "version_id": version_id });
                // Only when given: a server older than pin comments refuses the field.
                if !comment.is_empty() {
                    body["comment"] = json!(comment);
                }
                act(&session, &resource, "pin", body).await
            }
            ResourcesCommand::Unpin { resource, comment } => {
                let body = if comment.is_empty() {
                    json!({})
                } else {
                    json!({ "comment": comment })
                };
                act(&session, &resource, "unpin", body).await
            }
            ResourcesCommand::WebhookUrl { resource } => webhook_url(&session, &resource).await,
        }
    })
}

/// Runs `pikoci workers`.
pub(crate) fn run_workers(args: WorkersArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        match args.command {
            WorkersCommand::List => workers(&session).await,
            WorkersCommand::Prune => prune(&session).await,
            WorkersCommand::Delete { worker } => delete_worker(&session, &worker).await,
        }
    })
}

/// The last check of a resource, in a word.
pub(crate) fn last_check(session: &Session, check: Option<&Check>) -> String {
    match check {
        None => "-".to_owned(),
        Some(check) if check.succeeded => format!(
            "{} {}",
            session.status("succeeded"),
            table::time(Some(&check.finished_at))
        ),
        Some(check) => format!(
            "{} {}: {}",
            session.status("failed"),
            table::time(Some(&check.finished_at)),
            check.error.as_deref().unwrap_or("")
        ),
    }
}

async fn list(session: &Session, pipeline: &str) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .get_all(&session.team_path(&["pipelines", pipeline, "resources"]))
        .await
        .with_context(|| format!("cannot list the resources of pipeline {pipeline}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let resources: Vec<Resource> = answer.parse()?;
    let mut rows = vec![header(&[
        "RESOURCE",
        "CHECK EVERY",
        "NEXT CHECK",
        "PINNED",
        "LAST CHECK",
    ])];
    for resource in &resources {
        rows.push(vec![
            resource.canonical.clone(),
            resource.check_interval.clone(),
            table::time(resource.next_check_at.as_deref()),
            resource
                .pinned_version_id
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            last_check(session, resource.last_check.as_ref()),
        ]);
    }
    session.print(&render(&rows))?;
    Ok(Exit::Ok)
}

async fn act(
    session: &Session,
    resource: &str,
    action: &str,
    body: serde_json::Value,
) -> anyhow::Result<Exit> {
    let path = resource_path(session, resource)?;
    let answer = session
        .client
        .post(&format!("{path}/{action}"), &body)
        .await
        .with_context(|| format!("cannot {action} resource {resource}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let after: Resource = answer.parse()?;
    let done = match action {
        "check" => "will be checked now".to_owned(),
        "pin" => match after.pin_comment.as_deref().filter(|c| !c.is_empty()) {
            Some(comment) => format!(
                "is pinned to version {}: {comment}",
                after.pinned_version_id.unwrap_or_default()
            ),
            None => format!(
                "is pinned to version {}",
                after.pinned_version_id.unwrap_or_default()
            ),
        },
        _ => "is unpinned".to_owned(),
    };
    session.print(&format!("resource {resource} {done}\n"))?;
    Ok(Exit::Ok)
}

async fn versions(session: &Session, resource: &str, limit: u32) -> anyhow::Result<Exit> {
    let path = resource_path(session, resource)?;
    let answer = session
        .client
        .get_with(&format!("{path}/versions"), &[("limit", limit.to_string())])
        .await
        .with_context(|| format!("cannot list the versions of resource {resource}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let versions: Vec<Version> = answer.parse()?;
    if versions.is_empty() {
        session.print(&format!(
            "resource {resource} has no versions yet: check it with `pikoci resources check \
             {resource}`\n"
        ))?;
        return Ok(Exit::Ok);
    }
    let mut rows = vec![header(&["ID", "VERSION", "FOUND", "PINNED"])];
    for version in &versions {
        rows.push(vec![
            version.id.to_string(),
            version.version.to_string(),
            table::time(Some(&version.created_at)),
            if version.pinned { "pinned" } else { "" }.to_owned(),
        ]);
    }
    session.print(&render(&rows))?;
    Ok(Exit::Ok)
}

async fn webhook_url(session: &Session, resource: &str) -> anyhow::Result<Exit> {
    let path = resource_path(session, resource)?;
    let answer = session
        .client
        .get(&path)
        .await
        .with_context(|| format!("cannot read resource {resource}"))?;
    let detail: Resource = answer.parse()?;
    let Some(token) = detail.webhook_token else {
        return Err(anyhow::anyhow!(
            "the server did not give the webhook token of {resource}"
        ));
    };
    let url = format!(
        "{}/api/v1{}",
        session.client.server(),
        pikoci_client::path(&["webhooks", &token])
    );
    if session.json {
        session.print_json(&json!({ "url": url }))?;
    } else {
        session.print(&format!("{url}\n"))?;
    }
    Ok(Exit::Ok)
}

async fn add_version(session: &Session, resource: &str, fields: &[String]) -> anyhow::Result<Exit> {
    let path = resource_path(session, resource)?;
    let version = version_fields(fields, "field")?;
    let answer = session
        .client
        .post(&format!("{path}/versions"), &json!({ "version": version }))
        .await
        .with_context(|| format!("cannot add a version to resource {resource}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let id = &answer.data["id"];
    if answer.status == 201 {
        session.print(&format!(
            "added version {id} to resource {resource}, as a check would have found it\n"
        ))?;
    } else {
        session.print(&format!(
            "resource {resource} has this version already (version {id}): nothing was triggered\n"
        ))?;
    }
    Ok(Exit::Ok)
}

async fn trigger_version(
    session: &Session,
    resource: &str,
    version_id: i64,
) -> anyhow::Result<Exit> {
    let path = resource_path(session, resource)?;
    let answer = session
        .client
        .post(&format!("{path}/versions/{version_id}/trigger"), &json!({}))
        .await
        .with_context(|| format!("cannot build version {version_id} of {resource} again"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let builds: Vec<pikoci_client::model::Build> = answer.parse()?;
    for build in &builds {
        let label = format!("{}/{}/{}", build.pipeline, build.job, build.number);
        session.print(&format!(
            "started build {label}: follow it with `pikoci builds watch {label}`\n"
        ))?;
    }
    let skipped = answer
        .meta
        .as_ref()
        .and_then(|meta| meta["skipped"].as_array().cloned())
        .unwrap_or_default();
    for reason in skipped.iter().filter_map(|reason| reason.as_str()) {
        session.print(&format!("no build: {reason}\n"))?;
    }
    Ok(Exit::Ok)
}

async fn delete_worker(session: &Session, worker: &str) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .delete(&pikoci_client::path(&["workers", worker]))
        .await
        .with_context(|| format!("cannot forget worker {worker}"))?;
    session.done(&answer.data, &format!("forgot worker {worker}"))
}

async fn prune(session: &Session) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .post("/workers/prune", &json!({}))
        .await
        .context("cannot prune the workers")?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let pruned: Vec<String> = answer
        .data
        .get("pruned")
        .and_then(|ids| serde_json::from_value(ids.clone()).ok())
        .unwrap_or_default();
    if pruned.is_empty() {
        session.print("no worker is lost: nothing to forget\n")?;
    } else {
        session.print(&format!(
            "forgot {} lost worker{}: {}\n",
            pruned.len(),
            super::pipelines::plural(pruned.len()),
            pruned.join(", ")
        ))?;
    }
    Ok(Exit::Ok)
}

async fn workers(session: &Session) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .get_all("/workers")
        .await
        .context("cannot list the workers")?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let workers: Vec<Worker> = answer.parse()?;
    if workers.is_empty() {
        session.print("no worker has registered with this server\n")?;
        return Ok(Exit::Ok);
    }
    let mut rows = vec![header(&[
        "WORKER",
        "STATE",
        "BUILDS",
        "TEAM",
        "TAGS",
        "HOST",
        "VERSION",
        "LAST HEARTBEAT",
    ])];
    for worker in &workers {
        let colour = match worker.state.as_str() {
            "running" => "32",
            "draining" => "33",
            _ => "31",
        };
        rows.push(vec![
            worker.id.clone(),
            session.paint(&worker.state, colour),
            format!("{}/{}", worker.running, worker.slots),
            worker.team.clone().unwrap_or_else(|| "(all)".to_owned()),
            worker.tags.join(","),
            worker.hostname.clone(),
            worker.version.clone(),
            table::time(Some(&worker.last_heartbeat_at)),
        ]);
    }
    session.print(&render(&rows))?;
    Ok(Exit::Ok)
}
