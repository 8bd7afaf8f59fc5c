//! Teams and pipelines: the operations that turn a user's pipeline file into stored state.

use pikoci_config::{HttpFetcher, SourceFile, VarValue, Vars};
use pikoci_core::ErrorKind;
use pikoci_core::name::is_canonical;
use pikoci_core::store::{PipelineSpec, StoredPipeline, Team};

use crate::{PipelineSet, Server, ServerError, ServerResult};

impl Server {
    /// The team with this name, created when missing. `InvalidInput` when the name is not
    /// canonical.
    pub async fn ensure_team(&self, name: &str) -> ServerResult<Team> {
        check_canonical("team", name)?;
        match self.store().team(name).await {
            Ok(team) => return Ok(team),
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        match self.store().create_team(name, self.clock().now()).await {
            Ok(team) => {
                tracing::info!(team = %name, "team created");
                Ok(team)
            }
            // Another server (or request) created it between the two calls.
            Err(error) if error.kind() == ErrorKind::Conflict => {
                Ok(self.store().team(name).await?)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Validates `text` (the pipeline file, named `file_name` in diagnostics) with `vars` (a
    /// JSON object, or `null` for none) and creates or updates pipeline `name` of `team`. A
    /// pipeline that does not validate is an `InvalidInput` error carrying the diagnostics;
    /// nothing changes. Setting the same text again keeps every id (jobs and resources are
    /// matched by name).
    pub async fn set_pipeline(
        &self,
        team: &str,
        name: &str,
        file_name: &str,
        text: &str,
        vars: serde_json::Value,
    ) -> ServerResult<PipelineSet> {
        let team = self.store().team(team).await?;
        let (spec, warnings) = self.validate_pipeline(name, file_name, text, vars).await?;
        let outcome = self
            .store()
            .set_pipeline(team.id, spec, self.clock().now())
            .await?;
        tracing::info!(
            team = %team.name,
            pipeline = %name,
            created = outcome.created,
            jobs_added = outcome.jobs.added.len(),
            jobs_removed = outcome.jobs.removed.len(),
            "pipeline set"
        );
        // New resources are due for their first check now.
        self.wake_dispatcher();
        self.inner.runtime.changed();
        Ok(PipelineSet { outcome, warnings })
    }

    /// Validates `text` as [`Server::set_pipeline`] does, without storing anything: the
    /// pipeline to store and the validation's warnings, or an `InvalidInput` error carrying
    /// the diagnostics. Like setting, it fetches the file's `source` URLs.
    pub async fn validate_pipeline(
        &self,
        name: &str,
        file_name: &str,
        text: &str,
        vars: serde_json::Value,
    ) -> ServerResult<(PipelineSpec, Vec<pikoci_config::Diagnostic>)> {
        check_canonical("pipeline", name)?;
        let (vars, given) = vars_from_json(vars)?;
        let file = SourceFile::new(file_name, text);
        // `load` is synchronous and may fetch `source` URLs over HTTP with a blocking client.
        let loaded = tokio::task::spawn_blocking(move || {
            pikoci_config::load(&file, &given, &HttpFetcher::default())
        })
        .await
        .map_err(|error| {
            ServerError::new(
                ErrorKind::Internal,
                format!("validating {file_name} failed unexpectedly: {error}"),
            )
        })?;
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(diagnostics) => {
                let errors = diagnostics.error_count();
                let mut message = format!(
                    "{file_name} is not a valid pipeline: {errors} error{}",
                    if errors == 1 { "" } else { "s" }
                );
                if let Some(note) = diagnostics.note() {
                    message.push_str(&format!(" ({note})"));
                }
                return Err(ServerError {
                    kind: ErrorKind::InvalidInput,
                    message,
                    diagnostics: Some(diagnostics.items().to_vec()),
                });
            }
        };
        let spec = PipelineSpec {
            name: name.to_owned(),
            config: text.to_owned(),
            vars,
            model: loaded.pipeline,
        };
        Ok((spec, loaded.warnings.items().to_vec()))
    }

    /// Whether pipeline `old` of `team` can be renamed `new` now: the name is canonical and
    /// free, and its secrets can be sealed to it (a key is configured when it has any).
    pub async fn check_rename(&self, team: &str, old: &str, new: &str) -> ServerResult<()> {
        check_canonical("pipeline", new)?;
        let found = self.store().team(team).await?;
        if self.store().pipeline(found.id, new).await.is_ok() {
            return Err(ServerError::new(
                ErrorKind::Conflict,
                format!(
                    "team {team} already has a pipeline \"{new}\": choose another name, or \
                     delete that one first"
                ),
            ));
        }
        self.secrets()
            .reseal_for_rename(team, old, new)
            .await
            .map_err(|error| ServerError::new(error.kind(), error.full_message()))?;
        Ok(())
    }

    /// Renames pipeline `old` of `team` to `new`. Its jobs, builds, resources and versions
    /// stay its own (they refer to it by id); its store `secret` entries are sealed again for
    /// the new name in the same transaction. `Conflict` when `new` is taken, or when the
    /// pipeline's secrets changed during the rename (it is tried again once first).
    pub async fn rename_pipeline(
        &self,
        team: &str,
        old: &str,
        new: &str,
    ) -> ServerResult<StoredPipeline> {
        check_canonical("pipeline", new)?;
        let found = self.store().team(team).await?;
        let pipeline = self.store().pipeline(found.id, old).await?;
        let mut tries = 0;
        loop {
            tries += 1;
            let resealed = self
                .secrets()
                .reseal_for_rename(team, old, new)
                .await
                .map_err(|error| ServerError::new(error.kind(), error.full_message()))?;
            match self
                .store()
                .rename_pipeline(pipeline.id, new, &resealed)
                .await
            {
                Ok(renamed) => {
                    tracing::info!(team = %team, pipeline = %new, from = %old, secrets = resealed.len(), "pipeline renamed");
                    return Ok(renamed);
                }
                Err(error) if error.is_conflict() && tries == 1 => {
                    // Unless the name is taken, a secret was set meanwhile: seal them all
                    // again, once.
                    if self.store().pipeline(found.id, new).await.is_ok() {
                        return Err(error.into());
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// `InvalidInput` unless `name` is canonical.
fn check_canonical(what: &str, name: &str) -> ServerResult<()> {
    if is_canonical(name) {
        return Ok(());
    }
    Err(ServerError::new(
        ErrorKind::InvalidInput,
        format!(
            "invalid {what} name \"{}\": use 1 to 255 lowercase letters, digits, '-' and '_', \
             starting and ending with a letter or digit",
            name.escape_debug()
        ),
    ))
}

/// The vars as stored (a JSON object; `null` becomes `{}`) and as `load` takes them.
fn vars_from_json(json: serde_json::Value) -> ServerResult<(serde_json::Value, Vars)> {
    let map = match json {
        serde_json::Value::Null => serde_json::Map::new(),
        serde_json::Value::Object(map) => map,
        other => {
            return Err(ServerError::new(
                ErrorKind::InvalidInput,
                format!(
                    "the pipeline vars must be a JSON object such as {{\"image\": \"alpine\"}}, \
                     not {other}"
                ),
            ));
        }
    };
    let mut vars = Vars::new();
    for (name, value) in &map {
        vars.insert(name.clone(), VarValue::Json(value.clone()));
    }
    Ok((serde_json::Value::Object(map), vars))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::{Clock, ServerConfig};

    /// A server on a fresh in-memory store.
    pub(crate) async fn server() -> Server {
        let sql = Arc::new(pikoci_store::connect("mem").await.expect("mem"));
        Server::new(
            sql.clone(),
            sql.clone(),
            Arc::new(pikoci_pubsub::MemBroker::new()),
            pikoci_secrets::SecretStore::new(sql, None),
            ServerConfig::default(),
            Clock::new(),
        )
    }

    const PIPELINE: &str = r#"
variable "greeting" {
  type = string
}
resource "cron" "tick" {
  check_interval = "@every 1m"
}
job "hello" {
  get "cron" "tick" {
    trigger = true
  }
  task "say" {
    run "exec" {
      path = "echo"
      args = [var.greeting]
    }
  }
}
"#;

    #[tokio::test]
    async fn ensure_team_creates_once_and_checks_the_name() {
        let server = server().await;
        let first = server.ensure_team("main").await.unwrap();
        let again = server.ensure_team("main").await.unwrap();
        assert_eq!(first, again);
        assert_eq!(server.store().list_teams().await.unwrap().len(), 1);
        let error = server.ensure_team("Main Team").await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidInput);
        assert!(error.message.contains("\"Main Team\""), "{}", error.message);
    }

    #[tokio::test]
    async fn set_pipeline_validates_stores_and_keeps_ids() {
        let server = server().await;
        server.ensure_team("main").await.unwrap();
        let vars = json!({"greeting": "hi"});
        let first = server
            .set_pipeline("main", "hello", "hello.hcl", PIPELINE, vars.clone())
            .await
            .unwrap();
        assert!(first.outcome.created);
        assert_eq!(first.outcome.jobs.added, ["hello"]);
        assert_eq!(first.outcome.pipeline.vars, vars);
        assert_eq!(first.outcome.pipeline.config, PIPELINE);
        let job = server
            .store()
            .job(first.outcome.pipeline.id, "hello")
            .await
            .unwrap();
        let again = server
            .set_pipeline("main", "hello", "hello.hcl", PIPELINE, vars)
            .await
            .unwrap();
        assert!(!again.outcome.created);
        assert_eq!(again.outcome.pipeline.id, first.outcome.pipeline.id);
        assert_eq!(again.outcome.jobs.updated, ["hello"]);
        let job_again = server
            .store()
            .job(first.outcome.pipeline.id, "hello")
            .await
            .unwrap();
        assert_eq!(job.id, job_again.id);
    }

    #[tokio::test]
    async fn an_invalid_pipeline_is_refused_with_its_diagnostics() {
        let server = server().await;
        server.ensure_team("main").await.unwrap();
        // No value for the variable (an error where it is declared and where it is used), and
        // an unknown attribute.
        let text = PIPELINE.replace("trigger = true", "trigger = true\n    triger = 1");
        let error = server
            .set_pipeline("main", "hello", "hello.hcl", &text, json!(null))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidInput);
        assert!(
            error.message == "hello.hcl is not a valid pipeline: 3 errors",
            "{}",
            error.message
        );
        let diagnostics = error.diagnostics.expect("diagnostics");
        assert_eq!(diagnostics.len(), 3, "{diagnostics:?}");
        assert!(
            diagnostics.iter().any(|d| d.message.contains("triger")),
            "{diagnostics:?}"
        );
        let team = server.store().team("main").await.unwrap();
        assert!(
            server
                .store()
                .list_pipelines(team.id)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn names_teams_and_vars_are_checked() {
        let server = server().await;
        server.ensure_team("main").await.unwrap();
        let vars = json!({"greeting": "hi"});
        let bad_name = server
            .set_pipeline("main", "Hello", "f.hcl", PIPELINE, vars.clone())
            .await
            .unwrap_err();
        assert_eq!(bad_name.kind, ErrorKind::InvalidInput);
        let no_team = server
            .set_pipeline("other", "hello", "f.hcl", PIPELINE, vars)
            .await
            .unwrap_err();
        assert_eq!(no_team.kind, ErrorKind::NotFound);
        let bad_vars = server
            .set_pipeline("main", "hello", "f.hcl", PIPELINE, json!(["hi"]))
            .await
            .unwrap_err();
        assert_eq!(bad_vars.kind, ErrorKind::InvalidInput);
        assert!(
            bad_vars.message.contains("JSON object"),
            "{}",
            bad_vars.message
        );
    }
}
