//! Migrations and error kinds.

use pikoci_core::ErrorKind;
use pikoci_core::model::ResourceRef;
use pikoci_core::store::{BuildId, JobId, PipelineId, ResourceId, TeamId, VersionId};
use pikoci_store::SqlStore;

use super::{Fixture, at, expect_kind};

pub(crate) async fn migrations_create_the_schema_and_rerun_as_no_op(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let known = SqlStore::known_migrations();
    assert!(!known.is_empty());
    // The fixture's database was empty; opening it applied every migration.
    assert_eq!(fx.sql.applied_migrations().await?, known);
    fx.s().create_team("kept", at(0)).await?;
    // Running them again applies nothing and changes nothing.
    assert_eq!(fx.sql.migrate().await?, Vec::<String>::new());
    assert_eq!(fx.sql.applied_migrations().await?, known);
    if let Some(url) = &fx.reopen_url {
        // A second process opening the same database finds it migrated, with the data.
        let again = pikoci_store::connect(url).await?;
        assert_eq!(again.applied_migrations().await?, known);
        assert_eq!(again.migrate().await?, Vec::<String>::new());
        use pikoci_core::store::Store;
        assert_eq!(again.team("kept").await?.name, "kept");
        again.close().await?;
    }
    assert_eq!(fx.s().team("kept").await?.name, "kept");
    Ok(())
}

pub(crate) async fn errors_name_the_missing_thing(fx: &Fixture) -> anyhow::Result<()> {
    let s = fx.s();
    let err = expect_kind(s.team("ghost").await, ErrorKind::NotFound);
    assert!(err.to_string().contains("ghost"), "{err}");
    expect_kind(s.team_by_id(TeamId(404)).await, ErrorKind::NotFound);
    expect_kind(s.pipeline_by_id(PipelineId(404)).await, ErrorKind::NotFound);
    expect_kind(s.pipeline(TeamId(404), "ci").await, ErrorKind::NotFound);
    expect_kind(s.job_by_id(JobId(404)).await, ErrorKind::NotFound);
    expect_kind(s.resource_by_id(ResourceId(404)).await, ErrorKind::NotFound);
    let missing = ResourceRef {
        type_name: "git".into(),
        name: "repo".into(),
    };
    expect_kind(
        s.resource(PipelineId(404), &missing).await,
        ErrorKind::NotFound,
    );
    expect_kind(s.version_by_id(VersionId(404)).await, ErrorKind::NotFound);
    let err = expect_kind(s.build(BuildId(404)).await, ErrorKind::NotFound);
    assert!(err.to_string().contains("404"), "{err}");
    expect_kind(
        s.set_job_paused(JobId(404), true).await,
        ErrorKind::NotFound,
    );
    expect_kind(
        s.set_pipeline_paused(PipelineId(404), true).await,
        ErrorKind::NotFound,
    );
    expect_kind(
        s.delete_pipeline(PipelineId(404)).await,
        ErrorKind::NotFound,
    );
    expect_kind(
        s.regenerate_webhook_token(ResourceId(404)).await,
        ErrorKind::NotFound,
    );
    expect_kind(
        s.create_versions(ResourceId(404), &[super::resources::version("a")], at(0))
            .await,
        ErrorKind::NotFound,
    );
    expect_kind(
        s.create_build(super::pending(JobId(404), 0)).await,
        ErrorKind::NotFound,
    );
    assert!(s.latest_version(ResourceId(404)).await?.is_none());
    Ok(())
}
