//! The service layer: what the API and the binary ask of the server.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pikoci_core::ErrorKind;
use pikoci_core::broker::Broker;
use pikoci_core::store::{
    AccountStore, Build, BuildId, JobId, NewVersion, ResourceId, ResourceVersion,
    SetPipelineOutcome, Store, StoreResult, StoredResource, TeamId, TransferSummary, TriggerEvent,
    TriggerEventId,
};
use pikoci_secrets::SecretStore;
use tokio_util::sync::CancellationToken;

use crate::checks::trigger_stream;
use crate::metrics::Metrics;
use crate::state::{Runtime, lock};
use crate::{Clock, ServerConfig, ServerError, ServerResult};

/// The server: store, broker, background loops and the operations on top of them. Cheap to
/// clone (an `Arc` inside).
#[derive(Debug, Clone)]
pub struct Server {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) accounts: Arc<dyn AccountStore>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) secrets: SecretStore,
    pub(crate) config: ServerConfig,
    pub(crate) clock: Clock,
    pub(crate) runtime: Runtime,
    pub(crate) metrics: Metrics,
    pub(crate) login_limits: crate::auth::limit::LoginLimits,
    /// The identity providers' discovery documents, read again after 10 minutes.
    pub(crate) discovery: crate::auth::sso::DiscoveryCache,
    pub(crate) keys: crate::keys::KeyCache,
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
    /// A server on `store` and `broker`, with its users in `accounts`, keeping the entries of
    /// the secret store `pikoci` in `secrets`. Nothing runs until [`Server::start`].
    pub fn new(
        store: Arc<dyn Store>,
        accounts: Arc<dyn AccountStore>,
        broker: Arc<dyn Broker>,
        secrets: SecretStore,
        config: ServerConfig,
        clock: Clock,
    ) -> Server {
        Server {
            inner: Arc::new(Inner {
                metrics: Metrics::new(Arc::clone(&store)),
                store,
                accounts,
                broker,
                secrets,
                config,
                clock,
                runtime: Runtime::new(),
                keys: crate::keys::KeyCache::default(),
                login_limits: crate::auth::limit::LoginLimits::default(),
                discovery: crate::auth::sso::DiscoveryCache::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The secret store `pikoci`.
    pub fn secrets(&self) -> &SecretStore {
        &self.inner.secrets
    }

    /// The clock.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The current time on the server's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Wakes the dispatcher: something may have become runnable (a build was created, a
    /// check requested, a worker freed a slot).
    pub fn wake_dispatcher(&self) {
        self.inner.runtime.poke();
    }

    /// Starts the background loops (event and heartbeat ingestion, the dispatcher, the lease
    /// keeper, the check scheduler); they run until `shutdown` is cancelled. Returns once the
    /// subscriptions are established.
    pub async fn start(
        &self,
        shutdown: CancellationToken,
    ) -> ServerResult<tokio::task::JoinSet<()>> {
        let mut tasks = crate::ingest::start(self, shutdown.clone()).await?;
        let stopping = self.inner.runtime.stopping.clone();
        tasks.spawn(async move {
            shutdown.cancelled().await;
            stopping.cancel();
        });
        Ok(tasks)
    }

    /// Turns to render a live page (see `ui::live`).
    pub(crate) fn live_renders(&self) -> std::sync::Arc<tokio::sync::Semaphore> {
        self.inner.runtime.live_renders.clone()
    }

    /// Cancelled when the server stops (the `shutdown` given to [`Server::start`]).
    pub(crate) fn stopping(&self) -> CancellationToken {
        self.inner.runtime.stopping.clone()
    }

    /// A manual build of a job with these inputs (text values, as typed): `InvalidInput`
    /// listing every problem with them.
    pub async fn trigger_job(
        &self,
        job: JobId,
        inputs: BTreeMap<String, String>,
    ) -> ServerResult<Build> {
        self.trigger_manually(job, inputs).await
    }

    /// Cancels a build: a pending or waiting one at once, a running one through its worker
    /// (fenced off when it does not answer within the cancel grace).
    pub async fn cancel_build(&self, build: BuildId) -> ServerResult<Build> {
        self.cancel(build, None).await
    }

    /// Builds, with `version`, of the jobs a new version of `resource` triggers (to build an
    /// older version again), and why the other jobs made none; `Conflict`, with the reasons,
    /// when none could be made.
    pub async fn trigger_version(
        &self,
        resource: &StoredResource,
        version: pikoci_core::store::VersionId,
    ) -> ServerResult<(Vec<Build>, Vec<String>)> {
        self.trigger_with_version(resource, version).await
    }

    /// Marks a failed build as a warning: jobs downstream take it as passed.
    pub async fn mark_build_warning(&self, build: BuildId) -> ServerResult<Build> {
        self.mark_warning(build).await
    }

    /// Retries a finished build (`N.1`) with the same versions and inputs.
    pub async fn retry_build(&self, build: BuildId) -> ServerResult<Build> {
        self.retry(build).await
    }

    /// Records `user`'s approval of a build waiting for approval; it becomes pending once the
    /// approval has enough distinct approvers.
    pub async fn approve_build(&self, build: BuildId, user: &str) -> ServerResult<Build> {
        self.approve(build, user).await
    }

    /// Rejects a build waiting for approval: it is cancelled with the reason.
    pub async fn reject_build(
        &self,
        build: BuildId,
        user: &str,
        reason: &str,
    ) -> ServerResult<Build> {
        self.reject(build, user, reason).await
    }

    /// Checks a resource now (and resets its timer).
    pub async fn check_resource(&self, resource: ResourceId) -> ServerResult<()> {
        self.inner.store.request_check(resource, self.now()).await?;
        self.wake_dispatcher();
        Ok(())
    }

    /// A webhook call: checks the resource whose token this is now. `NotFound` for an unknown
    /// token (the same answer whatever the token, so tokens cannot be probed).
    pub async fn webhook(&self, token: &str) -> ServerResult<StoredResource> {
        let resource = match self.inner.store.resource_by_webhook_token(token).await {
            Ok(resource) => resource,
            // The same answer for every unknown token, which never appears in it.
            Err(err) if err.kind() == ErrorKind::NotFound => {
                return Err(ServerError::new(
                    ErrorKind::NotFound,
                    "no resource has this webhook token (it may have been regenerated)",
                ));
            }
            Err(err) => return Err(err.into()),
        };
        self.inner
            .store
            .request_check(resource.id, self.now())
            .await?;
        self.wake_dispatcher();
        Ok(resource)
    }

    /// An event on team `team`'s trigger stream `name` (the stream of its `trigger` resources
    /// named `name`, `trigger.<name>`), carrying `version` (names to strings); the team's
    /// resources reading that stream are checked now. The event and how many resources read
    /// the stream (0: nothing will see it until a resource of that name exists... and even
    /// then not, as a new resource starts after the events before it).
    pub async fn fire_trigger(
        &self,
        team: &str,
        name: &str,
        version: serde_json::Map<String, serde_json::Value>,
    ) -> ServerResult<(TriggerEvent, usize)> {
        check_trigger_name(name)?;
        check_version(&version, &RESERVED_TRIGGER_KEYS)?;
        let team = self.inner.store.team(team).await?;
        let canonical = trigger_stream(name);
        let event = self
            .inner
            .store
            .create_trigger_event(team.id, &canonical, &version.into(), self.now())
            .await?;
        // The event is stored: a failure to check its readers now is not the caller's to
        // retry (that would fire it twice); their schedules will read it.
        let readers = match self.check_trigger_readers(team.id, &canonical).await {
            Ok(readers) => readers,
            Err(err) => {
                tracing::warn!(team = %team.name, trigger = %name, error = %err, "a trigger event was stored, but its resources could not be checked at once: they read it on their schedule");
                0
            }
        };
        Ok((event, readers))
    }

    /// Adds `version` (names to strings) to `resource` by hand, as if its check had found it:
    /// a new version triggers what a checked one would. The version, and whether it is new
    /// (one that exists already is left as it was, and triggers nothing).
    pub async fn add_version(
        &self,
        resource: &StoredResource,
        version: serde_json::Map<String, serde_json::Value>,
    ) -> ServerResult<(ResourceVersion, bool)> {
        let pipeline = self
            .inner
            .store
            .pipeline_by_id(resource.pipeline_id)
            .await?;
        if crate::checks::reads_trigger_stream(&pipeline, resource) {
            // Its checks go on from the newest version's place in the stream, which a version
            // made here would not have.
            return Err(ServerError::new(
                ErrorKind::Conflict,
                format!(
                    "resource {} reads the team's trigger stream \"{}\": fire the trigger instead \
                     (`pikoci triggers fire {}`, POST /api/v1/teams/{{team}}/triggers/{})",
                    resource.canonical(),
                    resource.model.name,
                    resource.model.name,
                    resource.model.name
                ),
            ));
        }
        if version.is_empty() {
            return Err(ServerError::new(
                ErrorKind::InvalidInput,
                "the version is empty: give at least one name, e.g. {\"version\": {\"ref\": \"v1.2\"}}",
            ));
        }
        check_version(&version, &[])?;
        let new = NewVersion {
            version: version.into(),
            metadata: serde_json::Value::Null,
        };
        let created = self
            .inner
            .store
            .create_versions(resource.id, std::slice::from_ref(&new), self.now())
            .await?;
        if let Some(version) = created.first() {
            self.trigger_from_versions(resource, &created).await?;
            tracing::info!(resource = %resource.canonical(), version = %version.id, "version added by hand");
            return Ok((version.clone(), true));
        }
        let existing = self
            .inner
            .store
            .find_version(resource.id, &new.version)
            .await?
            .ok_or_else(|| {
                ServerError::new(
                    ErrorKind::Conflict,
                    "the version was neither added nor found: try again",
                )
            })?;
        Ok((existing, false))
    }

    /// Events of team `team`'s trigger stream `name` after `after`, oldest first.
    pub async fn trigger_events(
        &self,
        team: &str,
        name: &str,
        after: Option<TriggerEventId>,
        limit: u32,
    ) -> ServerResult<Vec<TriggerEvent>> {
        check_trigger_name(name)?;
        let team = self.inner.store.team(team).await?;
        Ok(self
            .inner
            .store
            .trigger_events(team.id, &trigger_stream(name), after, limit)
            .await?)
    }

    /// Checks now every resource of the team that reads the trigger stream `canonical`; how
    /// many there are. The checks follow from an event, whoever fired it: they are not
    /// recorded in the audit log as anyone's.
    pub(crate) async fn check_trigger_readers(
        &self,
        team: TeamId,
        canonical: &str,
    ) -> StoreResult<usize> {
        pikoci_core::store::audit::on_its_own(self.check_readers(team, canonical)).await
    }

    async fn check_readers(&self, team: TeamId, canonical: &str) -> StoreResult<usize> {
        let store = &self.inner.store;
        let now = self.now();
        let mut readers = 0;
        for pipeline in store.list_pipelines(team).await? {
            for resource in store.resources(pipeline.id).await? {
                if resource.canonical() == canonical {
                    store.request_check(resource.id, now).await?;
                    readers += 1;
                }
            }
        }
        self.wake_dispatcher();
        Ok(readers)
    }

    /// Replaces the whole state by the export at `path` (see
    /// [`Store::import`](pikoci_core::store::Store::import)); what this server knew of the old
    /// state (why builds were pending) is forgotten, and the dispatcher looks at the new one.
    /// Another server on the same database learns of it on its next round.
    pub async fn import(
        &self,
        path: &std::path::Path,
        replace: bool,
    ) -> ServerResult<TransferSummary> {
        let summary = self.store().import(path, replace).await?;
        // An export made before users existed brings none: the server starts over with its
        // first-start admin, as a new server does.
        if let Some(password) = self.ensure_users().await? {
            crate::auth::announce_initial_admin(&password);
        }
        // The teams' worker keys went with the old teams.
        self.ensure_worker_keys().await?;
        lock(&self.inner.runtime.reasons).clear();
        self.wake_dispatcher();
        tracing::info!(
            pipelines = summary.rows("pipelines"),
            builds = summary.rows("builds"),
            replace,
            "state imported"
        );
        Ok(summary)
    }

    /// Why a pending build is not running yet, as the dispatcher last saw it.
    pub fn pending_reason(&self, build: BuildId) -> Option<String> {
        lock(&self.inner.runtime.reasons).get(&build).cloned()
    }

    /// Moves whenever this server changes something live pages show (see `ui::live`).
    pub(crate) fn page_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.runtime.changes.subscribe()
    }

    /// Woken whenever log chunks of a build are stored by this server (the SSE stream polls
    /// the store when woken, and every second for chunks another server stored).
    pub fn log_updates(&self) -> tokio::sync::broadcast::Receiver<BuildId> {
        self.inner.runtime.logs.subscribe()
    }

    /// Whether the store and the broker answer.
    pub async fn readiness(&self) -> Readiness {
        // A cheap query: an id that never exists; "not found" is an answer too.
        let store = match self.inner.store.team_by_id(TeamId(0)).await {
            Ok(_) => true,
            Err(err) => err.kind() == ErrorKind::NotFound,
        };
        Readiness {
            store,
            broker: self.inner.runtime.consumers_healthy(),
        }
    }
}

/// The keys a trigger event's version gets from the server (`trigger_id`) or from the `put`
/// that fires it (the rest): an event fired through the API cannot claim them.
const RESERVED_TRIGGER_KEYS: [&str; 4] = [
    "trigger_id",
    "trigger_pipeline",
    "trigger_job",
    "trigger_build",
];

/// A trigger's name: a resource's name (nothing else can read its stream).
fn check_trigger_name(name: &str) -> ServerResult<()> {
    if pikoci_core::name::is_canonical(name) {
        return Ok(());
    }
    Err(ServerError::new(
        ErrorKind::InvalidInput,
        format!(
            "\"{}\" cannot name a trigger: trigger names are resource names (a-z, 0-9, '-' and \
             '_', starting and ending with a letter or digit)",
            name.escape_debug()
        ),
    ))
}

/// The most names a version given by a user may have.
const MAX_VERSION_FIELDS: usize = 64;

/// The longest value of a version given by a user, in bytes (a version is an identity, not a
/// payload: each value reaches steps as an environment variable).
const MAX_VERSION_VALUE: usize = 4096;

/// A version given by a user (a trigger event's, a resource's): at most
/// [`MAX_VERSION_FIELDS`] names (not empty, not `reserved`) to strings of at most
/// [`MAX_VERSION_VALUE`] bytes, without NUL characters (they cannot reach a step's
/// environment).
fn check_version(
    version: &serde_json::Map<String, serde_json::Value>,
    reserved: &[&str],
) -> ServerResult<()> {
    if version.len() > MAX_VERSION_FIELDS {
        return Err(ServerError::new(
            ErrorKind::InvalidInput,
            format!(
                "the version has {} names: at most {MAX_VERSION_FIELDS} (a version says which \
                 one, it does not carry data)",
                version.len()
            ),
        ));
    }
    for (key, value) in version {
        let long = key.len().max(value.as_str().map_or(0, str::len)) > MAX_VERSION_VALUE;
        let problem = if key.is_empty() {
            Some("has an empty name".to_owned())
        } else if reserved.contains(&key.as_str()) {
            Some(format!(
                "\"{key}\" is set by the server (reserved: {})",
                reserved.join(", ")
            ))
        } else if !value.is_string() {
            Some(format!(
                "\"{}\" is not a string: a version maps names to strings, e.g. \
                 {{\"version\": {{\"ref\": \"v1.2\"}}}}",
                key.escape_debug()
            ))
        } else if key.contains('\0') || value.as_str().is_some_and(|v| v.contains('\0')) {
            Some(format!("\"{}\" holds a NUL character", key.escape_debug()))
        } else if long {
            Some(format!(
                "\"{}\" is over {MAX_VERSION_VALUE} bytes (its name or its value)",
                key.chars().take(64).collect::<String>().escape_debug()
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ServerError::new(
                ErrorKind::InvalidInput,
                format!("the version {problem}"),
            ));
        }
    }
    Ok(())
}
