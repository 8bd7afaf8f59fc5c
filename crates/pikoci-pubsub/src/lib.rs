//! The [`Broker`](pikoci_core::broker::Broker) implementations: in-process ([`MemBroker`]),
//! NATS JetStream ([`NatsBroker`]), RabbitMQ ([`RabbitBroker`]) and, with the `kafka` feature,
//! Kafka ([`KafkaBroker`]). [`connect`] picks one at run time from a [`BrokerConfig`].
//!
//! Every transport gives the guarantees of the trait (competing consumers per group, fan-out
//! across groups, at-least-once with explicit acks, reconnection inside the subscription) and runs
//! the same conformance suite (`tests/conformance`). `docs/brokers.md` lists what each keeps of
//! the publication order.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod config;
#[cfg(feature = "kafka")]
mod kafka;
mod mem;
mod nats;
mod rabbitmq;
mod task;

pub use config::{BrokerConfig, PubsubSystem, connect};
#[cfg(feature = "kafka")]
pub use kafka::KafkaBroker;
pub use mem::MemBroker;
pub use nats::NatsBroker;
pub use rabbitmq::RabbitBroker;
