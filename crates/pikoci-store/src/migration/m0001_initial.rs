//! The first schema: teams, pipelines and their parts, versions, builds, logs, workers and
//! trigger events. Times are BIGINT milliseconds since the Unix epoch (UTC); JSON is text.

use sea_orm_migration::prelude::*;

use super::{Types, big, big_null, cascade, flag, id, index, int, string, string_null};

/// Creates every table of the first release.
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

// The trait's signature elides the lifetime; spelling it out breaks the async-trait expansion.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let t = Types::new(manager.get_database_backend());
        let tables = [
            t.table("teams")
                .col(id())
                .col(string("name", 255))
                .col(big("created_at"))
                .to_owned(),
            t.table("pipelines")
                .col(id())
                .col(big("team_id"))
                .col(string("name", 255))
                .col(t.long_text("config").not_null())
                .col(t.long_text("vars").not_null())
                .col(t.long_text("model").not_null())
                .col(flag("paused", false))
                .col(flag("public", false))
                .col(big("dispatch_seq").default(0))
                .col(big("created_at"))
                .col(big("updated_at"))
                .foreign_key(&mut cascade("pipelines", "team_id", "teams"))
                .to_owned(),
            t.table("pipeline_types")
                .col(id())
                .col(big("pipeline_id"))
                .col(string("kind", 32))
                .col(string("name", 255))
                .col(t.long_text("definition").not_null())
                .foreign_key(&mut cascade("pipeline_types", "pipeline_id", "pipelines"))
                .to_owned(),
            t.table("jobs")
                .col(id())
                .col(big("pipeline_id"))
                .col(string("name", 255))
                .col(int("position", 0))
                .col(flag("paused", false))
                .col(int("concurrency", 0))
                .col(t.long_text("serial_groups").not_null())
                .col(t.long_text("tags").not_null())
                .col(flag("disable_retry", false))
                .col(t.long_text("model").not_null())
                .col(int("next_build_number", 1))
                .col(big("created_at"))
                .foreign_key(&mut cascade("jobs", "pipeline_id", "pipelines"))
                .to_owned(),
            t.table("resources")
                .col(id())
                .col(big("pipeline_id"))
                .col(string("type_name", 255))
                .col(string("name", 255))
                .col(int("position", 0))
                .col(t.long_text("model").not_null())
                .col(string("check_interval", 255))
                .col(t.long_text("tags").not_null())
                .col(string("webhook_token", 64))
                .col(big_null("next_check_at"))
                .col(big_null("pinned_version_id"))
                .col(big_null("last_check_finished_at"))
                .col(t.long_text("last_check_error").null())
                .col(t.long_text("last_check_log").null())
                .col(int("check_attempt", 0))
                .col(string_null("check_worker_id", 255))
                .col(big_null("check_lease_expires_at"))
                .col(big("created_at"))
                .foreign_key(&mut cascade("resources", "pipeline_id", "pipelines"))
                .to_owned(),
            t.table("resource_versions")
                .col(id())
                .col(big("resource_id"))
                .col(string("digest", 64))
                .col(t.long_text("version").not_null())
                .col(t.long_text("metadata").not_null())
                .col(big("created_at"))
                .foreign_key(&mut cascade(
                    "resource_versions",
                    "resource_id",
                    "resources",
                ))
                .to_owned(),
            t.table("builds")
                .col(id())
                .col(big("job_id"))
                .col(big("pipeline_id"))
                .col(big("team_id"))
                .col(int("number", 0))
                .col(int("retry", 0))
                .col(int("retries", 0))
                .col(big_null("retry_of"))
                .col(string("status", 32))
                .col(t.long_text("inputs").not_null())
                .col(t.long_text("error").null())
                .col(big_null("trigger_resource_id"))
                .col(big_null("trigger_version_id"))
                .col(int("attempt", 0))
                .col(string_null("worker_id", 255))
                .col(big_null("lease_expires_at"))
                .col(int("requeues", 0))
                .col(big("created_at"))
                .col(big_null("started_at"))
                .col(big_null("finished_at"))
                .foreign_key(&mut cascade("builds", "job_id", "jobs"))
                .to_owned(),
            t.table("build_steps")
                .col(id())
                .col(big("build_id"))
                .col(int("attempt", 0))
                .col(int("step", 0))
                .col(string("name", 255))
                .col(string("kind", 32))
                .col(string("status", 32))
                .col(big_null("started_at"))
                .col(big_null("finished_at"))
                .foreign_key(&mut cascade("build_steps", "build_id", "builds"))
                .to_owned(),
            t.table("build_versions")
                .col(id())
                .col(big("build_id"))
                .col(big("resource_id"))
                .col(big("version_id"))
                .col(string("step_name", 255))
                .col(string("version_usage", 8))
                .foreign_key(&mut cascade("build_versions", "build_id", "builds"))
                .foreign_key(&mut cascade(
                    "build_versions",
                    "version_id",
                    "resource_versions",
                ))
                .to_owned(),
            t.table("log_chunks")
                .col(id())
                .col(big("build_id"))
                .col(int("attempt", 0))
                .col(int("step", 0))
                .col(big("seq"))
                .col(t.long_blob("data").not_null())
                .col(int("raw_len", 0))
                .col(big("created_at"))
                .foreign_key(&mut cascade("log_chunks", "build_id", "builds"))
                .to_owned(),
            t.table("workers")
                .col(
                    ColumnDef::new("worker_id")
                        .string_len(255)
                        .not_null()
                        .primary_key(),
                )
                .col(big_null("team_id"))
                .col(t.long_text("tags").not_null())
                .col(int("slots", 0))
                .col(int("running", 0))
                .col(string("version", 64))
                .col(string("hostname", 255))
                .col(big("first_seen_at"))
                .col(big("last_heartbeat_at"))
                .foreign_key(&mut cascade("workers", "team_id", "teams"))
                .to_owned(),
            t.table("trigger_events")
                .col(id())
                .col(big("team_id"))
                .col(string("resource", 511))
                .col(t.long_text("version").not_null())
                .col(big("created_at"))
                .foreign_key(&mut cascade("trigger_events", "team_id", "teams"))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        let indexes = [
            index("teams", &["name"], true),
            index("pipelines", &["team_id", "name"], true),
            index("pipeline_types", &["pipeline_id", "kind", "name"], true),
            index("jobs", &["pipeline_id", "name"], true),
            index("resources", &["pipeline_id", "type_name", "name"], true),
            index("resources", &["webhook_token"], true),
            index("resources", &["next_check_at"], false),
            index("resource_versions", &["resource_id", "digest"], true),
            index("builds", &["job_id", "number", "retry"], true),
            index("builds", &["status", "job_id", "id"], false),
            index("builds", &["status", "lease_expires_at"], false),
            index("builds", &["finished_at"], false),
            index("build_steps", &["build_id", "attempt", "step"], true),
            index(
                "build_versions",
                &["build_id", "version_id", "step_name", "version_usage"],
                true,
            ),
            index("build_versions", &["resource_id", "version_id"], false),
            index("log_chunks", &["build_id", "attempt", "step", "seq"], true),
            index("log_chunks", &["build_id", "id"], false),
            index("workers", &["last_heartbeat_at"], false),
            index("trigger_events", &["team_id", "resource", "id"], false),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }
}
