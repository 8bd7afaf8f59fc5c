//! Store values for an assignment: the entries of the store `pikoci` a build or a check reads,
//! looked up for its pipeline and sealed to the worker that gets it
//! (`pikoci_secrets::sealed`), so that the broker never holds them in clear.

use pikoci_core::Pipeline;
use pikoci_core::protocol::{SealedSecrets, WorkRef};
use pikoci_core::secrets::{used_by_job, used_by_resource};
use pikoci_core::store::Worker;
use pikoci_secrets::sealed::{self, StoreValues};

use crate::Server;

/// The store entries a build of `job` reads (its own variables and those they depend on).
pub(crate) fn job_store_keys(model: &Pipeline, job: &str) -> Vec<String> {
    pikoci_secrets::store_keys(model, &used_by_job(model, job))
}

/// The store entries a check of `resource` (`type.name`) reads.
pub(crate) fn check_store_keys(model: &Pipeline, resource: &str) -> Vec<String> {
    let Some(reference) = model
        .resources
        .iter()
        .find(|r| r.canonical() == resource)
        .map(|r| r.reference())
    else {
        return Vec::new();
    };
    pikoci_secrets::store_keys(model, &used_by_resource(model, &reference))
}

impl Server {
    /// The entries `keys` of the store for `pipeline` of `team`, sealed to `worker` for
    /// `work`: `None` when there are none to send. The error says what is wrong and what to
    /// do, and holds no value.
    pub(crate) async fn seal_store_values(
        &self,
        team: &str,
        pipeline: &str,
        keys: &[String],
        worker: &Worker,
        work: WorkRef,
    ) -> Result<Option<SealedSecrets>, String> {
        if keys.is_empty() {
            return Ok(None);
        }
        let Some(public_key) = &worker.sealing_key else {
            return Err(format!(
                "it reads entries of the secret store \"pikoci\" ({}), and the worker (version {}) announced no key to seal them to: upgrade the worker to a PikoCI release that seals store values, then retry",
                keys.join(", "),
                worker.version
            ));
        };
        let mut values = StoreValues::new();
        for key in keys {
            let value = self
                .inner
                .secrets
                .lookup(team, pipeline, key)
                .await
                .map_err(|error| {
                    format!(
                        "cannot read the entry \"{key}\" of the secret store \"pikoci\": {}",
                        error.full_message()
                    )
                })?;
            values.insert(key.clone(), value);
        }
        sealed::seal(public_key, &values, work)
            .map(Some)
            .map_err(|error| {
                format!(
                    "cannot seal the secret store's values to the worker: {}",
                    error.full_message()
                )
            })
    }
}
