//! What the server's dispatcher and event ingestion rely on beyond the first schema: steps that
//! never go back, exclusive workers, version look-ups, trigger events added once per key, and
//! approval votes.

use pikoci_core::ErrorKind;
use pikoci_core::store::{BuildStatus, BuildStep, StepStatus, WorkerHeartbeat};
use serde_json::json;

use super::resources::version;
use super::{Fixture, at, claim, expect_kind, job, pending, world};

pub(crate) async fn step_statuses_never_go_back(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a")]).await?;
    let build = s.create_build(pending(w.job("a"), 1)).await?;
    s.claim_next_pending(&claim("w1", 100))
        .await?
        .expect("pending");
    let step = |status, name: &str, started: Option<i64>, finished: Option<i64>| BuildStep {
        attempt: 1,
        step: 0,
        name: name.to_owned(),
        kind: if name.is_empty() { "" } else { "task" }.to_owned(),
        status,
        started_at: started.map(at),
        finished_at: finished.map(at),
        // Only a start knows the enclosing step.
        parent: started.map(|_| 2),
    };
    // The finish arrives first (reordered delivery), without a name or parent.
    s.record_step(build.id, &step(StepStatus::Failed, "", None, Some(9)))
        .await?;
    // The late start fills in the name, kind, parent and start time, and does not move it back.
    s.record_step(build.id, &step(StepStatus::Started, "unit", Some(3), None))
        .await?;
    let expected = step(StepStatus::Failed, "unit", Some(3), Some(9));
    assert_eq!(s.build_steps(build.id).await?, vec![expected.clone()]);
    // A start that names another parent (a redelivery gone wrong) does not move it.
    let mut moved = step(StepStatus::Started, "unit", Some(3), None);
    moved.parent = Some(7);
    s.record_step(build.id, &moved).await?;
    assert_eq!(s.build_steps(build.id).await?, vec![expected.clone()]);
    // A redelivered start, or a second finish, changes nothing.
    s.record_step(build.id, &step(StepStatus::Started, "unit", Some(4), None))
        .await?;
    s.record_step(
        build.id,
        &step(StepStatus::Succeeded, "unit", Some(3), Some(12)),
    )
    .await?;
    assert_eq!(s.build_steps(build.id).await?, vec![expected]);
    Ok(())
}

pub(crate) async fn exclusive_workers_skip_untagged_jobs(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let mut gpu = job("gpu");
    gpu.tags = vec!["gpu".into()];
    let w = world(s, "main", vec![job("plain"), gpu]).await?;
    let plain = s.create_build(pending(w.job("plain"), 1)).await?;
    let tagged = s.create_build(pending(w.job("gpu"), 2)).await?;
    let mut exclusive = claim("w-gpu", 100);
    exclusive.worker_tags = vec!["gpu".into()];
    exclusive.exclusive = true;
    let first = s.claim_next_pending(&exclusive).await?.expect("gpu build");
    assert_eq!(first.id, tagged.id);
    assert!(s.claim_next_pending(&exclusive).await?.is_none());
    // The same worker without --exclusive-tags takes the untagged build too.
    exclusive.exclusive = false;
    let second = s
        .claim_next_pending(&exclusive)
        .await?
        .expect("plain build");
    assert_eq!(second.id, plain.id);
    // The registry keeps both flags.
    let beat = WorkerHeartbeat {
        worker_id: "w-gpu".into(),
        team_id: None,
        tags: vec!["gpu".into()],
        exclusive: true,
        draining: false,
        slots: 2,
        running: 0,
        version: "0.1.0".into(),
        hostname: "gpu.local".into(),
        sealing_key: None,
        at: at(5),
    };
    let stored = s.record_heartbeat(&beat).await?;
    assert!(stored.exclusive && !stored.draining);
    let stored = s
        .record_heartbeat(&WorkerHeartbeat {
            exclusive: false,
            draining: true,
            at: at(6),
            ..beat.clone()
        })
        .await?;
    assert!(!stored.exclusive && stored.draining);
    // The sealing key follows the worker's latest heartbeat (a restarted worker has a new one).
    assert_eq!(stored.sealing_key, None);
    let key = "q83vEjRWeJ+rze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=".to_owned();
    let stored = s
        .record_heartbeat(&WorkerHeartbeat {
            sealing_key: Some(key.clone()),
            at: at(7),
            ..beat
        })
        .await?;
    assert_eq!(stored.sealing_key, Some(key));
    assert_eq!(s.workers().await?, vec![stored]);
    Ok(())
}

pub(crate) async fn versions_are_found_by_value(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a")]).await?;
    assert!(
        s.find_version(w.repo.id, &json!({"ref": "a"}))
            .await?
            .is_none()
    );
    let mut two_keys = version("a");
    two_keys.version = json!({"ref": "a", "branch": "main"});
    let created = s
        .create_versions(w.repo.id, &[two_keys, version("b")], at(1))
        .await?;
    let found = s
        .find_version(w.repo.id, &json!({"branch": "main", "ref": "a"}))
        .await?
        .expect("stored version");
    assert_eq!(found, created[0]);
    assert!(
        s.find_version(w.repo.id, &json!({"ref": "a"}))
            .await?
            .is_none()
    );
    assert!(s.find_version(w.repo.id, &json!("a")).await?.is_none());
    Ok(())
}

pub(crate) async fn trigger_events_are_added_once_per_key(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let team = s.create_team("main", at(0)).await?;
    let other = s.create_team("other", at(0)).await?;
    let version = json!({"env": "prod"});
    let first = s
        .create_trigger_event_once(team.id, "trigger.deploy", &version, "build-1-1", at(1))
        .await?;
    let again = s
        .create_trigger_event_once(team.id, "trigger.deploy", &version, "build-1-1", at(2))
        .await?;
    assert_eq!(again, first);
    let next = s
        .create_trigger_event_once(team.id, "trigger.deploy", &version, "build-1-2", at(3))
        .await?;
    assert!(next.id > first.id);
    // Keys are per team.
    s.create_trigger_event_once(other.id, "trigger.deploy", &version, "build-1-1", at(4))
        .await?;
    let events = s.trigger_events(team.id, "trigger.deploy", None, 0).await?;
    assert_eq!(events, vec![first, next]);
    expect_kind(
        s.create_trigger_event_once(team.id, "trigger.deploy", &json!(1), "k", at(5))
            .await,
        ErrorKind::InvalidInput,
    );
    Ok(())
}

pub(crate) async fn approvals_count_each_voter_once(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("deploy")]).await?;
    let mut waiting = pending(w.job("deploy"), 1);
    waiting.status = BuildStatus::WaitingForApproval;
    let build = s.create_build(waiting).await?;
    let votes = s.record_approval(build.id, "alice", at(2)).await?;
    assert_eq!(votes.len(), 1);
    let votes = s.record_approval(build.id, "alice", at(3)).await?;
    assert_eq!(votes.len(), 1);
    assert_eq!(votes[0].at, at(2));
    let votes = s.record_approval(build.id, "bob", at(4)).await?;
    let voters: Vec<&str> = votes.iter().map(|v| v.voter.as_str()).collect();
    assert_eq!(voters, ["alice", "bob"]);
    assert_eq!(s.approval_votes(build.id).await?, votes);
    // A build that is not waiting takes no vote.
    let plain = s.create_build(pending(w.job("deploy"), 5)).await?;
    expect_kind(
        s.record_approval(plain.id, "alice", at(6)).await,
        ErrorKind::Conflict,
    );
    expect_kind(
        s.record_approval(build.id, "", at(6)).await,
        ErrorKind::InvalidInput,
    );
    assert!(s.approval_votes(plain.id).await?.is_empty());
    Ok(())
}
