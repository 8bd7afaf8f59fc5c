//! Several servers on one database: concurrent claims, version inserts and build creation.
//!
//! On SQLite (`mem` and files, in every `cargo test`) these tests cannot fail for a race: SQLite
//! has one writer at a time, so the concurrent transactions run one after another there. They
//! only prove something on PostgreSQL and MariaDB, where transactions really overlap:
//! `cargo xtask it store` runs this whole suite, these tests included, on both.

use std::collections::HashSet;
use std::sync::Arc;

use pikoci_core::store::{BuildId, BuildStatus, Store, VersionId};

use super::resources::version;
use super::{Fixture, at, claim, job, pending, transition, world};

pub(crate) async fn concurrent_claimers_never_share_a_build(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let mut jobs = vec![job("a"), job("b"), job("c")];
    for n in 0..4 {
        let mut limited = job(&format!("limited-{n}"));
        limited.concurrency = 1;
        jobs.push(limited);
    }
    for n in 0..4 {
        let mut serial = job(&format!("serial-{n}"));
        serial.serial_groups = vec![format!("group-{}", n % 2)];
        jobs.push(serial);
    }
    let w = world(s, "main", jobs).await?;
    let mut free = HashSet::new();
    for i in 0..45 {
        let name = ["a", "b", "c"][i % 3];
        free.insert(
            s.create_build(pending(w.job(name), i64::try_from(i)?))
                .await?
                .id,
        );
    }
    for i in 0..24 {
        s.create_build(pending(w.job(&format!("limited-{}", i % 4)), 100 + i))
            .await?;
        s.create_build(pending(w.job(&format!("serial-{}", i % 4)), 200 + i))
            .await?;
    }
    let constrained = |build: &pikoci_core::store::Build| !free.contains(&build.id);
    let mut seen = HashSet::new();
    // Three rounds: claim concurrently until nothing is startable, then finish what was claimed.
    for round in 0..3 {
        let mut tasks = Vec::new();
        for worker in 0..8 {
            let store: Arc<dyn Store> = fx.store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let request = claim(&format!("w{worker}"), 1000);
                while let Some(build) = store.claim_next_pending(&request).await? {
                    mine.push(build);
                }
                anyhow::Ok(mine)
            }));
        }
        let mut claimed = Vec::new();
        for task in tasks {
            for build in task.await?? {
                assert!(
                    seen.insert(build.id),
                    "build {} was claimed twice",
                    build.id
                );
                assert_eq!(
                    build.dispatch.attempt, 1,
                    "build {} claimed more than once",
                    build.id
                );
                claimed.push(build);
            }
        }
        // Whatever the interleaving: one build per limited job and one per serial group.
        for n in 0..4 {
            let job = w.job(&format!("limited-{n}"));
            let count = claimed.iter().filter(|b| b.job_id == job).count();
            assert_eq!(
                count, 1,
                "round {round}: limited-{n} ran {count} builds at once"
            );
        }
        for group in 0..2 {
            let members = [
                w.job(&format!("serial-{group}")),
                w.job(&format!("serial-{}", group + 2)),
            ];
            let count = claimed
                .iter()
                .filter(|b| members.contains(&b.job_id))
                .count();
            assert_eq!(
                count, 1,
                "round {round}: group-{group} ran {count} builds at once"
            );
        }
        if round == 0 {
            let free_claimed: HashSet<BuildId> = claimed
                .iter()
                .map(|b| b.id)
                .filter(|id| free.contains(id))
                .collect();
            assert_eq!(free_claimed, free, "every unconstrained build is claimed");
        } else {
            assert!(claimed.iter().all(constrained));
        }
        for build in &claimed {
            let stored = s.build(build.id).await?;
            assert_eq!(stored.status, BuildStatus::Assigned);
            assert_eq!(stored.dispatch.worker_id, build.dispatch.worker_id);
            transition(s, build, BuildStatus::Assigned, BuildStatus::Succeeded, 300).await?;
        }
    }
    Ok(())
}

pub(crate) async fn concurrent_version_inserts_report_each_version_once(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a")]).await?;
    // Six checkers find overlapping windows of the same history at the same time.
    let mut tasks = Vec::new();
    for checker in 0..6usize {
        let store: Arc<dyn Store> = fx.store.clone();
        let resource = w.repo.id;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for window in 0..10usize {
                let start = (checker * 7 + window * 5) % 60;
                let versions: Vec<_> = (start..start + 12)
                    .map(|n| version(&format!("v{n}")))
                    .collect();
                mine.extend(store.create_versions(resource, &versions, at(1)).await?);
            }
            anyhow::Ok(mine)
        }));
    }
    let mut reported = HashSet::new();
    for task in tasks {
        for created in task.await?? {
            let name = created.version["ref"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                reported.insert(name.clone()),
                "{name} was reported new twice"
            );
        }
    }
    let stored = s.versions(w.repo.id, None, 1000).await?;
    assert_eq!(stored.len(), reported.len());
    let ids: HashSet<VersionId> = stored.iter().map(|v| v.id).collect();
    assert_eq!(ids.len(), stored.len());
    Ok(())
}

pub(crate) async fn concurrent_build_creation_numbers_without_gaps(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a")]).await?;
    let job_id = w.job("a");
    let mut tasks = Vec::new();
    for task in 0..6 {
        let store: Arc<dyn Store> = fx.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            for n in 0..5 {
                let build = store.create_build(pending(job_id, task * 10 + n)).await?;
                numbers.push(build.number.number);
            }
            anyhow::Ok(numbers)
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.extend(task.await??);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=30).collect::<Vec<u32>>());
    Ok(())
}

pub(crate) async fn concurrent_check_claimers_never_share_a_check(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let ids = super::checks::due_resources(fx.s(), 120).await?;
    let mut tasks = Vec::new();
    for worker in 0..6 {
        let store: Arc<dyn Store> = fx.store.clone();
        tasks.push(tokio::spawn(async move {
            let claim = super::resources::check_claim(&format!("w{worker}"), 1000, 1030);
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due_checks(&claim, 7).await?;
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch);
            }
            anyhow::Ok(mine)
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for claimed in task.await?? {
            assert!(
                seen.insert(claimed.resource.id),
                "the check of resource {} was claimed twice",
                claimed.resource.id
            );
            assert_eq!(claimed.attempt, 1);
        }
    }
    assert_eq!(
        seen,
        ids.into_iter().collect::<HashSet<_>>(),
        "every due check claimed"
    );
    Ok(())
}
