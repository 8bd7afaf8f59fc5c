//! Export and import of the whole state.

use pikoci_core::ErrorKind;
use pikoci_core::secrets::{Scope, SecretTable, StoredEntry, StoredValue};
use pikoci_core::store::{BuildStatus, BuildStep, NewLogChunk, StepStatus, Store};

use super::{Fixture, at, expect_kind, job, pending, run_to, world};

pub(crate) async fn export_then_import_brings_everything_back(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a"), job("b")]).await?;
    let versions = s
        .create_versions(w.repo.id, &[super::resources::version("v1")], at(1))
        .await?;
    s.create_build(pending(w.job("a"), 2)).await?;
    let build = run_to(s, "w1", BuildStatus::Succeeded, 3).await?;
    s.record_step(
        build.id,
        &BuildStep {
            attempt: 1,
            step: 0,
            name: "compile".into(),
            kind: "task".into(),
            status: StepStatus::Succeeded,
            started_at: Some(at(3)),
            finished_at: Some(at(4)),
            parent: None,
        },
    )
    .await?;
    s.append_log_chunks(&[NewLogChunk {
        build_id: build.id,
        attempt: 1,
        step: 0,
        seq: 0,
        data: b"compiled\n".to_vec(),
        created_at: at(4),
    }])
    .await?;
    s.create_build(pending(w.job("b"), 5)).await?;
    s.create_trigger_event(
        w.team.id,
        "git.repo",
        &serde_json::json!({"ref": "t1"}),
        at(6),
    )
    .await?;
    let table: &dyn SecretTable = &fx.sql;
    let scope = Scope::pipeline("main", &w.pipeline.name);
    let sealed = StoredEntry {
        scope: scope.clone(),
        name: "TOKEN".into(),
        value: StoredValue::Sealed(vec![7; 40]),
    };
    table.put(sealed.clone()).await?;

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("pikoci.db");
    let exported = s.export(&file).await?;
    for (table, rows) in [
        ("teams", 1),
        ("pipelines", 1),
        ("jobs", 2),
        ("resources", 1),
        ("resource_versions", 1),
        ("builds", 2),
        ("build_steps", 1),
        ("log_chunks", 1),
        ("trigger_events", 1),
        ("pipeline_secrets", 1),
    ] {
        assert_eq!(exported.rows(table), rows, "rows of {table} exported");
    }
    expect_kind(s.export(&file).await, ErrorKind::Conflict);

    // The file is a SQLite store as it is.
    let opened = pikoci_store::connect(&format!("sqlite://{}", file.display())).await?;
    assert_eq!(opened.list_teams().await?, s.list_teams().await?);
    assert_eq!(opened.build(build.id).await?, s.build(build.id).await?);
    opened.close().await?;

    // A store that holds pipelines takes an import only when told to replace them.
    expect_kind(s.import(&file, false).await, ErrorKind::Conflict);
    s.delete_pipeline(w.pipeline.id).await?;
    s.create_team("other", at(7)).await?;
    let imported = s.import(&file, true).await?;
    assert_eq!(imported, exported);
    let teams: Vec<String> = s.list_teams().await?.into_iter().map(|t| t.name).collect();
    assert_eq!(teams, ["main"]);
    assert_eq!(s.pipeline_by_id(w.pipeline.id).await?, w.pipeline);
    assert_eq!(s.build(build.id).await?, build);
    assert_eq!(s.build_steps(build.id).await?.len(), 1);
    let log = s
        .read_attempt_log(build.id, 1, Default::default(), 10)
        .await?;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].data, b"compiled\n");
    assert_eq!(s.versions(w.repo.id, None, 10).await?.len(), versions.len());
    assert_eq!(
        s.trigger_events(w.team.id, "git.repo", None, 10)
            .await?
            .len(),
        1
    );
    assert_eq!(table.get(&scope, "TOKEN").await?, Some(sealed));

    // New rows take ids after the imported ones (on PostgreSQL, the sequences were moved).
    let after = s.create_team("after", at(8)).await?;
    assert!(after.id.0 > w.team.id.0, "{after:?}");
    let next = s.create_build(pending(w.job("a"), 9)).await?;
    assert!(next.id.0 > build.id.0, "{next:?}");
    assert_eq!(next.number.to_string(), "2");

    // A file that is not an export is refused, and changes nothing: not a database, or
    // another program's SQLite database (which is left as it was).
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database")?;
    expect_kind(s.import(&junk, true).await, ErrorKind::InvalidInput);
    let other = dir.path().join("other.db");
    let foreign =
        sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", other.display())).await?;
    sea_orm::ConnectionTrait::execute_unprepared(
        &foreign,
        "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');",
    )
    .await?;
    foreign.close().await?;
    let before = std::fs::read(&other)?;
    expect_kind(s.import(&other, true).await, ErrorKind::InvalidInput);
    assert!(
        std::fs::read(&other)? == before,
        "the foreign file was written to"
    );
    let mut wal = other.clone().into_os_string();
    wal.push("-wal");
    assert!(
        !std::path::Path::new(&wal).exists(),
        "the foreign file was opened for writing"
    );
    assert_eq!(s.list_teams().await?.len(), 2);

    // Nor is an import taken while builds run here: their workers would report on them.
    let running = s.create_build(pending(w.job("b"), 10)).await?;
    let claimed = s
        .claim_next_pending(&super::claim("w9", 100))
        .await?
        .expect("a pending build");
    assert!(claimed.id == running.id || claimed.job_id == w.job("b"));
    expect_kind(s.import(&file, true).await, ErrorKind::Conflict);
    Ok(())
}

pub(crate) async fn an_export_imports_into_an_empty_store(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let w = world(s, "main", vec![job("a")]).await?;
    s.create_build(pending(w.job("a"), 2)).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("pikoci.db");
    let exported = s.export(&file).await?;
    // A fresh in-memory store with an empty team of the same name (as a new server has).
    let fresh = pikoci_store::connect("mem").await?;
    fresh.create_team("main", at(1)).await?;
    let imported = fresh.import(&file, false).await?;
    assert_eq!(imported, exported);
    assert_eq!(fresh.pipeline_by_id(w.pipeline.id).await?, w.pipeline);
    assert_eq!(
        fresh.jobs(w.pipeline.id).await?,
        s.jobs(w.pipeline.id).await?
    );
    Ok(())
}
