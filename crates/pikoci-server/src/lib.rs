//! The server library: scheduler, dispatcher, event ingestion and the HTTP API.
//!
//! [`Server`] is the service layer: it owns the [`Store`](pikoci_core::store::Store) and the
//! [`Broker`](pikoci_core::broker::Broker), runs the background loops ([`Server::start`]), and
//! offers the operations the API (and `pikoci server --pipeline-config`) call. The HTTP router
//! is built by [`api::router`] on top of it.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod api;
mod clock;
mod config;
mod error;
mod pipelines;
mod service;

pub use api::router;
pub use clock::Clock;
pub use config::ServerConfig;
pub use error::{ServerError, ServerResult};
pub use service::{PipelineSet, Readiness, Server};
