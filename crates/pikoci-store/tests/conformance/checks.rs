//! Check leases: renewed by heartbeats of the worker that holds them, reclaimed when they
//! lapse (only when the claim allows it), and exclusive workers.

use pikoci_core::model::ResourceRef;
use pikoci_core::store::RunningCheck;

use super::resources::{check_claim, claim_one, outcome};
use super::{Fixture, at, job, model, resource, spec, world};

pub(crate) async fn check_leases_are_renewed_for_their_worker_and_attempt_only(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("unit")]).await?;
    let r = w.repo.id;
    s.request_check(r, at(100)).await?;
    let claimed = claim_one(s, &check_claim("w1", 100, 130))
        .await?
        .expect("due");
    let mine = RunningCheck {
        resource_id: r,
        attempt: claimed.attempt,
    };
    let stale = RunningCheck {
        attempt: claimed.attempt + 6,
        ..mine
    };
    let gone = RunningCheck {
        resource_id: pikoci_core::store::ResourceId(404),
        attempt: 1,
    };
    // Only the holder renews, only at its attempt; a resource that is gone renews nothing.
    assert_eq!(
        s.renew_check_leases("w1", &[mine, stale, gone], at(200))
            .await?,
        vec![mine]
    );
    assert!(
        s.renew_check_leases("w2", &[mine], at(250))
            .await?
            .is_empty()
    );
    let lease = s.resource_by_id(r).await?.check_lease.expect("held");
    assert_eq!(
        (lease.worker_id.as_str(), lease.expires_at),
        ("w1", at(200))
    );
    // Past the claim's own lease, the renewal holds.
    s.request_check(r, at(150)).await?;
    assert!(claim_one(s, &check_claim("w2", 199, 260)).await?.is_none());
    // Lapsed (at 200): not taken by a claim that leaves lapsed checks alone, nor by one that
    // takes only those that lapsed before 200 (the heartbeats were not read further).
    let mut cautious = check_claim("w2", 201, 260);
    cautious.lapsed_before = None;
    assert!(claim_one(s, &cautious).await?.is_none());
    cautious.lapsed_before = Some(at(200));
    assert!(claim_one(s, &cautious).await?.is_none());
    // A late renewal of a lapsed lease that nobody took revives it.
    assert_eq!(
        s.renew_check_leases("w1", &[mine], at(215)).await?,
        vec![mine]
    );
    let again = claim_one(s, &check_claim("w2", 216, 260))
        .await?
        .expect("lapsed");
    assert_eq!(again.attempt, claimed.attempt + 1);
    // The earlier holder renews nothing any more; the new one does, until it finishes.
    assert!(
        s.renew_check_leases("w1", &[mine], at(300))
            .await?
            .is_empty()
    );
    let theirs = RunningCheck {
        resource_id: r,
        attempt: again.attempt,
    };
    assert_eq!(
        s.renew_check_leases("w2", &[theirs], at(300)).await?,
        vec![theirs]
    );
    s.finish_check(r, again.attempt, outcome(220, None)).await?;
    assert!(
        s.renew_check_leases("w2", &[theirs], at(400))
            .await?
            .is_empty()
    );
    assert!(s.resource_by_id(r).await?.check_lease.is_none());
    Ok(())
}

pub(crate) async fn exclusive_workers_skip_untagged_resources(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("unit")]).await?;
    let mut gpu = resource("git", "gpu", "@every 1m");
    gpu.tags = vec!["gpu".into()];
    let other = s
        .set_pipeline(
            w.team.id,
            spec("gpu", "# gpu", model(vec![job("unit")], vec![gpu])),
            at(0),
        )
        .await?;
    let tagged = s
        .resource(
            other.pipeline.id,
            &ResourceRef {
                type_name: "git".into(),
                name: "gpu".into(),
            },
        )
        .await?;
    s.request_check(w.repo.id, at(1)).await?;
    s.request_check(tagged.id, at(2)).await?;
    let mut exclusive = check_claim("w-gpu", 100, 130);
    exclusive.worker_tags = vec!["gpu".into()];
    exclusive.exclusive = true;
    let first = claim_one(s, &exclusive).await?.expect("gpu check");
    assert_eq!(first.resource.id, tagged.id);
    assert!(claim_one(s, &exclusive).await?.is_none());
    // The same worker without --exclusive-tags checks the untagged resource too.
    exclusive.exclusive = false;
    let second = claim_one(s, &exclusive).await?.expect("plain check");
    assert_eq!(second.resource.id, w.repo.id);
    Ok(())
}

/// A pipeline of `count` git resources `r0`, `r1`, … checked every minute; each one's check is
/// made due at second `index` (so `r0` is the most overdue).
pub(crate) async fn due_resources(
    s: &dyn pikoci_core::store::Store,
    count: usize,
) -> anyhow::Result<Vec<pikoci_core::store::ResourceId>> {
    let team = s.create_team("main", at(0)).await?;
    let resources = (0..count)
        .map(|n| resource("git", &format!("r{n}"), "@every 1m"))
        .collect();
    let set = s
        .set_pipeline(
            team.id,
            spec("many", "# many", model(vec![job("unit")], resources)),
            at(0),
        )
        .await?;
    let mut ids = Vec::new();
    for stored in s.resources(set.pipeline.id).await? {
        let index: i64 = stored.model.name.trim_start_matches('r').parse()?;
        s.request_check(stored.id, at(index)).await?;
        ids.push((index, stored.id));
    }
    ids.sort();
    Ok(ids.into_iter().map(|(_, id)| id).collect())
}

pub(crate) async fn due_checks_are_claimed_in_batches_most_overdue_first(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let ids = due_resources(s, 7).await?;
    let claim = check_claim("w1", 100, 130);
    assert!(s.claim_due_checks(&claim, 0).await?.is_empty());
    let first = s.claim_due_checks(&claim, 3).await?;
    let ids_of = |claimed: &[pikoci_core::store::ClaimedCheck]| -> Vec<_> {
        claimed.iter().map(|c| c.resource.id).collect()
    };
    assert_eq!(ids_of(&first), ids[..3].to_vec());
    for claimed in &first {
        assert_eq!(claimed.attempt, 1);
        let lease = claimed.resource.check_lease.as_ref().expect("leased");
        assert_eq!((lease.worker_id.as_str(), lease.attempt), ("w1", 1));
        assert_eq!(claimed.resource.next_check_at, Some(at(160)));
    }
    // A batch larger than what is left takes what is left, then nothing is due.
    let rest = s.claim_due_checks(&check_claim("w2", 100, 130), 10).await?;
    assert_eq!(ids_of(&rest), ids[3..].to_vec());
    assert!(
        s.claim_due_checks(&check_claim("w3", 100, 130), 10)
            .await?
            .is_empty()
    );
    Ok(())
}

pub(crate) async fn late_claims_keep_the_rhythm_of_checks(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("unit")]).await?;
    let r = w.repo.id;
    // Due at 100, claimed 3 s late: the next check is one interval (`@every 1m`) after 100.
    s.request_check(r, at(100)).await?;
    let first = claim_one(s, &check_claim("w1", 103, 130))
        .await?
        .expect("due");
    assert_eq!(first.resource.next_check_at, Some(at(160)));
    s.finish_check(r, first.attempt, outcome(104, None)).await?;
    let second = claim_one(s, &check_claim("w1", 161, 190))
        .await?
        .expect("due");
    assert_eq!(second.resource.next_check_at, Some(at(220)));
    s.finish_check(r, second.attempt, outcome(162, None))
        .await?;
    // Late by more than an interval: one interval after the claim, not a burst of catch-ups.
    let third = claim_one(s, &check_claim("w1", 300, 330))
        .await?
        .expect("due");
    assert_eq!(third.resource.next_check_at, Some(at(360)));
    Ok(())
}
