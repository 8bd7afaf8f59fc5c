//! Sending messages to workers: the envelope, the size check, the publish.

use pikoci_core::protocol::auth::MacKey;
use pikoci_core::protocol::{self, Envelope, Message, WorkRef, topics};

use crate::Server;

impl Server {
    /// `message` in an envelope from this server.
    pub(crate) fn envelope(&self, message: Message) -> Envelope {
        Envelope {
            v: protocol::VERSION,
            msg_id: uuid::Uuid::now_v7().to_string(),
            sender: self.inner.config.server_id.clone(),
            boot_id: self.inner.runtime.boot_id.clone(),
            sent_at_ms: protocol::to_ms(self.now()),
            message,
        }
    }

    /// Publishes `message` to `worker`'s inbox, signed with the key of the scope it registered
    /// with; the error says what failed.
    pub(crate) async fn send(&self, worker: &str, message: Message) -> Result<(), String> {
        let scope = match self.worker_scope(worker).await {
            Ok(Some((_, scope))) => scope,
            Ok(None) => return Err(format!("worker \"{worker}\" is not registered")),
            Err(err) => return Err(format!("cannot read worker \"{worker}\": {err}")),
        };
        let key = self.signing_key(&scope).await?;
        self.publish_signed(worker, &key, message).await
    }

    /// Publishes `message` to `worker`'s inbox signed with `key`; the error says what failed.
    pub(crate) async fn publish_signed(
        &self,
        worker: &str,
        key: &MacKey,
        message: Message,
    ) -> Result<(), String> {
        protocol::check_worker_id(worker)?;
        let type_name = message.type_name();
        let topic = topics::worker(worker);
        let bytes = key
            .encode(&topic, &self.envelope(message))
            .map_err(|err| err.to_string())?;
        self.inner
            .broker
            .publish(&topic, bytes)
            .await
            .map_err(|err| {
                self.inner.metrics.broker_error("publish");
                format!("failed to send a \"{type_name}\" to worker \"{worker}\": {err}")
            })
    }

    /// Sends a message, logging a failure (for messages whose loss only delays things: a
    /// lease renewal, a cancel that the grace timer backs up, an abort the worker also gets
    /// from the lease answers).
    pub(crate) async fn send_or_warn(&self, worker: &str, message: Message) {
        if let Err(error) = self.send(worker, message).await {
            tracing::warn!(worker, %error, "a message to a worker was not sent");
        }
    }

    /// Tells `worker` to stop `work` without hooks (once per work and worker).
    pub(crate) async fn abort(&self, worker: &str, work: WorkRef, reason: String) {
        if protocol::check_worker_id(worker).is_err()
            || !self.inner.runtime.first_abort(work, worker)
        {
            return;
        }
        tracing::info!(worker, %work, %reason, "telling a worker to abort stale work");
        self.send_or_warn(worker, Message::Abort { work, reason })
            .await;
    }
}
