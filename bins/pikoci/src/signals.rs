//! SIGTERM, SIGINT (Ctrl-C) and SIGQUIT for the long-running commands: the first one asks for
//! a graceful stop (drain), the next one for an immediate stop.

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Counts the stop signals received.
#[derive(Debug)]
pub(crate) struct Signals {
    count: watch::Receiver<u32>,
}

impl Signals {
    /// Starts listening. Must be called inside the runtime.
    pub(crate) fn install() -> anyhow::Result<Signals> {
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let mut quit = signal(SignalKind::quit()).context("cannot listen for SIGQUIT")?;
        let (tx, count) = watch::channel(0);
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                    _ = quit.recv() => "SIGQUIT",
                };
                tracing::info!(signal = name, "signal received");
                tx.send_modify(|n| *n += 1);
            }
        });
        Ok(Signals { count })
    }

    /// Waits for the first signal.
    pub(crate) async fn first(&self) {
        self.at_least(1).await;
    }

    /// Waits for a second signal.
    pub(crate) async fn second(&self) {
        self.at_least(2).await;
    }

    async fn at_least(&self, n: u32) {
        let mut count = self.count.clone();
        // The sender lives as long as the process: an error means it is gone, wait forever.
        if count.wait_for(|c| *c >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
