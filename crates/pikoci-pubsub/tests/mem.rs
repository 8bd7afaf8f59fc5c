//! The conformance suite against the in-process broker (runs in every `cargo test`).

mod conformance;
mod servers;

use std::sync::Arc;

use async_trait::async_trait;
use pikoci_core::broker::Broker;
use pikoci_pubsub::MemBroker;

/// Every "client" is a handle on one shared in-process broker, as for a server and its embedded
/// worker.
struct Mem(MemBroker);

#[async_trait]
impl conformance::Harness for Mem {
    async fn connect(&self) -> Arc<dyn Broker> {
        Arc::new(self.0.clone())
    }
}

// The mem broker has no server to restart, so `reconnect_after_restart` does not apply.
conformance_tests!(Mem(MemBroker::new()));
