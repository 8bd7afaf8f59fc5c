//! What a claim in one query needs, and cancels that outlive a server restart:
//!
//! - `job_tags` and `job_serial_groups` hold a job's tags and serial groups as rows (the `jobs`
//!   row keeps them as JSON too, for reading the job back), so the claim can match a worker's
//!   tags and find a busy serial group inside the database instead of job by job.
//! - `builds.cancel_deadline`: when a cancel was asked of a build's worker, the time by which the
//!   worker must report the build finished before the server marks it cancelled itself.
//! - `builds.versions_key`: for automatic builds, the SHA-256 of the versions their gets use,
//!   unique per job, so the same trigger evaluated twice (two servers, a redelivered event)
//!   makes one build.

use sea_orm::ConnectionTrait;
use sea_orm_migration::prelude::*;

use super::{Types, big, big_null, cascade, id, index, string, string_null};

/// Adds the job tag and serial group rows (filled from the existing jobs) and the cancel
/// deadline.
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_claim"
    }
}

// The trait's signature elides the lifetime; spelling it out breaks the async-trait expansion.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Everything is read and checked before the schema changes, and every step can run
        // again: SQLite and MySQL apply a migration's statements one by one, so one that stopped
        // half way (a corrupt row, a kill) must be able to start over.
        let jobs = read_jobs(manager).await?;
        let t = Types::new(manager.get_database_backend());
        manager
            .create_table(
                t.table("job_tags")
                    .if_not_exists()
                    .col(id())
                    .col(big("job_id"))
                    .col(string("tag", 255))
                    .foreign_key(&mut cascade("job_tags", "job_id", "jobs"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                t.table("job_serial_groups")
                    .if_not_exists()
                    .col(id())
                    .col(big("job_id"))
                    .col(big("pipeline_id"))
                    .col(string("name", 255))
                    .foreign_key(&mut cascade("job_serial_groups", "job_id", "jobs"))
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite alters one thing at a time.
        for (name, mut column) in [
            ("cancel_deadline", big_null("cancel_deadline")),
            ("versions_key", string_null("versions_key", 64)),
        ] {
            if manager.has_column("builds", name).await? {
                continue;
            }
            manager
                .alter_table(
                    Table::alter()
                        .table("builds")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        for mut index in [
            index("job_tags", &["job_id", "tag"], true),
            index("job_serial_groups", &["job_id", "name"], true),
            index("job_serial_groups", &["pipeline_id", "name"], false),
            index("builds", &["job_id", "versions_key"], true),
        ] {
            manager
                .create_index(index.if_not_exists().to_owned())
                .await?;
        }
        fill(manager, &jobs).await
    }
}

/// A job's tags and serial groups, as the `jobs` row holds them.
struct JobRows {
    id: i64,
    pipeline: i64,
    tags: Vec<String>,
    groups: Vec<String>,
}

/// Every job's tags and serial groups; an error names a row that cannot be read.
async fn read_jobs(manager: &SchemaManager<'_>) -> Result<Vec<JobRows>, DbErr> {
    let select = Query::select()
        .columns(["id", "pipeline_id", "tags", "serial_groups"])
        .from("jobs")
        .to_owned();
    let mut jobs = Vec::new();
    for row in manager.get_connection().query_all(&select).await? {
        let id: i64 = row.try_get("", "id")?;
        let tags: String = row.try_get("", "tags")?;
        let groups: String = row.try_get("", "serial_groups")?;
        jobs.push(JobRows {
            id,
            pipeline: row.try_get("", "pipeline_id")?,
            tags: names(id, "tags", &tags)?,
            groups: names(id, "serial groups", &groups)?,
        });
    }
    Ok(jobs)
}

/// Writes the jobs' tag and serial group rows (replacing what an interrupted run wrote).
async fn fill(manager: &SchemaManager<'_>, jobs: &[JobRows]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for table in ["job_tags", "job_serial_groups"] {
        db.execute(&Query::delete().from_table(table).to_owned())
            .await?;
    }
    for job in jobs {
        for tag in &job.tags {
            let mut insert = Query::insert();
            insert
                .into_table("job_tags")
                .columns(["job_id", "tag"])
                .values([job.id.into(), tag.clone().into()])
                .map_err(query_error)?;
            db.execute(&insert).await?;
        }
        for group in &job.groups {
            let mut insert = Query::insert();
            insert
                .into_table("job_serial_groups")
                .columns(["job_id", "pipeline_id", "name"])
                .values([job.id.into(), job.pipeline.into(), group.clone().into()])
                .map_err(query_error)?;
            db.execute(&insert).await?;
        }
    }
    Ok(())
}

/// A JSON list of names from a `jobs` row, each once.
fn names(job: i64, what: &str, json: &str) -> Result<Vec<String>, DbErr> {
    let mut names: Vec<String> = serde_json::from_str(json).map_err(|err| {
        DbErr::Migration(format!(
            "the {what} of job {job} are not a JSON list of names ({err}): the database is \
             corrupt; restore it from a backup"
        ))
    })?;
    names.sort();
    names.dedup();
    Ok(names)
}

fn query_error(err: sea_orm::sea_query::error::Error) -> DbErr {
    DbErr::Migration(format!("failed to build a query: {err}"))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database};
    use sea_orm_migration::MigratorTrait;

    use crate::migration::Migrator;

    /// A database migrated up to m0002, holding a team, pipeline 7 and these `jobs` rows
    /// (`(id, pipeline_id, name, serial_groups, tags, model, created_at)`).
    async fn at_m0002_with_jobs(rows: &str) -> anyhow::Result<sea_orm::DatabaseConnection> {
        let db = Database::connect("sqlite::memory:").await?;
        Migrator::up(&db, Some(2)).await?;
        db.execute_unprepared(&format!(
            "INSERT INTO teams (id, name, created_at) VALUES (1, 'main', 0);
             INSERT INTO pipelines (id, team_id, name, config, vars, model, created_at, updated_at)
               VALUES (7, 1, 'ci', '', '{{}}', '{{}}', 0, 0);
             INSERT INTO jobs (id, pipeline_id, name, serial_groups, tags, model, created_at)
               VALUES {rows};"
        ))
        .await?;
        Ok(db)
    }

    #[tokio::test]
    async fn jobs_stored_before_get_their_tag_and_group_rows() -> anyhow::Result<()> {
        let db = at_m0002_with_jobs(
            "(3, 7, 'deploy', '[\"prod\",\"prod\"]', '[\"gpu\",\"linux\"]', '{}', 0),
             (4, 7, 'test', '[]', '[]', '{}', 0)",
        )
        .await?;
        Migrator::up(&db, None).await?;
        let rows = |sql: &'static str| {
            let db = &db;
            async move {
                let rows = db
                    .query_all_raw(sea_orm::Statement::from_string(
                        db.get_database_backend(),
                        sql,
                    ))
                    .await?;
                rows.iter()
                    .map(|row| row.try_get_by_index::<String>(0))
                    .collect::<Result<Vec<_>, _>>()
            }
        };
        assert_eq!(
            rows("SELECT job_id || ':' || tag FROM job_tags ORDER BY tag").await?,
            ["3:gpu", "3:linux"]
        );
        assert_eq!(
            rows("SELECT job_id || ':' || pipeline_id || ':' || name FROM job_serial_groups")
                .await?,
            ["3:7:prod"]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_corrupt_job_row_stops_the_migration_before_it_changes_anything() -> anyhow::Result<()>
    {
        let db = at_m0002_with_jobs("(5, 7, 'broken', '[]', 'gpu', '{}', 0)").await?;
        let err = Migrator::up(&db, None).await.expect_err("a corrupt row");
        let message = err.to_string();
        assert!(
            message.contains("the tags of job 5 are not a JSON list"),
            "{message}"
        );
        // Once the row is mended, the migration runs from the start.
        db.execute_unprepared("UPDATE jobs SET tags = '[\"gpu\"]' WHERE id = 5")
            .await?;
        Migrator::up(&db, None).await?;
        Ok(())
    }
}
