//! `pikoci server`: the API, the scheduler, the dispatcher and (by default) an embedded worker.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use pikoci_core::secrets::Secret;
use pikoci_secrets::{Cipher, SecretStore};
use pikoci_server::{Clock, Server, ServerConfig};
use tokio_util::sync::CancellationToken;

use crate::backends::{DbArgs, PubsubArgs};
use crate::logging::LogArgs;
use crate::signals::Signals;
use crate::worker::WorkerOptions;

/// The flags of `pikoci server`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A TOML file of settings named like the long flags (`db-system = "sqlite"`); flags and
    /// environment variables win over it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

    /// The address the HTTP API listens on. To serve other machines (0.0.0.0), put a proxy
    /// that terminates TLS in front: passwords and tokens must not cross a network in clear.
    #[arg(
        long,
        value_name = "ADDRESS",
        default_value = "127.0.0.1",
        env = "PIKOCI_LISTEN_ADDRESS"
    )]
    listen_address: IpAddr,

    /// The port the HTTP API listens on (0: any free port, printed at start).
    #[arg(
        long,
        short = 'p',
        value_name = "PORT",
        default_value = "8080",
        env = "PIKOCI_PORT"
    )]
    port: u16,

    #[command(flatten)]
    db: DbArgs,

    #[command(flatten)]
    pubsub: PubsubArgs,

    /// Run a worker inside the server process (through the same broker as standalone ones).
    #[arg(long, value_name = "BOOL", default_value = "true", env = "PIKOCI_RUN_WORKER",
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    run_worker: bool,

    /// How many builds the embedded worker runs at once.
    #[arg(
        long,
        value_name = "N",
        default_value = "2",
        env = "PIKOCI_CONCURRENCY"
    )]
    concurrency: u32,

    /// How many resource checks the embedded worker runs at once, besides its builds.
    #[arg(
        long,
        value_name = "N",
        default_value_t = pikoci_worker::DEFAULT_CHECK_SLOTS,
        env = "PIKOCI_CHECK_CONCURRENCY"
    )]
    check_concurrency: u32,

    /// Where the embedded worker keeps builds' work directories and resource caches
    /// [default: $XDG_CACHE_HOME/pikoci, or ~/.cache/pikoci].
    #[arg(
        long,
        value_name = "DIR",
        env = "PIKOCI_WORK_DIR",
        hide_env_values = true
    )]
    work_dir: Option<PathBuf>,

    /// A pipeline file to create or update at start (in --team, named --pipeline-name). A
    /// pipeline that does not validate stops the server (exit 2) with its diagnostics.
    #[arg(
        long,
        value_name = "FILE",
        env = "PIKOCI_PIPELINE_CONFIG",
        hide_env_values = true
    )]
    pipeline_config: Option<PathBuf>,

    /// The name of the --pipeline-config pipeline [default: the file's name without its
    /// extension, e.g. `pipeline` for pipeline.hcl].
    #[arg(long, short = 'n', value_name = "NAME", env = "PIKOCI_PIPELINE_NAME")]
    pipeline_name: Option<String>,

    /// A JSON file of variable values for the --pipeline-config pipeline.
    #[arg(
        long,
        short = 'v',
        value_name = "FILE",
        env = "PIKOCI_VARS",
        hide_env_values = true
    )]
    vars: Option<PathBuf>,

    /// The team of the --pipeline-config pipeline (created when missing).
    #[arg(
        long,
        alias = "team-canonical",
        value_name = "NAME",
        default_value = "main",
        env = "PIKOCI_TEAM"
    )]
    team: String,

    /// The master key of the secret store `pikoci`: at least 32 random characters (e.g. the
    /// output of `openssl rand -base64 32`); `secret` entries are encrypted with a key derived
    /// from it and cannot be read with another. Without it, only `plain` entries can be set.
    /// Prefer the environment variable: flags are visible to every user of the machine.
    #[arg(
        long,
        value_name = "KEY",
        env = "PIKOCI_SECRET_KEY",
        hide_env_values = true
    )]
    secret_key: Option<String>,

    /// Users to create at start, as NAME:HASH, separated by spaces (or the flag repeated); HASH is an argon2id (or
    /// bcrypt) hash from `pikoci user-password`. Users who exist are left as they are, except
    /// a first-start `admin` whose generated password was never changed, which takes HASH. A
    /// user named `admin` is created as a global admin. Without any user, the first start
    /// creates `admin` with a generated password, printed once on standard error.
    #[arg(
        long,
        value_name = "NAME:HASH",
        env = "PIKOCI_USERS",
        value_delimiter = ' ',
        hide_env_values = true,
        value_parser = parse_user
    )]
    users: Vec<UserEntry>,

    /// The global worker token, for standalone workers that serve every team (make one with
    /// `pikoci worker-token`, and give the workers the same). Without it, the server makes one
    /// at its first start, which a global admin reads with `pikoci worker-token --show`.
    /// Every message on the broker is signed with a worker token's key.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PIKOCI_WORKER_TOKEN",
        hide_env_values = true
    )]
    worker_token: Option<Secret>,

    /// The address users reach this server at, such as `https://ci.example.com` (the TLS
    /// proxy's): single sign-on's callback URLs are built on it, and login cookies are sent
    /// over `https` only when it is `https`. Without it, each request's `Host` over `http`.
    #[arg(long, value_name = "URL", env = "PIKOCI_EXTERNAL_URL", value_parser = parse_external_url)]
    external_url: Option<String>,

    /// How long a login session lasts (`12h`, `30d`); logging out or changing the password
    /// ends it sooner.
    #[arg(long, value_name = "DURATION", default_value = "30d", env = "PIKOCI_SESSION_LIFETIME",
          value_parser = parse_session_lifetime)]
    session_lifetime: Duration,

    /// How many times a build that lost its worker runs again before it is errored.
    #[arg(
        long,
        value_name = "N",
        default_value = "2",
        env = "PIKOCI_MAX_REQUEUES"
    )]
    max_requeues: u32,

    /// On SIGTERM or Ctrl-C, how long the embedded worker may finish its running builds
    /// before they are stopped (they then run again on another worker, or at the next start).
    /// A second signal stops at once.
    #[arg(long, value_name = "DURATION", default_value = "10m", env = "PIKOCI_DRAIN_TIMEOUT",
          value_parser = crate::worker::parse_duration)]
    drain_timeout: Duration,

    #[command(flatten)]
    log: LogArgs,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    args.log.init()?;
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    let cipher = match args.secret_key.as_deref().map(str::trim) {
        Some(key) if !key.is_empty() => Some(Cipher::new(&Secret::new(key))?),
        _ => {
            tracing::info!(
                "no --secret-key (PIKOCI_SECRET_KEY): the secret store takes plain entries only"
            );
            None
        }
    };
    let store = Arc::new(args.db.connect().await?);
    let secrets = SecretStore::new(store.clone(), cipher);
    tracing::info!(db = args.db.system()?.as_str(), "database ready");
    let broker = args.pubsub.connect().await?;
    tracing::info!(pubsub = %args.pubsub.pubsub_system, "broker connected");
    if args.pubsub.system()? == pikoci_pubsub::PubsubSystem::Mem && !args.run_worker {
        tracing::warn!(
            "--pubsub-system mem with --run-worker=false: no worker can reach this server, so \
             no build will run; use a real broker (nats, rabbitmq, kafka) for standalone workers"
        );
    }
    let config = ServerConfig {
        max_requeues: args.max_requeues,
        session_lifetime: args.session_lifetime,
        external_url: args.external_url.clone(),
        worker_token: args
            .worker_token
            .as_ref()
            .map(crate::worker::parse_worker_token)
            .transpose()?,
        users: args
            .users
            .iter()
            .map(|user| (user.name.clone(), user.hash.clone()))
            .collect(),
        ..ServerConfig::default()
    };
    let server = Server::new(
        store.clone(),
        store,
        broker.clone(),
        secrets,
        config,
        Clock::new(),
    );
    server
        .ensure_team(&args.team)
        .await
        .with_context(|| format!("cannot create team \"{}\"", args.team))?;
    if let Some(password) = server
        .ensure_users()
        .await
        .context("cannot create the users of --users")?
    {
        pikoci_server::auth::announce_initial_admin(&password);
    }
    let global_worker_token = server
        .ensure_worker_keys()
        .await
        .context("cannot set up the worker tokens")?;
    // Recorded in the team's audit log as done by `system`.
    if let Some(path) = &args.pipeline_config
        && let Some(code) = pikoci_core::store::audit::acting_as(
            pikoci_core::store::audit::SYSTEM,
            set_pipeline(&server, &args, path),
        )
        .await?
    {
        return Ok(code);
    }

    let signals = Signals::install()?;
    let shutdown = CancellationToken::new();
    let mut loops = server
        .start(shutdown.clone())
        .await
        .context("cannot start the server's event consumers")?;

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.listen_address, args.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} (is another server running? choose another --port)",
                args.listen_address, args.port
            )
        })?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    if address.ip().is_loopback() {
        tracing::info!(%address, "listening on http://{address} (this machine only)");
    } else {
        tracing::warn!(
            %address,
            "listening on http://{address}: serve it to other machines through a proxy that \
             terminates TLS, or passwords and tokens cross the network in clear"
        );
    }

    let worker = if args.run_worker {
        let options = WorkerOptions {
            id: format!(
                "embedded-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            token: global_worker_token,
            team: None,
            tags: Vec::new(),
            exclusive_tags: false,
            slots: args.concurrency,
            check_slots: args.check_concurrency,
            work_dir: args.work_dir.clone(),
        };
        Some(crate::worker::spawn(broker.clone(), options).await?)
    } else {
        None
    };

    let http = {
        let router = pikoci_server::api::router(server.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        })
    };

    // First signal: drain the embedded worker, then stop; second signal: stop now. An embedded
    // worker that ends by itself (its broker gone for good) stops the server with an error.
    let mut worker = worker;
    let worker_ended = async {
        match worker.as_mut() {
            Some(worker) => worker.ended().await,
            None => std::future::pending().await,
        }
    };
    let failed = tokio::select! {
        () = signals.first() => None,
        ended = worker_ended => Some(ended),
    };
    let code = match failed {
        None => {
            tracing::info!(
                drain_timeout = ?args.drain_timeout,
                "stopping: running builds of the embedded worker may finish (signal again to \
                 stop now)"
            );
            if let Some(worker) = worker {
                worker.drain(args.drain_timeout, &signals).await;
            }
            ExitCode::SUCCESS
        }
        Some(ended) => {
            let error = ended
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("the embedded worker stopped"));
            tracing::error!("{error:#}: stopping the server");
            ExitCode::FAILURE
        }
    };
    shutdown.cancel();
    let mut http = http;
    if tokio::time::timeout(Duration::from_secs(10), &mut http)
        .await
        .is_err()
    {
        // Open event streams do not end by themselves: close them.
        http.abort();
    }
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(5), loops.join_next()).await {}
    loops.abort_all();
    let _ = broker.close().await;
    tracing::info!("stopped");
    Ok(code)
}

/// Creates or updates the --pipeline-config pipeline; `Some(exit code)` when it is invalid.
async fn set_pipeline(
    server: &Server,
    args: &Args,
    path: &std::path::Path,
) -> anyhow::Result<Option<ExitCode>> {
    let file = pikoci_config::read_source(path)
        .with_context(|| format!("cannot read pipeline file {}", path.display()))?;
    let vars = match &args.vars {
        Some(vars_path) => {
            let text = std::fs::read_to_string(vars_path)
                .with_context(|| format!("cannot read vars file {}", vars_path.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("vars file {} is not valid JSON", vars_path.display()))?;
            if !value.is_object() {
                bail!(
                    "vars file {} must hold a JSON object of variable values",
                    vars_path.display()
                );
            }
            value
        }
        None => serde_json::json!({}),
    };
    let name = match &args.pipeline_name {
        Some(name) => name.clone(),
        None => default_pipeline_name(path)?,
    };
    match server
        .set_pipeline(&args.team, &name, file.name(), file.text(), vars)
        .await
    {
        Ok(set) => {
            if !set.warnings.is_empty() {
                let warnings = pikoci_config::Diagnostics::new(file.clone(), set.warnings);
                crate::output::stderr(&warnings.render(crate::stderr_color(false)))?;
            }
            Ok(None)
        }
        Err(error) => match error.diagnostics {
            Some(items) => {
                let diagnostics = pikoci_config::Diagnostics::new(file, items);
                crate::output::stderr(&diagnostics.render(crate::stderr_color(false)))?;
                crate::output::stderr(&format!(
                    "error: {}: the server did not start\n",
                    error.message
                ))?;
                Ok(Some(ExitCode::from(crate::EXIT_USAGE)))
            }
            None => Err(anyhow::Error::new(error).context(format!(
                "cannot set pipeline \"{name}\" from {}",
                path.display()
            ))),
        },
    }
}

/// `pipeline.hcl` → `pipeline`, slugged to a canonical name.
fn default_pipeline_name(path: &std::path::Path) -> anyhow::Result<String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let name = pikoci_core::name::slugify(stem);
    if name.is_empty() {
        bail!(
            "cannot make a pipeline name from {}: give one with --pipeline-name",
            path.display()
        );
    }
    Ok(name)
}

/// A `--users` entry.
#[derive(Clone)]
pub(crate) struct UserEntry {
    name: String,
    hash: Secret,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:<hash>", self.name)
    }
}

/// `NAME:HASH`, split at the first `:`.
fn parse_user(text: &str) -> Result<UserEntry, String> {
    let Some((name, hash)) = text.split_once(':') else {
        return Err(
            "expected NAME:HASH, with HASH from `pikoci user-password --username NAME`".to_owned(),
        );
    };
    if !pikoci_core::name::is_canonical(name) {
        return Err(format!(
            "invalid user name \"{}\": use a-z, 0-9, '-' and '_'",
            name.escape_debug()
        ));
    }
    pikoci_server::auth::password::check_hash(hash)?;
    Ok(UserEntry {
        name: name.to_owned(),
        hash: Secret::new(hash),
    })
}

/// An `http` or `https` URL without a path, query or fragment; the trailing `/` dropped.
fn parse_external_url(text: &str) -> Result<String, String> {
    let trimmed = text.trim().trim_end_matches('/');
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return Err(format!(
            "\"{text}\" is not a URL: give the address users open, such as https://ci.example.com"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("\"{text}\" must start with https:// (or http://)"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(format!(
            "\"{text}\" must be a scheme and a host (and port) only, such as \
             https://ci.example.com: PikoCI is served at the root of its address"
        ));
    }
    Ok(trimmed.to_owned())
}

fn parse_session_lifetime(text: &str) -> Result<Duration, String> {
    match crate::worker::parse_duration(text)? {
        duration if duration < Duration::from_secs(60) => {
            Err("a session must last at least 1m".to_owned())
        }
        duration if duration > Duration::from_secs(400 * 86_400) => {
            Err("a session may last at most 400d: log in again after that".to_owned())
        }
        duration => Ok(duration),
    }
}
