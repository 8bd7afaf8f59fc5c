//! The dispatcher: runs on every server, woken by new builds, checks, events and heartbeats,
//! and every `dispatch_interval`. Each round takes back lapsed leases, ends cancels whose worker
//! did not answer in time, hands pending builds and due checks to live workers (least loaded
//! first), and records why the builds still pending wait.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pikoci_core::protocol::{self, Assign, BuildRef, Message, ProtocolError, WorkRef};
use pikoci_core::store::{
    Build, BuildFilter, BuildStatus, BuildTransition, ClaimRequest, NewLogChunk, StoreResult,
    TeamId, TeamScope, Worker,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Server;
use crate::snapshot::SnapshotError;
use crate::state::lock;

/// The step index of the lines the server itself writes to a build's log (lost worker,
/// forced cancel): the largest index the store keeps, far above any step a worker numbers.
pub const SERVER_NOTES_STEP: u32 = i32::MAX as u32;

/// Sequence numbers of the server's notes within an attempt. An attempt ends with one note at
/// most (it lost its worker, its cancel was forced, or it finished before all its log
/// arrived: whichever ended it), so all are number 0: readers expect a step's numbers to
/// start at 0 without gaps.
pub(crate) mod note {
    /// The attempt lost its worker.
    pub(crate) const REQUEUED: u64 = 0;
    /// The worker did not confirm a cancel in time.
    pub(crate) const CANCEL_FORCED: u64 = 0;
    /// The attempt finished with log chunks its worker sent still missing.
    pub(crate) const LOG_INCOMPLETE: u64 = 0;
}

/// How often jobs with `passed` triggers are evaluated without an upstream build finishing
/// (it catches evaluations an error or a restart missed), and approval timeouts enforced.
const SLOW_TICK: Duration = Duration::from_secs(10);

/// The most builds one round assigns (the next round goes on).
const MAX_ASSIGNMENTS: usize = 1000;

/// How many overdue cancels one round forces (the next round takes the rest).
const OVERDUE_CANCELS_PER_ROUND: u32 = 100;

/// Runs dispatch rounds until `shutdown`.
pub(crate) async fn run(server: Server, shutdown: CancellationToken) {
    let mut last_slow: Option<DateTime<Utc>> = None;
    loop {
        let now = server.now();
        let slow = last_slow
            .is_none_or(|at| now - at >= chrono::Duration::from_std(SLOW_TICK).unwrap_or_default());
        if slow {
            last_slow = Some(now);
        }
        if let Err(err) = server.dispatch_round(slow).await {
            tracing::warn!(error = %err, "a dispatch round failed; the next one tries again");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = server.inner.runtime.wake.notified() => {}
            () = tokio::time::sleep(server.inner.config.dispatch_interval) => {}
        }
    }
}

/// A live worker as one round sees it.
pub(crate) struct Candidate {
    pub(crate) worker: Worker,
    pub(crate) teams: TeamScope,
    pub(crate) active: u32,
}

impl Server {
    pub(crate) async fn dispatch_round(&self, slow: bool) -> StoreResult<()> {
        let now = self.now();
        let runtime = &self.inner.runtime;
        let requeue = runtime.requeue_allowed(now, self.inner.config.requeue_grace);
        // Both wait while events may still be unread (after a start, or while the consumers are
        // unhealthy): the worker's answer may be among them. A lease is taken back only when it
        // lapsed before the heartbeats were read: one waiting in the broker may renew it.
        let lapsed_before = runtime.lapsed_before(now).filter(|_| requeue);
        let mut active = self.active_builds().await?;
        let mut released = false;
        if let Some(lapsed_before) = lapsed_before {
            released |= self.requeue_lapsed(&active, lapsed_before, now).await?;
        }
        if requeue {
            released |= self.force_overdue_cancels(now).await?;
        }
        // Read again only when builds let go of their workers.
        if released {
            active = self.active_builds().await?;
        }
        let before: Vec<_> = active.iter().map(|b| (b.id, b.status)).collect();
        let reasons_before = lock(&runtime.reasons).clone();
        let mut candidates = self.live_workers(now, &active).await?;
        self.assign_builds(&mut candidates).await?;
        self.assign_checks(&candidates, lapsed_before).await?;
        let active = self.active_builds().await?;
        self.record_reasons(&candidates, &active).await?;
        // Builds given to workers, taken back or cancelled, or waiting for another reason:
        // live pages show it.
        let after: Vec<_> = active.iter().map(|b| (b.id, b.status)).collect();
        if released || before != after || *lock(&runtime.reasons) != reasons_before {
            runtime.changed();
        }
        if slow {
            self.catch_up_triggers().await?;
            self.evaluate_all_passed().await?;
            self.expire_approvals(now).await?;
        }
        Ok(())
    }

    /// Every build that holds a worker slot.
    pub(crate) async fn active_builds(&self) -> StoreResult<Vec<Build>> {
        self.builds_in(vec![BuildStatus::Assigned, BuildStatus::Started])
            .await
    }

    /// Every build in one of `statuses`, newest first, read page by page.
    async fn builds_in(&self, statuses: Vec<BuildStatus>) -> StoreResult<Vec<Build>> {
        const PAGE: u32 = 500;
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .inner
                .store
                .list_builds(&BuildFilter {
                    statuses: statuses.clone(),
                    before,
                    limit: PAGE,
                    ..BuildFilter::default()
                })
                .await?;
            let done = page.len() < PAGE as usize;
            before = page.last().map(|b| b.id);
            all.extend(page);
            if done || before.is_none() {
                return Ok(all);
            }
        }
    }

    /// Workers that heartbeated within `worker_lost_after`, are not draining and did not
    /// just reject work, with the teams they serve and their load.
    async fn live_workers(
        &self,
        now: DateTime<Utc>,
        active: &[Build],
    ) -> StoreResult<Vec<Candidate>> {
        let lost_after =
            chrono::Duration::from_std(self.inner.config.worker_lost_after).unwrap_or_default();
        let cooling: Vec<String> = {
            let mut cooldown = lock(&self.inner.runtime.cooldown);
            cooldown.retain(|_, until| *until > now);
            cooldown.keys().cloned().collect()
        };
        let live: Vec<Worker> = self
            .inner
            .store
            .workers()
            .await?
            .into_iter()
            .filter(|w| now - w.last_heartbeat_at <= lost_after && !w.draining)
            .collect();
        // A global worker leaves alone the teams that have workers of their own.
        let team_workers: Vec<TeamId> = live.iter().filter_map(|w| w.team_id).collect();
        let mut load: HashMap<&str, u32> = HashMap::new();
        for build in active {
            if let Some(worker) = &build.dispatch.worker_id {
                *load.entry(worker.as_str()).or_default() += 1;
            }
        }
        Ok(live
            .into_iter()
            .filter(|w| !cooling.contains(&w.worker_id))
            .map(|worker| {
                let teams = match worker.team_id {
                    Some(team) => TeamScope::Only(team),
                    None => TeamScope::AllExcept(team_workers.clone()),
                };
                let active = load.get(worker.worker_id.as_str()).copied().unwrap_or(0);
                Candidate {
                    worker,
                    teams,
                    active,
                }
            })
            .collect())
    }

    /// Claims pending builds for the least loaded workers with a free slot and sends them.
    async fn assign_builds(&self, candidates: &mut [Candidate]) -> StoreResult<()> {
        let assign_timeout =
            chrono::Duration::from_std(self.inner.config.assign_timeout).unwrap_or_default();
        let mut open: Vec<usize> = (0..candidates.len())
            .filter(|&i| candidates[i].active < candidates[i].worker.slots)
            .collect();
        for _ in 0..MAX_ASSIGNMENTS {
            // Least loaded first: the lowest share of slots in use, then the fewest builds.
            let Some(position) = (0..open.len()).min_by_key(|&p| {
                let c = &candidates[open[p]];
                (
                    u64::from(c.active) * 1000 / u64::from(c.worker.slots.max(1)),
                    c.active,
                )
            }) else {
                return Ok(());
            };
            let candidate = &mut candidates[open[position]];
            let claimed = self
                .inner
                .store
                .claim_next_pending(&ClaimRequest {
                    worker_id: candidate.worker.worker_id.clone(),
                    worker_tags: candidate.worker.tags.clone(),
                    teams: candidate.teams.clone(),
                    exclusive: candidate.worker.exclusive,
                    lease_until: self.now() + assign_timeout,
                })
                .await?;
            let Some(build) = claimed else {
                open.remove(position);
                continue;
            };
            candidate.active += 1;
            let full = candidate.active >= candidate.worker.slots;
            let worker = candidate.worker.clone();
            if full {
                open.remove(position);
            }
            let span = tracing::info_span!(
                "dispatch",
                build = %build.id,
                attempt = build.dispatch.attempt,
                worker = %worker.worker_id
            );
            self.send_assignment(build, &worker)
                .instrument(span)
                .await?;
        }
        Ok(())
    }

    /// Sends a claimed build to its worker: an assignment that cannot be built (store values
    /// that cannot be looked up or sealed to the worker included) errors the build; one whose
    /// snapshot cannot be read goes back to pending at once (nothing was sent). One whose
    /// publish failed stays assigned until its lease lapses: a failed publish may still have
    /// reached the worker (a confirm lost in a broker outage), and putting the build back at
    /// the same attempt could let it run twice at once.
    async fn send_assignment(&self, build: Build, worker: &Worker) -> StoreResult<()> {
        lock(&self.inner.runtime.reasons).remove(&build.id);
        let snapshot = match self.snapshot(&build).await {
            Ok(snapshot) => snapshot,
            Err(SnapshotError::Invalid(error)) => {
                return self.error_build(&build, BuildStatus::Assigned, error).await;
            }
            Err(SnapshotError::Store(err)) => {
                self.unassign(&build).await;
                return Err(err);
            }
        };
        let lease_until = build
            .dispatch
            .lease_expires_at
            .unwrap_or_else(|| self.now());
        let build_ref = BuildRef {
            build_id: build.id,
            attempt: build.dispatch.attempt,
        };
        let keys = crate::sealing::job_store_keys(&snapshot.model, &snapshot.job);
        let store_values = match self
            .seal_store_values(
                &snapshot.team,
                &snapshot.pipeline,
                &keys,
                worker,
                WorkRef::Build(build_ref),
            )
            .await
        {
            Ok(sealed) => sealed,
            Err(problem) => {
                let error = format!(
                    "the build cannot be sent to worker \"{}\": {problem}",
                    worker.worker_id
                );
                return self.error_build(&build, BuildStatus::Assigned, error).await;
            }
        };
        let message = Message::Assign(Box::new(Assign {
            build: build_ref,
            lease_until_ms: protocol::to_ms(lease_until),
            snapshot,
            store_values,
        }));
        let envelope = self.envelope(message);
        let topic = protocol::topics::worker(&worker.worker_id);
        let key = match self.assignment_key(worker).await {
            Ok(key) => key,
            Err(err) => {
                self.unassign(&build).await;
                return Err(err);
            }
        };
        let key = match key {
            Ok(key) => key,
            Err(problem) => {
                tracing::warn!(build = %build.id, worker = %worker.worker_id, %problem, "cannot sign an assignment; the build goes back to pending");
                self.unassign(&build).await;
                return Ok(());
            }
        };
        let bytes = match key.encode(&topic, &envelope) {
            Ok(bytes) => bytes,
            Err(err @ ProtocolError::TooLarge { .. }) => {
                let error = format!(
                    "the build cannot be sent to a worker: {err}; make the pipeline smaller (fewer or shorter types, runners and variables)"
                );
                return self.error_build(&build, BuildStatus::Assigned, error).await;
            }
            Err(err) => {
                return self
                    .error_build(&build, BuildStatus::Assigned, err.to_string())
                    .await;
            }
        };
        let worker = worker.worker_id.as_str();
        match self.inner.broker.publish(&topic, bytes).await {
            Ok(()) => {
                tracing::info!(build = %build.id, attempt = build.dispatch.attempt, worker, "build assigned");
                Ok(())
            }
            Err(err) => {
                self.inner.metrics.broker_error("publish");
                tracing::warn!(build = %build.id, worker, error = %err, "failed to send an assignment; the build is dispatched again when its lease lapses");
                Ok(())
            }
        }
    }

    /// Puts an assigned build back to pending without counting a requeue.
    async fn unassign(&self, build: &Build) {
        let moved = self
            .inner
            .store
            .transition_build(&BuildTransition {
                action: None,
                build_id: build.id,
                from: vec![BuildStatus::Assigned],
                to: BuildStatus::Pending,
                attempt: Some(build.dispatch.attempt),
                error: None,
                at: self.now(),
            })
            .await;
        if let Err(err) = moved {
            tracing::warn!(build = %build.id, error = %err, "failed to put a build back to pending; its lease lapses instead");
        }
    }

    /// Takes back builds whose lease lapsed before `lapsed_before`, with a note in their log,
    /// once their worker was told to abort them `abort_grace` ago (and tells it again after).
    /// The abort comes first because a lapsed lease does not prove the worker dead: its
    /// heartbeats may be held up (another server took them and stalls, a redelivery waits),
    /// and a worker alive after all must stop the build before it runs elsewhere. True when
    /// it took any back.
    async fn requeue_lapsed(
        &self,
        active: &[Build],
        lapsed_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let grace = chrono::Duration::from_std(self.inner.config.abort_grace).unwrap_or_default();
        let mut cutoff = lapsed_before;
        let mut to_abort = Vec::new();
        {
            let mut revoked = lock(&self.inner.runtime.revoked);
            // Forget builds no longer held (finished, or taken back) and those whose lease was
            // renewed since (a lapse later on asks for a new abort).
            revoked.retain(|build, _| {
                active.iter().any(|b| {
                    b.id == build.build_id
                        && b.dispatch.attempt == build.attempt
                        && b.dispatch
                            .lease_expires_at
                            .is_some_and(|l| l < lapsed_before)
                })
            });
            for build in active {
                let Some(lease) = build.dispatch.lease_expires_at else {
                    continue;
                };
                if lease >= lapsed_before {
                    continue;
                }
                let held = BuildRef {
                    build_id: build.id,
                    attempt: build.dispatch.attempt,
                };
                match (revoked.get(&held), &build.dispatch.worker_id) {
                    (Some(told), _) if now - *told >= grace => {}
                    // Nobody to tell.
                    (None, None) => {}
                    (Some(_), _) => cutoff = cutoff.min(lease),
                    (None, Some(worker)) => {
                        cutoff = cutoff.min(lease);
                        to_abort.push((worker.clone(), held));
                    }
                }
            }
        }
        // The grace counts from an abort the broker took: one that failed is sent again in
        // the next round, and the build waits meanwhile.
        for (worker, held) in to_abort {
            tracing::info!(build = %held.build_id, attempt = held.attempt, %worker, "a build's lease lapsed: telling its worker to abort it before it is taken back");
            let abort = Message::Abort {
                work: WorkRef::Build(held),
                reason: "its lease lapsed: the build is taken back".into(),
            };
            match self.send(&worker, abort).await {
                Ok(()) => {
                    lock(&self.inner.runtime.revoked).insert(held, self.now());
                }
                Err(error) => {
                    tracing::warn!(%worker, %error, "the abort was not sent; the build waits for the next round")
                }
            }
        }
        let requeued = self
            .inner
            .store
            .requeue_expired(cutoff, now, self.inner.config.max_requeues)
            .await?;
        let any = !requeued.is_empty();
        for lost in requeued {
            let worker = lost.worker_id.as_deref().unwrap_or("unknown");
            let text = match lost.status {
                BuildStatus::Pending => format!(
                    "pikoci: attempt {} lost its worker \"{worker}\" (no heartbeat or no answer in time); the build runs again from the start\n",
                    lost.attempt
                ),
                BuildStatus::Cancelled => format!(
                    "pikoci: attempt {} lost its worker \"{worker}\" before it confirmed the cancel; the build is cancelled\n",
                    lost.attempt
                ),
                _ => format!(
                    "pikoci: attempt {} lost its worker \"{worker}\"; the build lost its worker too often (--max-requeues {}) and is errored\n",
                    lost.attempt, self.inner.config.max_requeues
                ),
            };
            tracing::warn!(build = %lost.build_id, attempt = lost.attempt, worker, status = %lost.status, "a build lost its worker");
            self.note(lost.build_id, lost.attempt, note::REQUEUED, text)
                .await?;
            if let Some(worker) = &lost.worker_id {
                let work = WorkRef::Build(BuildRef {
                    build_id: lost.build_id,
                    attempt: lost.attempt,
                });
                self.abort(worker, work, "its lease lapsed".into()).await;
            }
        }
        Ok(any)
    }

    /// Cancels whose worker did not report the build finished within the grace: the build is
    /// marked cancelled and the worker told to abort. True when it cancelled any.
    async fn force_overdue_cancels(&self, now: DateTime<Utc>) -> StoreResult<bool> {
        let mut any = false;
        let overdue = self
            .inner
            .store
            .overdue_cancels(now, OVERDUE_CANCELS_PER_ROUND)
            .await?;
        for build in overdue {
            let (id, attempt) = (build.id, build.dispatch.attempt);
            let worker = build.dispatch.worker_id.unwrap_or_default();
            let grace = self.inner.config.cancel_grace.as_secs();
            let error = format!(
                "cancelled; the worker \"{worker}\" did not confirm the cancel within {grace}s"
            );
            let moved = self
                .inner
                .store
                .transition_build(&BuildTransition {
                    action: None,
                    build_id: id,
                    from: vec![BuildStatus::Assigned, BuildStatus::Started],
                    to: BuildStatus::Cancelled,
                    attempt: Some(attempt),
                    error: Some(error.clone()),
                    at: now,
                })
                .await;
            match moved {
                Ok(_) => {
                    any = true;
                    tracing::warn!(build = %id, %worker, "a cancel was not confirmed in time; the build is cancelled");
                    self.note(
                        id,
                        attempt,
                        note::CANCEL_FORCED,
                        format!("pikoci: {error}\n"),
                    )
                    .await?;
                    let work = WorkRef::Build(BuildRef {
                        build_id: id,
                        attempt,
                    });
                    self.abort(&worker, work, "the build was cancelled".into())
                        .await;
                    self.wake_dispatcher();
                }
                Err(err) if err.kind() == pikoci_core::ErrorKind::Conflict => {}
                Err(err) => return Err(err),
            }
        }
        Ok(any)
    }

    /// Appends a line of the server's own to a build's log (see [`SERVER_NOTES_STEP`]).
    pub(crate) async fn note(
        &self,
        build: pikoci_core::store::BuildId,
        attempt: u32,
        seq: u64,
        text: String,
    ) -> StoreResult<()> {
        let chunk = NewLogChunk {
            build_id: build,
            attempt,
            step: SERVER_NOTES_STEP,
            seq,
            data: text.into_bytes(),
            created_at: self.now(),
        };
        self.inner.store.append_log_chunks(&[chunk]).await?;
        let _ = self.inner.runtime.logs.send(build);
        Ok(())
    }

    /// Rejects builds that waited for approval longer than their approval's `timeout`.
    async fn expire_approvals(&self, now: DateTime<Utc>) -> StoreResult<()> {
        // Every waiting build (a first page only would never expire the oldest ones).
        let waiting = self
            .builds_in(vec![BuildStatus::WaitingForApproval])
            .await?;
        let mut timeouts = HashMap::new();
        for build in waiting {
            let timeout = match timeouts.get(&build.job_id) {
                Some(timeout) => *timeout,
                None => {
                    let job = self.inner.store.job_by_id(build.job_id).await?;
                    let timeout = job.model.approval.as_ref().and_then(|a| a.timeout);
                    timeouts.insert(build.job_id, timeout);
                    timeout
                }
            };
            let Some(timeout) = timeout else { continue };
            let limit = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
            if now - build.created_at < limit {
                continue;
            }
            let moved = self
                .inner
                .store
                .transition_build(&BuildTransition {
                    action: None,
                    build_id: build.id,
                    from: vec![BuildStatus::WaitingForApproval],
                    to: BuildStatus::Cancelled,
                    attempt: None,
                    error: Some(format!(
                        "rejected: nobody approved it within {}",
                        pikoci_core::duration::format(timeout)
                    )),
                    at: now,
                })
                .await;
            if let Err(err) = moved
                && err.kind() != pikoci_core::ErrorKind::Conflict
            {
                return Err(err);
            }
        }
        Ok(())
    }
}
