//! Ownership of the background tasks behind subscriptions, and retry pacing.
//!
//! Every task a broker spawns is tracked by the broker's [`Tasks`] and runs under a child of its
//! cancellation token: dropping a subscription cancels its task, closing the broker cancels all of
//! them and waits for them to end.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use pikoci_core::ErrorKind;
use pikoci_core::broker::{BrokerError, BrokerResult, Delivery};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

/// How long `close` waits for the tasks of a broker to finish their clean-up.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// The tasks of one broker connection.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    root: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    /// Cancelled when the broker is closed.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.root
    }

    /// Whether the broker was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.root.is_cancelled()
    }

    /// `Unavailable` once the broker was closed: "failed to `action`: the `transport` broker is
    /// closed".
    pub(crate) fn check_open(
        &self,
        transport: &str,
        action: impl FnOnce() -> String,
    ) -> BrokerResult<()> {
        if self.is_closed() {
            return Err(BrokerError::new(
                ErrorKind::Unavailable,
                format!("failed to {}: the {transport} broker is closed", action()),
            ));
        }
        Ok(())
    }

    /// Spawns the task feeding one subscription. The task gets a token cancelled when the returned
    /// stream is dropped or the broker closed, and a sender for the deliveries; it must return
    /// soon after the token is cancelled.
    pub(crate) fn spawn_feed<F, Fut>(&self, buffer: usize, feed: F) -> DeliveryStream
    where
        F: FnOnce(CancellationToken, mpsc::Sender<BrokerResult<Delivery>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let token = self.root.child_token();
        let (tx, rx) = mpsc::channel(buffer.max(1));
        self.tracker.spawn(feed(token.clone(), tx));
        DeliveryStream {
            rx,
            _cancel_on_drop: token.drop_guard(),
        }
    }

    /// Cancels every task and waits (boundedly) for them to end.
    pub(crate) async fn close(&self) {
        self.root.cancel();
        self.tracker.close();
        if tokio::time::timeout(CLOSE_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tracker.len(),
                "broker tasks still running after the close grace period"
            );
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.root.cancel();
    }
}

/// The deliveries a feed task sends. Dropping it first drops the deliveries still buffered
/// (their settlers give them back), then cancels the task.
#[derive(Debug)]
pub(crate) struct DeliveryStream {
    // Field order matters: the receiver (and its buffered deliveries) goes before the guard.
    rx: mpsc::Receiver<BrokerResult<Delivery>>,
    _cancel_on_drop: DropGuard,
}

impl Stream for DeliveryStream {
    type Item = BrokerResult<Delivery>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Exponential pacing of reconnection attempts, from 50 ms up to 2 s.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);

    /// Starts at the shortest delay.
    pub(crate) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// Back to the shortest delay, after a success.
    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// Waits before the next attempt; `false` when `token` was cancelled meanwhile.
    pub(crate) async fn wait(&mut self, token: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = token.cancelled() => false,
        }
    }

    /// Like [`Backoff::wait`], but never past `deadline`; `false` when the deadline is reached.
    pub(crate) async fn wait_until(
        &mut self,
        deadline: tokio::time::Instant,
        token: &CancellationToken,
    ) -> bool {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        let delay = self.next.min(deadline - now);
        self.next = (self.next * 2).min(Self::MAX);
        tokio::select! {
            () = tokio::time::sleep(delay) => tokio::time::Instant::now() < deadline,
            () = token.cancelled() => false,
        }
    }
}

/// The publish loop every transport shares: runs `attempt` (given the deadline) until the broker
/// confirms the message, refuses it for good (an [`ErrorKind::InvalidInput`] error: retrying
/// cannot help), the broker is closed, or `timeout` passes ([`ErrorKind::Timeout`], with the last
/// failure as its source). Attempts are paced by [`Backoff`].
pub(crate) async fn publish_retrying<F, Fut>(
    tasks: &Tasks,
    transport: &str,
    topic: &str,
    timeout: Duration,
    mut attempt: F,
) -> BrokerResult<()>
where
    F: FnMut(tokio::time::Instant) -> Fut,
    Fut: Future<Output = BrokerResult<()>>,
{
    let action = || format!("publish to topic \"{topic}\"");
    tasks.check_open(transport, action)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = Backoff::new();
    loop {
        let last = match tokio::time::timeout_at(deadline, attempt(deadline)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(err)) if err.kind() == ErrorKind::InvalidInput => return Err(err),
            Ok(Err(err)) => Some(err),
            Err(_elapsed) => None,
        };
        tasks.check_open(transport, action)?;
        if !backoff.wait_until(deadline, tasks.token()).await {
            return Err(unconfirmed(transport, topic, timeout, last));
        }
    }
}

/// The error for a publish that `transport` did not confirm before its deadline, with the last
/// failure as its source.
fn unconfirmed<E>(transport: &str, topic: &str, timeout: Duration, last: Option<E>) -> BrokerError
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    let err = BrokerError::new(
        ErrorKind::Timeout,
        format!(
            "failed to publish to topic \"{topic}\": {transport} did not confirm it within {timeout:?}"
        ),
    );
    match last {
        Some(last) => err.with_source(last),
        None => err,
    }
}
