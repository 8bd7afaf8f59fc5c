//! The server library: scheduler, dispatcher, event ingestion and the HTTP API.
//!
//! [`Server`] is the service layer: it owns the [`Store`](pikoci_core::store::Store) and the
//! [`Broker`](pikoci_core::broker::Broker), runs the background loops ([`Server::start`]), and
//! offers the operations the API (and `pikoci server --pipeline-config`) call.
//!
//! Code map: `ingest` consumes the event and heartbeat topics; `heartbeat` and `events` handle
//! what workers say (fenced by build attempt); `dispatch` is the dispatcher loop (lapsed leases,
//! forced cancels, assignments), with `snapshot` building what an assignment carries and
//! `sealing` the secret store's values in it, sealed to the worker, `checks`
//! for resource checks and `reasons` for why pending builds wait; `scheduling` creates builds
//! (versions, automatic triggers, `passed`); `operations` holds what users ask (trigger, cancel,
//! retry, approve); `state` the in-memory state of one server; `outbox` what it sends.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]
// The server's futures (its loops, the router's layers: body limit, `no_store`, the request
// span and metrics) nest deeper than the default limit lets the compiler lay out.
#![recursion_limit = "256"]

pub mod api;
pub mod auth;
mod checks;
mod clock;
mod config;
mod dispatch;
mod error;
mod events;
mod heartbeat;
mod ingest;
mod keys;
mod metrics;
mod operations;
mod outbox;
mod pipelines;
mod reasons;
mod scheduling;
mod sealing;
mod service;
mod snapshot;
mod state;
mod ui;

pub use api::router;
pub use checks::UNANNOUNCED_CHECK_SLOTS;
pub use clock::Clock;
pub use config::ServerConfig;
pub use dispatch::SERVER_NOTES_STEP;
pub use error::{ServerError, ServerResult};
pub use keys::new_global_worker_token;
pub use service::{PipelineSet, Readiness, Server};
