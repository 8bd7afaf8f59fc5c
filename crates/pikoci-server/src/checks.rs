//! Resource checks: due checks are claimed for live workers and sent to them; the server runs
//! itself the checks that need no worker (the builtin `trigger` type reads the team's trigger
//! stream; a type without a `check` gets the empty version `{}`). A finished check's new
//! versions trigger builds.
//!
//! A check's lease works like a build's: claimed for `assign_timeout`, renewed by the
//! heartbeats of the worker running it (`heartbeat`), so a check may run as long as it needs
//! and one whose worker went silent is claimed again once the lease lapses.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::{DateTime, Utc};
use pikoci_core::ErrorKind;
use pikoci_core::protocol::{
    self, AssignCheck, CheckRef, CheckSnapshot, Envelope, Message, WorkRef,
};
use pikoci_core::store::{
    CheckClaim, CheckRecord, ClaimedCheck, NewVersion, PipelineId, ResourceId, ResourceVersion,
    StoreResult, StoredPipeline, StoredResource, TriggerEventId, Worker,
};

use crate::Server;
use crate::dispatch::Candidate;
use crate::state::lock;

/// How many checks at once a worker whose heartbeats do not say gets (a worker of a release
/// before heartbeats carried `check_slots` ran 4).
pub const UNANNOUNCED_CHECK_SLOTS: usize = 4;

/// The name of the builtin resource type whose checks read trigger streams.
const TRIGGER_TYPE: &str = "trigger";

/// The stream of a team's `trigger` resources named `name`: their canonical name.
pub(crate) fn trigger_stream(name: &str) -> String {
    format!("{TRIGGER_TYPE}.{name}")
}

/// How many trigger events one check turns into versions at most.
const MAX_TRIGGER_EVENTS: usize = 1000;

/// A pipeline whose resources are checked, with the name of its team.
struct Owner {
    pipeline: StoredPipeline,
    team: String,
}

/// Who runs a check.
enum CheckRunner {
    /// A worker (the type has a `check`).
    Worker,
    /// The server reads the team's trigger stream.
    TriggerStream,
    /// The type has no check: the server stores `{}`.
    Empty,
}

fn check_runner(pipeline: &StoredPipeline, resource: &StoredResource) -> Option<CheckRunner> {
    let resource_type = pipeline.model.resource_type(&resource.model.type_name)?;
    Some(match &resource_type.check {
        Some(_) => CheckRunner::Worker,
        None if resource_type.name == TRIGGER_TYPE && resource_type.push.is_none() => {
            CheckRunner::TriggerStream
        }
        None => CheckRunner::Empty,
    })
}

/// Whether `resource`'s versions come from its team's trigger stream (the builtin `trigger`
/// type, not one a pipeline declares with a `check` of its own).
pub(crate) fn reads_trigger_stream(pipeline: &StoredPipeline, resource: &StoredResource) -> bool {
    matches!(
        check_runner(pipeline, resource),
        Some(CheckRunner::TriggerStream)
    )
}

impl Server {
    /// Claims due checks for each live worker, in batches: as many as it has room for at once,
    /// up to the check slots its heartbeats announce in flight (what a worker runs at once
    /// besides its builds, whatever its build slots; [`UNANNOUNCED_CHECK_SLOTS`] when they do
    /// not say). Checks the server runs itself take no room, so a worker
    /// claims again until its room is full or nothing is due. Checks whose lease lapsed before
    /// `lapsed_before` are claimed again (none during the requeue grace).
    pub(crate) async fn assign_checks(
        &self,
        candidates: &[Candidate],
        lapsed_before: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let lease =
            chrono::Duration::from_std(self.inner.config.assign_timeout).unwrap_or_default();
        let mut order: Vec<&Candidate> = candidates.iter().collect();
        order.sort_by_key(|c| c.active);
        // Pipelines and their teams are read once per round, however many of their resources
        // are due (again when a claimed resource shows the pipeline was set since).
        let mut pipelines: HashMap<PipelineId, Owner> = HashMap::new();
        for candidate in order {
            let worker = &candidate.worker;
            let room = lock(&self.inner.runtime.check_slots)
                .get(&worker.worker_id)
                .copied()
                .unwrap_or(UNANNOUNCED_CHECK_SLOTS);
            loop {
                let in_flight = lock(&self.inner.runtime.checks)
                    .get(&worker.worker_id)
                    .map_or(0, |checks| checks.len());
                if in_flight >= room {
                    break;
                }
                let now = self.now();
                let claimed = self
                    .inner
                    .store
                    .claim_due_checks(
                        &CheckClaim {
                            worker_id: worker.worker_id.clone(),
                            worker_tags: worker.tags.clone(),
                            exclusive: worker.exclusive,
                            teams: candidate.teams.clone(),
                            now,
                            lapsed_before,
                            lease_until: now + lease,
                        },
                        room - in_flight,
                    )
                    .await?;
                if claimed.is_empty() {
                    break;
                }
                // Each check on its own: one that cannot start must not strand the others,
                // already leased to this worker.
                for check in claimed {
                    let (resource_id, attempt) = (check.resource.id, check.attempt);
                    if let Err(error) = self.start_claimed(&mut pipelines, check, worker).await {
                        tracing::warn!(resource = %resource_id, attempt, %error, "a claimed check could not be started; it is released");
                        let record = CheckRecord {
                            finished_at: self.now(),
                            error: Some(format!("the check could not be started: {error}")),
                            log: String::new(),
                        };
                        // Best effort: a lease that stays lapses and the check is claimed
                        // again.
                        let _ = self.finish_check(resource_id, attempt, record).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts a claimed check with its pipeline from `pipelines`, read when missing or when
    /// the claimed resource is not as the cached pipeline has it (the pipeline was set since).
    async fn start_claimed(
        &self,
        pipelines: &mut HashMap<PipelineId, Owner>,
        check: ClaimedCheck,
        worker: &Worker,
    ) -> StoreResult<()> {
        let pipeline_id = check.resource.pipeline_id;
        let current = |owner: &Owner| {
            owner
                .pipeline
                .model
                .resources
                .contains(&check.resource.model)
        };
        let owner = match pipelines.entry(pipeline_id) {
            Entry::Occupied(entry) if current(entry.get()) => entry.into_mut(),
            Entry::Occupied(mut entry) => {
                entry.insert(self.owner(pipeline_id).await?);
                entry.into_mut()
            }
            Entry::Vacant(entry) => entry.insert(self.owner(pipeline_id).await?),
        };
        self.start_check(owner, check, worker).await
    }

    /// The pipeline `id` and the name of its team.
    async fn owner(&self, id: PipelineId) -> StoreResult<Owner> {
        let pipeline = self.inner.store.pipeline_by_id(id).await?;
        let team = self.inner.store.team_by_id(pipeline.team_id).await?.name;
        Ok(Owner { pipeline, team })
    }

    /// Runs a claimed check on the server, or sends it to `worker`.
    async fn start_check(
        &self,
        owner: &Owner,
        claimed: ClaimedCheck,
        worker: &Worker,
    ) -> StoreResult<()> {
        let pipeline = &owner.pipeline;
        let ClaimedCheck { resource, attempt } = claimed;
        let store = &self.inner.store;
        let canonical = resource.canonical();
        let runner = check_runner(pipeline, &resource);
        let finish = |error: Option<String>, log: String| CheckRecord {
            finished_at: self.now(),
            error,
            log,
        };
        let record = match runner {
            None => finish(
                Some(format!(
                    "resource type \"{}\" of resource {canonical} is not in the pipeline",
                    resource.model.type_name
                )),
                String::new(),
            ),
            Some(CheckRunner::TriggerStream) => {
                let log = self.check_trigger_stream(pipeline, &resource).await?;
                finish(None, log)
            }
            Some(CheckRunner::Empty) => {
                if store.latest_version(resource.id).await?.is_none() {
                    let empty = NewVersion {
                        version: serde_json::json!({}),
                        metadata: serde_json::Value::Null,
                    };
                    let created = store
                        .create_versions(resource.id, &[empty], self.now())
                        .await?;
                    self.trigger_from_versions(&resource, &created).await?;
                }
                finish(
                    None,
                    format!(
                        "resource type \"{}\" has no check: builds get the empty version {{}}\n",
                        resource.model.type_name
                    ),
                )
            }
            Some(CheckRunner::Worker) => {
                return self.send_check(owner, resource, attempt, worker).await;
            }
        };
        self.finish_check(resource.id, attempt, record).await
    }

    /// Sends a check to a worker; a check that cannot be sent (store values that cannot be
    /// looked up or sealed to the worker included) is finished with the error.
    async fn send_check(
        &self,
        owner: &Owner,
        resource: StoredResource,
        attempt: u32,
        worker: &Worker,
    ) -> StoreResult<()> {
        let Owner { pipeline, team } = owner;
        let worker_id = worker.worker_id.as_str();
        let canonical = resource.canonical();
        let newest = self.inner.store.latest_version(resource.id).await?;
        let check = CheckRef {
            resource_id: resource.id,
            attempt,
        };
        let lease_until = resource
            .check_lease
            .as_ref()
            .map_or_else(|| self.now(), |lease| lease.expires_at);
        let model = CheckSnapshot::prune(&pipeline.model, &canonical);
        let keys = crate::sealing::check_store_keys(&model, &canonical);
        let sealed = self
            .seal_store_values(team, &pipeline.name, &keys, worker, WorkRef::Check(check))
            .await
            .map_err(|problem| {
                format!("the check cannot be sent to worker \"{worker_id}\": {problem}")
            });
        let sent = match sealed {
            Ok(store_values) => {
                let message = Message::AssignCheck(Box::new(AssignCheck {
                    check,
                    lease_until_ms: protocol::to_ms(lease_until),
                    snapshot: CheckSnapshot {
                        team: team.clone(),
                        pipeline_id: pipeline.id,
                        pipeline: pipeline.name.clone(),
                        resource: canonical.clone(),
                        model,
                        newest: newest.map(|v| v.version),
                    },
                    store_values,
                }));
                match self.assignment_key(worker).await? {
                    Ok(key) => self.publish_signed(worker_id, &key, message).await,
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        };
        match sent {
            Ok(()) => {
                tracing::debug!(resource = %canonical, attempt, worker = worker_id, "check assigned");
                lock(&self.inner.runtime.checks)
                    .entry(worker_id.to_owned())
                    .or_default()
                    .insert(check, self.now());
                Ok(())
            }
            Err(error) => {
                tracing::warn!(resource = %canonical, worker = worker_id, %error, "a check could not be sent");
                let record = CheckRecord {
                    finished_at: self.now(),
                    error: Some(error),
                    log: String::new(),
                };
                self.finish_check(resource.id, attempt, record).await
            }
        }
    }

    /// Finishes a check; a stale one (claimed again since) changes nothing.
    async fn finish_check(
        &self,
        resource: ResourceId,
        attempt: u32,
        record: CheckRecord,
    ) -> StoreResult<()> {
        match self
            .inner
            .store
            .finish_check(resource, attempt, record)
            .await
        {
            Ok(()) => Ok(()),
            Err(err) if matches!(err.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// A check of a `trigger` resource: the events of the team's stream since the newest one
    /// seen become versions (the event's payload plus its `trigger_id`). The first check takes
    /// the events since the resource was created, not the stream's whole history.
    async fn check_trigger_stream(
        &self,
        pipeline: &StoredPipeline,
        resource: &StoredResource,
    ) -> StoreResult<String> {
        let store = &self.inner.store;
        let canonical = resource.canonical();
        let newest = store.latest_version(resource.id).await?;
        let mut after = newest
            .as_ref()
            .and_then(|v| v.version.get("trigger_id"))
            .and_then(serde_json::Value::as_i64)
            .map(TriggerEventId);
        let mut found = Vec::new();
        loop {
            let page = store
                .trigger_events(pipeline.team_id, &canonical, after, 500)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let full = page.len() == 500;
            for event in page {
                if newest.is_none() && event.created_at < resource.created_at {
                    continue;
                }
                let mut version = match event.version {
                    serde_json::Value::Object(map) => map,
                    _ => serde_json::Map::new(),
                };
                version.insert("trigger_id".into(), event.id.0.into());
                found.push(NewVersion {
                    version: serde_json::Value::Object(version),
                    metadata: serde_json::Value::Null,
                });
            }
            if !full || found.len() >= MAX_TRIGGER_EVENTS {
                break;
            }
        }
        let count = found.len();
        let created = store
            .create_versions(resource.id, &found, self.now())
            .await?;
        self.trigger_from_versions(resource, &created).await?;
        Ok(format!("{count} new trigger event(s) on {canonical}\n"))
    }

    /// A worker finished a check: its versions are stored (new ones trigger builds), then the
    /// check is released. A check that is no longer the worker's changes nothing.
    pub(crate) async fn on_check_finished(
        &self,
        envelope: &Envelope,
        check: CheckRef,
        versions: &[serde_json::Value],
        error: Option<String>,
        log: String,
    ) -> StoreResult<()> {
        let Some(resource) = self.held_check(envelope, check).await? else {
            tracing::debug!(resource = %check.resource_id, attempt = check.attempt, "ignoring a stale check result");
            return Ok(());
        };
        let store = &self.inner.store;
        let mut error = error;
        if error.is_none() {
            let (objects, left_out) = crate::scheduling::storable_versions(versions);
            if left_out {
                error = Some(format!(
                    "the check printed {} version(s) that are not JSON objects; they were ignored",
                    versions.len() - objects.len()
                ));
            }
            let created: Vec<ResourceVersion> = store
                .create_versions(resource.id, &objects, self.now())
                .await?;
            if !created.is_empty() {
                tracing::info!(resource = %resource.canonical(), new = created.len(), "new versions");
            }
            self.trigger_from_versions(&resource, &created).await?;
        }
        let record = CheckRecord {
            finished_at: self.now(),
            error,
            log,
        };
        self.finish_check(resource.id, check.attempt, record)
            .await?;
        // The worker has room for another check: due ones need not wait for the next round.
        self.wake_dispatcher();
        Ok(())
    }

    /// The resource of a check its sender reports on, while the sender still holds that check
    /// attempt (`None`: the resource is gone or the check is no longer the sender's). Either
    /// way the check no longer counts as in flight on the sender.
    async fn held_check(
        &self,
        envelope: &Envelope,
        check: CheckRef,
    ) -> StoreResult<Option<StoredResource>> {
        if let Some(checks) = lock(&self.inner.runtime.checks).get_mut(&envelope.sender) {
            checks.remove(&check);
        }
        let resource = match self.inner.store.resource_by_id(check.resource_id).await {
            Ok(resource) => resource,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let held = resource.check_lease.as_ref().is_some_and(|lease| {
            lease.attempt == check.attempt && lease.worker_id == envelope.sender
        });
        Ok(held.then_some(resource))
    }

    /// A worker refused a check: it is released with the reason and due again at once.
    pub(crate) async fn on_check_rejected(
        &self,
        envelope: &Envelope,
        check: CheckRef,
        reason: &str,
    ) -> StoreResult<()> {
        let Some(resource) = self.held_check(envelope, check).await? else {
            return Ok(());
        };
        let store = &self.inner.store;
        // Releasing the check needs an outcome: keep the last real one, so that a busy worker
        // does not look like a failed check; without one, say what happened.
        let record = resource.last_check.clone().unwrap_or_else(|| CheckRecord {
            finished_at: self.now(),
            error: Some(format!(
                "not checked yet: worker \"{}\" could not take the check ({reason}); it is \
                 dispatched again",
                envelope.sender
            )),
            log: String::new(),
        });
        self.finish_check(resource.id, check.attempt, record)
            .await?;
        store.request_check(resource.id, self.now()).await?;
        self.cool_down(&envelope.sender);
        self.wake_dispatcher();
        Ok(())
    }
}
