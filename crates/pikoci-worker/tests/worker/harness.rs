//! A fake server on a `MemBroker`: it records what workers publish, answers heartbeats with
//! lease renewals (unless told not to), and sends work. Plus a worker running real processes
//! in a temporary work directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use pikoci_config::{HttpFetcher, SourceFile, Vars};
use pikoci_core::Pipeline;
use pikoci_core::broker::Broker;
use pikoci_core::protocol::auth::{self, KeyScope, MacKey};
use pikoci_core::protocol::{
    self, Assign, AssignCheck, BuildRef, BuildSnapshot, CheckRef, CheckSnapshot, Decoded, Envelope,
    Heartbeat, Message, VERSION, WorkRef, topics,
};
use pikoci_core::store::{BuildId, PipelineId, ResourceId};
use pikoci_pubsub::MemBroker;
use pikoci_runner::ProcessRunner;
use pikoci_secrets::sealed::StoreValues;
use pikoci_worker::{Worker, WorkerConfig, WorkerError, WorkerStop};
use tokio::task::JoinHandle;

/// How long any wait in these tests may take before it fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

pub(crate) fn pipeline(hcl: &str) -> Pipeline {
    match pikoci_config::load(
        &SourceFile::new("test.hcl", hcl),
        &Vars::new(),
        &HttpFetcher::default(),
    ) {
        Ok(loaded) => loaded.pipeline,
        Err(diagnostics) => panic!("test pipeline is invalid:\n{diagnostics}"),
    }
}

pub(crate) fn build(id: i64) -> BuildRef {
    BuildRef {
        build_id: BuildId(id),
        attempt: 1,
    }
}

/// An assignment of job `job` of `hcl` as build `build`.
pub(crate) fn assign(build: BuildRef, hcl: &str, job: &str) -> Message {
    let pipeline = pipeline(hcl);
    Message::Assign(Box::new(Assign {
        build,
        lease_until_ms: i64::MAX,
        snapshot: BuildSnapshot {
            team: "main".to_owned(),
            pipeline_id: PipelineId(1),
            pipeline: "demo".to_owned(),
            job: job.to_owned(),
            build_number: build.build_id.to_string(),
            model: BuildSnapshot::prune(&pipeline, job),
            inputs: BTreeMap::new(),
            versions: BTreeMap::new(),
        },
        store_values: None,
    }))
}

/// `message` (an assignment) carrying `values` sealed to `public_key` for `work`.
pub(crate) fn with_store_values(
    message: Message,
    public_key: &str,
    values: &StoreValues,
    work: WorkRef,
) -> Message {
    let sealed = pikoci_secrets::sealed::seal(public_key, values, work).expect("sealed");
    match message {
        Message::Assign(mut assign) => {
            assign.store_values = Some(sealed);
            Message::Assign(assign)
        }
        Message::AssignCheck(mut assign) => {
            assign.store_values = Some(sealed);
            Message::AssignCheck(assign)
        }
        other => panic!("not an assignment: {other:?}"),
    }
}

/// An assignment of a check of `resource` of `hcl`.
pub(crate) fn assign_check(
    check: CheckRef,
    hcl: &str,
    resource: &str,
    newest: Option<serde_json::Value>,
) -> Message {
    let pipeline = pipeline(hcl);
    Message::AssignCheck(Box::new(AssignCheck {
        check,
        lease_until_ms: i64::MAX,
        snapshot: CheckSnapshot {
            team: "main".to_owned(),
            pipeline_id: PipelineId(1),
            pipeline: "demo".to_owned(),
            resource: resource.to_owned(),
            model: CheckSnapshot::prune(&pipeline, resource),
            newest,
        },
        store_values: None,
    }))
}

pub(crate) fn check(resource: i64) -> CheckRef {
    CheckRef {
        resource_id: ResourceId(resource),
        attempt: 1,
    }
}

/// What the fake server received.
#[derive(Debug, Default)]
struct Received {
    events: Vec<Envelope>,
    heartbeats: Vec<Envelope>,
}

pub(crate) struct Server {
    pub(crate) broker: Arc<MemBroker>,
    received: Arc<Mutex<Received>>,
    answer_leases: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Server {
    pub(crate) async fn start() -> Server {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .try_init();
        let broker = Arc::new(MemBroker::new());
        let received = Arc::new(Mutex::new(Received::default()));
        let answer_leases = Arc::new(AtomicBool::new(true));
        let mut events = broker
            .subscribe(topics::EVENTS, topics::SERVER_GROUP)
            .await
            .unwrap();
        let mut heartbeats = broker
            .subscribe(topics::HEARTBEATS, topics::SERVER_GROUP)
            .await
            .unwrap();
        let events_task = tokio::spawn({
            let received = received.clone();
            async move {
                while let Some(Ok(delivery)) = events.next().await {
                    let envelope = envelope_of(topics::EVENTS, delivery.payload());
                    received.lock().unwrap().events.push(envelope);
                    delivery.ack().await.unwrap();
                }
            }
        });
        let heartbeats_task = tokio::spawn({
            let received = received.clone();
            let broker = broker.clone();
            let answer = answer_leases.clone();
            async move {
                while let Some(Ok(delivery)) = heartbeats.next().await {
                    let envelope = envelope_of(topics::HEARTBEATS, delivery.payload());
                    received.lock().unwrap().heartbeats.push(envelope.clone());
                    delivery.ack().await.unwrap();
                    let Message::Heartbeat(heartbeat) = &envelope.message else {
                        panic!("not a heartbeat on the heartbeat topic: {envelope:?}");
                    };
                    if answer.load(Ordering::SeqCst) {
                        let leases = Message::Leases {
                            heartbeat: envelope.msg_id.clone(),
                            until_ms: envelope.sent_at_ms + 15_000,
                            renewed: heartbeat.running.clone(),
                            lost: Vec::new(),
                        };
                        publish(&*broker, &heartbeat.worker, leases).await;
                    }
                }
            }
        });
        Server {
            broker,
            received,
            answer_leases,
            tasks: vec![events_task, heartbeats_task],
        }
    }

    /// Stops answering heartbeats: no lease is renewed any more.
    pub(crate) fn ignore_heartbeats(&self) {
        self.answer_leases.store(false, Ordering::SeqCst);
    }

    /// Sends `message` to worker `worker`.
    pub(crate) async fn send(&self, worker: &str, message: Message) {
        publish(&*self.broker, worker, message).await;
    }

    /// Sends raw bytes to worker `worker`, signed with the workers' token.
    pub(crate) async fn send_raw(&self, worker: &str, bytes: &[u8]) {
        let topic = topics::worker(worker);
        self.broker
            .publish(&topic, token().seal(&topic, bytes))
            .await
            .unwrap();
    }

    /// Sends `message` to worker `worker` signed with `key` (not the worker's token, say).
    pub(crate) async fn send_signed_by(&self, key: &MacKey, worker: &str, message: Message) {
        let topic = topics::worker(worker);
        let bytes = key.encode(&topic, &server_envelope(message)).unwrap();
        self.broker.publish(&topic, bytes).await.unwrap();
    }

    /// Every event received so far, in order.
    pub(crate) fn events(&self) -> Vec<Envelope> {
        self.received.lock().unwrap().events.clone()
    }

    /// The messages received about `work`, in order.
    pub(crate) fn about(&self, work: WorkRef) -> Vec<Message> {
        self.events()
            .into_iter()
            .map(|e| e.message)
            .filter(|m| m.work() == Some(work))
            .collect()
    }

    /// Every heartbeat received so far.
    pub(crate) fn heartbeats(&self) -> Vec<Heartbeat> {
        self.received
            .lock()
            .unwrap()
            .heartbeats
            .iter()
            .filter_map(|e| match &e.message {
                Message::Heartbeat(h) => Some(h.clone()),
                _ => None,
            })
            .collect()
    }

    /// The sealing key the heartbeats of `worker` announce.
    pub(crate) fn sealing_key(&self, worker: &str) -> String {
        self.heartbeats()
            .into_iter()
            .rev()
            .find(|h| h.worker == worker)
            .and_then(|h| h.sealing_key)
            .unwrap_or_else(|| panic!("worker {worker} announced no sealing key"))
    }

    /// Waits until `found` finds something in what the server received.
    pub(crate) async fn wait_for<T>(&self, what: &str, found: impl Fn(&Server) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(value) = found(self) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {PATIENCE:?} for {what}; events: {:#?}",
                self.events().iter().map(|e| &e.message).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for a message about `work` of type `type_name`.
    pub(crate) async fn wait_for_message(&self, work: WorkRef, type_name: &str) -> Message {
        self.wait_for(&format!("{type_name} of {work}"), |server| {
            server
                .about(work)
                .into_iter()
                .find(|m| m.type_name() == type_name)
        })
        .await
    }
}

/// The worker token of the test workers (global).
pub(crate) fn token() -> MacKey {
    MacKey::new(KeyScope::Global, [7; 32])
}

fn envelope_of(topic: &str, payload: &[u8]) -> Envelope {
    let body = auth::Signed::read(payload)
        .and_then(|signed| signed.verify(&token(), topic))
        .expect("a worker signs what it sends with its token");
    match protocol::decode(body) {
        Ok(Decoded::Message(envelope)) => *envelope,
        other => panic!("a worker sent something that is not a message: {other:?}"),
    }
}

fn server_envelope(message: Message) -> Envelope {
    Envelope {
        v: VERSION,
        msg_id: uuid_like(),
        sender: "server-test".to_owned(),
        boot_id: "server-boot".to_owned(),
        sent_at_ms: 0,
        message,
    }
}

async fn publish(broker: &dyn Broker, worker: &str, message: Message) {
    let topic = topics::worker(worker);
    let bytes = token().encode(&topic, &server_envelope(message)).unwrap();
    broker.publish(&topic, bytes).await.unwrap();
}

fn uuid_like() -> String {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("server-msg-{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// A worker running in the background.
pub(crate) struct RunningWorker {
    pub(crate) id: String,
    pub(crate) stop: WorkerStop,
    task: JoinHandle<Result<(), WorkerError>>,
    pub(crate) work_dir: tempfile::TempDir,
}

/// Settings for a test worker: `slots`, heartbeats every 100 ms, leases of 15 s.
pub(crate) fn config(id: &str, slots: u32, work_dir: &Path) -> WorkerConfig {
    WorkerConfig {
        id: id.to_owned(),
        team: None,
        token: token(),
        tags: Vec::new(),
        exclusive_tags: false,
        slots,
        check_slots: pikoci_worker::DEFAULT_CHECK_SLOTS,
        work_dir: work_dir.to_path_buf(),
        heartbeat_interval: Duration::from_millis(100),
        lease_timeout: Duration::from_secs(15),
        version: "test".to_owned(),
        hostname: "test-host".to_owned(),
    }
}

impl RunningWorker {
    /// Starts a worker with `config` changed by `change`, and waits until it listens (its first
    /// heartbeat).
    pub(crate) async fn start(
        server: &Server,
        id: &str,
        slots: u32,
        change: impl FnOnce(&mut WorkerConfig),
    ) -> RunningWorker {
        RunningWorker::start_with(server, server.broker.clone(), id, slots, change).await
    }

    /// Like [`RunningWorker::start`], talking through `broker` (which must reach the server's).
    pub(crate) async fn start_with(
        server: &Server,
        broker: Arc<dyn Broker>,
        id: &str,
        slots: u32,
        change: impl FnOnce(&mut WorkerConfig),
    ) -> RunningWorker {
        let work_dir = tempfile::tempdir().unwrap();
        let mut config = config(id, slots, work_dir.path());
        change(&mut config);
        let worker = Worker::new(broker, Arc::new(ProcessRunner::new()), None, config).unwrap();
        let stop = WorkerStop::default();
        let task = tokio::spawn(worker.run(stop.clone()));
        let id = id.to_owned();
        server
            .wait_for("the worker's first heartbeat", |s| {
                s.heartbeats().iter().any(|h| h.worker == id).then_some(())
            })
            .await;
        RunningWorker {
            id,
            stop,
            task,
            work_dir,
        }
    }

    /// Drains the worker and waits for it to return; asserts its work directory is empty.
    pub(crate) async fn drain(self) {
        self.stop.drain.cancel();
        self.finish().await;
    }

    /// Waits for the worker to return (it was told to stop); asserts its work directory is
    /// empty.
    pub(crate) async fn finish(self) {
        let returned = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the worker returns once stopped")
            .expect("the worker task did not panic");
        assert!(returned.is_ok(), "{returned:?}");
        let left: Vec<_> = std::fs::read_dir(self.work_dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left in the work directory: {left:?}");
    }
}

/// The pid a step wrote to `file`.
pub(crate) async fn wait_for_pid(file: &Path) -> i32 {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never written",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether process `pid` is still running (not gone, not a zombie).
pub(crate) fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The server's broker, refusing publishes to one topic while told to (or, losing acks,
/// delivering them and answering with an error as if the confirmation got lost).
#[derive(Debug)]
pub(crate) struct RefusingBroker {
    inner: Arc<MemBroker>,
    topic: &'static str,
    lose_acks: bool,
    pub(crate) refuse: AtomicBool,
    pub(crate) refused: std::sync::atomic::AtomicUsize,
}

impl RefusingBroker {
    /// Refusing publishes to `pikoci.events` from the start.
    pub(crate) fn new(server: &Server) -> RefusingBroker {
        RefusingBroker::on(server, topics::EVENTS, true)
    }

    /// Refusing publishes to `topic` once `refuse` is set (from the start when `refusing`).
    pub(crate) fn on(server: &Server, topic: &'static str, refusing: bool) -> RefusingBroker {
        RefusingBroker {
            inner: server.broker.clone(),
            topic,
            lose_acks: false,
            refuse: AtomicBool::new(refusing),
            refused: Default::default(),
        }
    }

    /// Delivering every publish to `topic` but answering each with an error.
    pub(crate) fn losing_acks(server: &Server, topic: &'static str) -> RefusingBroker {
        RefusingBroker {
            lose_acks: true,
            ..RefusingBroker::on(server, topic, true)
        }
    }
}

#[async_trait::async_trait]
impl Broker for RefusingBroker {
    async fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
    ) -> pikoci_core::broker::BrokerResult<()> {
        if topic == self.topic && self.refuse.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            if self.lose_acks {
                self.inner.publish(topic, payload).await?;
            }
            return Err(pikoci_core::broker::BrokerError::new(
                pikoci_core::ErrorKind::Unavailable,
                "the broker is down (test)",
            ));
        }
        self.inner.publish(topic, payload).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
    ) -> pikoci_core::broker::BrokerResult<pikoci_core::broker::Subscription> {
        self.inner.subscribe(topic, group).await
    }

    async fn close(&self) -> pikoci_core::broker::BrokerResult<()> {
        self.inner.close().await
    }
}
