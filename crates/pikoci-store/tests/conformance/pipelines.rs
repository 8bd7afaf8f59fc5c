//! Teams and pipelines: creation, the diffing update, atomicity, pausing, deletion.

use anyhow::Context as _;
use pikoci_core::ErrorKind;
use pikoci_core::model::ResourceRef;
use pikoci_core::store::{BuildStatus, BuildTransition, LogCursor, NewLogChunk};

use super::{
    Fixture, at, claim, expect_kind, job, model, pending, resource, spec, transition, world,
};

fn reference(type_name: &str, name: &str) -> ResourceRef {
    ResourceRef {
        type_name: type_name.to_owned(),
        name: name.to_owned(),
    }
}

pub(crate) async fn teams_are_unique_and_canonical(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let main = s.create_team("main", at(1)).await?;
    assert_eq!(main.name, "main");
    assert_eq!(main.created_at, at(1));
    let err = expect_kind(s.create_team("main", at(2)).await, ErrorKind::Conflict);
    assert!(err.to_string().contains("main"), "{err}");
    expect_kind(
        s.create_team("Not Canonical", at(2)).await,
        ErrorKind::InvalidInput,
    );
    expect_kind(s.create_team("", at(2)).await, ErrorKind::InvalidInput);
    let ops = s.create_team("ops", at(3)).await?;
    assert_ne!(main.id, ops.id);
    assert_eq!(s.team("main").await?, main);
    assert_eq!(s.team_by_id(ops.id).await?, ops);
    let names: Vec<String> = s.list_teams().await?.into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["main", "ops"]);
    s.delete_team(ops.id).await?;
    expect_kind(s.team("ops").await, ErrorKind::NotFound);
    expect_kind(s.delete_team(ops.id).await, ErrorKind::NotFound);
    Ok(())
}

pub(crate) async fn set_pipeline_creates_everything(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let team = s.create_team("main", at(0)).await?;
    let mut unit = job("unit");
    unit.concurrency = 2;
    unit.tags = vec!["linux".into()];
    let the_model = model(
        vec![unit, job("deploy")],
        vec![
            resource("git", "repo", "@every 1m"),
            resource("cron", "nightly", "0 3 * * *"),
        ],
    );
    let outcome = s
        .set_pipeline(
            team.id,
            spec("ci", "job \"unit\" {}", the_model.clone()),
            at(10),
        )
        .await?;
    assert!(outcome.created);
    assert_eq!(outcome.jobs.added, ["unit", "deploy"]);
    assert_eq!(outcome.resources.added, ["git.repo", "cron.nightly"]);
    assert!(outcome.jobs.updated.is_empty() && outcome.jobs.removed.is_empty());
    let stored = s.pipeline(team.id, "ci").await?;
    assert_eq!(stored, outcome.pipeline);
    assert_eq!(stored.config, "job \"unit\" {}");
    assert_eq!(stored.vars, serde_json::json!({ "env": "test" }));
    assert_eq!(stored.model, the_model);
    assert!(!stored.paused && !stored.public);
    assert_eq!((stored.created_at, stored.updated_at), (at(10), at(10)));
    assert_eq!(s.pipeline_by_id(stored.id).await?, stored);
    assert_eq!(s.list_pipelines(team.id).await?, vec![stored.clone()]);
    let jobs = s.jobs(stored.id).await?;
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["unit", "deploy"]);
    assert_eq!(jobs[0].model, the_model.jobs[0]);
    assert_eq!(jobs[0].position, 0);
    assert!(!jobs[0].paused);
    assert_eq!(s.job(stored.id, "deploy").await?, jobs[1]);
    assert_eq!(s.job_by_id(jobs[0].id).await?, jobs[0]);
    let resources = s.resources(stored.id).await?;
    assert_eq!(resources.len(), 2);
    assert_eq!(resources[0].canonical(), "git.repo");
    assert_eq!(resources[1].model, the_model.resources[1]);
    for r in &resources {
        // D10: a new resource is checked immediately.
        assert_eq!(r.next_check_at, Some(at(10)));
        assert!(r.pinned_version().is_none() && r.last_check.is_none() && r.check_lease.is_none());
    }
    assert_eq!(
        s.resource(stored.id, &reference("cron", "nightly")).await?,
        resources[1]
    );
    expect_kind(
        s.set_pipeline(team.id, spec("Bad Name", "", the_model), at(11))
            .await,
        ErrorKind::InvalidInput,
    );
    Ok(())
}

pub(crate) async fn pipeline_updates_diff_by_name_and_keep_state(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let team = s.create_team("main", at(0)).await?;
    let v1 = model(
        vec![job("unit"), job("lint"), job("old")],
        vec![
            resource("git", "repo", "@every 1m"),
            resource("cron", "nightly", "@every 1h"),
        ],
    );
    let first = s.set_pipeline(team.id, spec("ci", "v1", v1), at(0)).await?;
    let p = first.pipeline.id;
    let unit = s.job(p, "unit").await?;
    let lint = s.job(p, "lint").await?;
    s.set_job_paused(lint.id, true).await?;
    s.create_build(pending(unit.id, 1)).await?;
    let repo = s.resource(p, &reference("git", "repo")).await?;
    let nightly = s.resource(p, &reference("cron", "nightly")).await?;
    let versions = s
        .create_versions(repo.id, &[super::resources::version("a")], at(2))
        .await?;
    s.pin_version(repo.id, Some(versions[0].id), "").await?;
    s.request_check(repo.id, at(500)).await?;
    s.request_check(nightly.id, at(500)).await?;

    let mut unit_v2 = job("unit");
    unit_v2.concurrency = 3;
    let v2 = model(
        vec![job("lint"), unit_v2.clone(), job("new")],
        vec![
            resource("cron", "nightly", "@every 2h"),
            resource("git", "repo", "@every 1m"),
            resource("fs", "dir", "@every 5m"),
        ],
    );
    let second = s
        .set_pipeline(team.id, spec("ci", "v2", v2.clone()), at(100))
        .await?;
    assert!(!second.created);
    assert_eq!(second.pipeline.id, p);
    assert_eq!(second.pipeline.config, "v2");
    assert_eq!(second.pipeline.model, v2);
    assert_eq!(
        (second.pipeline.created_at, second.pipeline.updated_at),
        (at(0), at(100))
    );
    assert_eq!(second.jobs.added, ["new"]);
    assert_eq!(second.jobs.updated, ["lint", "unit"]);
    assert_eq!(second.jobs.removed, ["old"]);
    assert_eq!(second.resources.added, ["fs.dir"]);
    assert_eq!(second.resources.updated, ["cron.nightly", "git.repo"]);
    assert!(second.resources.removed.is_empty());

    // Kept jobs keep their id, builds, numbering and paused flag; their definition changes.
    let unit_after = s.job(p, "unit").await?;
    assert_eq!(unit_after.id, unit.id);
    assert_eq!(unit_after.model, unit_v2);
    assert_eq!(unit_after.position, 1);
    assert!(s.job(p, "lint").await?.paused);
    let next = s.create_build(pending(unit.id, 101)).await?;
    assert_eq!(next.number.to_string(), "2");
    expect_kind(s.job(p, "old").await, ErrorKind::NotFound);
    assert!(!s.job(p, "new").await?.paused);

    // Kept resources keep id, token, pin, versions, and next check unless the interval changed.
    let repo_after = s.resource(p, &reference("git", "repo")).await?;
    assert_eq!(repo_after.id, repo.id);
    assert_eq!(repo_after.webhook_token, repo.webhook_token);
    assert_eq!(repo_after.pinned_version(), Some(versions[0].id));
    assert_eq!(repo_after.next_check_at, Some(at(500)));
    assert_eq!(s.versions(repo.id, None, 0).await?.len(), 1);
    let nightly_after = s.resource(p, &reference("cron", "nightly")).await?;
    assert_eq!(nightly_after.id, nightly.id);
    assert_eq!(nightly_after.next_check_at, Some(at(100)));
    assert_eq!(nightly_after.model.check_interval.spec(), "@every 2h");
    let dir = s.resource(p, &reference("fs", "dir")).await?;
    assert_eq!(dir.next_check_at, Some(at(100)));

    // Dropping a resource deletes it with its versions.
    let v3 = model(
        vec![job("unit")],
        vec![resource("git", "repo", "@every 1m")],
    );
    let third = s
        .set_pipeline(team.id, spec("ci", "v3", v3), at(200))
        .await?;
    assert_eq!(third.resources.removed, ["cron.nightly", "fs.dir"]);
    assert_eq!(third.jobs.removed, ["lint", "new"]);
    expect_kind(s.resource_by_id(nightly.id).await, ErrorKind::NotFound);
    Ok(())
}

pub(crate) async fn failed_update_leaves_the_old_pipeline(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let team = s.create_team("main", at(0)).await?;
    let v1 = model(
        vec![job("unit")],
        vec![resource("git", "repo", "@every 1m")],
    );
    let first = s
        .set_pipeline(team.id, spec("ci", "v1", v1.clone()), at(0))
        .await?;
    let jobs_before = s.jobs(first.pipeline.id).await?;
    let resources_before = s.resources(first.pipeline.id).await?;
    // The new version changes the text, adds a job, and then trips over a duplicate resource:
    // the jobs were already written inside the transaction when it fails.
    let broken = model(
        vec![job("unit"), job("extra")],
        vec![
            resource("git", "repo", "@every 5m"),
            resource("git", "repo", "@every 5m"),
        ],
    );
    let err = s
        .set_pipeline(team.id, spec("ci", "v2", broken), at(50))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::InvalidInput | ErrorKind::Conflict),
        "{err}"
    );
    let after = s.pipeline(team.id, "ci").await?;
    assert_eq!(after.config, "v1");
    assert_eq!(after.model, v1);
    assert_eq!(after.updated_at, at(0));
    assert_eq!(s.jobs(first.pipeline.id).await?, jobs_before);
    assert_eq!(s.resources(first.pipeline.id).await?, resources_before);
    // A failed creation leaves nothing behind either.
    let broken = model(vec![job("a"), job("a")], Vec::new());
    assert!(
        s.set_pipeline(team.id, spec("other", "x", broken), at(60))
            .await
            .is_err()
    );
    expect_kind(s.pipeline(team.id, "other").await, ErrorKind::NotFound);
    assert_eq!(s.list_pipelines(team.id).await?.len(), 1);
    Ok(())
}

pub(crate) async fn pausing_a_pipeline_sets_job_flags(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a"), job("b")]).await?;
    let p = w.pipeline.id;
    s.set_pipeline_paused(p, true).await?;
    assert!(s.pipeline_by_id(p).await?.paused);
    assert!(s.jobs(p).await?.iter().all(|j| j.paused));
    // Setting the pipeline again never changes paused flags.
    let again = model(
        vec![job("a"), job("b")],
        vec![resource("git", "repo", "@every 1m")],
    );
    s.set_pipeline(w.team.id, spec("ci", "again", again), at(5))
        .await?;
    assert!(s.pipeline_by_id(p).await?.paused);
    assert!(s.jobs(p).await?.iter().all(|j| j.paused));
    s.set_pipeline_paused(p, false).await?;
    assert!(s.jobs(p).await?.iter().all(|j| !j.paused));
    s.set_job_paused(w.job("b"), true).await?;
    let flags: Vec<bool> = s.jobs(p).await?.iter().map(|j| j.paused).collect();
    assert_eq!(flags, [false, true]);
    s.set_pipeline_public(p, true).await?;
    assert!(s.pipeline_by_id(p).await?.public);
    s.set_pipeline_public(p, false).await?;
    assert!(!s.pipeline_by_id(p).await?.public);
    Ok(())
}

pub(crate) async fn deleting_removes_everything_below(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("unit")]).await?;
    let versions = s
        .create_versions(w.repo.id, &[super::resources::version("a")], at(1))
        .await?;
    let build = s.create_build(pending(w.job("unit"), 1)).await?;
    s.append_log_chunks(&[NewLogChunk {
        build_id: build.id,
        attempt: 0,
        step: 0,
        seq: 0,
        data: b"hello\n".to_vec(),
        created_at: at(2),
    }])
    .await?;
    s.delete_pipeline(w.pipeline.id).await?;
    expect_kind(s.pipeline_by_id(w.pipeline.id).await, ErrorKind::NotFound);
    expect_kind(s.job_by_id(w.job("unit")).await, ErrorKind::NotFound);
    expect_kind(s.resource_by_id(w.repo.id).await, ErrorKind::NotFound);
    expect_kind(s.version_by_id(versions[0].id).await, ErrorKind::NotFound);
    expect_kind(s.build(build.id).await, ErrorKind::NotFound);
    expect_kind(
        s.resource_by_webhook_token(&w.repo.webhook_token).await,
        ErrorKind::NotFound,
    );
    assert!(s.read_log(build.id, None::<LogCursor>, 0).await?.is_empty());
    expect_kind(s.delete_pipeline(w.pipeline.id).await, ErrorKind::NotFound);

    // Deleting a team takes its pipelines along.
    let w2 = world(s, "other", vec![job("unit")]).await?;
    let b2 = s.create_build(pending(w2.job("unit"), 3)).await?;
    assert_eq!(b2.status, BuildStatus::Pending);
    s.delete_team(w2.team.id).await?;
    expect_kind(s.pipeline_by_id(w2.pipeline.id).await, ErrorKind::NotFound);
    expect_kind(s.build(b2.id).await, ErrorKind::NotFound);
    Ok(())
}

/// The audit log: changes made while someone acts are recorded, with their transaction;
/// pages are read by id, newest first, with filters.
pub(crate) async fn the_audit_log_records_what_someone_does(fx: &Fixture) -> anyhow::Result<()> {
    use pikoci_core::store::audit::{AuditQuery, acting_as, actions};
    let s = fx.s();
    let team = s.create_team("main", at(0)).await?;
    let other = s.create_team("other", at(0)).await?;
    let the_model = model(vec![job("unit")], Vec::new());
    // Nobody acts: nothing is recorded.
    s.set_pipeline(team.id, spec("quiet", "a", the_model.clone()), at(1))
        .await?;
    let all = |limit| AuditQuery {
        limit,
        ..AuditQuery::default()
    };
    assert!(s.audit_entries(team.id, &all(10)).await?.is_empty());
    let ci = acting_as("alice", async {
        let ci = s
            .set_pipeline(team.id, spec("ci", "a", the_model.clone()), at(2))
            .await?
            .pipeline;
        // The same file again is no change.
        s.set_pipeline(team.id, spec("ci", "a", the_model.clone()), at(3))
            .await?;
        s.set_pipeline(team.id, spec("ci", "b", the_model.clone()), at(4))
            .await?;
        s.set_pipeline_paused(ci.id, true).await?;
        anyhow::Ok(ci)
    })
    .await?;
    acting_as("bob", async {
        s.set_pipeline_paused(ci.id, false).await?;
        let unit = s.job(ci.id, "unit").await?;
        s.set_job_paused(unit.id, true).await?;
        s.set_pipeline(other.id, spec("elsewhere", "a", the_model.clone()), at(5))
            .await?;
        s.delete_pipeline(ci.id).await?;
        anyhow::Ok(())
    })
    .await?;
    let entries = s.audit_entries(team.id, &all(10)).await?;
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target_name.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("bob", actions::PIPELINE_DELETED, "ci"),
            ("bob", actions::JOB_PAUSED, "ci/unit"),
            ("bob", actions::PIPELINE_UNPAUSED, "ci"),
            ("alice", actions::PIPELINE_PAUSED, "ci"),
            ("alice", actions::PIPELINE_UPDATED, "ci"),
            ("alice", actions::PIPELINE_CREATED, "ci"),
        ],
        "newest first, this team's only"
    );
    assert!(entries.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(entries[5].pipeline.as_deref(), Some("ci"));
    assert_eq!(entries[5].created_at, at(2));
    // Filters.
    let by = |query: AuditQuery| async move { s.audit_entries(team.id, &query).await };
    let bob = by(AuditQuery {
        user: Some("bob".into()),
        ..all(10)
    })
    .await?;
    assert_eq!(bob.len(), 3);
    let not_bob = by(AuditQuery {
        exclude_user: Some("bob".into()),
        exclude_action: Some(actions::PIPELINE_PAUSED.into()),
        ..all(10)
    })
    .await?;
    assert_eq!(not_bob.len(), 2);
    let paused = by(AuditQuery {
        action: Some(actions::JOB_PAUSED.into()),
        pipeline: Some("ci".into()),
        ..all(10)
    })
    .await?;
    assert_eq!(paused.len(), 1);
    let since = by(AuditQuery {
        since: Some(at(3)),
        until: Some(at(5)),
        ..all(10)
    })
    .await?;
    assert_eq!(since.len(), 1, "the update at 4 only: {since:?}");
    // Pages: two, then the next two older, then newer than the first page's newest.
    let first = s.audit_entries(team.id, &all(2)).await?;
    let second = by(AuditQuery {
        before: Some(first[1].id),
        ..all(2)
    })
    .await?;
    assert_eq!(second[0].id, entries[2].id);
    assert_eq!(second[1].id, entries[3].id);
    let newer = by(AuditQuery {
        after: Some(entries[3].id),
        ..all(2)
    })
    .await?;
    assert_eq!(
        newer.iter().map(|e| e.id).collect::<Vec<_>>(),
        [entries[1].id, entries[2].id],
        "the oldest newer ones, newest first"
    );
    // The other team's log has its own entry; deleting a team deletes its log.
    assert_eq!(s.audit_entries(other.id, &all(10)).await?.len(), 1);
    s.delete_team(other.id).await?;
    assert!(s.audit_entries(other.id, &all(10)).await?.is_empty());
    Ok(())
}

/// The audit log records what users do with builds, resources and a pipeline's name and
/// visibility, once per change, and the memberships a deleted user loses; the same changes
/// made by the server on its own are not recorded.
pub(crate) async fn the_audit_log_records_builds_and_resources(fx: &Fixture) -> anyhow::Result<()> {
    use pikoci_core::store::audit::{AuditQuery, acting_as, actions, on_its_own};
    use pikoci_core::store::{AccountStore, NewUser, Role};
    let s = fx.s();
    let w = world(s, "main", vec![job("unit")]).await?;
    let unit = w.job("unit");
    let mut waiting = pending(unit, 1);
    waiting.status = BuildStatus::WaitingForApproval;
    let approved = s.create_build(waiting.clone()).await?;
    let rejected = s.create_build(waiting).await?;
    let queued = s.create_build(pending(unit, 2)).await?;
    let cancel = |build: &pikoci_core::store::Build, action, error: Option<&str>| BuildTransition {
        action,
        build_id: build.id,
        from: vec![build.status],
        to: BuildStatus::Cancelled,
        attempt: None,
        error: error.map(str::to_owned),
        at: at(3),
    };
    let versions = s
        .create_versions(w.repo.id, &[super::resources::version("a")], at(2))
        .await?;
    // The server on its own: a transition with no action, a check nobody asked for.
    s.request_check(w.repo.id, at(2)).await?;
    acting_as("alice", async {
        s.set_pipeline_public(w.pipeline.id, true).await?;
        // Exposing it again is no change.
        s.set_pipeline_public(w.pipeline.id, true).await?;
        s.set_pipeline_public(w.pipeline.id, false).await?;
        s.record_approval(approved.id, "alice", at(3)).await?;
        // A second vote of the same user is not a second approval.
        s.record_approval(approved.id, "alice", at(4)).await?;
        s.transition_build(&cancel(
            &rejected,
            Some(actions::BUILD_REJECTED),
            Some("rejected by alice: not today"),
        ))
        .await?;
        s.transition_build(&cancel(&queued, Some(actions::JOB_CANCELLED), None))
            .await?;
        s.retry_build(queued.id, at(5)).await?;
        s.pin_version(w.repo.id, Some(versions[0].id), "until the fix lands")
            .await?;
        s.pin_version(w.repo.id, None, "fixed").await?;
        s.request_check(w.repo.id, at(6)).await?;
        // What follows from an action without being it.
        on_its_own(s.request_check(w.repo.id, at(6))).await?;
        s.rename_pipeline(w.pipeline.id, "renamed", &[]).await?;
        anyhow::Ok(())
    })
    .await?;
    // The retry, running, is cancelled by hand, then marked as a warning once failed.
    let claimed = s
        .claim_next_pending(&claim("w1", 100))
        .await?
        .context("nothing to claim")?;
    let running = claimed.clone();
    let started = transition(s, &claimed, BuildStatus::Assigned, BuildStatus::Started, 8).await?;
    acting_as("bob", async {
        s.request_cancel(running.id, started.dispatch.attempt, at(40))
            .await?;
        // Asking again changes nothing.
        s.request_cancel(running.id, started.dispatch.attempt, at(50))
            .await?;
        anyhow::Ok(())
    })
    .await?;
    let failed = transition(s, &started, BuildStatus::Started, BuildStatus::Failed, 9).await?;
    acting_as("bob", async {
        s.transition_build(&BuildTransition {
            action: Some(actions::BUILD_MARKED_WARNING),
            build_id: failed.id,
            from: vec![BuildStatus::Failed],
            to: BuildStatus::Warning,
            attempt: None,
            error: None,
            at: at(9),
        })
        .await
    })
    .await?;
    // A deleted user's memberships end in the log of each team.
    let accounts: &dyn AccountStore = &fx.sql;
    let carol = accounts
        .create_user(
            NewUser {
                name: "carol".into(),
                full_name: String::new(),
                password_hash: None,
                admin: false,
                must_change_password: false,
            },
            at(10),
        )
        .await?;
    accounts
        .set_member(w.team.id, carol.id, Role::Write, at(10))
        .await?;
    acting_as("dave", accounts.delete_user(carol.id)).await?;

    let entries = s
        .audit_entries(
            w.team.id,
            &AuditQuery {
                limit: 50,
                ..AuditQuery::default()
            },
        )
        .await?;
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .rev()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target_name.as_str()))
        .collect();
    let approved_name = format!("ci/unit/{}", approved.number);
    let rejected_name = format!("ci/unit/{}", rejected.number);
    let warned_name = format!("renamed/unit/{}", failed.number);
    assert_eq!(
        seen,
        [
            ("alice", actions::PIPELINE_EXPOSED, "ci"),
            ("alice", actions::PIPELINE_HIDDEN, "ci"),
            ("alice", actions::BUILD_APPROVED, approved_name.as_str()),
            ("alice", actions::BUILD_REJECTED, rejected_name.as_str()),
            ("alice", actions::JOB_CANCELLED, "ci/unit"),
            ("alice", actions::JOB_RETRIED, "ci/unit"),
            ("alice", actions::RESOURCE_PINNED, "ci/git.repo"),
            ("alice", actions::RESOURCE_UNPINNED, "ci/git.repo"),
            ("alice", actions::RESOURCE_CHECK_TRIGGERED, "ci/git.repo"),
            ("alice", actions::PIPELINE_RENAMED, "renamed"),
            ("bob", actions::JOB_CANCELLED, "renamed/unit"),
            ("bob", actions::BUILD_MARKED_WARNING, warned_name.as_str()),
            ("dave", actions::MEMBER_REMOVED, "carol"),
        ]
    );
    let details = |i: usize| &entries[entries.len() - 1 - i].details;
    assert_eq!(details(3)["reason"], "rejected by alice: not today");
    assert_eq!(details(4)["build"], queued.number.to_string());
    assert_eq!(details(5)["build"], queued.number.to_string());
    assert_eq!(details(5)["retry"], format!("{}.1", queued.number));
    assert_eq!(details(6)["version"], versions[0].id.0);
    assert_eq!(details(6)["comment"], "until the fix lands");
    assert_eq!(details(7)["comment"], "fixed");
    assert_eq!(details(9)["from"], "ci");
    assert_eq!(details(12)["role"], "write");
    assert_eq!(details(12)["user_deleted"], true);
    Ok(())
}
