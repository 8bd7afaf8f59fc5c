//! Broker benchmarks, each transport side by side: round-trip latency and throughput.
//!
//! - **Round trip**: publish one small message, receive it, ack it, then the next: 1,000 timed
//!   samples after 100 untimed ones; p50 and p99 of publish → receive → ack, and the p50 of the
//!   publish alone (until the broker accepted the message).
//! - **Throughput**: 10,000 small messages published with up to 64 publishes in flight while the
//!   same consumer receives and acks them one by one; messages per second from the first publish
//!   until every message is acked (and until every publish was accepted, for the publish column).
//!
//! Both use one subscription of a topic and group named uniquely for the run, so runs never see
//! each other's messages; the time `subscribe` took is reported too (a Kafka group join is slow on
//! some brokers).
//!
//! `cargo bench -p pikoci-pubsub --features kafka --bench pubsub -- [mem] [nats] [rabbitmq]
//! [kafka]` (all four without arguments); `cargo xtask bench pubsub` finds or starts the brokers
//! and runs it. NATS, RabbitMQ and Kafka read their URLs from `PIKOCI_TEST_NATS_URL`,
//! `PIKOCI_TEST_RABBITMQ_URL` and `PIKOCI_TEST_KAFKA_URL`, as the conformance suite does; kafka also
//! needs the `kafka` feature. A transport asked for and not configured is an error, never a
//! silent skip. The figures are reported, never asserted.

// A command-line report: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use pikoci_core::broker::{Broker, Delivery, Subscription};
use pikoci_pubsub::{BrokerConfig, PubsubSystem, connect};
use tokio::time::Instant;

const WARMUP: usize = 100;
const SAMPLES: usize = 1_000;
const MESSAGES: usize = 10_000;
/// Publishes awaiting their broker's acceptance at once in the throughput run.
const IN_FLIGHT: usize = 64;
/// Bytes per message: a small dispatch message's order of size.
const MESSAGE_BYTES: usize = 128;
/// How long one delivery may take before the benchmark fails.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(60);

struct Report {
    transport: PubsubSystem,
    subscribe: Duration,
    publish_p50: Duration,
    round_trip_p50: Duration,
    round_trip_p99: Duration,
    published: Duration,
    consumed: Duration,
}

fn main() -> anyhow::Result<()> {
    let asked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let names: Vec<&str> = if asked.is_empty() {
        PubsubSystem::ALL.iter().map(|s| s.name()).collect()
    } else {
        asked.iter().map(String::as_str).collect()
    };
    // Every configuration is checked before anything runs, so a missing one fails at once.
    let configs = names
        .into_iter()
        .map(config)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut reports = Vec::new();
    for config in configs {
        eprintln!("benchmarking {} ...", config.system);
        let report = runtime
            .block_on(bench(&config))
            .with_context(|| format!("the {} benchmark failed", config.system))?;
        reports.push(report);
    }
    print_table(&reports);
    Ok(())
}

/// The configuration of the transport named `name`, with its URL from the environment.
fn config(name: &str) -> anyhow::Result<BrokerConfig> {
    let system: PubsubSystem = name.parse()?;
    let url = match system {
        PubsubSystem::Mem => String::new(),
        PubsubSystem::Nats => env_url("PIKOCI_TEST_NATS_URL")?,
        PubsubSystem::Rabbitmq => env_url("PIKOCI_TEST_RABBITMQ_URL")?,
        PubsubSystem::Kafka => {
            if !cfg!(feature = "kafka") {
                bail!(
                    "kafka is not compiled into this benchmark: run it with `--features kafka` \
                     (`cargo xtask bench pubsub` does)"
                );
            }
            env_url("PIKOCI_TEST_KAFKA_URL")?
        }
    };
    Ok(BrokerConfig::new(system, url))
}

fn env_url(var: &str) -> anyhow::Result<String> {
    std::env::var(var).with_context(|| {
        format!("{var} is not set (`cargo xtask bench pubsub` finds or starts the brokers)")
    })
}

async fn bench(config: &BrokerConfig) -> anyhow::Result<Report> {
    let broker = connect(config)
        .await
        .with_context(|| format!("failed to connect to {} at {}", config.system, config.url))?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("pikoci.bench.{}", &id[..12]);
    let group = format!("bench-{}", &id[..12]);

    let started = Instant::now();
    let mut subscription = broker.subscribe(&topic, &group).await?;
    let subscribe = started.elapsed();

    let mut publishes = Vec::with_capacity(SAMPLES);
    let mut round_trips = Vec::with_capacity(SAMPLES);
    for n in 0..WARMUP + SAMPLES {
        let (publish, round) = round_trip(broker.as_ref(), &mut subscription, &topic, n).await?;
        if n >= WARMUP {
            publishes.push(publish);
            round_trips.push(round);
        }
    }

    let started = Instant::now();
    let (published, consumed) = tokio::try_join!(
        async {
            publish_all(broker.as_ref(), &topic).await?;
            anyhow::Ok(started.elapsed())
        },
        async {
            consume_all(&mut subscription).await?;
            anyhow::Ok(started.elapsed())
        },
    )?;

    let report = Report {
        transport: config.system,
        subscribe,
        publish_p50: percentile(&mut publishes, 50),
        round_trip_p50: percentile(&mut round_trips, 50),
        round_trip_p99: percentile(&mut round_trips, 99),
        published,
        consumed,
    };
    drop(subscription);
    broker.close().await?;
    Ok(report)
}

/// The `p`th percentile of `samples` (not empty).
fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples[(samples.len() * p / 100).min(samples.len() - 1)]
}

/// Message `n` of a run: a marker, the number, and padding up to [`MESSAGE_BYTES`].
fn message(marker: u8, n: usize) -> Vec<u8> {
    let mut bytes = format!("{}{n:010}", char::from(marker)).into_bytes();
    bytes.resize(MESSAGE_BYTES, b'.');
    bytes
}

/// The number of a message made by [`message`] with `marker`, if it is one.
fn number(marker: u8, payload: &[u8]) -> Option<usize> {
    let digits = payload.get(1..11).filter(|_| payload[0] == marker)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

async fn next(subscription: &mut Subscription) -> anyhow::Result<Delivery> {
    match tokio::time::timeout(RECEIVE_TIMEOUT, subscription.next()).await {
        Ok(Some(delivery)) => Ok(delivery?),
        Ok(None) => bail!("the subscription ended"),
        Err(_) => bail!("no delivery within {RECEIVE_TIMEOUT:?}"),
    }
}

/// Publishes message `n`, receives and acks it; returns how long the publish and the whole
/// round trip took.
async fn round_trip(
    broker: &dyn Broker,
    subscription: &mut Subscription,
    topic: &str,
    n: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    broker.publish(topic, message(b'r', n)).await?;
    let published = started.elapsed();
    loop {
        let delivery = next(subscription).await?;
        let this_one = number(b'r', delivery.payload()) == Some(n);
        // Anything else is a redelivery of an earlier sample (at-least-once): settle it too.
        delivery.ack().await?;
        if this_one {
            return Ok((published, started.elapsed()));
        }
    }
}

async fn publish_all(broker: &dyn Broker, topic: &str) -> anyhow::Result<()> {
    futures::stream::iter(0..MESSAGES)
        .map(|n| broker.publish(topic, message(b't', n)))
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    Ok(())
}

/// Receives and acks until each of the [`MESSAGES`] throughput messages came at least once.
async fn consume_all(subscription: &mut Subscription) -> anyhow::Result<()> {
    let mut seen = vec![false; MESSAGES];
    let mut missing = MESSAGES;
    while missing > 0 {
        let delivery = next(subscription)
            .await
            .with_context(|| format!("{missing} of {MESSAGES} messages still missing"))?;
        if let Some(n) = number(b't', delivery.payload()).filter(|n| *n < MESSAGES)
            && !std::mem::replace(&mut seen[n], true)
        {
            missing -= 1;
        }
        delivery.ack().await?;
    }
    Ok(())
}

fn print_table(reports: &[Report]) {
    println!(
        "{:<10} {:>10} {:>12} {:>14} {:>14} {:>22} {:>22}",
        "transport",
        "subscribe",
        "publish p50",
        "round trip p50",
        "round trip p99",
        "10k published",
        "10k received + acked"
    );
    for r in reports {
        println!(
            "{:<10} {:>10} {:>12} {:>14} {:>14} {:>22} {:>22}",
            r.transport.name(),
            format!("{:.2?}", r.subscribe),
            format!("{:.2?}", r.publish_p50),
            format!("{:.2?}", r.round_trip_p50),
            format!("{:.2?}", r.round_trip_p99),
            rate(r.published),
            rate(r.consumed),
        );
    }
}

fn rate(took: Duration) -> String {
    format!(
        "{:.2?} ({:.0}/s)",
        took,
        MESSAGES as f64 / took.as_secs_f64()
    )
}
