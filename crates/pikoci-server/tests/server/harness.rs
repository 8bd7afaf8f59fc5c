//! A server on the real store (SQLite in memory) and the in-memory broker, and scripted fake
//! workers that speak the protocol. Tests run on paused tokio time: waits poll with deadlines
//! in virtual time, so nothing depends on the machine's speed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use pikoci_core::broker::{Broker, Subscription};
use pikoci_core::protocol::auth::{self, KeyScope, MacKey};
use pikoci_core::protocol::{
    self, Assign, BuildRef, Decoded, Envelope, Heartbeat, Message, Outcome, WorkRef, topics,
};
use pikoci_core::secrets::SecretTable;
use pikoci_core::store::{
    Build, BuildId, BuildStatus, NewVersion, PipelineSpec, ResourceVersion, Store, StoredJob,
    StoredPipeline, StoredResource, Team,
};
use pikoci_pubsub::MemBroker;
use pikoci_secrets::sealed::WorkerKey;
use pikoci_server::{Clock, Server, ServerConfig};
use tokio_util::sync::CancellationToken;

/// The master key of the server's secret store.
pub(crate) const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef";

/// The longest (virtual) time any wait of a test takes before it fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct NoFetch;

impl pikoci_config::SourceFetcher for NoFetch {
    fn fetch(&self, url: &str) -> Result<String, String> {
        Err(format!("tests fetch nothing ({url})"))
    }
}

/// A resource type checked by workers and a resource of it, used by most tests.
pub(crate) const SRC: &str = r#"
resource_type "src" {
  check "exec" { path = "true" }
  pull "exec" { path = "true" }
}
resource "src" "app" { check_interval = "@every 1h" }
"#;

/// The server's view of the in-memory broker: its probes are lost while `probes` is false (a
/// server that cannot read the heartbeats).
#[derive(Debug)]
struct ServerBroker {
    mem: MemBroker,
    probes: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl Broker for ServerBroker {
    async fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
    ) -> pikoci_core::broker::BrokerResult<()> {
        if topic == topics::HEARTBEATS && !self.probes.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.mem.publish(topic, payload).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
    ) -> pikoci_core::broker::BrokerResult<Subscription> {
        self.mem.subscribe(topic, group).await
    }

    async fn close(&self) -> pikoci_core::broker::BrokerResult<()> {
        self.mem.close().await
    }
}

/// A running server with one team (`main`) and one pipeline (`ci`).
pub(crate) struct Harness {
    pub(crate) server: Server,
    pub(crate) store: Arc<dyn Store>,
    /// The table under the server's secret store (to plant rows the store would not write).
    pub(crate) secret_table: Arc<dyn SecretTable>,
    secrets: pikoci_secrets::SecretStore,
    pub(crate) mem: MemBroker,
    /// Whether the server's probes reach `pikoci.heartbeats`.
    probes: Arc<AtomicBool>,
    pub(crate) team: Team,
    pub(crate) pipeline: StoredPipeline,
    pub(crate) clock: Clock,
    shutdown: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Harness {
    /// A server with the default configuration on pipeline `hcl`.
    pub(crate) async fn start(hcl: &str) -> Harness {
        Harness::with_config(hcl, ServerConfig::default()).await
    }

    /// A server with `config` on pipeline `hcl`; its global worker token is [`token`] unless
    /// `config` names another.
    pub(crate) async fn with_config(hcl: &str, mut config: ServerConfig) -> Harness {
        config.worker_token.get_or_insert_with(token);
        let blocking = Arc::new(crate::store::BlockingStore::open().await);
        let store: Arc<dyn Store> = blocking.clone();
        let accounts = blocking.accounts();
        let cipher = pikoci_secrets::Cipher::new(&pikoci_core::secrets::Secret::new(SECRET_KEY))
            .expect("test key");
        let secret_table: Arc<dyn SecretTable> = blocking;
        let secrets = pikoci_secrets::SecretStore::new(secret_table.clone(), Some(cipher));
        let file = pikoci_config::SourceFile::from_bytes("pipeline.hcl", hcl.as_bytes().to_vec());
        let loaded = match pikoci_config::load(&file, &pikoci_config::Vars::new(), &NoFetch) {
            Ok(loaded) => loaded,
            Err(diagnostics) => panic!("test pipeline does not load: {diagnostics:?}"),
        };
        let clock = Clock::new();
        let team = store.create_team("main", clock.now()).await.expect("team");
        let outcome = store
            .set_pipeline(
                team.id,
                PipelineSpec {
                    name: "ci".into(),
                    config: hcl.into(),
                    vars: serde_json::json!({}),
                    model: loaded.pipeline,
                },
                clock.now(),
            )
            .await
            .expect("pipeline");
        let mem = MemBroker::new();
        let probes = Arc::new(AtomicBool::new(true));
        let server = Server::new(
            store.clone(),
            accounts.clone(),
            Arc::new(ServerBroker {
                mem: mem.clone(),
                probes: probes.clone(),
            }),
            secrets.clone(),
            config,
            clock,
        );
        server.ensure_worker_keys().await.expect("worker keys");
        let shutdown = CancellationToken::new();
        let tasks = server.start(shutdown.clone()).await.expect("server starts");
        Harness {
            server,
            store,
            secret_table,
            secrets,
            mem,
            probes,
            team,
            pipeline: outcome.pipeline,
            clock,
            shutdown,
            tasks,
        }
    }

    /// Stops the server and starts a new one with `config` on the same store and broker (its
    /// memory is gone, as after a crash; the clock goes on).
    pub(crate) async fn restart(&mut self, mut config: ServerConfig) {
        config.worker_token.get_or_insert_with(token);
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.server = Server::new(
            self.store.clone(),
            self.server.accounts().clone(),
            Arc::new(ServerBroker {
                mem: self.mem.clone(),
                probes: self.probes.clone(),
            }),
            self.secrets.clone(),
            config,
            self.clock,
        );
        self.server.ensure_worker_keys().await.expect("worker keys");
        self.shutdown = CancellationToken::new();
        self.tasks = self
            .server
            .start(self.shutdown.clone())
            .await
            .expect("server restarts");
    }

    /// Loses the server's probes (`false`), as if its heartbeat consumer read nothing, or lets
    /// them through again (`true`).
    pub(crate) fn let_probes_through(&self, through: bool) {
        self.probes.store(through, Ordering::SeqCst);
    }

    pub(crate) async fn job(&self, name: &str) -> StoredJob {
        self.store.job(self.pipeline.id, name).await.expect("job")
    }

    pub(crate) async fn resource(&self, canonical: &str) -> StoredResource {
        let (type_name, name) = canonical.split_once('.').expect("type.name");
        let reference = pikoci_core::ResourceRef {
            type_name: type_name.into(),
            name: name.into(),
        };
        self.store
            .resource(self.pipeline.id, &reference)
            .await
            .expect("resource")
    }

    /// Stores a version of a resource as a check would.
    pub(crate) async fn add_version(
        &self,
        canonical: &str,
        version: serde_json::Value,
    ) -> ResourceVersion {
        let resource = self.resource(canonical).await;
        let created = self
            .store
            .create_versions(
                resource.id,
                &[NewVersion {
                    version,
                    metadata: serde_json::Value::Null,
                }],
                self.server.clock().now(),
            )
            .await
            .expect("version");
        created.into_iter().next().expect("a new version")
    }

    /// A worker talking through the server's broker.
    pub(crate) async fn worker(&self, id: &str) -> FakeWorker {
        FakeWorker::connect(id, Arc::new(self.mem.clone()), &self.mem).await
    }

    /// A fake worker of team `team`, holding `token` (the team's worker token, say).
    pub(crate) async fn team_worker(&self, id: &str, team: &str, token: MacKey) -> FakeWorker {
        let mut worker = self.worker(id).await;
        worker.team = Some(team.to_owned());
        worker.token = token;
        worker
    }

    /// Waits until `pred` holds for the build.
    pub(crate) async fn wait_build(
        &self,
        id: BuildId,
        what: &str,
        pred: impl Fn(&Build) -> bool,
    ) -> Build {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let build = self.store.build(id).await.expect("build");
            if pred(&build) {
                return build;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for build {id} to be {what}; it is {build:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the build has `status`.
    pub(crate) async fn wait_status(&self, id: BuildId, status: BuildStatus) -> Build {
        self.wait_build(id, status.as_str(), |b| b.status == status)
            .await
    }

    /// Waits until `check` holds (an async condition on the store).
    pub(crate) async fn wait_for<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The builds of a job, oldest first.
    pub(crate) async fn builds(&self, job: &str) -> Vec<Build> {
        let job = self.job(job).await;
        let mut builds = self
            .store
            .list_builds(&pikoci_core::store::BuildFilter {
                job_id: Some(job.id),
                ..Default::default()
            })
            .await
            .expect("builds");
        builds.reverse();
        builds
    }

    /// A build's whole log, as text.
    pub(crate) async fn log(&self, id: BuildId) -> String {
        let chunks = self.store.read_log(id, None, 1000).await.expect("log");
        chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.data).into_owned())
            .collect()
    }
}

/// A worker scripted by the test.
pub(crate) struct FakeWorker {
    pub(crate) id: String,
    pub(crate) broker: Arc<dyn Broker>,
    inbox: Subscription,
    /// What this worker's checks find.
    pub(crate) check_versions: Vec<serde_json::Value>,
    /// How many builds it runs at once.
    pub(crate) slots: u32,
    /// What its heartbeats say it runs.
    pub(crate) running: Arc<Mutex<Vec<WorkRef>>>,
    /// Its key pair, as a real worker makes one at start.
    pub(crate) key: Arc<WorkerKey>,
    /// Whether its heartbeats announce the key (a worker of an older release does not).
    pub(crate) announces_key: bool,
    /// The team its heartbeats say it serves.
    pub(crate) team: Option<String>,
    /// The worker token it signs with ([`token`], the global one, unless changed).
    pub(crate) token: MacKey,
    beating: Option<CancellationToken>,
}

/// The global worker token of the test servers.
pub(crate) fn token() -> MacKey {
    MacKey::new(KeyScope::Global, [9; 32])
}

/// `envelope` as `key` signs it for `topic`.
pub(crate) fn signed(key: &MacKey, topic: &str, envelope: &Envelope) -> Vec<u8> {
    key.encode(topic, envelope).expect("encodes")
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        self.stop_heartbeats();
    }
}

/// A send time for each envelope, later than the one before (the server drops a heartbeat no
/// newer than the last one of its worker).
fn next_sent_at() -> i64 {
    use std::sync::atomic::AtomicI64;
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_millis();
    let previous = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(last.max(now - 1) + 1)
        })
        .unwrap_or(now);
    previous.max(now - 1) + 1
}

/// An envelope from worker `id`.
pub(crate) fn envelope(id: &str, message: Message) -> Envelope {
    Envelope {
        v: protocol::VERSION,
        msg_id: uuid::Uuid::new_v4().to_string(),
        sender: id.to_owned(),
        boot_id: "boot".into(),
        sent_at_ms: next_sent_at(),
        message,
    }
}

impl FakeWorker {
    /// Joins the inbox through `subscribe_to`, publishes through `broker`.
    pub(crate) async fn connect(
        id: &str,
        broker: Arc<dyn Broker>,
        subscribe_to: &MemBroker,
    ) -> FakeWorker {
        let inbox = subscribe_to
            .subscribe_sole(&topics::worker(id), &topics::worker_group(id))
            .await
            .expect("inbox");
        FakeWorker {
            id: id.to_owned(),
            broker,
            inbox,
            check_versions: Vec::new(),
            slots: 2,
            running: Arc::new(Mutex::new(Vec::new())),
            key: Arc::new(WorkerKey::generate()),
            announces_key: true,
            team: None,
            token: token(),
            beating: None,
        }
    }

    /// Heartbeats every 5 s (the first one now) until [`FakeWorker::stop_heartbeats`].
    pub(crate) fn start_heartbeats(&mut self) {
        self.stop_heartbeats();
        let stop = CancellationToken::new();
        let mut beat = heartbeat_message(&self.id, 2, &[], self.sealing_key());
        if let Message::Heartbeat(heartbeat) = &mut beat {
            heartbeat.team = self.team.clone();
        }
        keep_heartbeating(
            self.broker.clone(),
            &self.id,
            beat,
            self.token.clone(),
            self.running.clone(),
            stop.clone(),
        );
        self.beating = Some(stop);
    }

    /// The public key its heartbeats announce.
    fn sealing_key(&self) -> Option<String> {
        self.announces_key.then(|| self.key.public_text())
    }

    /// Goes silent.
    pub(crate) fn stop_heartbeats(&mut self) {
        if let Some(stop) = self.beating.take() {
            stop.cancel();
        }
    }

    /// Publishes a message on its topic (heartbeats on theirs, the rest on events); returns
    /// its `msg_id`.
    pub(crate) async fn send(&self, message: Message) -> String {
        let topic = match message {
            Message::Heartbeat(_) => topics::HEARTBEATS,
            _ => topics::EVENTS,
        };
        let envelope = envelope(&self.id, message);
        let bytes = signed(&self.token, topic, &envelope);
        self.broker.publish(topic, bytes).await.expect("publish");
        envelope.msg_id
    }

    /// A heartbeat saying it runs `running`; returns the server's answer: (renewed, lost,
    /// until_ms).
    pub(crate) async fn heartbeat(
        &mut self,
        running: &[WorkRef],
    ) -> (Vec<WorkRef>, Vec<WorkRef>, i64) {
        let mut beat = heartbeat_message(&self.id, self.slots, running, self.sealing_key());
        if let Message::Heartbeat(heartbeat) = &mut beat {
            heartbeat.team = self.team.clone();
        }
        let id = self.send(beat).await;
        loop {
            if let Message::Leases {
                heartbeat,
                renewed,
                lost,
                until_ms,
            } = self.recv().await
                && heartbeat == id
            {
                return (renewed, lost, until_ms);
            }
        }
    }

    /// The next message in its inbox.
    pub(crate) async fn recv(&mut self) -> Message {
        let next = tokio::time::timeout(DEADLINE, self.inbox.next())
            .await
            .unwrap_or_else(|_| panic!("worker {} got nothing", self.id))
            .expect("inbox open")
            .expect("delivery");
        let (payload, pending) = next.into_parts();
        pending.ack().await.expect("ack");
        let body = auth::Signed::read(&payload)
            .and_then(|signed| signed.verify(&self.token, &topics::worker(&self.id)))
            .expect("the server signs with the worker's token");
        match protocol::decode(body).expect("decodes") {
            Decoded::Message(envelope) => envelope.message,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The next message that is not a lease answer; checks are answered on the way with
    /// [`FakeWorker::check_versions`].
    pub(crate) async fn next_work(&mut self) -> Message {
        loop {
            match self.recv().await {
                Message::Leases { .. } => {}
                Message::AssignCheck(assign) => {
                    let finished = Message::CheckFinished {
                        check: assign.check,
                        versions: self.check_versions.clone(),
                        error: None,
                        log: String::new(),
                        at_ms: 0,
                    };
                    self.send(finished).await;
                }
                other => return other,
            }
        }
    }

    /// The next assignment (anything else is a test failure).
    pub(crate) async fn expect_assign(&mut self) -> Assign {
        match self.next_work().await {
            Message::Assign(assign) => *assign,
            other => panic!("worker {} expected an assignment, got {other:?}", self.id),
        }
    }

    /// Accepts an assignment (its heartbeats list it from now on).
    pub(crate) async fn accept(&self, build: BuildRef) {
        self.running
            .lock()
            .expect("running")
            .push(WorkRef::Build(build));
        self.send(Message::Accepted {
            work: WorkRef::Build(build),
        })
        .await;
    }

    /// The events of one step: started, one log batch per line, finished.
    pub(crate) fn step_events(
        build: BuildRef,
        step: u32,
        name: &str,
        lines: &[&str],
    ) -> Vec<Message> {
        let mut events = vec![Message::StepStarted {
            build,
            step,
            parent: None,
            kind: "task".into(),
            name: name.into(),
            at_ms: 1_000 + i64::from(step),
        }];
        for (seq, line) in lines.iter().enumerate() {
            events.push(Message::Log {
                build,
                step,
                seq: seq as u64,
                text: format!("{line}\n"),
                at_ms: 1_000,
            });
        }
        events.push(Message::StepFinished {
            build,
            step,
            outcome: Outcome::Succeeded,
            error: None,
            at_ms: 2_000 + i64::from(step),
        });
        events
    }

    /// Sends every message of `events`, in order.
    pub(crate) async fn send_all(&self, events: Vec<Message>) {
        for event in events {
            self.send(event).await;
        }
    }
}

/// A heartbeat message of worker `id`, announcing `sealing_key`.
pub(crate) fn heartbeat_message(
    id: &str,
    slots: u32,
    running: &[WorkRef],
    sealing_key: Option<String>,
) -> Message {
    Message::Heartbeat(Heartbeat {
        worker: id.to_owned(),
        team: None,
        tags: Vec::new(),
        exclusive: false,
        slots,
        // As a worker of an older release: 4 checks at once.
        check_slots: None,
        running: running.to_vec(),
        draining: false,
        version: "test".into(),
        hostname: format!("{id}.test"),
        sealing_key,
    })
}

/// Heartbeats of a worker every 5 s with what `running` holds, until `stop`.
pub(crate) fn keep_heartbeating(
    broker: Arc<dyn Broker>,
    id: &str,
    beat: Message,
    token: MacKey,
    running: Arc<Mutex<Vec<WorkRef>>>,
    stop: CancellationToken,
) {
    let id = id.to_owned();
    tokio::spawn(async move {
        loop {
            let mut beat = beat.clone();
            if let Message::Heartbeat(heartbeat) = &mut beat {
                heartbeat.running = running.lock().expect("running").clone();
            }
            let bytes = signed(&token, topics::HEARTBEATS, &envelope(&id, beat));
            if broker.publish(topics::HEARTBEATS, bytes).await.is_err() {
                return;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    });
}

/// The build reference of an assignment.
pub(crate) fn work(build: BuildRef) -> WorkRef {
    WorkRef::Build(build)
}
