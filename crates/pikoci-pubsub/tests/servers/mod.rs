//! Dedicated broker servers for the restart test (and the chaos suite, which includes this
//! file): a NATS server and a RabbitMQ node on free ports, and a Kafka-protocol broker (tansu)
//! behind a TCP cut-off. Each is stopped when dropped.

// Each test target uses the servers its transports need.
#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinSet;

/// A dedicated broker server the test may stop and start again.
#[async_trait]
pub trait Restartable: Send {
    /// Stops the server (clients see their connections drop).
    async fn stop(&mut self);
    /// Starts it again at the same address, returning once it accepts connections.
    async fn start(&mut self);
}

/// How long a server may take to accept connections after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// The value of a variable `cargo xtask it pubsub` sets; fails the test when it is missing.
pub(crate) fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run these tests with `cargo xtask it pubsub`, which sets it")
    })
}

/// Polls until `port` accepts connections, failing the test after [`START_TIMEOUT`].
pub(crate) async fn wait_for_port(port: u16, what: &str) {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not listen on port {port} within {START_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills a child and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A `nats-server -js` of its own, with its JetStream store in a temporary directory.
pub(crate) struct NatsServer {
    binary: String,
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts `binary` on a free port.
    pub(crate) async fn start(binary: String) -> Self {
        let mut server = Self {
            binary,
            port: free_port(),
            store: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        Restartable::start(&mut server).await;
        server
    }

    /// The client URL.
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

#[async_trait]
impl Restartable for NatsServer {
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    async fn start(&mut self) {
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("failed to start {}: {err}", self.binary));
        self.child = Some(child);
        wait_for_port(self.port, "the dedicated nats-server").await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }
}

/// A RabbitMQ node of its own (own node name, ports, database and logs in a temporary directory).
pub(crate) struct RabbitNode {
    script: String,
    port: u16,
    dist_port: u16,
    node: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RabbitNode {
    /// Starts the node with `script` (`rabbitmq-server`, run as the current user).
    pub(crate) async fn start(script: String) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("node dirs");
        }
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").expect("plugins file");
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .expect("config file");
        let node = format!(
            "pikoci-it-{}@localhost",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut server = Self {
            script,
            port,
            dist_port: free_port(),
            node,
            dir,
            child: None,
        };
        Restartable::start(&mut server).await;
        server
    }

    /// The client URL.
    pub(crate) fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Kills the Erlang VM (the script's child, whose pid the node writes), then the script.
    fn kill_node(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.path("pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            let _ = std::fs::remove_file(self.path("pid"));
        }
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }
}

fn env_path(path: &Path) -> &std::ffi::OsStr {
    path.as_os_str()
}

#[async_trait]
impl Restartable for RabbitNode {
    async fn stop(&mut self) {
        self.kill_node();
    }

    async fn start(&mut self) {
        let log = std::fs::File::create(self.path("server.out")).expect("log file");
        let child = Command::new(&self.script)
            .env("HOME", env_path(self.dir.path()))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env(
                "RABBITMQ_CONFIG_FILE",
                env_path(&self.path("rabbitmq.conf")),
            )
            .env("RABBITMQ_MNESIA_BASE", env_path(&self.path("mnesia")))
            .env("RABBITMQ_LOG_BASE", env_path(&self.path("log")))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                env_path(&self.path("enabled_plugins")),
            )
            .env("RABBITMQ_PID_FILE", env_path(&self.path("pid")))
            .env("ERL_CRASH_DUMP", env_path(&self.path("erl_crash.dump")))
            .current_dir(self.dir.path())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("failed to start {}: {err}", self.script));
        self.child = Some(child);
        wait_for_port(self.port, "the dedicated rabbitmq node").await;
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.kill_node();
    }
}

/// A TCP relay in front of a broker: `stop` cuts every connection and refuses new ones, as a
/// broker restart looks to its clients; `start` lets them through again.
pub(crate) struct Relay {
    listen: u16,
    target: SocketAddr,
    tasks: JoinSet<()>,
}

impl Relay {
    /// Relays `listen` to `target`.
    pub(crate) async fn start(listen: u16, target: SocketAddr) -> Self {
        let mut relay = Self {
            listen,
            target,
            tasks: JoinSet::new(),
        };
        Restartable::start(&mut relay).await;
        relay
    }
}

#[async_trait]
impl Restartable for Relay {
    async fn stop(&mut self) {
        // Aborting the accept loop drops the listener; the JoinSet owns every connection task.
        self.tasks.shutdown().await;
    }

    async fn start(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.listen))
            .await
            .expect("bind the relay port");
        let target = self.target;
        self.tasks.spawn(async move {
            // Dropped with this task, which aborts every relayed connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        connections.spawn(async move {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        wait_for_port(self.listen, "the relay").await;
    }
}

/// A tansu broker of its own behind a [`Relay`]. tansu as packaged keeps its data in memory
/// only, so restarting it would lose every topic: stopping cuts and restarting restores the
/// network path instead, which is what a restart looks like to the clients.
pub(crate) struct KafkaBehindRelay {
    relay: Relay,
    relay_port: u16,
    tansu: Option<Child>,
}

impl KafkaBehindRelay {
    /// Starts the `tansu` binary on a free port, and the relay in front of it.
    pub(crate) async fn start(tansu: &str) -> Self {
        let (broker_port, relay_port) = (free_port(), free_port());
        let listen = format!("tcp://127.0.0.1:{broker_port}");
        let advertised = format!("tcp://127.0.0.1:{relay_port}");
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &listen,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("failed to start {tansu}: {err}"));
        let mut broker = Self {
            // Not listening yet: started below, once tansu listens (a panic on the way still
            // stops tansu, with `broker`).
            relay: Relay {
                listen: relay_port,
                target: ([127, 0, 0, 1], broker_port).into(),
                tasks: JoinSet::new(),
            },
            relay_port,
            tansu: Some(child),
        };
        wait_for_port(broker_port, "the dedicated tansu broker").await;
        Restartable::start(&mut broker.relay).await;
        broker
    }

    /// The client URL, through the relay.
    pub(crate) fn url(&self) -> String {
        format!("kafka://127.0.0.1:{}", self.relay_port)
    }
}

#[async_trait]
impl Restartable for KafkaBehindRelay {
    async fn stop(&mut self) {
        self.relay.stop().await;
    }

    async fn start(&mut self) {
        self.relay.start().await;
    }
}

impl Drop for KafkaBehindRelay {
    fn drop(&mut self) {
        if let Some(mut child) = self.tansu.take() {
            kill(&mut child);
        }
    }
}
