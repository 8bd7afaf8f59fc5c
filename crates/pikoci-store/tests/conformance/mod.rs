//! The `Store` conformance suite: generic async tests that every backend must pass. A test
//! target calls `conformance_suite!(open)` with a function `open(test_name) -> Fixture` that
//! gives each test a fresh, empty, migrated database.

pub(crate) mod accounts;
pub(crate) mod builds;
pub(crate) mod checks;
pub(crate) mod concurrency;
pub(crate) mod dispatch;
pub(crate) mod logs;
pub(crate) mod migrations;
pub(crate) mod monitoring;
pub(crate) mod pipelines;
pub(crate) mod resources;
pub(crate) mod secrets;
pub(crate) mod server;
pub(crate) mod transfer;

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use pikoci_core::ErrorKind;
use pikoci_core::model::{GetStep, Job, Pipeline, Resource, ResourceRef, Step, StepKind};
use pikoci_core::schedule::CheckInterval;
use pikoci_core::store::{
    Build, BuildStatus, BuildTransition, ClaimRequest, JobId, NewBuild, PipelineSpec, Store,
    StoreError, StoreResult, StoredJob, StoredPipeline, StoredResource, Team, TeamScope,
};
use pikoci_store::SqlStore;

/// One test's database.
pub(crate) struct Fixture {
    /// The store under test.
    pub(crate) sql: SqlStore,
    /// The same store behind the trait, as the server holds it.
    pub(crate) store: Arc<dyn Store>,
    /// The URL it was opened with, when it can be opened again (`None` for `mem`).
    pub(crate) reopen_url: Option<String>,
    /// Keeps a temporary directory alive for the test's duration.
    pub(crate) _guard: Option<tempfile::TempDir>,
}

impl Fixture {
    /// Opens `url` (creating and migrating the database) for one test.
    pub(crate) async fn open(
        url: &str,
        reopenable: bool,
        guard: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Fixture> {
        let sql = pikoci_store::connect(url)
            .await
            .with_context(|| format!("failed to open the test database {url}"))?;
        Ok(Fixture {
            store: Arc::new(sql.clone()),
            sql,
            reopen_url: reopenable.then(|| url.to_owned()),
            _guard: guard,
        })
    }

    /// The store, as `&dyn Store`.
    pub(crate) fn s(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

/// Expands to one `#[tokio::test]` per conformance test, each on a fresh database from `$open`.
macro_rules! conformance_suite {
    ($open:path) => {
        conformance_suite!(@tests $open;
            migrations::migrations_create_the_schema_and_rerun_as_no_op,
            migrations::errors_name_the_missing_thing,
            accounts::users_are_unique_and_the_last_admin_is_kept,
            accounts::teams_keep_an_admin_and_tokens_go_with_membership,
            accounts::sessions_end_with_a_password_change_or_their_user,
            accounts::worker_keys_are_made_once_replaced_and_go_with_their_team,
            accounts::identities_are_linked_once_and_nobody_is_locked_out,
            pipelines::teams_are_unique_and_canonical,
            pipelines::set_pipeline_creates_everything,
            pipelines::the_audit_log_records_what_someone_does,
            pipelines::the_audit_log_records_builds_and_resources,
            pipelines::pipeline_updates_diff_by_name_and_keep_state,
            pipelines::failed_update_leaves_the_old_pipeline,
            pipelines::pausing_a_pipeline_sets_job_flags,
            pipelines::deleting_removes_everything_below,
            resources::webhook_tokens_are_random_and_regenerable,
            resources::create_versions_deduplicates_and_keeps_order,
            resources::pins_accept_only_own_versions,
            resources::pins_keep_their_comment_author_and_time,
            resources::checks_are_claimed_once_and_fenced,
            checks::check_leases_are_renewed_for_their_worker_and_attempt_only,
            checks::exclusive_workers_skip_untagged_resources,
            checks::due_checks_are_claimed_in_batches_most_overdue_first,
            checks::late_claims_keep_the_rhythm_of_checks,
            resources::passed_versions_follow_successful_upstream_builds,
            resources::trigger_events_are_team_scoped_streams,
            resources::heartbeats_register_and_update_workers,
            builds::builds_are_numbered_per_job_and_retries_nest,
            builds::status_transitions_are_conditional,
            builds::steps_are_recorded_per_attempt_and_fenced,
            builds::list_builds_filters_and_pages,
            builds::builds_and_retries_record_their_versions_with_them,
            dispatch::claims_take_the_oldest_startable_build,
            dispatch::claims_respect_concurrency_and_serial_groups,
            dispatch::leases_are_renewed_and_lapsed_builds_requeued,
            dispatch::blocked_jobs_never_starve_a_startable_one,
            dispatch::changed_tags_and_serial_groups_apply_to_the_next_claim,
            dispatch::cancel_deadlines_are_kept_and_found_when_overdue,
            concurrency::concurrent_claimers_never_share_a_build,
            concurrency::concurrent_check_claimers_never_share_a_check,
            concurrency::concurrent_version_inserts_report_each_version_once,
            concurrency::concurrent_build_creation_numbers_without_gaps,
            logs::log_chunks_are_idempotent_ordered_and_resumable,
            logs::retention_deletes_old_logs_and_builds,
            server::step_statuses_never_go_back,
            server::exclusive_workers_skip_untagged_jobs,
            server::versions_are_found_by_value,
            server::trigger_events_are_added_once_per_key,
            server::approvals_count_each_voter_once,
            secrets::secret_entries_are_scoped_replaced_and_deleted,
            secrets::renaming_a_pipeline_reseals_its_secrets_in_one_go,
            transfer::export_then_import_brings_everything_back,
            transfer::an_export_imports_into_an_empty_store,
            monitoring::gauges_count_builds_by_job_and_the_checks,
            monitoring::statements_and_failures_are_counted,
        );
    };
    (@tests $open:path; $($module:ident :: $test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() -> anyhow::Result<()> {
                let fixture = $open(stringify!($test)).await?;
                crate::conformance::$module::$test(&fixture).await
            }
        )*
    };
}
pub(crate) use conformance_suite;

/// A fixed point in time plus `secs` seconds (stored times have millisecond precision).
pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("valid time") + Duration::seconds(secs)
}

/// A job with a trigger on `git.repo` and the given attributes.
pub(crate) fn job(name: &str) -> Job {
    Job {
        plan: vec![Step::new(StepKind::Get(GetStep {
            resource: ResourceRef {
                type_name: "git".to_owned(),
                name: "repo".to_owned(),
            },
            trigger: true,
            passed: Vec::new(),
        }))],
        ..Job::new(name)
    }
}

/// A resource checked on `interval`.
pub(crate) fn resource(type_name: &str, name: &str, interval: &str) -> Resource {
    Resource {
        type_name: type_name.to_owned(),
        name: name.to_owned(),
        params: [("uri".to_owned(), format!("https://example.com/{name}.git"))].into(),
        check_interval: CheckInterval::parse(interval).expect("valid interval"),
        tags: Vec::new(),
        cache: None,
    }
}

/// A pipeline model with these jobs and resources.
pub(crate) fn model(jobs: Vec<Job>, resources: Vec<Resource>) -> Pipeline {
    Pipeline {
        jobs,
        resources,
        ..Pipeline::default()
    }
}

/// A pipeline spec.
pub(crate) fn spec(name: &str, config: &str, model: Pipeline) -> PipelineSpec {
    PipelineSpec {
        name: name.to_owned(),
        config: config.to_owned(),
        vars: serde_json::json!({ "env": "test" }),
        model,
    }
}

/// A team with one pipeline holding these jobs and the `git.repo` resource.
pub(crate) struct World {
    pub(crate) team: Team,
    pub(crate) pipeline: StoredPipeline,
    pub(crate) jobs: Vec<StoredJob>,
    pub(crate) repo: StoredResource,
}

impl World {
    /// The stored job with this name.
    pub(crate) fn job(&self, name: &str) -> JobId {
        self.jobs
            .iter()
            .find(|j| j.name == name)
            .unwrap_or_else(|| panic!("no job {name}"))
            .id
    }
}

/// Sets up a team `team` with a pipeline `ci` of these jobs and the resource `git.repo`.
pub(crate) async fn world(store: &dyn Store, team: &str, jobs: Vec<Job>) -> anyhow::Result<World> {
    let team = store.create_team(team, at(0)).await?;
    let outcome = store
        .set_pipeline(
            team.id,
            spec(
                "ci",
                "# ci",
                model(jobs, vec![resource("git", "repo", "@every 1m")]),
            ),
            at(0),
        )
        .await?;
    let jobs = store.jobs(outcome.pipeline.id).await?;
    let repo = store
        .resource(
            outcome.pipeline.id,
            &ResourceRef {
                type_name: "git".into(),
                name: "repo".into(),
            },
        )
        .await?;
    Ok(World {
        team,
        pipeline: outcome.pipeline,
        jobs,
        repo,
    })
}

/// A pending build of `job` with no inputs.
pub(crate) fn pending(job: JobId, secs: i64) -> NewBuild {
    NewBuild {
        job_id: job,
        status: BuildStatus::Pending,
        inputs: serde_json::Value::Null,
        trigger: None,
        versions: Vec::new(),
        once_per_versions: false,
        created_at: at(secs),
    }
}

/// A claim for worker `w` with no tags, any team, a lease until `at(lease)`.
pub(crate) fn claim(worker: &str, lease: i64) -> ClaimRequest {
    ClaimRequest {
        worker_id: worker.to_owned(),
        worker_tags: Vec::new(),
        teams: TeamScope::All,
        exclusive: false,
        lease_until: at(lease),
    }
}

/// Moves a build through `from -> to` for `attempt` at `at(secs)`.
pub(crate) async fn transition(
    store: &dyn Store,
    build: &Build,
    from: BuildStatus,
    to: BuildStatus,
    secs: i64,
) -> StoreResult<Build> {
    store
        .transition_build(&BuildTransition {
            action: None,
            build_id: build.id,
            from: vec![from],
            to,
            attempt: None,
            error: None,
            at: at(secs),
        })
        .await
}

/// Claims `build`'s job's next build for worker `w`, starts it and finishes it with `status`.
pub(crate) async fn run_to(
    store: &dyn Store,
    worker: &str,
    status: BuildStatus,
    secs: i64,
) -> anyhow::Result<Build> {
    let claimed = store
        .claim_next_pending(&claim(worker, secs + 60))
        .await?
        .context("nothing to claim")?;
    let started = transition(
        store,
        &claimed,
        BuildStatus::Assigned,
        BuildStatus::Started,
        secs,
    )
    .await?;
    Ok(transition(store, &started, BuildStatus::Started, status, secs + 1).await?)
}

/// Asserts that `result` failed with `kind`, and returns the error.
pub(crate) fn expect_kind<T: std::fmt::Debug>(
    result: StoreResult<T>,
    kind: ErrorKind,
) -> StoreError {
    match result {
        Ok(value) => panic!("expected a {kind} error, got {value:?}"),
        Err(err) => {
            assert_eq!(err.kind(), kind, "unexpected error: {err}");
            err
        }
    }
}
