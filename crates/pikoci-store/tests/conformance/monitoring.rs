//! What `/metrics` reads: builds by job and status, the oldest pending build, the checks due,
//! running and lagging, and the statements the store ran.

use pikoci_core::ErrorKind;
use pikoci_core::store::{BuildStatus, CheckGauges, StoreGauges};

use super::resources::{check_claim, claim_one};
use super::{Fixture, at, expect_kind, job, pending, run_to, world};

pub(crate) async fn gauges_count_builds_by_job_and_the_checks(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    assert_eq!(s.gauges(at(0)).await?, StoreGauges::default());
    let w = world(s, "main", vec![job("unit"), job("deploy")]).await?;
    s.create_build(pending(w.job("unit"), 10)).await?;
    run_to(s, "w1", BuildStatus::Succeeded, 20).await?;
    s.create_build(pending(w.job("unit"), 30)).await?;
    s.create_build(pending(w.job("deploy"), 40)).await?;
    s.create_build(pending(w.job("deploy"), 50)).await?;
    let r = w.repo.id;
    s.request_check(r, at(100)).await?;

    let gauges = s.gauges(at(100)).await?;
    let mut builds: Vec<(String, String, String, &str, u64)> = gauges
        .builds
        .iter()
        .map(|count| {
            (
                count.team.clone(),
                count.pipeline.clone(),
                count.job.clone(),
                count.status.as_str(),
                count.count,
            )
        })
        .collect();
    builds.sort();
    let row = |job: &str, status: &'static str, count| {
        (
            "main".to_owned(),
            "ci".to_owned(),
            job.to_owned(),
            status,
            count,
        )
    };
    assert_eq!(
        builds,
        vec![row("deploy", "pending", 2), row("unit", "pending", 1)],
        "finished builds are counted as they finish, not read"
    );
    assert_eq!(s.statistics().finished, vec![(BuildStatus::Succeeded, 1)]);
    assert_eq!(gauges.oldest_pending, Some(at(30)));
    // A paused job's builds wait on purpose, as do a paused pipeline's (whose jobs are paused
    // with it, and may be unpaused on their own).
    s.set_job_paused(w.job("unit"), true).await?;
    assert_eq!(s.gauges(at(100)).await?.oldest_pending, Some(at(40)));
    s.set_pipeline_paused(w.pipeline.id, true).await?;
    s.set_job_paused(w.job("deploy"), false).await?;
    assert_eq!(s.gauges(at(100)).await?.oldest_pending, None);
    assert_eq!(
        gauges.checks,
        CheckGauges {
            due: 1,
            running: 0,
            lagging: 0
        }
    );
    // Due for over 10 s: lagging.
    assert_eq!(s.gauges(at(111)).await?.checks.lagging, 1);
    // Claimed: running until its lease lapses, then due again.
    claim_one(s, &check_claim("w1", 111, 200))
        .await?
        .expect("due");
    assert_eq!(
        s.gauges(at(150)).await?.checks,
        CheckGauges {
            due: 0,
            running: 1,
            lagging: 0
        }
    );
    assert_eq!(
        s.gauges(at(201)).await?.checks,
        CheckGauges {
            due: 1,
            running: 0,
            lagging: 0
        }
    );
    // Lapsed for over 10 s: lagging, though the claim moved its next check an interval on.
    assert_eq!(s.gauges(at(211)).await?.checks.lagging, 1);
    Ok(())
}

pub(crate) async fn statements_and_failures_are_counted(fx: &Fixture) -> anyhow::Result<()> {
    let before = fx.s().statistics();
    fx.s().create_team("main", at(0)).await?;
    let created = fx.s().statistics();
    assert!(
        created.statements > before.statements,
        "{before:?} -> {created:?}"
    );
    assert_eq!(created.failed, before.failed);
    // The second insert breaks the unique name: one failed statement at least.
    expect_kind(fx.s().create_team("main", at(1)).await, ErrorKind::Conflict);
    let refused = fx.s().statistics();
    assert!(
        refused.failed > created.failed,
        "{created:?} -> {refused:?}"
    );
    Ok(())
}
