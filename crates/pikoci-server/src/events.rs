//! Events from workers about builds, fenced by `(build, attempt)`: an event for any other
//! attempt than the build's current one (or from another worker than the one holding it) is
//! ignored and its sender told to abort. Every handler is idempotent: a redelivered event
//! changes nothing.

use std::collections::BTreeMap;

use pikoci_core::ErrorKind;
use pikoci_core::model::ResourceRef;
use pikoci_core::protocol::{self, BuildRef, Envelope, Message, Outcome, WorkRef};
use pikoci_core::store::{
    Build, BuildStatus, BuildStep, BuildTransition, BuildVersion, NewLogChunk, ResourceVersion,
    RunningBuild, StepStatus, StoreResult, StoredResource, VersionUse,
};

use crate::dispatch::note;
use crate::state::lock;
use crate::{SERVER_NOTES_STEP, Server};

/// The build status an outcome ends a build with.
fn build_status(outcome: Outcome) -> BuildStatus {
    match outcome {
        // A build whose every step was skipped did nothing wrong.
        Outcome::Succeeded | Outcome::Skipped => BuildStatus::Succeeded,
        Outcome::Failed => BuildStatus::Failed,
        Outcome::Warning => BuildStatus::Warning,
        Outcome::Cancelled => BuildStatus::Cancelled,
        Outcome::Errored => BuildStatus::Errored,
    }
}

/// The step status an outcome ends a step with.
fn step_status(outcome: Outcome) -> StepStatus {
    match outcome {
        Outcome::Succeeded => StepStatus::Succeeded,
        Outcome::Failed => StepStatus::Failed,
        Outcome::Warning => StepStatus::Warning,
        Outcome::Cancelled => StepStatus::Cancelled,
        Outcome::Skipped => StepStatus::Skipped,
        Outcome::Errored => StepStatus::Errored,
    }
}

/// `type.name` as a reference (`None` when it has no dot).
pub(crate) fn parse_canonical(canonical: &str) -> Option<ResourceRef> {
    let (type_name, name) = canonical.split_once('.')?;
    Some(ResourceRef {
        type_name: type_name.to_owned(),
        name: name.to_owned(),
    })
}

impl Server {
    pub(crate) async fn on_event(&self, envelope: &Envelope) -> StoreResult<()> {
        let at = |ms: i64| protocol::from_ms(ms);
        let handled = match &envelope.message {
            Message::Accepted {
                work: WorkRef::Build(build),
            } => self.on_accepted(envelope, *build).await,
            // A check's claim already holds its (long) lease.
            Message::Accepted {
                work: WorkRef::Check(_),
            } => Ok(()),
            Message::Rejected {
                work: WorkRef::Build(build),
                reason,
            } => self.on_rejected(envelope, *build, reason).await,
            Message::Rejected {
                work: WorkRef::Check(check),
                reason,
            } => self.on_check_rejected(envelope, *check, reason).await,
            Message::StepStarted {
                build,
                step,
                parent,
                kind,
                name,
                at_ms,
            } => {
                let step = BuildStep {
                    attempt: build.attempt,
                    step: *step,
                    name: shorten(name, MAX_STEP_NAME),
                    kind: shorten(kind, 32),
                    status: StepStatus::Started,
                    started_at: Some(at(*at_ms)),
                    finished_at: None,
                    // The engine numbers a step after the one that encloses it: anything else
                    // would make the steps no tree.
                    parent: parent.filter(|parent| parent < step),
                };
                self.on_step(envelope, *build, step).await
            }
            Message::StepFinished {
                build,
                step,
                outcome,
                at_ms,
                ..
            } => {
                // Name and kind came with the start; empty ones keep what is stored.
                let step = BuildStep {
                    attempt: build.attempt,
                    step: *step,
                    name: String::new(),
                    kind: String::new(),
                    status: step_status(*outcome),
                    started_at: None,
                    finished_at: Some(at(*at_ms)),
                    parent: None,
                };
                self.on_step(envelope, *build, step).await
            }
            Message::Log {
                build,
                step,
                seq,
                text,
                at_ms,
            } => {
                if self.fenced(envelope, *build).await?.is_none() {
                    return Ok(());
                }
                let chunk = NewLogChunk {
                    build_id: build.build_id,
                    attempt: build.attempt,
                    step: *step,
                    seq: *seq,
                    data: text.as_bytes().to_vec(),
                    created_at: at(*at_ms),
                };
                self.inner.store.append_log_chunks(&[chunk]).await?;
                self.inner.metrics.log_ingested(text.len());
                // Nobody listening is fine.
                let _ = self.inner.runtime.logs.send(build.build_id);
                Ok(())
            }
            Message::VersionUsed {
                build,
                resource,
                version,
            } => {
                self.on_versions(
                    envelope,
                    *build,
                    resource,
                    std::slice::from_ref(version),
                    VersionUse::Get,
                )
                .await
            }
            Message::VersionsProduced {
                build,
                resource,
                versions,
            } => {
                self.on_versions(envelope, *build, resource, versions, VersionUse::Put)
                    .await
            }
            Message::TriggerEvent {
                build,
                resource,
                params,
            } => {
                self.on_trigger_event(envelope, *build, resource, params)
                    .await
            }
            Message::BuildFinished {
                build,
                outcome,
                error,
                log_chunks,
                ..
            } => {
                self.on_build_finished(envelope, *build, *outcome, error.clone(), *log_chunks)
                    .await
            }
            Message::CheckFinished {
                check,
                versions,
                error,
                log,
                ..
            } => {
                self.on_check_finished(envelope, *check, versions, error.clone(), log.clone())
                    .await
            }
            other => {
                tracing::warn!(r#type = other.type_name(), sender = %envelope.sender, "ignoring a message that is not an event");
                Ok(())
            }
        };
        // A build taken, refused or ended changes the statuses live pages show; steps, logs and
        // checks do not (a check's new versions make builds, which say so themselves).
        let shown = matches!(
            envelope.message,
            Message::Accepted {
                work: WorkRef::Build(_)
            } | Message::Rejected {
                work: WorkRef::Build(_),
                ..
            } | Message::BuildFinished { .. }
        );
        if shown && handled.is_ok() {
            self.inner.runtime.changed();
        }
        handled
    }

    /// The build, when the event is for its current attempt and from the worker holding it;
    /// `None` (and the sender told to abort) otherwise.
    pub(crate) async fn fenced(
        &self,
        envelope: &Envelope,
        build: BuildRef,
    ) -> StoreResult<Option<Build>> {
        let work = WorkRef::Build(build);
        let stored = match self.inner.store.build(build.build_id).await {
            Ok(stored) => stored,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                let reason = format!("build {} no longer exists", build.build_id);
                self.abort(&envelope.sender, work, reason).await;
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        let holder = stored.dispatch.worker_id.as_deref();
        if stored.dispatch.attempt != build.attempt {
            let reason = format!(
                "build {} is at attempt {}: attempt {} is stale",
                build.build_id, stored.dispatch.attempt, build.attempt
            );
            self.abort(&envelope.sender, work, reason).await;
            return Ok(None);
        }
        // A build no worker holds (pending, taken back) is nobody's to report on.
        if holder != Some(envelope.sender.as_str()) {
            let reason = format!(
                "build {} attempt {} is not this worker's",
                build.build_id, build.attempt
            );
            self.abort(&envelope.sender, work, reason).await;
            return Ok(None);
        }
        Ok(Some(stored))
    }

    async fn on_accepted(&self, envelope: &Envelope, build: BuildRef) -> StoreResult<()> {
        let Some(stored) = self.fenced(envelope, build).await? else {
            return Ok(());
        };
        let now = self.now();
        if stored.status == BuildStatus::Assigned {
            let moved = self
                .inner
                .store
                .transition_build(&BuildTransition {
                    action: None,
                    build_id: build.build_id,
                    from: vec![BuildStatus::Assigned],
                    to: BuildStatus::Started,
                    attempt: Some(build.attempt),
                    error: None,
                    at: now,
                })
                .await;
            match moved {
                // Creation to the first start (a build given back to pending by a lost worker
                // would count its first run again).
                Ok(started) if stored.started_at.is_none() => {
                    let waited = (now - started.created_at).to_std().unwrap_or_default();
                    self.inner.metrics.build_started(waited);
                }
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::Conflict => {}
                Err(err) => return Err(err),
            }
        }
        let current = self.inner.store.build(build.build_id).await?;
        if current.dispatch.attempt != build.attempt {
            return Ok(());
        }
        match current.status {
            BuildStatus::Started => {
                let until =
                    now + chrono::Duration::from_std(self.inner.config.lease).unwrap_or_default();
                let running = [RunningBuild {
                    build_id: build.build_id,
                    attempt: build.attempt,
                }];
                self.inner
                    .store
                    .renew_leases(&envelope.sender, &running, until)
                    .await?;
            }
            // Finished already (events came out of order, or a cancel): nothing to run.
            status if status.is_finished() => {}
            status => {
                let reason = format!(
                    "build {} is {status}: the assignment was taken back",
                    build.build_id
                );
                self.abort(&envelope.sender, WorkRef::Build(build), reason)
                    .await;
            }
        }
        Ok(())
    }

    async fn on_rejected(
        &self,
        envelope: &Envelope,
        build: BuildRef,
        why: &str,
    ) -> StoreResult<()> {
        if self.fenced(envelope, build).await?.is_none() {
            return Ok(());
        }
        let moved = self
            .inner
            .store
            .transition_build(&BuildTransition {
                action: None,
                build_id: build.build_id,
                from: vec![BuildStatus::Assigned],
                to: BuildStatus::Pending,
                attempt: Some(build.attempt),
                error: None,
                at: self.now(),
            })
            .await;
        match moved {
            Ok(_) => {
                tracing::info!(build = %build.build_id, worker = %envelope.sender, reason = %why, "a worker rejected a build; it goes back to pending");
                lock(&self.inner.runtime.reasons).insert(
                    build.build_id,
                    format!("worker \"{}\" rejected it: {why}", envelope.sender),
                );
                self.cool_down(&envelope.sender);
                self.wake_dispatcher();
                Ok(())
            }
            Err(err) if err.kind() == ErrorKind::Conflict => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Leaves a worker that rejected work out of dispatch for a moment, so that a stale view
    /// of its free slots does not make the same build bounce between it and the server.
    pub(crate) fn cool_down(&self, worker: &str) {
        let until = self.now()
            + chrono::Duration::from_std(self.inner.config.dispatch_interval * 2)
                .unwrap_or_default();
        lock(&self.inner.runtime.cooldown).insert(worker.to_owned(), until);
    }

    async fn on_step(
        &self,
        envelope: &Envelope,
        build: BuildRef,
        step: BuildStep,
    ) -> StoreResult<()> {
        if self.fenced(envelope, build).await?.is_none() {
            return Ok(());
        }
        match self.inner.store.record_step(build.build_id, &step).await {
            Ok(()) => Ok(()),
            // The attempt moved on between the fence and the write.
            Err(err) if err.kind() == ErrorKind::Conflict => {
                self.abort(&envelope.sender, WorkRef::Build(build), err.to_string())
                    .await;
                Ok(())
            }
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Versions a `get` used or a `put` produced: stored, recorded as used by the build, and
    /// a put's new versions trigger builds like a check's.
    async fn on_versions(
        &self,
        envelope: &Envelope,
        build: BuildRef,
        canonical: &str,
        versions: &[serde_json::Value],
        usage: VersionUse,
    ) -> StoreResult<()> {
        let Some(stored) = self.fenced(envelope, build).await? else {
            return Ok(());
        };
        let Some(resource) = self.build_resource(&stored, canonical).await? else {
            return Ok(());
        };
        let (objects, left_out) = crate::scheduling::storable_versions(versions);
        if left_out {
            tracing::warn!(build = %build.build_id, resource = canonical, "ignoring versions that are not JSON objects");
        }
        let now = self.now();
        let created = self
            .inner
            .store
            .create_versions(resource.id, &objects, now)
            .await?;
        let mut used = Vec::with_capacity(objects.len());
        for new in &objects {
            let id = match created.iter().find(|v| same_version(v, &new.version)) {
                Some(version) => Some(version.id),
                None => self
                    .inner
                    .store
                    .find_version(resource.id, &new.version)
                    .await?
                    .map(|v| v.id),
            };
            if let Some(version_id) = id {
                used.push(BuildVersion {
                    resource_id: resource.id,
                    version_id,
                    step_name: resource.model.name.clone(),
                    usage,
                });
            }
        }
        self.inner
            .store
            .record_build_versions(build.build_id, &used)
            .await?;
        if usage == VersionUse::Put && !created.is_empty() {
            self.trigger_from_versions(&resource, &created).await?;
        }
        Ok(())
    }

    /// The resource `canonical` of the build's pipeline (`None`, logged, when there is none).
    async fn build_resource(
        &self,
        build: &Build,
        canonical: &str,
    ) -> StoreResult<Option<StoredResource>> {
        let Some(reference) = parse_canonical(canonical) else {
            tracing::warn!(build = %build.id, resource = canonical, "ignoring versions of a resource name without a type");
            return Ok(None);
        };
        match self
            .inner
            .store
            .resource(build.pipeline_id, &reference)
            .await
        {
            Ok(resource) => Ok(Some(resource)),
            Err(err) if err.kind() == ErrorKind::NotFound => {
                tracing::warn!(build = %build.id, resource = canonical, "ignoring versions of a resource the pipeline no longer has");
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// A `put` to a `trigger` resource: an event on the team's stream (once per build
    /// attempt, resource and params), and the team's resources reading that stream are checked
    /// now.
    async fn on_trigger_event(
        &self,
        envelope: &Envelope,
        build: BuildRef,
        canonical: &str,
        params: &BTreeMap<String, String>,
    ) -> StoreResult<()> {
        let Some(stored) = self.fenced(envelope, build).await? else {
            return Ok(());
        };
        let store = &self.inner.store;
        let job = store.job_by_id(stored.job_id).await?;
        let pipeline = store.pipeline_by_id(stored.pipeline_id).await?;
        let mut version = serde_json::Map::new();
        for (key, value) in params {
            version.insert(key.clone(), serde_json::Value::String(value.clone()));
        }
        version.insert("trigger_pipeline".into(), pipeline.name.clone().into());
        version.insert("trigger_job".into(), job.name.clone().into());
        version.insert("trigger_build".into(), stored.number.to_string().into());
        let params_text = serde_json::to_string(params).unwrap_or_default();
        let key = format!(
            "build {} attempt {} {canonical} {params_text}",
            build.build_id, build.attempt
        );
        let version = serde_json::Value::Object(version);
        store
            .create_trigger_event_once(stored.team_id, canonical, &version, &key, self.now())
            .await?;
        self.check_trigger_readers(stored.team_id, canonical)
            .await
            .map(|_| ())
    }

    /// How many log chunks of an attempt its worker sent are stored (the server's own notes
    /// are not counted).
    pub(crate) async fn stored_log_chunks(&self, build: BuildRef) -> StoreResult<u64> {
        let counts = self
            .inner
            .store
            .log_chunk_counts(build.build_id, build.attempt)
            .await?;
        Ok(counts
            .iter()
            .filter(|(step, _)| **step != SERVER_NOTES_STEP)
            .map(|(_, chunks)| chunks)
            .sum())
    }

    async fn on_build_finished(
        &self,
        envelope: &Envelope,
        build: BuildRef,
        outcome: Outcome,
        error: Option<String>,
        log_chunks: Option<u64>,
    ) -> StoreResult<()> {
        if self.fenced(envelope, build).await?.is_none() {
            return Ok(());
        }
        let status = build_status(outcome);
        let moved = self
            .inner
            .store
            .transition_build(&BuildTransition {
                action: None,
                build_id: build.build_id,
                from: vec![BuildStatus::Assigned, BuildStatus::Started],
                to: status,
                attempt: Some(build.attempt),
                error,
                at: self.now(),
            })
            .await;
        let finished = match moved {
            Ok(finished) => finished,
            Err(err) if err.kind() == ErrorKind::Conflict => {
                let current = self.inner.store.build(build.build_id).await?;
                if current.dispatch.attempt != build.attempt || !current.status.is_finished() {
                    let reason = format!(
                        "build {} is {} at attempt {}",
                        build.build_id, current.status, current.dispatch.attempt
                    );
                    self.abort(&envelope.sender, WorkRef::Build(build), reason)
                        .await;
                }
                // A duplicate, or the build was finished by the server (cancel grace).
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        tracing::info!(build = %build.build_id, status = %finished.status, "build finished");
        if let Some(sent) = log_chunks {
            // Waited for in `ingest` as long as the server's patience allows; say what is missing.
            let stored = self.stored_log_chunks(build).await.unwrap_or(sent);
            if stored < sent {
                tracing::warn!(build = %build.build_id, attempt = build.attempt, stored, sent, "a build finished before all its log chunks arrived");
                let text = format!(
                    "pikoci: the log of this attempt may be incomplete: {stored} of the {sent} \
                     chunks its worker sent had arrived when it finished (later ones are still \
                     stored; a gap that stays means the broker lost them)\n"
                );
                // The build is finished: a note that cannot be written is not worth a redelivery.
                if let Err(err) = self
                    .note(build.build_id, build.attempt, note::LOG_INCOMPLETE, text)
                    .await
                {
                    tracing::warn!(build = %build.build_id, error = %err, "cannot note in a build's log that chunks are missing");
                }
            }
        }
        self.wake_dispatcher();
        if matches!(
            finished.status,
            BuildStatus::Succeeded | BuildStatus::Warning
        ) {
            self.evaluate_downstream(&finished).await?;
        }
        Ok(())
    }
}

/// Whether a stored version is `version` (stored versions have sorted keys; object equality
/// ignores key order).
fn same_version(stored: &ResourceVersion, version: &serde_json::Value) -> bool {
    &stored.version == version
}

/// The longest step name stored (the column holds 255 characters; hook names join their
/// owner's name and their own).
const MAX_STEP_NAME: usize = 255;

/// `text` cut to at most `max` characters, with `…` at the end when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max - 1).collect();
    short.push('…');
    short
}
