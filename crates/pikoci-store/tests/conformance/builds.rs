//! Builds: numbering, retries, conditional transitions, steps, listing.

use pikoci_core::ErrorKind;
use pikoci_core::store::{
    BuildFilter, BuildId, BuildNumber, BuildStatus, BuildStep, BuildTransition, BuildTrigger,
    BuildVersion, NewBuild, StepStatus, VersionUse,
};
use serde_json::json;

use super::{Fixture, at, claim, expect_kind, job, pending, run_to, transition, world};

pub(crate) async fn builds_are_numbered_per_job_and_retries_nest(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let mut locked = job("locked");
    locked.disable_retry = true;
    let w = world(s, "main", vec![job("a"), job("b"), locked]).await?;
    let versions = s
        .create_versions(w.repo.id, &[super::resources::version("x")], at(0))
        .await?;
    let trigger = BuildTrigger {
        resource_id: w.repo.id,
        version_id: versions[0].id,
    };
    let mut numbers = Vec::new();
    for secs in 1..=3 {
        let build = s
            .create_build(NewBuild {
                inputs: json!({ "n": secs }),
                trigger: Some(trigger),
                ..pending(w.job("a"), secs)
            })
            .await?;
        numbers.push(build.number.to_string());
    }
    assert_eq!(numbers, ["1", "2", "3"]);
    let b1 = s.create_build(pending(w.job("b"), 4)).await?;
    assert_eq!(b1.number, BuildNumber::new(1));
    assert_eq!((b1.pipeline_id, b1.team_id), (w.pipeline.id, w.team.id));
    // Finish a/1, a/2 and a/3 (oldest first), then retry a/3.
    for secs in [10, 20, 30] {
        run_to(s, "w", BuildStatus::Failed, secs).await?;
    }
    run_to(s, "w", BuildStatus::Succeeded, 40).await?; // b/1
    let three = s.build_by_number(w.job("a"), BuildNumber::new(3)).await?;
    assert_eq!(three.status, BuildStatus::Failed);
    let r1 = s.retry_build(three.id, at(50)).await?;
    assert_eq!(r1.number.to_string(), "3.1");
    assert_eq!(
        (r1.status, r1.retry_of),
        (BuildStatus::Pending, Some(three.id))
    );
    assert_eq!(r1.inputs, json!({ "n": 3 }));
    assert_eq!(r1.trigger, Some(trigger));
    assert_eq!(r1.created_at, at(50));
    // A retry must wait for the build to finish.
    let err = expect_kind(s.retry_build(r1.id, at(51)).await, ErrorKind::InvalidInput);
    assert!(err.to_string().contains("pending"), "{err}");
    let r1 = run_to(s, "w", BuildStatus::Cancelled, 52).await?;
    // Retrying a retry continues the same parent: 3.2, never 3.1.1.
    let r2 = s.retry_build(r1.id, at(60)).await?;
    assert_eq!(r2.number.to_string(), "3.2");
    assert_eq!(r2.retry_of, Some(three.id));
    run_to(s, "w", BuildStatus::Succeeded, 61).await?;
    let r3 = s.retry_build(three.id, at(70)).await?;
    assert_eq!(
        r3.number,
        "3.3".parse::<BuildNumber>().map_err(anyhow::Error::msg)?
    );
    // Retries do not use up main numbers.
    assert_eq!(
        s.create_build(pending(w.job("a"), 80))
            .await?
            .number
            .to_string(),
        "4"
    );
    assert_eq!(
        s.build_by_number(w.job("a"), "3.2".parse().map_err(anyhow::Error::msg)?)
            .await?
            .id,
        r2.id
    );
    expect_kind(
        s.build_by_number(w.job("a"), BuildNumber::new(99)).await,
        ErrorKind::NotFound,
    );
    // `disable_retry` forbids retries.
    s.create_build(pending(w.job("locked"), 90)).await?;
    // a/3.3 and a/4 are older: run them first.
    run_to(s, "w", BuildStatus::Failed, 91).await?;
    run_to(s, "w", BuildStatus::Failed, 92).await?;
    let locked_build = run_to(s, "w", BuildStatus::Failed, 93).await?;
    assert_eq!(locked_build.job_id, w.job("locked"));
    let err = expect_kind(
        s.retry_build(locked_build.id, at(94)).await,
        ErrorKind::InvalidInput,
    );
    assert!(err.to_string().contains("disable_retry"), "{err}");
    expect_kind(
        s.retry_build(BuildId(999_999), at(95)).await,
        ErrorKind::NotFound,
    );
    let started = NewBuild {
        status: BuildStatus::Started,
        ..pending(w.job("a"), 96)
    };
    expect_kind(s.create_build(started).await, ErrorKind::InvalidInput);
    let gated = NewBuild {
        status: BuildStatus::WaitingForApproval,
        ..pending(w.job("a"), 97)
    };
    assert_eq!(
        s.create_build(gated).await?.status,
        BuildStatus::WaitingForApproval
    );
    Ok(())
}

pub(crate) async fn status_transitions_are_conditional(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a")]).await?;
    let build = s.create_build(pending(w.job("a"), 1)).await?;
    assert_eq!(build.dispatch.attempt, 0);
    let err = expect_kind(
        transition(s, &build, BuildStatus::Assigned, BuildStatus::Started, 2).await,
        ErrorKind::Conflict,
    );
    assert!(err.to_string().contains("pending"), "{err}");
    assert_eq!(s.build(build.id).await?.status, BuildStatus::Pending);
    let claimed = s
        .claim_next_pending(&claim("w1", 100))
        .await?
        .expect("pending");
    assert_eq!(claimed.id, build.id);
    let start = |attempt| BuildTransition {
        action: None,
        build_id: build.id,
        from: vec![BuildStatus::Assigned],
        to: BuildStatus::Started,
        attempt: Some(attempt),
        error: None,
        at: at(3),
    };
    // An event from another attempt is stale.
    expect_kind(s.transition_build(&start(2)).await, ErrorKind::Conflict);
    let started = s.transition_build(&start(1)).await?;
    assert_eq!(started.status, BuildStatus::Started);
    assert_eq!(started.started_at, Some(at(3)));
    assert!(started.finished_at.is_none());
    // A duplicate of the same event is harmless: it fails cleanly and changes nothing.
    expect_kind(s.transition_build(&start(1)).await, ErrorKind::Conflict);
    let finish = BuildTransition {
        action: None,
        build_id: build.id,
        from: vec![BuildStatus::Assigned, BuildStatus::Started],
        to: BuildStatus::Failed,
        attempt: Some(1),
        error: Some("task \"unit\" exited with status 2".into()),
        at: at(9),
    };
    let failed = s.transition_build(&finish).await?;
    assert_eq!(failed.status, BuildStatus::Failed);
    assert_eq!(failed.finished_at, Some(at(9)));
    assert_eq!(
        failed.error.as_deref(),
        Some("task \"unit\" exited with status 2")
    );
    assert_eq!(failed.dispatch.lease_expires_at, None);
    assert_eq!(failed.dispatch.worker_id.as_deref(), Some("w1"));
    let cancel = BuildTransition {
        action: None,
        to: BuildStatus::Cancelled,
        error: None,
        attempt: None,
        ..finish.clone()
    };
    expect_kind(s.transition_build(&cancel).await, ErrorKind::Conflict);
    assert_eq!(s.build(build.id).await?, failed);
    expect_kind(
        s.transition_build(&BuildTransition {
            action: None,
            build_id: BuildId(999_999),
            ..finish.clone()
        })
        .await,
        ErrorKind::NotFound,
    );
    expect_kind(
        s.transition_build(&BuildTransition {
            action: None,
            from: Vec::new(),
            ..finish
        })
        .await,
        ErrorKind::InvalidInput,
    );
    // Approval: waiting_for_approval -> pending, and only once.
    let gated = s
        .create_build(NewBuild {
            status: BuildStatus::WaitingForApproval,
            ..pending(w.job("a"), 20)
        })
        .await?;
    assert!(s.claim_next_pending(&claim("w1", 100)).await?.is_none());
    let approved = transition(
        s,
        &gated,
        BuildStatus::WaitingForApproval,
        BuildStatus::Pending,
        21,
    )
    .await?;
    assert_eq!(approved.status, BuildStatus::Pending);
    expect_kind(
        transition(
            s,
            &gated,
            BuildStatus::WaitingForApproval,
            BuildStatus::Cancelled,
            22,
        )
        .await,
        ErrorKind::Conflict,
    );
    Ok(())
}

pub(crate) async fn steps_are_recorded_per_attempt_and_fenced(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a")]).await?;
    let build = s.create_build(pending(w.job("a"), 1)).await?;
    let claimed = s
        .claim_next_pending(&claim("w1", 100))
        .await?
        .expect("pending");
    assert_eq!(claimed.dispatch.attempt, 1);
    let step = |index: u32, status, started: Option<i64>, finished: Option<i64>| BuildStep {
        attempt: 1,
        step: index,
        name: format!("step-{index}"),
        kind: "task".into(),
        status,
        started_at: started.map(at),
        finished_at: finished.map(at),
        parent: None,
    };
    s.record_step(build.id, &step(1, StepStatus::Started, Some(5), None))
        .await?;
    s.record_step(build.id, &step(0, StepStatus::Started, Some(2), None))
        .await?;
    // The finish event carries no start time: the recorded one stays.
    s.record_step(build.id, &step(0, StepStatus::Succeeded, None, Some(4)))
        .await?;
    let steps = s.build_steps(build.id).await?;
    assert_eq!(
        steps,
        vec![
            step(0, StepStatus::Succeeded, Some(2), Some(4)),
            step(1, StepStatus::Started, Some(5), None)
        ]
    );
    assert_eq!(steps[0].duration(), Some(chrono::Duration::seconds(2)));
    assert_eq!(steps[1].duration(), None);
    // A step from another attempt is fenced off.
    let mut stale = step(2, StepStatus::Started, Some(6), None);
    stale.attempt = 0;
    expect_kind(s.record_step(build.id, &stale).await, ErrorKind::Conflict);
    assert_eq!(s.build_steps(build.id).await?.len(), 2);
    expect_kind(
        s.record_step(BuildId(999_999), &stale).await,
        ErrorKind::NotFound,
    );
    Ok(())
}

pub(crate) async fn list_builds_filters_and_pages(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a"), job("b")]).await?;
    let mut a = Vec::new();
    for secs in 0..5 {
        a.push(s.create_build(pending(w.job("a"), secs)).await?.id);
    }
    let b = s.create_build(pending(w.job("b"), 10)).await?.id;
    run_to(s, "w", BuildStatus::Succeeded, 20).await?; // a/1
    let ids = |builds: Vec<pikoci_core::store::Build>| {
        builds.into_iter().map(|b| b.id).collect::<Vec<_>>()
    };
    let all = s.list_builds(&BuildFilter::default()).await?;
    assert_eq!(ids(all), [b, a[4], a[3], a[2], a[1], a[0]]);
    let of_a = s
        .list_builds(&BuildFilter {
            job_id: Some(w.job("a")),
            limit: 2,
            ..BuildFilter::default()
        })
        .await?;
    assert_eq!(ids(of_a), [a[4], a[3]]);
    let page = s
        .list_builds(&BuildFilter {
            job_id: Some(w.job("a")),
            before: Some(a[3]),
            limit: 2,
            ..BuildFilter::default()
        })
        .await?;
    assert_eq!(ids(page), [a[2], a[1]]);
    let recent = s
        .list_builds(&BuildFilter {
            job_id: Some(w.job("a")),
            since: Some(at(3)),
            ..BuildFilter::default()
        })
        .await?;
    assert_eq!(ids(recent), [a[4], a[3]]);
    let done = s
        .list_builds(&BuildFilter {
            pipeline_id: Some(w.pipeline.id),
            statuses: vec![BuildStatus::Succeeded, BuildStatus::Failed],
            ..BuildFilter::default()
        })
        .await?;
    assert_eq!(ids(done), [a[0]]);
    Ok(())
}

pub(crate) async fn builds_and_retries_record_their_versions_with_them(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a")]).await?;
    let v = s
        .create_versions(
            w.repo.id,
            &[
                super::resources::version("x"),
                super::resources::version("y"),
            ],
            at(0),
        )
        .await?;
    let used = |version: usize, usage| BuildVersion {
        resource_id: w.repo.id,
        version_id: v[version].id,
        step_name: "repo".into(),
        usage,
    };
    let build = s
        .create_build(NewBuild {
            versions: vec![used(0, VersionUse::Get)],
            ..pending(w.job("a"), 1)
        })
        .await?;
    assert_eq!(
        s.build_versions(build.id).await?,
        [used(0, VersionUse::Get)]
    );
    // A put records what it produced; the retry takes only what the gets used.
    s.record_build_versions(build.id, &[used(1, VersionUse::Put)])
        .await?;
    let done = run_to(s, "w1", BuildStatus::Failed, 2).await?;
    assert_eq!(done.id, build.id);
    let retry = s.retry_build(done.id, at(3)).await?;
    assert_eq!(
        s.build_versions(retry.id).await?,
        [used(0, VersionUse::Get)]
    );
    // Automatic builds: one per set of get versions (puts do not count): the second creation
    // returns the first build. People's builds are not limited.
    let automatic = |version| NewBuild {
        versions: vec![used(version, VersionUse::Get), used(1, VersionUse::Put)],
        once_per_versions: true,
        ..pending(w.job("a"), 4)
    };
    let first = s.create_build(automatic(0)).await?;
    assert_eq!(s.create_build(automatic(0)).await?.id, first.id);
    s.create_build(automatic(1)).await?;
    s.create_build(NewBuild {
        once_per_versions: false,
        ..automatic(0)
    })
    .await?;
    let numbers: Vec<String> = s
        .list_builds(&BuildFilter {
            job_id: Some(w.job("a")),
            ..BuildFilter::default()
        })
        .await?
        .iter()
        .map(|b| b.number.to_string())
        .collect();
    assert_eq!(numbers, ["4", "3", "2", "1.1", "1"]);
    // Where a version went: the builds that got it or put it.
    let users = |version: usize| {
        let filter = BuildFilter {
            used_version: Some(v[version].id),
            ..BuildFilter::default()
        };
        async move {
            s.list_builds(&filter).await.map(|builds| {
                builds
                    .iter()
                    .map(|b| b.number.to_string())
                    .collect::<Vec<_>>()
            })
        }
    };
    assert_eq!(users(0).await?, ["4", "2", "1.1", "1"]);
    assert_eq!(users(1).await?, ["4", "3", "2", "1"]);
    Ok(())
}
