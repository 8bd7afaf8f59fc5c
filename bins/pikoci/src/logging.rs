//! Structured logs of the long-running commands (`server`, `worker`): `tracing` events written
//! to stderr as text or as one JSON object per line.

use std::str::FromStr;

use anyhow::Context;

/// `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogLevel {
    /// Everything, including each message handled.
    Debug,
    /// What happens: starts, stops, builds dispatched and finished.
    Info,
    /// What may need attention.
    Warn,
    /// What went wrong.
    Error,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The logging flags shared by `server` and `worker`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LogArgs {
    /// How much to log. `RUST_LOG`, when set, wins (per-module filters, e.g.
    /// `pikoci_server=debug,info`).
    #[arg(long, value_enum, default_value = "info", env = "PIKOCI_LOG_LEVEL")]
    pub(crate) log_level: LogLevel,

    /// How to write logs (to stderr).
    #[arg(long, value_enum, default_value = "text", env = "PIKOCI_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
}

impl LogArgs {
    /// Installs the global subscriber.
    pub(crate) fn init(&self) -> anyhow::Result<()> {
        let level = match self.log_level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        let filter = match std::env::var("RUST_LOG") {
            Ok(spec) if !spec.trim().is_empty() => {
                tracing_subscriber::EnvFilter::from_str(&spec)
                    .with_context(|| format!("RUST_LOG=\"{spec}\" is not a valid log filter"))?
            }
            _ => tracing_subscriber::EnvFilter::new(format!(
                "{level},sqlx=warn,sea_orm=warn,lapin=warn,async_nats=warn,rdkafka=warn,hyper=warn"
            )),
        };
        let color = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(color)
            .with_writer(std::io::stderr);
        let installed = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
        installed.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
    }
}
