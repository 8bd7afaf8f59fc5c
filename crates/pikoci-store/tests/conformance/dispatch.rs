//! Claims, concurrency limits, serial groups, leases and requeues.

use pikoci_core::ErrorKind;
use pikoci_core::store::{BuildId, BuildStatus, BuildTransition, RunningBuild, TeamScope};

use super::{Fixture, at, claim, expect_kind, job, pending, transition, world};

pub(crate) async fn claims_take_the_oldest_startable_build(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let mut gpu = job("gpu");
    gpu.tags = vec!["gpu".into()];
    let w = world(s, "main", vec![job("a"), job("b"), gpu]).await?;
    let other = world(s, "other", vec![job("x")]).await?;
    assert!(s.claim_next_pending(&claim("w1", 100)).await?.is_none());
    let b1 = s.create_build(pending(w.job("b"), 1)).await?;
    let g1 = s.create_build(pending(w.job("gpu"), 2)).await?;
    let a1 = s.create_build(pending(w.job("a"), 3)).await?;
    let x1 = s.create_build(pending(other.job("x"), 4)).await?;
    // Paused jobs and pipelines are skipped.
    s.set_job_paused(w.job("b"), true).await?;
    // A worker without the gpu tag skips the gpu job; the oldest other build is a/1.
    let first = s.claim_next_pending(&claim("w1", 100)).await?.expect("a/1");
    assert_eq!(first.id, a1.id);
    assert_eq!(first.status, BuildStatus::Assigned);
    assert_eq!(first.dispatch.attempt, 1);
    assert_eq!(first.dispatch.worker_id.as_deref(), Some("w1"));
    assert_eq!(first.dispatch.lease_expires_at, Some(at(100)));
    assert_eq!(s.build(a1.id).await?, first);
    // Team-scoped workers only see their team.
    let mut theirs = claim("w-other", 100);
    theirs.teams = TeamScope::AllExcept(vec![other.team.id]);
    assert!(s.claim_next_pending(&theirs).await?.is_none());
    theirs.teams = TeamScope::Only(other.team.id);
    assert_eq!(
        s.claim_next_pending(&theirs).await?.map(|b| b.id),
        Some(x1.id)
    );
    let mut tagged = claim("w-gpu", 100);
    tagged.worker_tags = vec!["gpu".into(), "linux".into()];
    assert_eq!(
        s.claim_next_pending(&tagged).await?.map(|b| b.id),
        Some(g1.id)
    );
    assert!(s.claim_next_pending(&claim("w1", 100)).await?.is_none());
    s.set_job_paused(w.job("b"), false).await?;
    s.set_pipeline_paused(w.pipeline.id, true).await?;
    assert!(s.claim_next_pending(&claim("w1", 100)).await?.is_none());
    s.set_pipeline_paused(w.pipeline.id, false).await?;
    assert_eq!(
        s.claim_next_pending(&claim("w1", 100)).await?.map(|b| b.id),
        Some(b1.id)
    );
    assert!(s.claim_next_pending(&claim("w1", 100)).await?.is_none());
    Ok(())
}

pub(crate) async fn claims_respect_concurrency_and_serial_groups(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let mut single = job("single");
    single.concurrency = 1;
    let mut pair = job("pair");
    pair.concurrency = 2;
    let mut deploy_a = job("deploy-a");
    deploy_a.serial_groups = vec!["prod".into()];
    let mut deploy_b = job("deploy-b");
    deploy_b.serial_groups = vec!["staging".into(), "prod".into()];
    let w = world(s, "main", vec![single, pair, deploy_a, deploy_b]).await?;
    let mut singles = Vec::new();
    for secs in 0..3 {
        singles.push(s.create_build(pending(w.job("single"), secs)).await?);
    }
    for secs in 3..6 {
        s.create_build(pending(w.job("pair"), secs)).await?;
    }
    let da = s.create_build(pending(w.job("deploy-a"), 6)).await?;
    let db = s.create_build(pending(w.job("deploy-b"), 7)).await?;
    let mut claimed = Vec::new();
    while let Some(build) = s.claim_next_pending(&claim("w1", 100)).await? {
        claimed.push(build);
    }
    let count = |job| claimed.iter().filter(|b| b.job_id == job).count();
    assert_eq!(count(w.job("single")), 1);
    assert_eq!(count(w.job("pair")), 2);
    assert_eq!(count(w.job("deploy-a")) + count(w.job("deploy-b")), 1);
    assert_eq!(
        claimed
            .iter()
            .find(|b| b.job_id == w.job("single"))
            .map(|b| b.id),
        Some(singles[0].id)
    );
    assert!(claimed.iter().any(|b| b.id == da.id));
    // A started build holds its slot too; a finished one frees it.
    let single = claimed
        .iter()
        .find(|b| b.job_id == w.job("single"))
        .expect("single")
        .clone();
    let started = transition(s, &single, BuildStatus::Assigned, BuildStatus::Started, 10).await?;
    assert!(s.claim_next_pending(&claim("w1", 100)).await?.is_none());
    transition(
        s,
        &started,
        BuildStatus::Started,
        BuildStatus::Succeeded,
        11,
    )
    .await?;
    assert_eq!(
        s.claim_next_pending(&claim("w1", 100)).await?.map(|b| b.id),
        Some(singles[1].id)
    );
    // deploy-b shares `prod` with deploy-a: it waits until deploy-a is done.
    let da = s.build(da.id).await?;
    transition(s, &da, BuildStatus::Assigned, BuildStatus::Failed, 12).await?;
    assert_eq!(
        s.claim_next_pending(&claim("w1", 100)).await?.map(|b| b.id),
        Some(db.id)
    );
    assert!(s.claim_next_pending(&claim("w1", 100)).await?.is_none());
    Ok(())
}

pub(crate) async fn leases_are_renewed_and_lapsed_builds_requeued(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a"), job("b")]).await?;
    let a = s.create_build(pending(w.job("a"), 0)).await?;
    let b = s.create_build(pending(w.job("b"), 1)).await?;
    let claimed_a = s.claim_next_pending(&claim("w1", 30)).await?.expect("a");
    let claimed_b = s.claim_next_pending(&claim("w2", 30)).await?.expect("b");
    assert_eq!((claimed_a.id, claimed_b.id), (a.id, b.id));
    transition(
        s,
        &claimed_a,
        BuildStatus::Assigned,
        BuildStatus::Started,
        5,
    )
    .await?;
    // Only the holder, at the current attempt, renews.
    let running = [
        RunningBuild {
            build_id: a.id,
            attempt: 1,
        },
        RunningBuild {
            build_id: b.id,
            attempt: 1,
        },
        RunningBuild {
            build_id: BuildId(999_999),
            attempt: 1,
        },
    ];
    assert_eq!(s.renew_leases("w1", &running, at(60)).await?, [a.id]);
    let stale = [RunningBuild {
        build_id: b.id,
        attempt: 7,
    }];
    assert!(s.renew_leases("w2", &stale, at(60)).await?.is_empty());
    assert_eq!(s.build(a.id).await?.dispatch.lease_expires_at, Some(at(60)));
    assert_eq!(s.build(b.id).await?.dispatch.lease_expires_at, Some(at(30)));
    // At 45 s only b's lease (until 30 s) has lapsed, but not before 29 s (the heartbeats read
    // so far): it stays.
    assert!(s.requeue_expired(at(29), at(29), 1).await?.is_empty());
    assert!(s.requeue_expired(at(29), at(45), 1).await?.is_empty());
    // Read up to 45 s: it goes back to pending with a new attempt.
    let requeued = s.requeue_expired(at(45), at(45), 1).await?;
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].build_id, b.id);
    assert_eq!(requeued[0].attempt, 1);
    assert_eq!(requeued[0].worker_id.as_deref(), Some("w2"));
    assert_eq!(requeued[0].status, BuildStatus::Pending);
    let back = s.build(b.id).await?;
    assert_eq!(back.status, BuildStatus::Pending);
    assert_eq!((back.dispatch.attempt, back.dispatch.requeues), (2, 1));
    assert_eq!(
        (
            back.dispatch.worker_id.clone(),
            back.dispatch.lease_expires_at
        ),
        (None, None)
    );
    // The lost worker's late events are fenced off.
    let late = BuildTransition {
        action: None,
        build_id: b.id,
        from: vec![
            BuildStatus::Assigned,
            BuildStatus::Started,
            BuildStatus::Pending,
        ],
        to: BuildStatus::Succeeded,
        attempt: Some(1),
        error: None,
        at: at(46),
    };
    expect_kind(s.transition_build(&late).await, ErrorKind::Conflict);
    assert!(s.requeue_expired(at(45), at(45), 1).await?.is_empty());
    // Claimed again, lost again: past `max_requeues` it errors.
    let again = s
        .claim_next_pending(&claim("w3", 50))
        .await?
        .expect("b again");
    assert_eq!((again.id, again.dispatch.attempt), (b.id, 3));
    let errored = s.requeue_expired(at(70), at(70), 1).await?;
    let ids: Vec<BuildId> = errored.iter().map(|r| r.build_id).collect();
    assert_eq!(ids, [a.id, b.id]);
    assert_eq!(errored[0].status, BuildStatus::Pending);
    assert_eq!(errored[1].status, BuildStatus::Errored);
    let dead = s.build(b.id).await?;
    assert_eq!(dead.status, BuildStatus::Errored);
    assert_eq!(dead.finished_at, Some(at(70)));
    assert!(
        dead.error
            .as_deref()
            .unwrap_or_default()
            .contains("lost its worker"),
        "{:?}",
        dead.error
    );
    assert!(s.requeue_expired(at(1000), at(1000), 1).await?.is_empty());
    Ok(())
}

pub(crate) async fn blocked_jobs_never_starve_a_startable_one(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    // 250 jobs whose pending builds are older than the one startable build: 125 need a tag
    // the worker lacks, 125 are at their concurrency limit. A claim must still find it.
    let mut jobs = Vec::new();
    for i in 0..250 {
        let mut blocked = job(&format!("blocked-{i}"));
        if i % 2 == 0 {
            blocked.tags = vec!["gpu".into()];
        } else {
            blocked.concurrency = 1;
        }
        jobs.push(blocked);
    }
    jobs.push(job("free"));
    let w = world(s, "main", jobs).await?;
    for i in (1..250).step_by(2) {
        s.create_build(pending(w.job(&format!("blocked-{i}")), 0))
            .await?;
    }
    let mut tagged = claim("w-gpu", 100);
    tagged.worker_tags = vec!["gpu".into()];
    // The tagged worker fills every concurrency slot first (the oldest builds).
    for _ in 0..125 {
        let held = s.claim_next_pending(&tagged).await?.expect("a slot");
        assert!(s.build(held.id).await?.status.is_active());
    }
    for i in 0..250 {
        s.create_build(pending(w.job(&format!("blocked-{i}")), 1))
            .await?;
    }
    let free = s.create_build(pending(w.job("free"), 2)).await?;
    assert_eq!(
        s.claim_next_pending(&claim("w1", 100)).await?.map(|b| b.id),
        Some(free.id),
        "the startable build behind 250 blocked jobs was not found"
    );
    assert!(s.claim_next_pending(&claim("w1", 100)).await?.is_none());
    Ok(())
}

pub(crate) async fn changed_tags_and_serial_groups_apply_to_the_next_claim(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let mut tagged = job("a");
    tagged.tags = vec!["gpu".into()];
    let w = world(s, "main", vec![tagged, job("b")]).await?;
    let a = s.create_build(pending(w.job("a"), 0)).await?;
    assert!(s.claim_next_pending(&claim("w1", 100)).await?.is_none());
    // The pipeline is set again: `a` loses its tag, `a` and `b` now share a serial group.
    let mut a_job = job("a");
    a_job.serial_groups = vec!["deploy".into(), "deploy".into()];
    let mut b_job = job("b");
    b_job.serial_groups = vec!["deploy".into()];
    s.set_pipeline(
        w.team.id,
        super::spec(
            "ci",
            "",
            super::model(
                vec![a_job, b_job],
                vec![super::resource("git", "repo", "@every 1m")],
            ),
        ),
        at(1),
    )
    .await?;
    let b = s.create_build(pending(w.job("b"), 2)).await?;
    assert_eq!(
        s.claim_next_pending(&claim("w1", 100)).await?.map(|b| b.id),
        Some(a.id)
    );
    // `b` waits for `a`: they share `deploy`.
    assert!(s.claim_next_pending(&claim("w1", 100)).await?.is_none());
    let a = s.build(a.id).await?;
    transition(s, &a, BuildStatus::Assigned, BuildStatus::Succeeded, 3).await?;
    assert_eq!(
        s.claim_next_pending(&claim("w1", 100)).await?.map(|b| b.id),
        Some(b.id)
    );
    Ok(())
}

pub(crate) async fn cancel_deadlines_are_kept_and_found_when_overdue(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a"), job("b"), job("c")]).await?;
    let a = s.create_build(pending(w.job("a"), 0)).await?;
    let b = s.create_build(pending(w.job("b"), 1)).await?;
    let c = s.create_build(pending(w.job("c"), 2)).await?;
    // A pending build is held by no worker: nothing to wait for.
    expect_kind(s.request_cancel(a.id, 0, at(30)).await, ErrorKind::Conflict);
    for _ in 0..3 {
        s.claim_next_pending(&claim("w1", 100))
            .await?
            .expect("a claim");
    }
    let asked = s.request_cancel(a.id, 1, at(30)).await?;
    assert_eq!(asked.dispatch.cancel_deadline, Some(at(30)));
    // Asking again does not give the worker more time; another attempt is a conflict.
    let again = s.request_cancel(a.id, 1, at(90)).await?;
    assert_eq!(again.dispatch.cancel_deadline, Some(at(30)));
    expect_kind(s.request_cancel(a.id, 2, at(30)).await, ErrorKind::Conflict);
    s.request_cancel(b.id, 1, at(40)).await?;
    assert!(s.overdue_cancels(at(29), 10).await?.is_empty());
    let overdue: Vec<BuildId> = s
        .overdue_cancels(at(40), 10)
        .await?
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(overdue, [a.id, b.id]);
    assert_eq!(s.overdue_cancels(at(40), 1).await?.len(), 1);
    // A finished build is no longer overdue.
    let a = s.build(a.id).await?;
    transition(s, &a, BuildStatus::Assigned, BuildStatus::Cancelled, 41).await?;
    let overdue: Vec<BuildId> = s
        .overdue_cancels(at(50), 10)
        .await?
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(overdue, [b.id]);
    // A build whose worker is lost while a cancel waits is cancelled, not run again; the
    // other lost build goes back to pending.
    let lost = s.requeue_expired(at(200), at(200), 3).await?;
    let statuses: Vec<(BuildId, BuildStatus)> =
        lost.iter().map(|r| (r.build_id, r.status)).collect();
    assert_eq!(
        statuses,
        [(b.id, BuildStatus::Cancelled), (c.id, BuildStatus::Pending)]
    );
    let b = s.build(b.id).await?;
    assert_eq!(b.status, BuildStatus::Cancelled);
    assert_eq!(b.finished_at, Some(at(200)));
    assert!(
        b.error.as_deref().unwrap_or_default().contains("cancelled"),
        "{:?}",
        b.error
    );
    assert_eq!(s.build(c.id).await?.dispatch.cancel_deadline, None);
    Ok(())
}
