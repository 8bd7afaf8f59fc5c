//! `pikoci worker`: a standalone worker, and the embedded worker of `pikoci server`. Workers
//! only talk to the broker, never to a server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use pikoci_core::broker::Broker;
use pikoci_core::protocol::auth::MacKey;
use pikoci_runner::{ProcessRunner, WorkerLock};
use pikoci_worker::{Worker, WorkerConfig, WorkerStop};
use tokio::task::JoinHandle;

use crate::backends::PubsubArgs;
use crate::logging::LogArgs;
use crate::signals::Signals;

/// The flags of `pikoci worker`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A TOML file of settings named like the long flags (`tags = ["linux"]`); flags and
    /// environment variables win over it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    pubsub: PubsubArgs,

    /// The worker's name, unique among the workers of a broker and held by one live worker at a
    /// time on a machine: ASCII letters, digits and `-` [default: the host name with a random
    /// suffix].
    #[arg(long, value_name = "NAME", env = "PIKOCI_WORKER_NAME")]
    name: Option<String>,

    /// Tags of this worker (comma-separated): jobs with tags run only on workers that have all
    /// of them.
    #[arg(
        long,
        value_name = "TAG,...",
        value_delimiter = ',',
        env = "PIKOCI_TAGS"
    )]
    tags: Vec<String>,

    /// Run only jobs that have tags (all among this worker's); needs at least one --tags.
    #[arg(long, value_name = "BOOL", default_value = "false", env = "PIKOCI_EXCLUSIVE_TAGS",
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    exclusive_tags: bool,

    /// The worker token: the global one (`pikoci worker-token`, or as a global admin
    /// `pikoci worker-token --show`) to serve every team, or a team's (`pikoci teams
    /// worker-token TEAM`) to serve that team only. Prefer the environment variable or the
    /// config file: a flag shows in the process list.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PIKOCI_WORKER_TOKEN",
        hide_env_values = true
    )]
    worker_token: pikoci_core::secrets::Secret,

    /// Serve only this team's builds and checks; it must be the worker token's team
    /// [default: the worker token's team, or every team for the global token].
    #[arg(long, value_name = "NAME", env = "PIKOCI_TEAM")]
    team: Option<String>,

    /// How many builds this worker runs at once.
    #[arg(
        long,
        value_name = "N",
        default_value = "2",
        env = "PIKOCI_CONCURRENCY"
    )]
    concurrency: u32,

    /// How many resource checks this worker runs at once, besides its builds.
    #[arg(
        long,
        value_name = "N",
        default_value_t = pikoci_worker::DEFAULT_CHECK_SLOTS,
        env = "PIKOCI_CHECK_CONCURRENCY"
    )]
    check_concurrency: u32,

    /// Where builds' work directories and resource caches live [default:
    /// $XDG_CACHE_HOME/pikoci, or ~/.cache/pikoci].
    #[arg(
        long,
        value_name = "DIR",
        env = "PIKOCI_WORK_DIR",
        hide_env_values = true
    )]
    work_dir: Option<PathBuf>,

    /// On SIGTERM or Ctrl-C, how long running builds may finish before they are stopped (they
    /// then run again on another worker). A second signal stops at once.
    #[arg(long, value_name = "DURATION", default_value = "10m", env = "PIKOCI_DRAIN_TIMEOUT",
          value_parser = parse_duration)]
    drain_timeout: Duration,

    #[command(flatten)]
    log: LogArgs,
}

/// What a worker is, whether standalone or embedded.
#[derive(Debug, Clone)]
pub(crate) struct WorkerOptions {
    pub(crate) id: String,
    pub(crate) token: MacKey,
    pub(crate) team: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) exclusive_tags: bool,
    pub(crate) slots: u32,
    pub(crate) check_slots: u32,
    pub(crate) work_dir: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    args.log.init()?;
    let options = WorkerOptions {
        id: match &args.name {
            Some(name) => name.clone(),
            None => default_name(),
        },
        token: parse_worker_token(&args.worker_token)?,
        team: args.team.clone(),
        tags: args.tags.clone(),
        exclusive_tags: args.exclusive_tags,
        slots: args.concurrency,
        check_slots: args.check_concurrency,
        work_dir: args.work_dir.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    runtime.block_on(async {
        let broker = args.pubsub.connect().await?;
        tracing::info!(pubsub = %args.pubsub.pubsub_system, "broker connected");
        let signals = Signals::install()?;
        let mut worker = spawn(broker.clone(), options).await?;
        tokio::select! {
            () = signals.first() => {
                tracing::info!(
                    drain_timeout = ?args.drain_timeout,
                    "stopping: running builds may finish (signal again to stop now)"
                );
                worker.drain(args.drain_timeout, &signals).await;
            }
            ended = worker.ended() => {
                let _ = broker.close().await;
                return ended.map(|()| ExitCode::SUCCESS);
            }
        }
        let _ = broker.close().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// A running worker.
#[derive(Debug)]
pub(crate) struct RunningWorker {
    stop: WorkerStop,
    task: JoinHandle<anyhow::Result<()>>,
    /// The machine-wide lock on the worker's name, held while it runs.
    _name: Arc<WorkerLock>,
}

/// Starts a worker on `broker`.
pub(crate) async fn spawn(
    broker: Arc<dyn Broker>,
    options: WorkerOptions,
) -> anyhow::Result<RunningWorker> {
    if options.exclusive_tags && options.tags.is_empty() {
        bail!("--exclusive-tags needs at least one tag: give them with --tags");
    }
    if options.slots == 0 {
        bail!("--concurrency must be at least 1");
    }
    if options.check_slots == 0 {
        bail!("--check-concurrency must be at least 1");
    }
    let name = Arc::new(lock_name(options.id.clone(), std::env::temp_dir()).await?);
    let work_dir = match options.work_dir {
        Some(dir) => dir,
        None => crate::run::default_work_dir()?,
    };
    let config = WorkerConfig {
        id: options.id.clone(),
        team: options.team,
        token: options.token,
        tags: options.tags,
        exclusive_tags: options.exclusive_tags,
        slots: options.slots,
        check_slots: options.check_slots,
        work_dir,
        heartbeat_interval: Duration::from_secs(5),
        lease_timeout: Duration::from_secs(15),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: hostname(),
    };
    let worker = Worker::new(
        broker,
        Arc::new(ProcessRunner::for_worker(&name)),
        Some(Arc::new(pikoci_runner::native::GitChecks::new())),
        config,
    )
    .with_context(|| format!("cannot start worker \"{}\"", options.id))?;
    let stop = WorkerStop {
        drain: tokio_util::sync::CancellationToken::new(),
        now: tokio_util::sync::CancellationToken::new(),
    };
    let task = {
        let stop = WorkerStop {
            drain: stop.drain.clone(),
            now: stop.now.clone(),
        };
        let id = options.id.clone();
        let lock = Arc::clone(&name);
        tokio::spawn(async move {
            reap_leftovers(&lock).await;
            worker
                .run(stop)
                .await
                .with_context(|| format!("worker \"{id}\" stopped"))
        })
    };
    Ok(RunningWorker {
        stop,
        task,
        _name: name,
    })
}

/// Takes the lock on the worker name `id` on this machine (the file
/// `<dir>/pikoci-worker-<id>.lock`), for as long as the returned lock lives: a worker that
/// starts kills what the earlier run of its name left, so two live workers with one name would
/// kill each other's steps. The lock files also tell a starting worker which runs of this
/// machine are dead, and by their tokens what those runs left.
async fn lock_name(id: String, dir: PathBuf) -> anyhow::Result<WorkerLock> {
    // It waits a few seconds for a lock someone else holds (a reaper holds one for a moment).
    let lock = tokio::task::spawn_blocking(move || WorkerLock::acquire(&id, &dir))
        .await
        .context("the task taking the worker name's lock failed")??;
    Ok(lock)
}

/// Kills what dead workers of this machine left running (workers killed with SIGKILL, an
/// earlier run of this one among them), before this worker takes work: marked processes and
/// labelled containers.
async fn reap_leftovers(lock: &WorkerLock) {
    let worker = lock.id();
    let reaped = ProcessRunner::reap_leftovers(lock).await;
    if !reaped.is_empty() {
        tracing::warn!(
            worker,
            dead_workers = ?reaped.dead_workers,
            processes = ?reaped.processes,
            groups = ?reaped.groups,
            containers = ?reaped.containers,
            "killed what dead workers of this machine left running"
        );
    } else if !reaped.dead_workers.is_empty() {
        tracing::info!(
            worker,
            dead_workers = ?reaped.dead_workers,
            "dead workers of this machine left nothing running; their lock files are removed"
        );
    }
    for problem in &reaped.problems {
        tracing::info!(
            worker,
            %problem,
            "cannot look for everything dead workers of this machine left"
        );
    }
}

impl RunningWorker {
    /// Waits until the worker ends by itself (an error: it cannot reach the broker for good).
    pub(crate) async fn ended(&mut self) -> anyhow::Result<()> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(join) => Err(anyhow::anyhow!("the worker task failed: {join}")),
        }
    }

    /// Stops taking work and lets the running builds finish, for at most `timeout` or until a
    /// second signal; then stops what still runs.
    pub(crate) async fn drain(mut self, timeout: Duration, signals: &Signals) {
        self.stop.drain.cancel();
        tokio::select! {
            ended = self.ended() => {
                if let Err(error) = ended {
                    tracing::warn!("{error:#}");
                }
                return;
            }
            () = tokio::time::sleep(timeout) => {
                tracing::warn!("drain timeout reached: stopping the running builds");
            }
            () = signals.second() => {
                tracing::warn!("second signal: stopping the running builds now");
            }
        }
        self.stop.now.cancel();
        match tokio::time::timeout(Duration::from_secs(30), self.ended()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!("{error:#}"),
            Err(_) => tracing::warn!("the worker did not stop within 30 s"),
        }
    }
}

/// `--drain-timeout` and friends: `30s`, `10m`, `1h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    match pikoci_core::duration::parse(text) {
        Ok(Some(duration)) => Ok(duration),
        Ok(None) => Ok(Duration::ZERO),
        Err(error) => Err(error.to_string()),
    }
}

/// This machine's host name (`unknown` when it cannot be read).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The host name reduced to letters, digits and `-`, with a random suffix: two workers on one
/// machine never share a name by accident.
fn default_name() -> String {
    let host: String = hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let host = host.trim_matches('-');
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    if host.is_empty() {
        format!("worker-{suffix}")
    } else {
        format!("{host}-{suffix}")
    }
}

/// Reads a worker token; the error never repeats it.
pub(crate) fn parse_worker_token(token: &pikoci_core::secrets::Secret) -> anyhow::Result<MacKey> {
    token
        .expose()
        .parse::<MacKey>()
        .context("--worker-token (PIKOCI_WORKER_TOKEN)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_worker_ids() {
        let name = default_name();
        pikoci_core::protocol::check_worker_id(&name).unwrap();
        assert_ne!(name, default_name());
    }

    #[test]
    fn durations_parse_like_pipelines() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(
            parse_duration("ten")
                .unwrap_err()
                .contains("invalid duration")
        );
    }
}
