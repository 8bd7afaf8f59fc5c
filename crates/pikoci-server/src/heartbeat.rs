//! Heartbeats: register the worker, renew the leases of what it runs (builds and checks), and
//! answer with the leases renewed and the work that is no longer its own.

use pikoci_core::ErrorKind;
use pikoci_core::protocol::auth::KeyScope;
use pikoci_core::protocol::{self, Envelope, Heartbeat, Message, WorkRef};
use pikoci_core::store::{RunningBuild, RunningCheck, StoreResult, WorkerHeartbeat};

use crate::Server;
use crate::state::lock;

impl Server {
    pub(crate) async fn on_heartbeat(
        &self,
        envelope: &Envelope,
        heartbeat: &Heartbeat,
    ) -> StoreResult<()> {
        let worker = heartbeat.worker.as_str();
        if let Err(problem) = protocol::check_worker_id(worker) {
            tracing::warn!(%problem, sender = %envelope.sender, "ignoring a heartbeat with an invalid worker name");
            return Ok(());
        }
        let store = &self.inner.store;
        let team_id = match &heartbeat.team {
            None => None,
            Some(name) => match store.team(name).await {
                Ok(team) => Some(team.id),
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    tracing::warn!(worker, team = %name, "ignoring a worker that serves a team that does not exist: create the team or fix the worker's --team");
                    return Ok(());
                }
                Err(err) => return Err(err),
            },
        };
        {
            let mut known = lock(&self.inner.runtime.check_slots);
            match heartbeat.check_slots {
                Some(slots) => {
                    // Workers named anew at each start come and go: forget them now and then
                    // (the next heartbeat of each live one says it again).
                    if known.len() >= 10_000 && !known.contains_key(worker) {
                        known.clear();
                    }
                    let slots = usize::try_from(slots).unwrap_or(usize::MAX).max(1);
                    known.insert(worker.to_owned(), slots);
                }
                // An older release under that name now.
                None => {
                    known.remove(worker);
                }
            }
        }
        let now = self.now();
        let mut running = Vec::new();
        let mut checks = Vec::new();
        for work in &heartbeat.running {
            match work {
                WorkRef::Build(build) => running.push(RunningBuild {
                    build_id: build.build_id,
                    attempt: build.attempt,
                }),
                WorkRef::Check(check) => checks.push(RunningCheck {
                    resource_id: check.resource_id,
                    attempt: check.attempt,
                }),
            }
        }
        let recorded = store
            .record_heartbeat(&WorkerHeartbeat {
                worker_id: worker.to_owned(),
                team_id,
                tags: heartbeat.tags.clone(),
                exclusive: heartbeat.exclusive,
                draining: heartbeat.draining,
                slots: heartbeat.slots,
                running: u32::try_from(running.len()).unwrap_or(u32::MAX),
                version: heartbeat.version.clone(),
                hostname: heartbeat.hostname.clone(),
                sealing_key: heartbeat.sealing_key.clone(),
                at: now,
            })
            .await?;
        // `refusal` checked that the heartbeat's team is its key's.
        let scope = heartbeat
            .team
            .clone()
            .map_or(KeyScope::Global, KeyScope::Team);
        self.remember_worker(worker, team_id, scope);
        let until = now + chrono::Duration::from_std(self.inner.config.lease).unwrap_or_default();
        let renewed_builds = store.renew_leases(worker, &running, until).await?;
        let renewed_checks = store.renew_check_leases(worker, &checks, until).await?;
        let mut renewed = Vec::new();
        let mut lost = Vec::new();
        for work in &heartbeat.running {
            let mine = match work {
                // The store renews by build: one listed at several attempts is looked up.
                WorkRef::Build(build)
                    if running
                        .iter()
                        .filter(|r| r.build_id == build.build_id)
                        .count()
                        > 1 =>
                {
                    renewed_builds.contains(&build.build_id)
                        && store.build(build.build_id).await?.dispatch.attempt == build.attempt
                }
                WorkRef::Build(build) => renewed_builds.contains(&build.build_id),
                WorkRef::Check(check) => renewed_checks.contains(&RunningCheck {
                    resource_id: check.resource_id,
                    attempt: check.attempt,
                }),
            };
            if mine {
                renewed.push(*work);
            } else {
                lost.push(*work);
            }
        }
        self.forget_finished_checks(worker, &heartbeat.running);
        if !lost.is_empty() {
            tracing::info!(worker, lost = ?lost, "a worker runs work that is no longer its own");
        }
        self.send_or_warn(
            worker,
            Message::Leases {
                heartbeat: envelope.msg_id.clone(),
                until_ms: protocol::to_ms(until),
                renewed,
                lost,
            },
        )
        .await;
        let new = recorded.first_seen_at == recorded.last_heartbeat_at;
        if new {
            self.inner.runtime.changed();
        }
        if !heartbeat.draining && (new || running.len() < heartbeat.slots as usize) {
            self.wake_dispatcher();
        }
        Ok(())
    }

    /// Drops the checks this server sent to `worker` that it no longer runs (sent long enough
    /// ago for the heartbeat to know about them).
    fn forget_finished_checks(&self, worker: &str, running: &[WorkRef]) {
        let settle =
            chrono::Duration::from_std(self.inner.config.assign_timeout).unwrap_or_default();
        let now = self.now();
        if let Some(checks) = lock(&self.inner.runtime.checks).get_mut(worker) {
            checks.retain(|check, sent| {
                running.contains(&WorkRef::Check(*check)) || now - *sent < settle
            });
        }
    }
}
