//! What the server reports to Prometheus (`GET /metrics`, the text format 0.0.4).
//!
//! Counters and histograms are updated where things happen (HTTP requests, dispatches, log
//! lines, broker and database errors); the gauges that describe the state (builds by job and
//! status, the pending queue, checks, workers) are read from the store at each scrape, so every
//! server on a database reports the same state whichever one Prometheus asks. Names follow
//! Prometheus's guide: a `pikoci_` prefix, base units (seconds, bytes) in the name, `_total` on
//! counters.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use pikoci_core::store::{BuildStatus, Store, StoreError, StoreGauges, Worker};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry, Unit};

use crate::state::lock;

/// The `Content-Type` of `/metrics`.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    /// The route's pattern (`/api/v1/teams/{tc}`), `unmatched` for unknown paths: never the
    /// path itself, whose values are unbounded.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    team: String,
    pipeline: String,
    job: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

/// How long a scrape waits for the database (Prometheus's default scrape timeout is 10 s).
const STATE_PATIENCE: Duration = Duration::from_secs(5);

/// Registers `metric` as `name` (with its unit) in `registry`, and gives it back to be updated.
fn add<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: M,
) -> M {
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric.clone()),
        None => registry.register(name, help, metric.clone()),
    }
    metric
}

/// A histogram's constructor, for families of them.
type NewHistogram = fn() -> Histogram;

/// Request durations: 1 ms to about 16 s.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The server's metrics. Cheap to share (`Arc` inside the server).
pub(crate) struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, NewHistogram>,
    dispatch_latency: Histogram,
    log_bytes: Counter,
    broker_errors: Family<OperationLabels, Counter>,
    refused_messages: Counter,
    builds: Family<BuildLabels, Gauge>,
    pending: Gauge,
    oldest_pending: Gauge<f64, AtomicU64>,
    checks: Family<StateLabels, Gauge>,
    checks_lagging: Gauge,
    workers: Family<StateLabels, Gauge>,
    database_up: Gauge,
    /// One scrape at a time: a scrape clears and refills the gauges before encoding them.
    scrape: Mutex<()>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of a server on `store`.
    pub(crate) fn new(store: Arc<dyn Store>) -> Metrics {
        let mut registry = Registry::with_prefix("pikoci");
        registry.register_collector(Box::new(StoreCounters(store)));
        let r = &mut registry;
        Metrics {
            http_requests: add(
                r,
                "http_requests",
                "HTTP requests answered, by method, route and status",
                None,
                Family::default(),
            ),
            http_duration: add(
                r,
                "http_request_duration",
                "Time to answer an HTTP request (to the start of the body for streams), by \
                 method and route",
                Some(Unit::Seconds),
                Family::new_with_constructor(request_buckets as NewHistogram),
            ),
            dispatch_latency: add(
                r,
                "build_dispatch_latency",
                "Time from a build's creation to its first start on a worker",
                Some(Unit::Seconds),
                // 10 ms to about 1.5 hours.
                Histogram::new(exponential_buckets(0.01, 2.0, 20)),
            ),
            log_bytes: add(
                r,
                "log_ingested",
                "Build log text received from workers",
                Some(Unit::Bytes),
                Counter::default(),
            ),
            broker_errors: add(
                r,
                "broker_errors",
                "Broker operations of this server that failed, by operation (publish, \
                 subscribe, consume, ack, nack)",
                None,
                Family::default(),
            ),
            refused_messages: add(
                r,
                "broker_messages_refused",
                "Messages read from the broker and dropped: unsigned, signed with an unknown \
                 or stale worker token, or from a worker outside its token's scope",
                None,
                Counter::default(),
            ),
            builds: add(
                r,
                "builds",
                "Builds not finished (pending, waiting_for_approval, assigned, started), by \
                 team, pipeline, job and status",
                None,
                Family::default(),
            ),
            pending: add(
                r,
                "builds_pending",
                "Builds waiting for a worker (the dispatch queue)",
                None,
                Gauge::default(),
            ),
            oldest_pending: add(
                r,
                "oldest_pending_build_age",
                "How long the oldest pending build has waited (0 when none waits)",
                Some(Unit::Seconds),
                Gauge::default(),
            ),
            checks: add(
                r,
                "checks",
                "Resource checks by state: due (waiting for a worker, or claimed by one whose \
                 lease lapsed), running",
                None,
                Family::default(),
            ),
            checks_lagging: add(
                r,
                "checks_lagging",
                "Due checks that have waited for over 10 s",
                None,
                Gauge::default(),
            ),
            workers: add(
                r,
                "workers",
                "Registered workers by state: running, draining, lost (no heartbeat lately)",
                None,
                Family::default(),
            ),
            database_up: add(
                r,
                "database_up",
                "1 when the last scrape could read the state from the database, 0 when it could \
                 not (the state gauges then keep their last values)",
                None,
                Gauge::default(),
            ),
            scrape: Mutex::new(()),
            registry,
        }
    }

    /// Counts an answered HTTP request.
    pub(crate) fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        // A client chooses the method: only the standard ones get a label of their own.
        let method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
            .into_iter()
            .find(|standard| *standard == method)
            .unwrap_or("other");
        self.http_requests
            .get_or_create(&HttpLabels {
                method,
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method,
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// A build started `waited` after it was created (or retried).
    pub(crate) fn build_started(&self, waited: Duration) {
        self.dispatch_latency.observe(waited.as_secs_f64());
    }

    /// Log text received from a worker.
    pub(crate) fn log_ingested(&self, bytes: usize) {
        self.log_bytes
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// A broker operation (`publish`, `subscribe`, `consume`, `ack`, `nack`) that failed.
    pub(crate) fn broker_error(&self, operation: &'static str) {
        self.broker_errors
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// A message from the broker dropped by [`Server::verify`](crate::Server) or its sender's
    /// check.
    pub(crate) fn refused_message(&self) {
        self.refused_messages.inc();
    }

    /// Reads the state from `store` at `now` and encodes every metric. Workers silent for
    /// longer than `lost_after` count as lost. When the store cannot be read,
    /// `pikoci_database_up` says so and the state gauges keep their last values: the counters
    /// are reported all the same.
    pub(crate) async fn scrape(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
        lost_after: Duration,
    ) -> Result<String, fmt::Error> {
        // Read before taking the lock: a slow database queues no scrape behind another. A
        // database that does not answer in time counts as down, before Prometheus gives up.
        let read =
            async { Ok::<_, StoreError>((store.gauges(now).await?, store.workers().await?)) };
        let state = match tokio::time::timeout(STATE_PATIENCE, read).await {
            Ok(state) => state,
            Err(_) => Err(StoreError::new(
                pikoci_core::ErrorKind::Timeout,
                format!(
                    "the database did not answer within {} s",
                    STATE_PATIENCE.as_secs()
                ),
            )),
        };
        let _one_at_a_time = lock(&self.scrape);
        match state {
            Ok((gauges, workers)) => {
                self.database_up.set(1);
                self.set_state(&gauges, &workers, now, lost_after);
            }
            Err(err) => {
                self.database_up.set(0);
                tracing::warn!(error = %err, "cannot read the state for /metrics");
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    fn set_state(
        &self,
        gauges: &StoreGauges,
        workers: &[Worker],
        now: DateTime<Utc>,
        lost_after: Duration,
    ) {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.builds.clear();
        let mut pending = 0;
        for count in &gauges.builds {
            self.builds
                .get_or_create(&BuildLabels {
                    team: count.team.clone(),
                    pipeline: count.pipeline.clone(),
                    job: count.job.clone(),
                    status: count.status.as_str().to_owned(),
                })
                .set(gauge(count.count));
            if count.status == BuildStatus::Pending {
                pending += gauge(count.count);
            }
        }
        self.pending.set(pending);
        let waited = gauges
            .oldest_pending
            .and_then(|oldest| (now - oldest).to_std().ok())
            .unwrap_or_default();
        self.oldest_pending.set(waited.as_secs_f64());
        for (state, value) in [
            ("due", gauges.checks.due),
            ("running", gauges.checks.running),
        ] {
            self.checks
                .get_or_create(&StateLabels { state })
                .set(gauge(value));
        }
        self.checks_lagging.set(gauge(gauges.checks.lagging));
        let states = WorkerStates::of(workers, now, lost_after);
        for (state, count) in [
            ("running", states.running),
            ("draining", states.draining),
            ("lost", states.lost),
        ] {
            self.workers
                .get_or_create(&StateLabels { state })
                .set(i64::from(count));
        }
    }
}

/// How many workers are in each state, and the build slots free on the running ones.
#[derive(Debug, Default)]
pub(crate) struct WorkerStates {
    pub(crate) running: u32,
    pub(crate) draining: u32,
    pub(crate) lost: u32,
    pub(crate) free_slots: u32,
}

impl WorkerStates {
    /// `workers` at `now` (see [`worker_state`]).
    pub(crate) fn of(workers: &[Worker], now: DateTime<Utc>, lost_after: Duration) -> Self {
        let mut states = WorkerStates::default();
        for worker in workers {
            match worker_state(worker, now, lost_after) {
                "running" => {
                    states.running += 1;
                    states.free_slots += worker.slots.saturating_sub(worker.running);
                }
                "draining" => states.draining += 1,
                _ => states.lost += 1,
            }
        }
        states
    }
}

/// `running`, `draining` or `lost` (no heartbeat for longer than `lost_after`).
pub(crate) fn worker_state(
    worker: &Worker,
    now: DateTime<Utc>,
    lost_after: Duration,
) -> &'static str {
    let lost_after = chrono::Duration::from_std(lost_after).unwrap_or(chrono::Duration::MAX);
    if now - worker.last_heartbeat_at > lost_after {
        "lost"
    } else if worker.draining {
        "draining"
    } else {
        "running"
    }
}

/// The store's counters (statements, finished builds), read at each scrape.
#[derive(Debug)]
struct StoreCounters(Arc<dyn Store>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

impl Collector for StoreCounters {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let statistics = self.0.statistics();
        for (name, help, value) in [
            (
                "database_statements",
                "Statements this server sent to the database (each statement of a transaction).",
                statistics.statements,
            ),
            (
                "database_errors",
                "Statements that failed (the database refused them or the connection broke).",
                statistics.failed,
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let mut metric = encoder.encode_descriptor(
            "builds_finished",
            "Builds this server finished, by status (succeeded, failed, cancelled, warning, \
             errored): sum them over the servers.",
            None,
            MetricType::Counter,
        )?;
        for (status, count) in statistics.finished {
            let labels = StatusLabels {
                status: status.as_str(),
            };
            ConstCounter::new(count).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
