//! `cargo xtask it api`: schemathesis (from PyPI, in a virtualenv under `~/.cache/pikoci`)
//! against a real `pikoci server` (in memory, with its embedded worker and `examples/hello.hcl`
//! set), driven by the server's own OpenAPI document.
//!
//! Every check runs but `positive_data_acceptance`: it expects any request that fits the
//! schema to succeed, and many cannot (a pipeline file that fits the schema as a string but is
//! not a valid pipeline is a 422; a build number above 2^32 fits the pattern and names no
//! build). The bar is no server error, no answer that differs from the document (status,
//! content type, headers, body schema), and every request outside the schema refused.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The PyPI package, pinned: a new release may add checks.
const SCHEMATHESIS_PACKAGE: &str = "schemathesis==4.32.5";
/// The virtualenv it lives in, under `~/.cache/pikoci`.
const VENV: &str = "schemathesis-4.32.5";
/// The time schemathesis may spend generating requests.
const FUZZ_SECONDS: u64 = 120;
/// One worker: schemathesis's workers are threads, and with two of them Python 3.11's `ast`
/// module (under hypothesis) fails now and then ("AST constructor recursion depth mismatch").
const WORKERS: &str = "1";
/// The most a run may take, loading and reporting included: it is stopped past this.
const RUN_LIMIT: Duration = Duration::from_secs(3 * FUZZ_SECONDS + 60);
/// How long the server may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the suite.
pub(crate) fn run() -> anyhow::Result<()> {
    let schemathesis = install()?;
    let pikoci = super::build_pikoci()?;
    let dir = std::env::temp_dir().join(format!("pikoci-it-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let server = Server::start(&pikoci, &dir)?;
    let result = fuzz(&schemathesis, &server, &dir);
    let log = server.log.clone();
    drop(server);
    let panicked = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .any(|line| line.contains("panicked"));
    match (&result, panicked) {
        (Ok(()), false) => {
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        (Ok(()), true) => bail!(
            "the server panicked during the schemathesis run: see {}",
            log.display()
        ),
        (Err(_), _) => {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("the end of the server's log ({}):", log.display());
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("  {line}");
            }
            result
        }
    }
}

/// Runs schemathesis against the server; fails when it found anything.
fn fuzz(schemathesis: &Path, server: &Server, dir: &Path) -> anyhow::Result<()> {
    let document = format!("{}/api/v1/openapi.json", server.address());
    let output = dir.join("schemathesis.txt");
    let seconds = FUZZ_SECONDS.to_string();
    eprintln!("$ schemathesis run {document} --checks all ... ({FUZZ_SECONDS} s)");
    let mut child = Command::new(schemathesis)
        .args(["run", &document])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args([
            "--max-time",
            &seconds,
            "--workers",
            WORKERS,
            "--request-timeout",
            "10",
        ])
        .arg("--no-color")
        .args([
            "--header",
            &format!("Authorization: Bearer {}", server.token),
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output)?)
        .stderr(Stdio::inherit())
        .spawn()
        .context("failed to run schemathesis")?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "schemathesis still ran after {RUN_LIMIT:?} and was stopped; its report so far: {}",
                output.display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let text = std::fs::read_to_string(&output).unwrap_or_default();
    // The summary: operations, phases, failures, test cases, seed.
    let summary: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.contains(" SUMMARY "))
        .collect();
    println!("schemathesis against the OpenAPI document:");
    for line in &summary {
        println!("  {line}");
    }
    if !status.success() {
        // The failures come before the summary: print the whole report, CI keeps no file.
        println!("{text}");
        bail!(
            "schemathesis found problems ({status}); the report is above and in {}",
            output.display()
        );
    }
    if summary.is_empty() {
        bail!(
            "schemathesis passed but printed no summary; its report: {}",
            output.display()
        );
    }
    Ok(())
}

/// Installs schemathesis into its virtualenv when needed; the path of its command.
fn install() -> anyhow::Result<PathBuf> {
    let home = std::env::var("HOME").context("HOME is not set")?;
    let venv = Path::new(&home).join(".cache/pikoci").join(VENV);
    let command = venv.join("bin/schemathesis");
    let works = |command: &Path| {
        Command::new(command)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if works(&command) {
        return Ok(command);
    }
    super::install_in_venv(&venv, SCHEMATHESIS_PACKAGE)?;
    if !works(&command) {
        bail!(
            "{SCHEMATHESIS_PACKAGE} is installed but {} does not run",
            command.display()
        );
    }
    Ok(command)
}

/// A `pikoci server` in memory, killed when dropped.
struct Server {
    port: u16,
    child: Child,
    log: PathBuf,
    /// A personal API token of `admin`, a global admin, which schemathesis sends: with it,
    /// every route is served, but none can end the credential (logging out and changing a
    /// password need a session).
    token: String,
}

impl Server {
    fn start(pikoci: &Path, dir: &Path) -> anyhow::Result<Server> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = dir.join("server.log");
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello.hcl");
        // Its own process group, so that the build processes of its worker stop with it.
        let child = Command::new(pikoci)
            .process_group(0)
            .args(["server", "--db-system", "mem", "--pubsub-system", "mem"])
            .args(["--run-worker", "--port", &port.to_string()])
            .args(["--users", super::ADMIN_USER])
            .arg("--pipeline-config")
            .arg(&pipeline)
            .arg("--work-dir")
            .arg(dir.join("work"))
            .env("PIKOCI_SECRET_KEY", "schemathesis-only-0123456789abcdef")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("failed to start {}", pikoci.display()))?;
        let mut server = Server {
            port,
            child,
            log,
            token: String::new(),
        };
        let started = Instant::now();
        loop {
            if server.ready() {
                server.token = server.api_token()?;
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "pikoci server exited ({status}) before it was ready; its log: {}",
                    server.log.display()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "pikoci server was not ready within {START_TIMEOUT:?}; its log: {}",
                    server.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Logs in as `admin` and makes a personal API token.
    fn api_token(&self) -> anyhow::Result<String> {
        let session = super::log_in(self.port)?;
        let answer = super::http_request(
            self.port,
            "POST",
            "/api/v1/api-tokens",
            Some(&session),
            Some("{\"name\":\"schemathesis\"}"),
        )?;
        super::json_string(&answer, "token")
            .with_context(|| format!("cannot create an API token: {answer}"))
    }

    fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether `GET /readyz` answers 200.
    fn ready(&self) -> bool {
        super::http_get(self.port, "/readyz").is_ok_and(|answer| answer.starts_with("HTTP/1.1 200"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The whole group: the server and whatever its worker started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
