//! The service layer: what the API and the binary ask of the server.

use std::collections::BTreeMap;
use std::sync::Arc;

use pikoci_core::broker::Broker;
use pikoci_core::store::{
    Build, BuildId, JobId, ResourceId, SetPipelineOutcome, Store, StoredResource,
};
use tokio_util::sync::CancellationToken;

use crate::{Clock, ServerConfig, ServerError, ServerResult};

/// The server: store, broker, background loops and the operations on top of them. Cheap to
/// clone (an `Arc` inside).
#[derive(Debug, Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    config: ServerConfig,
    clock: Clock,
}

/// What setting a pipeline did.
#[derive(Debug, Clone)]
pub struct PipelineSet {
    /// The store's outcome (created or updated, the jobs and resources added and removed).
    pub outcome: SetPipelineOutcome,
    /// Warnings of the validation, rendered without colour (empty when none).
    pub warnings: Vec<pikoci_config::Diagnostic>,
}

/// Whether the server can do its work (`/readyz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The store answers.
    pub store: bool,
    /// The event consumers are connected to the broker.
    pub broker: bool,
}

impl Server {
    /// A server on `store` and `broker`. Nothing runs until [`Server::start`].
    pub fn new(
        store: Arc<dyn Store>,
        broker: Arc<dyn Broker>,
        config: ServerConfig,
        clock: Clock,
    ) -> Server {
        Server {
            inner: Arc::new(Inner {
                store,
                broker,
                config,
                clock,
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Starts the background loops (event and heartbeat ingestion, the dispatcher, the lease
    /// keeper, the check scheduler); they run until `shutdown` is cancelled. Returns once the
    /// subscriptions are established.
    pub async fn start(&self, shutdown: CancellationToken) -> ServerResult<tokio::task::JoinSet<()>> {
        let _ = shutdown;
        unimplemented!()
    }

    /// A manual build of a job with these inputs (text values, as typed): `InvalidInput`
    /// listing every problem with them.
    pub async fn trigger_job(
        &self,
        job: JobId,
        inputs: BTreeMap<String, String>,
    ) -> ServerResult<Build> {
        let _ = (job, inputs);
        unimplemented!()
    }

    /// Cancels a build: a pending or waiting one at once, a running one through its worker
    /// (fenced off when it does not answer within the cancel grace).
    pub async fn cancel_build(&self, build: BuildId) -> ServerResult<Build> {
        let _ = build;
        unimplemented!()
    }

    /// Retries a finished build (`N.1`) with the same versions and inputs.
    pub async fn retry_build(&self, build: BuildId) -> ServerResult<Build> {
        let _ = build;
        unimplemented!()
    }

    /// Records `user`'s approval of a build waiting for approval; it becomes pending once the
    /// approval has enough distinct approvers.
    pub async fn approve_build(&self, build: BuildId, user: &str) -> ServerResult<Build> {
        let _ = (build, user);
        unimplemented!()
    }

    /// Rejects a build waiting for approval: it is cancelled with the reason.
    pub async fn reject_build(
        &self,
        build: BuildId,
        user: &str,
        reason: &str,
    ) -> ServerResult<Build> {
        let _ = (build, user, reason);
        unimplemented!()
    }

    /// Checks a resource now (and resets its timer).
    pub async fn check_resource(&self, resource: ResourceId) -> ServerResult<()> {
        let _ = resource;
        unimplemented!()
    }

    /// A webhook call: checks the resource whose token this is now. `NotFound` for an unknown
    /// token (the same answer whatever the token, so tokens cannot be probed).
    pub async fn webhook(&self, token: &str) -> ServerResult<StoredResource> {
        let _ = token;
        unimplemented!()
    }

    /// Why a pending build is not running yet, as the dispatcher last saw it.
    pub fn pending_reason(&self, build: BuildId) -> Option<String> {
        let _ = build;
        unimplemented!()
    }

    /// Woken whenever log chunks of a build are stored by this server (the SSE stream polls
    /// the store when woken, and every second for chunks another server stored).
    pub fn log_updates(&self) -> tokio::sync::broadcast::Receiver<BuildId> {
        unimplemented!()
    }

    /// Whether the store and the broker answer.
    pub async fn readiness(&self) -> Readiness {
        unimplemented!()
    }
}



