//! Log chunks and retention.

use pikoci_core::ErrorKind;
use pikoci_core::store::{
    BuildFilter, BuildId, BuildStatus, BuildStep, BuildVersion, LogChunk, LogPosition, NewLogChunk,
    StepStatus, VersionUse,
};

use super::{Fixture, at, expect_kind, job, pending, run_to, world};

fn chunk(build: BuildId, step: u32, seq: u64, text: &str) -> NewLogChunk {
    NewLogChunk {
        build_id: build,
        attempt: 1,
        step,
        seq,
        data: text.as_bytes().to_vec(),
        created_at: at(i64::try_from(seq).unwrap_or(0)),
    }
}

fn texts(chunks: &[LogChunk]) -> Vec<String> {
    chunks
        .iter()
        .map(|c| String::from_utf8_lossy(&c.data).into_owned())
        .collect()
}

pub(crate) async fn log_chunks_are_idempotent_ordered_and_resumable(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a")]).await?;
    let build = s.create_build(pending(w.job("a"), 0)).await?;
    let other = s.create_build(pending(w.job("a"), 0)).await?;
    s.append_log_chunks(&[
        chunk(build.id, 0, 0, "step 0, line 1\n"),
        chunk(build.id, 1, 0, "step 1 starts\n"),
        chunk(other.id, 0, 0, "another build\n"),
    ])
    .await?;
    s.append_log_chunks(&[chunk(build.id, 0, 1, "step 0, line 2\n")])
        .await?;
    // A redelivered chunk (same key, even with other bytes) is ignored; the new one is kept.
    s.append_log_chunks(&[
        chunk(build.id, 0, 1, "DUPLICATE\n"),
        chunk(build.id, 1, 1, "step 1 ends\n"),
    ])
    .await?;
    s.append_log_chunks(&[]).await?;
    let all = s.read_log(build.id, None, 0).await?;
    assert_eq!(
        texts(&all),
        [
            "step 0, line 1\n",
            "step 1 starts\n",
            "step 0, line 2\n",
            "step 1 ends\n"
        ]
    );
    assert!(all.windows(2).all(|pair| pair[0].cursor < pair[1].cursor));
    assert_eq!((all[2].attempt, all[2].step, all[2].seq), (1, 0, 1));
    assert_eq!(all[2].created_at, at(1));
    assert!(all.iter().all(|c| c.build_id == build.id));
    // Resume after any chunk, in pages.
    let rest = s.read_log(build.id, Some(all[1].cursor), 0).await?;
    assert_eq!(texts(&rest), ["step 0, line 2\n", "step 1 ends\n"]);
    let page = s.read_log(build.id, Some(all[0].cursor), 1).await?;
    assert_eq!(texts(&page), ["step 1 starts\n"]);
    assert!(
        s.read_log(build.id, Some(all[3].cursor), 0)
            .await?
            .is_empty()
    );
    assert_eq!(
        texts(&s.read_log(other.id, None, 0).await?),
        ["another build\n"]
    );
    // One attempt in reading order, from any position, in pages.
    let mut second = chunk(build.id, 0, 0, "attempt 2\n");
    second.attempt = 2;
    s.append_log_chunks(&[second]).await?;
    // Counted per step and attempt, a redelivered chunk once.
    let counts = |build, attempt| s.log_chunk_counts(build, attempt);
    assert_eq!(counts(build.id, 1).await?, [(0, 2), (1, 2)].into());
    assert_eq!(counts(build.id, 2).await?, [(0, 1)].into());
    assert_eq!(counts(other.id, 1).await?, [(0, 1)].into());
    assert!(counts(build.id, 3).await?.is_empty());
    let attempt = |from: LogPosition, limit| s.read_attempt_log(build.id, 1, from, limit);
    assert_eq!(
        texts(&attempt(LogPosition::default(), 0).await?),
        [
            "step 0, line 1\n",
            "step 0, line 2\n",
            "step 1 starts\n",
            "step 1 ends\n"
        ]
    );
    let first = attempt(LogPosition::default(), 2).await?;
    assert_eq!(texts(&first), ["step 0, line 1\n", "step 0, line 2\n"]);
    let from = LogPosition::after(&first[1]);
    assert_eq!(from, LogPosition { step: 0, seq: 2 });
    assert_eq!(
        texts(&attempt(from, 2).await?),
        ["step 1 starts\n", "step 1 ends\n"]
    );
    assert_eq!(
        texts(&attempt(LogPosition { step: 1, seq: 1 }, 0).await?),
        ["step 1 ends\n"]
    );
    assert!(
        attempt(
            LogPosition {
                step: 1,
                seq: u64::MAX
            },
            0
        )
        .await?
        .is_empty()
    );
    // After a chunk with the largest sequence number a row holds: the next step, not that
    // chunk again.
    let mut top = chunk(other.id, 3, 0, "the last of step 3\n");
    top.seq = i64::MAX as u64;
    s.append_log_chunks(&[top, chunk(other.id, 4, 0, "step 4\n")])
        .await?;
    let last = s
        .read_attempt_log(other.id, 1, LogPosition { step: 3, seq: 0 }, 1)
        .await?;
    assert_eq!(texts(&last), ["the last of step 3\n"]);
    assert_eq!(
        texts(
            &s.read_attempt_log(other.id, 1, LogPosition::after(&last[0]), 0)
                .await?
        ),
        ["step 4\n"]
    );
    assert_eq!(
        texts(
            &s.read_attempt_log(build.id, 2, LogPosition::default(), 0)
                .await?
        ),
        ["attempt 2\n"]
    );
    // Large chunks round-trip (compressed in the database).
    let big: Vec<u8> = (0..1_048_576u32)
        .map(|i| b"pikoci log line\n"[(i % 16) as usize])
        .collect();
    let mut large = chunk(build.id, 2, 0, "");
    large.data = big.clone();
    let mut binary = chunk(build.id, 2, 1, "");
    binary.data = (0..=255u8).cycle().take(70_000).collect();
    s.append_log_chunks(&[large, binary.clone()]).await?;
    let mut tail = s.read_log(build.id, Some(all[3].cursor), 0).await?;
    tail.retain(|c| c.attempt == 1);
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[0].data, big);
    assert_eq!(tail[1].data, binary.data);
    expect_kind(
        s.append_log_chunks(&[chunk(BuildId(999_999), 0, 0, "orphan")])
            .await,
        ErrorKind::NotFound,
    );
    Ok(())
}

pub(crate) async fn retention_deletes_old_logs_and_builds(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a")]).await?;
    let versions = s
        .create_versions(w.repo.id, &[super::resources::version("v")], at(0))
        .await?;
    s.create_build(pending(w.job("a"), 0)).await?;
    s.create_build(pending(w.job("a"), 1)).await?;
    let old = run_to(s, "w", BuildStatus::Succeeded, 100).await?; // finishes at 101
    let recent = run_to(s, "w", BuildStatus::Failed, 5000).await?; // finishes at 5001
    let running = s.create_build(pending(w.job("a"), 2)).await?;
    for build in [old.id, recent.id, running.id] {
        s.append_log_chunks(&[chunk(build, 0, 0, "a\n"), chunk(build, 0, 1, "b\n")])
            .await?;
        s.record_build_versions(
            build,
            &[BuildVersion {
                resource_id: w.repo.id,
                version_id: versions[0].id,
                step_name: "repo".into(),
                usage: VersionUse::Get,
            }],
        )
        .await?;
    }
    s.record_step(
        old.id,
        &BuildStep {
            attempt: 1,
            step: 0,
            name: "repo".into(),
            kind: "get".into(),
            status: StepStatus::Succeeded,
            started_at: Some(at(100)),
            finished_at: Some(at(101)),
            parent: None,
        },
    )
    .await?;
    let cutoff = at(1000);
    assert_eq!(s.delete_logs_before(cutoff).await?, 2);
    assert!(s.read_log(old.id, None, 0).await?.is_empty());
    assert_eq!(s.read_log(recent.id, None, 0).await?.len(), 2);
    assert_eq!(s.read_log(running.id, None, 0).await?.len(), 2);
    assert_eq!(s.build(old.id).await?.status, BuildStatus::Succeeded);
    assert_eq!(s.delete_logs_before(cutoff).await?, 0);
    assert_eq!(s.delete_builds_before(cutoff).await?, 1);
    expect_kind(s.build(old.id).await, ErrorKind::NotFound);
    assert!(s.build_steps(old.id).await?.is_empty());
    assert!(s.build_versions(old.id).await?.is_empty());
    let left: Vec<BuildId> = s
        .list_builds(&BuildFilter::default())
        .await?
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(left, [running.id, recent.id]);
    assert_eq!(s.build_versions(recent.id).await?.len(), 1);
    // Versions stay: retention is about builds and logs.
    assert_eq!(s.versions(w.repo.id, None, 0).await?.len(), 1);
    assert_eq!(s.delete_builds_before(cutoff).await?, 0);
    Ok(())
}
