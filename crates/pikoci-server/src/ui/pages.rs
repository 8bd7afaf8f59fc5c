//! The pages: dashboard, pipeline, job, build and resource. Each reads the API as the visitor
//! ([`Visit`]) and renders a template; what the visitor may do decides which actions it shows
//! (the API checks again when they are sent).

use askama::Template;
use axum::extract::{Path, Query, RawQuery};
use axum::response::{IntoResponse as _, Response};
use pikoci_core::store::{BuildStatus, Role};
use serde::Deserialize;

use super::graph::{self, Edge, Node};
use super::{Frame, PageError, Visit, render, segment};

// ---- what the pages read from the API (the fields they show; the public view leaves some
// out, so those default) ----

#[derive(Debug, Deserialize)]
struct TeamItem {
    name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BuildItem {
    pub(crate) number: String,
    pub(crate) job: String,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) error: Option<String>,
    #[serde(default)]
    pub(crate) inputs: serde_json::Value,
    #[serde(default)]
    pub(crate) retry_of: Option<String>,
    pub(crate) attempt: u32,
    pub(crate) created_at: String,
    #[serde(default)]
    pub(crate) duration_ms: Option<i64>,
    #[serde(default)]
    pub(crate) trigger: Option<TriggerItem>,
    #[serde(default)]
    pub(crate) steps: Vec<StepItem>,
    #[serde(default)]
    pub(crate) pending_reason: Option<String>,
    #[serde(default)]
    pub(crate) cancel_deadline: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TriggerItem {
    #[serde(default)]
    pub(crate) resource: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StepItem {
    pub(crate) attempt: u32,
    pub(crate) index: u32,
    #[serde(default)]
    pub(crate) parent: Option<u32>,
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) duration_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct JobSummaryItem {
    name: String,
    latest_build: Option<BuildItem>,
}

#[derive(Debug, Deserialize)]
struct PipelineItem {
    name: String,
    paused: bool,
    public: bool,
    jobs: Vec<JobSummaryItem>,
    #[serde(default)]
    resources: Vec<ResourceItem>,
}

#[derive(Debug, Deserialize)]
struct JobItem {
    name: String,
    paused: bool,
    #[serde(default)]
    inputs: Vec<InputItem>,
    #[serde(default)]
    gets: Vec<GetItem>,
    #[serde(default)]
    puts: Vec<String>,
    #[serde(default)]
    instance_of: Option<InstanceItem>,
    latest_build: Option<BuildItem>,
    #[serde(default)]
    approval: Option<ApprovalItem>,
}

#[derive(Debug, Deserialize)]
struct InstanceItem {
    base: String,
}

#[derive(Debug, Deserialize)]
struct ApprovalItem {
    label: String,
    approvals: u32,
}

#[derive(Debug, Deserialize)]
struct GetItem {
    resource: String,
    trigger: bool,
    passed: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct InputItem {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) value_type: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) default: Option<String>,
    #[serde(default)]
    pub(crate) options: Vec<String>,
    #[serde(default)]
    pub(crate) multiple: bool,
}

#[derive(Debug, Deserialize)]
struct ResourceItem {
    #[serde(rename = "type")]
    type_name: String,
    canonical: String,
    check_interval: String,
    #[serde(default)]
    pinned_version_id: Option<i64>,
    #[serde(default)]
    pin_comment: Option<String>,
    #[serde(default)]
    pinned_by: Option<String>,
    #[serde(default)]
    pinned_at: Option<String>,
    #[serde(default)]
    next_check_at: Option<String>,
    #[serde(default)]
    last_check: Option<CheckItem>,
    #[serde(default)]
    check_in_progress: Option<serde_json::Value>,
    #[serde(default)]
    webhook_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CheckItem {
    finished_at: String,
    succeeded: bool,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VersionItem {
    id: i64,
    #[serde(default)]
    version: serde_json::Value,
    #[serde(default)]
    metadata: serde_json::Value,
    created_at: String,
    pinned: bool,
}

// ---- paths ----

#[derive(Debug, Deserialize)]
pub(crate) struct PipelinePath {
    tc: String,
    pc: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct JobPath {
    tc: String,
    pc: String,
    jn: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BuildPath {
    pub(crate) tc: String,
    pub(crate) pc: String,
    pub(crate) jn: String,
    pub(crate) bn: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResourcePath {
    tc: String,
    pc: String,
    rc: String,
}

/// The page path of a pipeline (`/teams/…/pipelines/…`); the API's is `/api/v1` and this.
pub(crate) fn pipeline_path(team: &str, pipeline: &str) -> String {
    format!("/teams/{}/pipelines/{}", segment(team), segment(pipeline))
}

/// The page path of a job.
pub(crate) fn job_path(team: &str, pipeline: &str, job: &str) -> String {
    format!("{}/jobs/{}", pipeline_path(team, pipeline), segment(job))
}

/// The page path of a build.
pub(crate) fn build_path(team: &str, pipeline: &str, job: &str, build: &str) -> String {
    format!(
        "{}/builds/{}",
        job_path(team, pipeline, job),
        segment(build)
    )
}

/// The crumbs down to a pipeline.
fn pipeline_crumbs(team: &str, pipeline: &str) -> Vec<(String, String)> {
    vec![
        (team.to_owned(), "/".to_owned()),
        (pipeline.to_owned(), pipeline_path(team, pipeline)),
    ]
}

// ---- presentation helpers ----

/// A duration in milliseconds as people read it: `850ms`, `12s`, `3m 4s`, `2h 5m`.
pub(crate) fn duration(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return String::new();
    };
    let seconds = ms / 1000;
    match seconds {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {}s", seconds / 60, seconds % 60),
        _ => format!("{}h {}m", seconds / 3600, (seconds % 3600) / 60),
    }
}

/// An RFC 3339 time as shown: `2026-12-03 08:00:00` (UTC).
pub(crate) fn when(time: &str) -> String {
    let short = time.get(..19).unwrap_or(time);
    short.replacen('T', " ", 1)
}

/// Whether a status (as the API names it) is a finished one.
pub(crate) fn finished(status: &str) -> bool {
    BuildStatus::parse(status).is_some_and(BuildStatus::is_finished)
}

/// A build as its rows show it.
#[derive(Debug)]
pub(crate) struct BuildRow {
    pub(crate) number: String,
    pub(crate) status: String,
    pub(crate) href: String,
    pub(crate) created: String,
    pub(crate) duration: String,
    pub(crate) cause: String,
}

impl BuildRow {
    fn new(team: &str, pipeline: &str, build: &BuildItem) -> BuildRow {
        let cause = match (&build.trigger, &build.retry_of) {
            (_, Some(retry_of)) => format!("retry of #{retry_of}"),
            (Some(TriggerItem { resource: Some(r) }), _) => format!("new version of {r}"),
            (Some(_), _) => "a new version".to_owned(),
            (None, None) => "manual".to_owned(),
        };
        BuildRow {
            number: build.number.clone(),
            status: build.status.clone(),
            href: build_path(team, pipeline, &build.job, &build.number),
            created: when(&build.created_at),
            duration: duration(build.duration_ms),
            cause,
        }
    }
}

// ---- dashboard ----

/// A pipeline on the dashboard.
struct PipelineCard {
    name: String,
    href: String,
    paused: bool,
    public: bool,
    /// Each job: name, status (`none` without builds), href.
    jobs: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    frame: Frame,
    teams: Vec<(String, Vec<PipelineCard>)>,
}

/// `GET /`: every pipeline of the teams the visitor sees, with a chip per job. A first login by
/// single sign-on lands here (`/?sso=complete-profile&…`) and goes on to the login page's form
/// that creates the account.
pub(crate) async fn dashboard(
    visit: Visit,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    if let Some(query) = query.filter(|q| q.starts_with("sso=complete-profile"))
        && visit.me.is_none()
    {
        return Ok(axum::response::Redirect::to(&format!("/login?{query}")).into_response());
    }
    if visit.me.is_none() {
        return Err(PageError::LogIn {
            next: "/".to_owned(),
        });
    }
    let teams: Vec<TeamItem> = visit.get("/api/v1/teams?limit=500").await?;
    let mut cards = Vec::with_capacity(teams.len());
    for team in teams {
        let pipelines: Vec<PipelineItem> = visit
            .get(&format!(
                "/api/v1/teams/{}/pipelines?limit=500",
                segment(&team.name)
            ))
            .await?;
        let pipelines = pipelines
            .into_iter()
            .map(|pipeline| PipelineCard {
                href: pipeline_path(&team.name, &pipeline.name),
                jobs: pipeline
                    .jobs
                    .iter()
                    .map(|job| {
                        (
                            job.name.clone(),
                            job.latest_build
                                .as_ref()
                                .map_or("none".to_owned(), |build| build.status.clone()),
                            job_path(&team.name, &pipeline.name, &job.name),
                        )
                    })
                    .collect(),
                name: pipeline.name,
                paused: pipeline.paused,
                public: pipeline.public,
            })
            .collect();
        cards.push((team.name, pipelines));
    }
    Ok(render(&DashboardPage {
        frame: visit.frame("Pipelines", Vec::new()),
        teams: cards,
    }))
}

// ---- pipeline ----

/// A job in the list view.
struct JobRow {
    name: String,
    href: String,
    status: String,
    paused: bool,
    build: Option<BuildRow>,
    /// The `for_each`/`matrix` job it is an instance of.
    group: Option<String>,
    /// The first instance of its group in the list (the one the graph's group links to).
    first_of_group: bool,
}

#[derive(Template)]
#[template(path = "pipeline.html")]
struct PipelinePage {
    frame: Frame,
    name: String,
    api: String,
    paused: bool,
    public: bool,
    list: bool,
    graph: String,
    jobs: Vec<JobRow>,
    resources: Vec<(String, String, bool)>,
    may_write: bool,
    may_maintain: bool,
    here: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PipelineQuery {
    view: Option<String>,
}

/// `GET /teams/{tc}/pipelines/{pc}`: the graph (or `?view=list`), pause, unpause, expose.
pub(crate) async fn pipeline(
    visit: Visit,
    Path(path): Path<PipelinePath>,
    Query(query): Query<PipelineQuery>,
) -> Result<Response, PageError> {
    let api = format!("/api/v1{}", pipeline_path(&path.tc, &path.pc));
    let pipeline: PipelineItem = visit.get(&api).await?;
    let jobs: Vec<JobItem> = visit.get(&format!("{api}/jobs?limit=500")).await?;
    let list = query.view.as_deref() == Some("list");
    let graph = pipeline_graph(&path.tc, &pipeline, &jobs);
    let mut groups_seen = std::collections::HashSet::new();
    let rows = jobs
        .iter()
        .map(|job| JobRow {
            first_of_group: job
                .instance_of
                .as_ref()
                .is_some_and(|i| groups_seen.insert(i.base.clone())),
            name: job.name.clone(),
            href: job_path(&path.tc, &pipeline.name, &job.name),
            status: status_of(job.latest_build.as_ref()),
            paused: job.paused,
            build: job
                .latest_build
                .as_ref()
                .map(|build| BuildRow::new(&path.tc, &pipeline.name, build)),
            group: job.instance_of.as_ref().map(|i| i.base.clone()),
        })
        .collect();
    let page = PipelinePage {
        frame: visit.frame(
            pipeline.name.clone(),
            pipeline_crumbs(&path.tc, &pipeline.name),
        ),
        may_write: visit.may(&path.tc, Role::Write),
        may_maintain: visit.may(&path.tc, Role::Maintain),
        api,
        paused: pipeline.paused,
        public: pipeline.public,
        list,
        graph,
        jobs: rows,
        resources: pipeline
            .resources
            .iter()
            .map(|resource| {
                (
                    resource.canonical.clone(),
                    format!(
                        "{}/resources/{}",
                        pipeline_path(&path.tc, &pipeline.name),
                        segment(&resource.canonical)
                    ),
                    resource.pinned_version_id.is_some(),
                )
            })
            .collect(),
        here: pipeline_path(&path.tc, &pipeline.name),
        name: pipeline.name,
    };
    Ok(render(&page))
}

fn status_of(build: Option<&BuildItem>) -> String {
    build.map_or_else(|| "none".to_owned(), |build| build.status.clone())
}

/// How bad a status is, to show a group by its worst instance.
fn severity(status: &str) -> u8 {
    match status {
        "errored" => 7,
        "failed" => 6,
        "started" | "assigned" => 5,
        "pending" | "waiting_for_approval" => 4,
        "warning" => 3,
        "cancelled" => 2,
        "succeeded" => 1,
        _ => 0,
    }
}

/// The graph of a pipeline: `for_each` and `matrix` instances are one node per group, with
/// the status of the worst instance.
fn pipeline_graph(team: &str, pipeline: &PipelineItem, jobs: &[JobItem]) -> String {
    let base = pipeline_path(team, &pipeline.name);
    let mut nodes: Vec<Node> = Vec::new();
    // The node of each job name (instances share their group's).
    let mut node_of_job = std::collections::HashMap::new();
    let mut group_status: std::collections::HashMap<String, (usize, String, usize)> =
        std::collections::HashMap::new();
    // The node of each resource, by canonical name.
    let mut node_of_resource = std::collections::HashMap::new();
    for resource in &pipeline.resources {
        node_of_resource.insert(resource.canonical.as_str(), nodes.len());
        nodes.push(Node {
            id: format!("resource {}", resource.canonical),
            label: resource.canonical.clone(),
            class: "resource".to_owned(),
            href: format!("{base}/resources/{}", segment(&resource.canonical)),
            note: resource.pinned_version_id.map(|_| "pinned".to_owned()),
            title: match resource.pinned_version_id {
                Some(_) => format!("resource {}, pinned", resource.canonical),
                None => format!("resource {}", resource.canonical),
            },
        });
    }
    for job in jobs {
        let status = status_of(job.latest_build.as_ref());
        if let Some(instance) = &job.instance_of {
            if let Some((node, worst, count)) = group_status.get_mut(&instance.base) {
                *count += 1;
                if severity(&status) > severity(worst) {
                    *worst = status;
                }
                node_of_job.insert(job.name.clone(), *node);
                continue;
            }
            group_status.insert(instance.base.clone(), (nodes.len(), status.clone(), 1));
            node_of_job.insert(job.name.clone(), nodes.len());
            nodes.push(Node {
                id: format!("group {}", instance.base),
                label: instance.base.clone(),
                class: String::new(),
                href: format!("{base}?view=list#group-{}", instance.base),
                note: None,
                title: String::new(),
            });
            continue;
        }
        node_of_job.insert(job.name.clone(), nodes.len());
        nodes.push(Node {
            id: format!("job {}", job.name),
            label: job.name.clone(),
            class: format!("job s-{status}"),
            href: job_path(team, &pipeline.name, &job.name),
            note: job.paused.then(|| "paused".to_owned()),
            title: format!(
                "job {}: {}{}",
                job.name,
                if status == "none" {
                    "no build yet"
                } else {
                    &status
                },
                if job.paused { ", paused" } else { "" }
            ),
        });
    }
    for (group, (node, worst, count)) in &group_status {
        nodes[*node].class = format!("job group s-{worst}");
        nodes[*node].note = Some(format!("{count} instances"));
        nodes[*node].title = format!("{group}: {count} instances, the worst {worst}");
    }
    let mut edges: Vec<Edge> = Vec::new();
    let mut add = |edge: Edge| {
        if edge.from != edge.to && !edges.contains(&edge) {
            edges.push(edge);
        }
    };
    for job in jobs {
        let Some(&to) = node_of_job.get(&job.name) else {
            continue;
        };
        for get in &job.gets {
            if get.passed.is_empty() {
                if let Some(&from) = node_of_resource.get(get.resource.as_str()) {
                    add(Edge {
                        from,
                        to,
                        trigger: get.trigger,
                    });
                }
            } else {
                for upstream in &get.passed {
                    // An upstream group's name (`passed = ["test"]` for its instances).
                    let from = node_of_job
                        .get(upstream)
                        .or_else(|| group_status.get(upstream).map(|(node, _, _)| node));
                    if let Some(&from) = from {
                        add(Edge {
                            from,
                            to,
                            trigger: get.trigger,
                        });
                    }
                }
            }
        }
        for put in &job.puts {
            if let Some(&resource) = node_of_resource.get(put.as_str()) {
                add(Edge {
                    from: to,
                    to: resource,
                    trigger: true,
                });
            }
        }
    }
    graph::svg(&nodes, &edges)
}

// ---- editor ----

#[derive(Debug, Deserialize)]
struct PipelineSource {
    name: String,
    #[serde(default)]
    config: Option<String>,
}

#[derive(Template)]
#[template(path = "editor.html")]
struct EditorPage {
    frame: Frame,
    name: String,
    config: String,
    api: String,
    here: String,
}

/// `GET /teams/{tc}/pipelines/{pc}/edit`: the pipeline file in an editor that validates it as
/// it is typed (`POST …/validate`), shows the changes against the saved file, and saves it
/// (`PUT …/{pc}`). For those who may set pipelines (role `maintain`).
pub(crate) async fn editor(
    visit: Visit,
    Path(path): Path<PipelinePath>,
) -> Result<Response, PageError> {
    let here = pipeline_path(&path.tc, &path.pc);
    let api = format!("/api/v1{here}");
    if visit.me.is_none() {
        return Err(PageError::LogIn {
            next: format!("{here}/edit"),
        });
    }
    let pipeline: PipelineSource = visit.get(&api).await?;
    if !visit.may(&path.tc, Role::Maintain) {
        return Err(PageError::failed(
            axum::http::StatusCode::FORBIDDEN,
            format!(
                "editing a pipeline needs role maintain in team \"{}\"",
                path.tc
            ),
        ));
    }
    let page = EditorPage {
        frame: visit.frame(format!("Edit {}", pipeline.name), {
            let mut crumbs = pipeline_crumbs(&path.tc, &pipeline.name);
            crumbs.push(("edit".to_owned(), format!("{here}/edit")));
            crumbs
        }),
        config: pipeline.config.unwrap_or_default(),
        name: pipeline.name,
        api,
        here,
    };
    Ok(render(&page))
}

// ---- job ----

/// An input of the trigger form.
struct InputField {
    name: String,
    value_type: String,
    description: String,
    default: String,
    options: Vec<String>,
    /// The options selected at first: the default's (comma-separated when `multiple`).
    selected: Vec<String>,
    multiple: bool,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    frame: Frame,
    name: String,
    api: String,
    here: String,
    paused: bool,
    approval: Option<String>,
    inputs: Vec<InputField>,
    builds: Vec<BuildRow>,
    /// Why each pending build waits: (number, reason).
    pending: Vec<(String, String)>,
    status_filter: String,
    since_filter: String,
    statuses: &'static [&'static str],
    older: Option<String>,
    may_write: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct JobQuery {
    status: Option<String>,
    since: Option<String>,
    before: Option<i64>,
}

/// The statuses a build list can be filtered by.
const STATUSES: &[&str] = &[
    "pending",
    "waiting_for_approval",
    "started",
    "succeeded",
    "failed",
    "errored",
    "warning",
    "cancelled",
];

/// `GET …/jobs/{jn}?status=&since=&before=`: the job's builds, newest first, with filters; the
/// trigger form; pause.
pub(crate) async fn job(
    visit: Visit,
    Path(path): Path<JobPath>,
    Query(query): Query<JobQuery>,
) -> Result<Response, PageError> {
    let here = job_path(&path.tc, &path.pc, &path.jn);
    let api = format!("/api/v1{here}");
    let job: JobItem = visit.get(&api).await?;
    let status = query
        .status
        .as_deref()
        .filter(|s| STATUSES.contains(s))
        .unwrap_or("");
    let since = query
        .since
        .as_deref()
        .filter(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok())
        .unwrap_or("");
    let mut list = format!("{api}/builds?limit=50");
    if !status.is_empty() {
        list.push_str(&format!("&status={status}"));
    }
    if !since.is_empty() {
        list.push_str(&format!("&since={since}T00:00:00Z"));
    }
    if let Some(before) = query.before {
        list.push_str(&format!("&before={before}"));
    }
    let (builds, meta): (Vec<BuildItem>, serde_json::Value) = visit.read(&list).await?;
    let mut pending = Vec::new();
    for build in builds.iter().filter(|b| b.status == "pending").take(5) {
        #[derive(Deserialize)]
        struct Reason {
            #[serde(default)]
            pending_reason: Option<String>,
        }
        let reason: Reason = visit
            .get(&format!(
                "{api}/builds/{}/pending_reason",
                segment(&build.number)
            ))
            .await?;
        if let Some(reason) = reason.pending_reason {
            pending.push((build.number.clone(), reason));
        }
    }
    let older = meta["next_before"].as_i64().map(|before| {
        let mut href = format!("{here}?before={before}");
        if !status.is_empty() {
            href.push_str(&format!("&status={status}"));
        }
        if !since.is_empty() {
            href.push_str(&format!("&since={since}"));
        }
        href
    });
    let page = JobPage {
        frame: visit.frame(job.name.clone(), {
            let mut crumbs = pipeline_crumbs(&path.tc, &path.pc);
            crumbs.push((job.name.clone(), here.clone()));
            crumbs
        }),
        may_write: visit.may(&path.tc, Role::Write),
        api,
        here,
        paused: job.paused,
        approval: job
            .approval
            .map(|a| format!("{} ({} approval(s) needed)", a.label, a.approvals)),
        inputs: job
            .inputs
            .into_iter()
            .map(|input| {
                let default = input.default.unwrap_or_default();
                let selected = if input.multiple {
                    default.split(',').map(|s| s.trim().to_owned()).collect()
                } else {
                    vec![default.clone()]
                };
                InputField {
                    name: input.name,
                    value_type: input.value_type,
                    description: input.description.unwrap_or_default(),
                    default,
                    options: input.options,
                    selected,
                    multiple: input.multiple,
                }
            })
            .collect(),
        builds: builds
            .iter()
            .map(|build| BuildRow::new(&path.tc, &path.pc, build))
            .collect(),
        pending,
        status_filter: status.to_owned(),
        since_filter: since.to_owned(),
        statuses: STATUSES,
        older,
        name: job.name,
    };
    Ok(render(&page))
}

// ---- build ----

/// A step in the tree.
pub(crate) struct StepRow {
    pub(crate) index: u32,
    pub(crate) depth: usize,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) status: String,
    pub(crate) duration: String,
}

#[derive(Template)]
#[template(path = "build.html")]
struct BuildPage {
    frame: Frame,
    job: String,
    number: String,
    status: String,
    running: bool,
    error: String,
    cause: String,
    created: String,
    duration: String,
    pending_reason: String,
    cancel_deadline: String,
    inputs: Vec<(String, String)>,
    attempt: u32,
    attempts: Vec<(u32, String, bool)>,
    steps: Vec<StepRow>,
    here: String,
    api: String,
    may_read_logs: bool,
    may_write: bool,
    may_maintain: bool,
    /// Other builds of the job, newest first: (number, status, href, this one).
    siblings: Vec<(String, String, String, bool)>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BuildQuery {
    attempt: Option<u32>,
}

/// The steps of `attempt` as a tree, in order: each step after its parent, indented.
pub(crate) fn step_tree(steps: &[StepItem], attempt: u32) -> Vec<StepRow> {
    let steps: Vec<&StepItem> = steps.iter().filter(|s| s.attempt == attempt).collect();
    let row = |step: &StepItem, depth| StepRow {
        index: step.index,
        depth,
        name: step.name.clone(),
        kind: step.kind.clone(),
        status: step.status.clone(),
        duration: duration(step.duration_ms),
    };
    let mut rows = Vec::with_capacity(steps.len());
    // Depth first from the top-level steps; `stack` holds (step, depth) still to show.
    let mut stack: Vec<(&StepItem, usize)> = steps
        .iter()
        .rev()
        .filter(|s| s.parent.is_none())
        .map(|s| (*s, 0))
        .collect();
    while let Some((step, depth)) = stack.pop() {
        rows.push(row(step, depth));
        if depth < 32 {
            let parent = Some(step.index);
            stack.extend(
                steps
                    .iter()
                    .rev()
                    .filter(|s| s.parent == parent)
                    .map(|s| (*s, depth + 1)),
            );
        }
    }
    // Steps whose parent is not among them (a parent of an earlier attempt): at the top.
    for step in &steps {
        if !rows.iter().any(|shown| shown.index == step.index) {
            rows.push(row(step, 0));
        }
    }
    rows
}

/// `GET …/builds/{bn}?attempt=`: the build's step tree with each step's log, and its actions.
pub(crate) async fn build(
    visit: Visit,
    Path(path): Path<BuildPath>,
    Query(query): Query<BuildQuery>,
) -> Result<Response, PageError> {
    let here = build_path(&path.tc, &path.pc, &path.jn, &path.bn);
    let api = format!("/api/v1{here}");
    let build: BuildItem = visit.get(&api).await?;
    let siblings: Vec<BuildItem> = visit
        .get(&format!(
            "/api/v1{}/builds?limit=20",
            job_path(&path.tc, &path.pc, &path.jn)
        ))
        .await?;
    let attempt = query
        .attempt
        .filter(|a| (1..=build.attempt).contains(a))
        .unwrap_or(build.attempt.max(1));
    let row = BuildRow::new(&path.tc, &path.pc, &build);
    let inputs = match &build.inputs {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(name, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (name.clone(), text)
            })
            .collect(),
        _ => Vec::new(),
    };
    let page = BuildPage {
        frame: visit.frame(format!("{} #{}", path.jn, build.number), {
            let mut crumbs = pipeline_crumbs(&path.tc, &path.pc);
            crumbs.push((path.jn.clone(), job_path(&path.tc, &path.pc, &path.jn)));
            crumbs.push((format!("#{}", build.number), here.clone()));
            crumbs
        }),
        job: path.jn.clone(),
        running: !finished(&build.status),
        error: build.error.clone().unwrap_or_default(),
        cause: row.cause,
        created: row.created,
        duration: row.duration,
        pending_reason: build.pending_reason.clone().unwrap_or_default(),
        cancel_deadline: build
            .cancel_deadline
            .as_deref()
            .map(when)
            .unwrap_or_default(),
        inputs,
        attempt,
        attempts: (1..=build.attempt.max(1))
            .map(|a| (a, format!("{here}?attempt={a}"), a == attempt))
            .collect(),
        steps: step_tree(&build.steps, attempt),
        may_read_logs: visit.may(&path.tc, Role::Read),
        may_write: visit.may(&path.tc, Role::Write),
        may_maintain: visit.may(&path.tc, Role::Maintain),
        siblings: siblings
            .iter()
            .map(|b| {
                (
                    b.number.clone(),
                    b.status.clone(),
                    build_path(&path.tc, &path.pc, &path.jn, &b.number),
                    b.number == build.number,
                )
            })
            .collect(),
        status: build.status,
        number: build.number,
        here,
        api,
    };
    Ok(render(&page))
}

// ---- resource ----

/// A version on the resource page.
struct VersionRow {
    id: i64,
    version: String,
    metadata: Vec<(String, String)>,
    created: String,
    pinned: bool,
    builds: Vec<(String, String, String)>,
}

/// The pin, as the resource page says it.
struct PinNote {
    /// The version's id, and its label when it is among those shown.
    version: i64,
    label: String,
    shown: bool,
    by: String,
    at: String,
    comment: String,
}

#[derive(Template)]
#[template(path = "resource.html")]
struct ResourcePage {
    frame: Frame,
    canonical: String,
    type_name: String,
    api: String,
    check_interval: String,
    next_check: String,
    last_check: String,
    last_check_ok: bool,
    last_check_error: String,
    checking: bool,
    pin: Option<PinNote>,
    webhook_url: Option<String>,
    versions: Vec<VersionRow>,
    may_write: bool,
}

/// The versions shown, with the builds that used them.
const VERSIONS_SHOWN: u32 = 25;

/// `GET …/resources/{rc}`: the versions with the builds that used them, pin and unpin, check,
/// and the webhook URL for maintainers.
pub(crate) async fn resource(
    visit: Visit,
    Path(path): Path<ResourcePath>,
) -> Result<Response, PageError> {
    let here = format!(
        "{}/resources/{}",
        pipeline_path(&path.tc, &path.pc),
        segment(&path.rc)
    );
    let api = format!("/api/v1{here}");
    let resource: ResourceItem = visit.get(&api).await?;
    let versions: Vec<VersionItem> = visit
        .get(&format!("{api}/versions?limit={VERSIONS_SHOWN}"))
        .await?;
    let mut rows = Vec::with_capacity(versions.len());
    for version in versions {
        let builds: Vec<BuildItem> = visit
            .get(&format!("{api}/versions/{}/builds?limit=10", version.id))
            .await?;
        rows.push(VersionRow {
            id: version.id,
            version: compact(&version.version),
            metadata: match &version.metadata {
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|item| {
                        (
                            item["name"].as_str().unwrap_or_default().to_owned(),
                            item["value"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect(),
                serde_json::Value::Object(map) => map
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    })
                    .collect(),
                _ => Vec::new(),
            },
            created: when(&version.created_at),
            pinned: version.pinned,
            builds: builds
                .iter()
                .map(|b| {
                    (
                        format!("{} #{}", b.job, b.number),
                        b.status.clone(),
                        build_path(&path.tc, &path.pc, &b.job, &b.number),
                    )
                })
                .collect(),
        });
    }
    let webhook_url = resource
        .webhook_token
        .as_ref()
        .map(|token| format!("{}/api/v1/webhooks/{token}", visit.base_url()));
    let (last_check, last_check_ok, last_check_error) = match &resource.last_check {
        Some(check) => (
            when(&check.finished_at),
            check.succeeded,
            check.error.clone().unwrap_or_default(),
        ),
        None => (String::new(), true, String::new()),
    };
    let pin = resource.pinned_version_id.map(|version| {
        let row = rows.iter().find(|row| row.id == version);
        PinNote {
            version,
            label: row
                .filter(|row| !row.version.is_empty())
                .map_or_else(|| format!("#{version}"), |row| row.version.clone()),
            shown: row.is_some(),
            by: resource.pinned_by.unwrap_or_default(),
            at: resource.pinned_at.as_deref().map(when).unwrap_or_default(),
            comment: resource.pin_comment.unwrap_or_default(),
        }
    });
    let page = ResourcePage {
        frame: visit.frame(resource.canonical.clone(), {
            let mut crumbs = pipeline_crumbs(&path.tc, &path.pc);
            crumbs.push((resource.canonical.clone(), here.clone()));
            crumbs
        }),
        may_write: visit.may(&path.tc, Role::Write),
        type_name: resource.type_name,
        check_interval: resource.check_interval,
        next_check: resource
            .next_check_at
            .as_deref()
            .map(when)
            .unwrap_or_default(),
        last_check,
        last_check_ok,
        last_check_error,
        checking: resource.check_in_progress.is_some_and(|c| !c.is_null()),
        pin,
        webhook_url,
        versions: rows,
        canonical: resource.canonical,
        api,
    };
    Ok(render(&page))
}

/// A version (`{"ref": "abc"}`) as one line: `ref: abc`.
fn compact(version: &serde_json::Value) -> String {
    match version {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}: {}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
