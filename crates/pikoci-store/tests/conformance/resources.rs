//! Resources (tokens, versions, pins, checks, `passed`), trigger streams and workers.

use std::collections::HashSet;

use pikoci_core::ErrorKind;
use pikoci_core::store::{
    BuildStatus, BuildTrigger, BuildVersion, CheckClaim, CheckRecord, ClaimedCheck, NewBuild,
    NewVersion, PassedQuery, ResourceVersion, Store, StoreResult, TeamScope, VersionUse,
    WorkerHeartbeat,
};
use serde_json::json;

use super::{Fixture, at, expect_kind, job, run_to, world};

/// A version `{"ref": name}` with some metadata.
pub(crate) fn version(name: &str) -> NewVersion {
    NewVersion {
        version: json!({ "ref": name }),
        metadata: json!([{ "name": "message", "value": format!("commit {name}") }]),
    }
}

fn refs(versions: &[ResourceVersion]) -> Vec<String> {
    versions
        .iter()
        .map(|v| v.version["ref"].as_str().unwrap_or("?").to_owned())
        .collect()
}

pub(crate) async fn webhook_tokens_are_random_and_regenerable(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("unit")]).await?;
    let other = world(s, "other", vec![job("unit")]).await?;
    let token = w.repo.webhook_token.clone();
    // At least 128 bits of randomness, spelled as hex.
    assert!(token.len() >= 32, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_ne!(token, other.repo.webhook_token);
    assert_eq!(s.resource_by_webhook_token(&token).await?.id, w.repo.id);
    let fresh = s.regenerate_webhook_token(w.repo.id).await?;
    assert_ne!(fresh, token);
    assert!(fresh.len() >= 32);
    expect_kind(
        s.resource_by_webhook_token(&token).await,
        ErrorKind::NotFound,
    );
    assert_eq!(s.resource_by_webhook_token(&fresh).await?.id, w.repo.id);
    assert_eq!(s.resource_by_id(w.repo.id).await?.webhook_token, fresh);
    Ok(())
}

pub(crate) async fn create_versions_deduplicates_and_keeps_order(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("unit")]).await?;
    let r = w.repo.id;
    let mut reordered = NewVersion {
        version: json!({ "ref": "a", "branch": "main" }),
        metadata: json!(null),
    };
    let a_main = NewVersion {
        version: json!({ "branch": "main", "ref": "a" }),
        metadata: json!({ "first": true }),
    };
    let created = s
        .create_versions(
            r,
            &[
                version("a"),
                version("b"),
                a_main.clone(),
                version("a"),
                version("c"),
            ],
            at(1),
        )
        .await?;
    assert_eq!(refs(&created), ["a", "b", "a", "c"]);
    assert!(created.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert_eq!(created[0].metadata, version("a").metadata);
    assert_eq!(created[2].version, json!({ "branch": "main", "ref": "a" }));
    assert_eq!(created[2].metadata, json!({ "first": true }));
    assert!(
        created
            .iter()
            .all(|v| v.resource_id == r && v.created_at == at(1))
    );
    // Known versions (whatever their key order) are not new; only `d` is.
    reordered.metadata = json!({ "second": true });
    let again = s
        .create_versions(
            r,
            &[version("b"), reordered, version("d"), version("c")],
            at(2),
        )
        .await?;
    assert_eq!(refs(&again), ["d"]);
    assert!(
        s.create_versions(r, &[version("a")], at(3))
            .await?
            .is_empty()
    );
    assert!(s.create_versions(r, &[], at(3)).await?.is_empty());
    let all = s.versions(r, None, 0).await?;
    assert_eq!(refs(&all), ["d", "c", "a", "b", "a"]);
    assert_eq!(all[2].metadata, json!({ "first": true }));
    assert_eq!(s.latest_version(r).await?.map(|v| v.id), Some(again[0].id));
    let page = s.versions(r, Some(all[1].id), 2).await?;
    assert_eq!(
        page.iter().map(|v| v.id).collect::<Vec<_>>(),
        [all[2].id, all[3].id]
    );
    assert_eq!(s.version_by_id(all[4].id).await?, all[4]);
    // The same version on another resource is a different version.
    let other = world(s, "other", vec![job("unit")]).await?;
    assert_eq!(
        refs(
            &s.create_versions(other.repo.id, &[version("a")], at(4))
                .await?
        ),
        ["a"]
    );
    let bad = NewVersion {
        version: json!(["not", "an", "object"]),
        metadata: json!(null),
    };
    expect_kind(
        s.create_versions(r, &[bad], at(5)).await,
        ErrorKind::InvalidInput,
    );
    // Many versions at once (several statements' worth), still deduplicated and in order.
    let many: Vec<NewVersion> = (0..450).map(|i| version(&format!("bulk-{i}"))).collect();
    let bulk = s.create_versions(r, &many, at(6)).await?;
    assert_eq!(bulk.len(), 450);
    assert_eq!(bulk[449].version, json!({ "ref": "bulk-449" }));
    assert!(bulk.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert!(s.create_versions(r, &many, at(7)).await?.is_empty());
    Ok(())
}

pub(crate) async fn pins_accept_only_own_versions(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("unit")]).await?;
    let other = world(s, "other", vec![job("unit")]).await?;
    let mine = s
        .create_versions(w.repo.id, &[version("a"), version("b")], at(1))
        .await?;
    let theirs = s
        .create_versions(other.repo.id, &[version("a")], at(1))
        .await?;
    s.pin_version(w.repo.id, Some(mine[0].id), "").await?;
    assert_eq!(
        s.resource_by_id(w.repo.id).await?.pinned_version(),
        Some(mine[0].id)
    );
    expect_kind(
        s.pin_version(w.repo.id, Some(theirs[0].id), "").await,
        ErrorKind::InvalidInput,
    );
    expect_kind(
        s.pin_version(w.repo.id, Some(pikoci_core::store::VersionId(999_999)), "")
            .await,
        ErrorKind::NotFound,
    );
    assert_eq!(
        s.resource_by_id(w.repo.id).await?.pinned_version(),
        Some(mine[0].id)
    );
    s.pin_version(w.repo.id, None, "").await?;
    assert_eq!(s.resource_by_id(w.repo.id).await?.pinned_version(), None);
    Ok(())
}

/// A pin keeps its comment, who pinned and when; pinning again replaces them, unpinning
/// clears them, and a comment longer than the store keeps is refused whole.
pub(crate) async fn pins_keep_their_comment_author_and_time(fx: &Fixture) -> anyhow::Result<()> {
    use anyhow::Context;
    use pikoci_core::store::MAX_PIN_COMMENT;
    use pikoci_core::store::audit::acting_as;
    let s = fx.s();
    let w = world(s, "main", vec![job("unit")]).await?;
    let versions = s
        .create_versions(w.repo.id, &[version("a"), version("b")], at(1))
        .await?;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    // Any script, in any language: the store keeps characters, not bytes.
    let comment = "läuft nicht: <b>bug</b> #42 — 🚧";
    acting_as(
        "alice",
        s.pin_version(w.repo.id, Some(versions[0].id), comment),
    )
    .await?;
    let pin = s
        .resource_by_id(w.repo.id)
        .await?
        .pin
        .context("not pinned")?;
    assert_eq!(pin.version, versions[0].id);
    assert_eq!(pin.comment, comment);
    assert_eq!(pin.by.as_deref(), Some("alice"));
    let pinned_at = pin.at.context("no pin time")?;
    assert!(pinned_at >= before, "{pinned_at} is before {before}");

    // The longest comment fits; one character more is refused and changes nothing.
    let longest = "é".repeat(MAX_PIN_COMMENT);
    acting_as(
        "bob",
        s.pin_version(w.repo.id, Some(versions[1].id), &longest),
    )
    .await?;
    let pin = s
        .resource_by_id(w.repo.id)
        .await?
        .pin
        .context("not pinned")?;
    assert_eq!(
        (pin.version, pin.comment.as_str(), pin.by.as_deref()),
        (versions[1].id, longest.as_str(), Some("bob"))
    );
    let longer = "x".repeat(MAX_PIN_COMMENT + 1);
    expect_kind(
        s.pin_version(w.repo.id, Some(versions[0].id), &longer)
            .await,
        ErrorKind::InvalidInput,
    );
    assert_eq!(
        s.resource_by_id(w.repo.id).await?.pinned_version(),
        Some(versions[1].id)
    );

    // Nobody acting: no author.
    s.pin_version(w.repo.id, Some(versions[0].id), "").await?;
    let pin = s
        .resource_by_id(w.repo.id)
        .await?
        .pin
        .context("not pinned")?;
    assert_eq!((pin.comment.as_str(), pin.by), ("", None));

    acting_as("alice", s.pin_version(w.repo.id, None, "fixed")).await?;
    assert_eq!(s.resource_by_id(w.repo.id).await?.pin, None);
    Ok(())
}

/// Claims at most one due check.
pub(crate) async fn claim_one(
    s: &dyn Store,
    claim: &CheckClaim,
) -> StoreResult<Option<ClaimedCheck>> {
    let mut claimed = s.claim_due_checks(claim, 1).await?;
    assert!(
        claimed.len() <= 1,
        "a claim of one check returned {}",
        claimed.len()
    );
    Ok(claimed.pop())
}

/// A claim for worker `worker` with no tags, any team, lapsed checks included.
pub(crate) fn check_claim(worker: &str, now: i64, lease: i64) -> CheckClaim {
    CheckClaim {
        worker_id: worker.to_owned(),
        worker_tags: Vec::new(),
        exclusive: false,
        teams: TeamScope::All,
        now: at(now),
        lapsed_before: Some(at(now)),
        lease_until: at(lease),
    }
}

pub(crate) fn outcome(secs: i64, error: Option<&str>) -> CheckRecord {
    CheckRecord {
        finished_at: at(secs),
        error: error.map(str::to_owned),
        log: format!("checked at {secs}\n"),
    }
}

pub(crate) async fn checks_are_claimed_once_and_fenced(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("unit")]).await?;
    let r = w.repo.id;
    s.request_check(r, at(100)).await?;
    assert!(claim_one(s, &check_claim("w1", 99, 130)).await?.is_none());
    // Another team's worker does not see it.
    let mut scoped = check_claim("w9", 100, 130);
    scoped.teams = TeamScope::Only(pikoci_core::store::TeamId(w.team.id.0 + 1000));
    assert!(claim_one(s, &scoped).await?.is_none());
    scoped.teams = TeamScope::AllExcept(vec![w.team.id]);
    assert!(claim_one(s, &scoped).await?.is_none());
    let claimed = claim_one(s, &check_claim("w1", 100, 130))
        .await?
        .expect("due");
    assert_eq!(claimed.resource.id, r);
    assert_eq!(claimed.attempt, 1);
    let lease = claimed.resource.check_lease.clone().expect("lease");
    assert_eq!(
        (lease.worker_id.as_str(), lease.attempt, lease.expires_at),
        ("w1", 1, at(130))
    );
    // The timer moved one interval (`@every 1m`) past the claim.
    assert_eq!(claimed.resource.next_check_at, Some(at(160)));
    // In flight: nobody else gets it, even when a webhook makes it due again.
    s.request_check(r, at(105)).await?;
    assert!(claim_one(s, &check_claim("w2", 110, 140)).await?.is_none());
    s.finish_check(r, 1, outcome(111, None)).await?;
    let after = s.resource_by_id(r).await?;
    assert!(after.check_lease.is_none());
    assert_eq!(after.last_check, Some(outcome(111, None)));
    expect_kind(
        s.finish_check(r, 1, outcome(112, None)).await,
        ErrorKind::Conflict,
    );
    // Due again (the webhook): a worker that never finishes loses it when the lease lapses.
    let second = claim_one(s, &check_claim("w2", 112, 140))
        .await?
        .expect("due");
    assert_eq!(second.attempt, 2);
    assert!(claim_one(s, &check_claim("w3", 139, 170)).await?.is_none());
    let third = claim_one(s, &check_claim("w3", 141, 170))
        .await?
        .expect("lapsed");
    assert_eq!(third.attempt, 3);
    expect_kind(
        s.finish_check(r, 2, outcome(150, Some("late"))).await,
        ErrorKind::Conflict,
    );
    s.finish_check(r, 3, outcome(151, Some("exit status 1")))
        .await?;
    assert_eq!(
        s.resource_by_id(r).await?.last_check,
        Some(outcome(151, Some("exit status 1")))
    );
    expect_kind(
        s.finish_check(pikoci_core::store::ResourceId(404), 1, outcome(1, None))
            .await,
        ErrorKind::NotFound,
    );
    Ok(())
}

pub(crate) async fn passed_versions_follow_successful_upstream_builds(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(
        s,
        "main",
        vec![job("unit"), job("integration"), job("deploy")],
    )
    .await?;
    let r = w.repo.id;
    let vs = s
        .create_versions(r, &[version("v1"), version("v2"), version("v3")], at(1))
        .await?;
    // (job, version, final status)
    let history = [
        ("unit", 0, BuildStatus::Succeeded),
        ("integration", 0, BuildStatus::Succeeded),
        ("unit", 1, BuildStatus::Succeeded),
        ("integration", 1, BuildStatus::Failed),
        ("unit", 2, BuildStatus::Warning),
        ("integration", 2, BuildStatus::Succeeded),
    ];
    for (i, (name, v, status)) in history.into_iter().enumerate() {
        let secs = 10 + i64::try_from(i)? * 10;
        let build = s.create_build(super::pending(w.job(name), secs)).await?;
        let used = BuildVersion {
            resource_id: r,
            version_id: vs[v].id,
            step_name: "repo".into(),
            usage: VersionUse::Get,
        };
        s.record_build_versions(build.id, std::slice::from_ref(&used))
            .await?;
        // Reporting the same use twice (a redelivered event) changes nothing.
        s.record_build_versions(build.id, std::slice::from_ref(&used))
            .await?;
        assert_eq!(s.build_versions(build.id).await?, vec![used]);
        let done = run_to(s, "w1", status, secs).await?;
        assert_eq!(done.id, build.id);
    }
    let query = |jobs: Vec<&str>, not_built_by: Option<&str>| PassedQuery {
        resource_id: r,
        upstream_jobs: jobs.into_iter().map(|j| w.job(j)).collect(),
        not_built_by: not_built_by.map(|j| w.job(j)),
        limit: 0,
    };
    assert_eq!(
        refs(
            &s.passed_versions(&query(vec!["unit", "integration"], None))
                .await?
        ),
        ["v3", "v1"]
    );
    assert_eq!(
        refs(&s.passed_versions(&query(vec!["unit"], None)).await?),
        ["v3", "v2", "v1"]
    );
    let mut limited = query(vec!["unit"], None);
    limited.limit = 1;
    assert_eq!(refs(&s.passed_versions(&limited).await?), ["v3"]);
    // Versions the downstream job already has (triggered with, or used) drop out.
    s.create_build(NewBuild {
        trigger: Some(BuildTrigger {
            resource_id: r,
            version_id: vs[2].id,
        }),
        ..super::pending(w.job("deploy"), 100)
    })
    .await?;
    assert_eq!(
        refs(
            &s.passed_versions(&query(vec!["unit", "integration"], Some("deploy")))
                .await?
        ),
        ["v1"]
    );
    expect_kind(
        s.passed_versions(&query(Vec::new(), None)).await,
        ErrorKind::InvalidInput,
    );
    Ok(())
}

pub(crate) async fn trigger_events_are_team_scoped_streams(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let a = s.create_team("a", at(0)).await?;
    let b = s.create_team("b", at(0)).await?;
    let mut ids = Vec::new();
    for n in 0..3 {
        let event = s
            .create_trigger_event(
                a.id,
                "trigger.deploy",
                &json!({ "n": n.to_string() }),
                at(n),
            )
            .await?;
        assert_eq!(
            (event.team_id, event.resource.as_str()),
            (a.id, "trigger.deploy")
        );
        ids.push(event.id);
    }
    s.create_trigger_event(b.id, "trigger.deploy", &json!({ "n": "b" }), at(5))
        .await?;
    s.create_trigger_event(a.id, "trigger.other", &json!({ "n": "o" }), at(6))
        .await?;
    let all = s.trigger_events(a.id, "trigger.deploy", None, 0).await?;
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(all[2].version, json!({ "n": "2" }));
    assert_eq!(all[1].created_at, at(1));
    let rest = s
        .trigger_events(a.id, "trigger.deploy", Some(ids[0]), 1)
        .await?;
    assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[1]]);
    assert_eq!(
        s.trigger_events(b.id, "trigger.deploy", None, 0)
            .await?
            .len(),
        1
    );
    assert!(
        s.trigger_events(b.id, "trigger.other", None, 0)
            .await?
            .is_empty()
    );
    expect_kind(
        s.create_trigger_event(a.id, "trigger.deploy", &json!("flat"), at(7))
            .await,
        ErrorKind::InvalidInput,
    );
    Ok(())
}

pub(crate) async fn heartbeats_register_and_update_workers(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let team = s.create_team("main", at(0)).await?;
    let beat = |id: &str, secs: i64, tags: &[&str]| WorkerHeartbeat {
        worker_id: id.to_owned(),
        team_id: None,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        exclusive: false,
        draining: false,
        slots: 4,
        running: 1,
        version: "0.1.0".into(),
        hostname: format!("{id}.local"),
        sealing_key: None,
        at: at(secs),
    };
    let first = s.record_heartbeat(&beat("w2", 10, &["linux"])).await?;
    assert_eq!(
        (first.first_seen_at, first.last_heartbeat_at),
        (at(10), at(10))
    );
    let mut update = beat("w2", 15, &["linux", "gpu"]);
    update.team_id = Some(team.id);
    update.running = 3;
    let second = s.record_heartbeat(&update).await?;
    assert_eq!(
        (second.first_seen_at, second.last_heartbeat_at),
        (at(10), at(15))
    );
    assert_eq!(second.tags, ["linux", "gpu"]);
    assert_eq!(
        (second.running, second.slots, second.team_id),
        (3, 4, Some(team.id))
    );
    s.record_heartbeat(&beat("w1", 20, &[])).await?;
    let ids: Vec<String> = s
        .workers()
        .await?
        .into_iter()
        .map(|w| w.worker_id)
        .collect();
    assert_eq!(ids, ["w1", "w2"]);
    assert_eq!(s.delete_workers_before(at(16)).await?, ["w2"]);
    let left: HashSet<String> = s
        .workers()
        .await?
        .into_iter()
        .map(|w| w.worker_id)
        .collect();
    assert_eq!(left, HashSet::from(["w1".to_owned()]));
    // One worker forgotten by its id, whatever its last heartbeat.
    s.record_heartbeat(&beat("w3", 21, &[])).await?;
    assert!(s.delete_worker("w3").await?);
    assert!(!s.delete_worker("w3").await?);
    assert_eq!(s.workers().await?.len(), 1);
    expect_kind(
        s.record_heartbeat(&beat("", 30, &[])).await,
        ErrorKind::InvalidInput,
    );
    Ok(())
}
