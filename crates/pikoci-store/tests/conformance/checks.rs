//! Check leases: renewed by heartbeats of the worker that holds them, reclaimed when they
//! lapse (only when the claim allows it), and exclusive workers.

use pikoci_core::model::ResourceRef;
use pikoci_core::store::RunningCheck;

use super::resources::{check_claim, outcome};
use super::{Fixture, at, job, model, resource, spec, world};

pub(crate) async fn check_leases_are_renewed_for_their_worker_and_attempt_only(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("unit")]).await?;
    let r = w.repo.id;
    s.request_check(r, at(100)).await?;
    let claimed = s
        .claim_due_check(&check_claim("w1", 100, 130))
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
    assert!(
        s.claim_due_check(&check_claim("w2", 199, 260))
            .await?
            .is_none()
    );
    // Lapsed: not taken by a claim that leaves lapsed checks alone, taken by one that does.
    let mut cautious = check_claim("w2", 201, 260);
    cautious.reclaim_lapsed = false;
    assert!(s.claim_due_check(&cautious).await?.is_none());
    // A late renewal of a lapsed lease that nobody took revives it.
    assert_eq!(
        s.renew_check_leases("w1", &[mine], at(215)).await?,
        vec![mine]
    );
    let again = s
        .claim_due_check(&check_claim("w2", 216, 260))
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
    let first = s.claim_due_check(&exclusive).await?.expect("gpu check");
    assert_eq!(first.resource.id, tagged.id);
    assert!(s.claim_due_check(&exclusive).await?.is_none());
    // The same worker without --exclusive-tags checks the untagged resource too.
    exclusive.exclusive = false;
    let second = s.claim_due_check(&exclusive).await?.expect("plain check");
    assert_eq!(second.resource.id, w.repo.id);
    Ok(())
}
