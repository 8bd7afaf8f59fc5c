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
use prometheus_client::registry::{Registry, Unit};

use crate::state::lock;

/// The `Content-Type` of `/metrics`.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    /// The route's pattern (`/api/v1/teams/{tc}`), `unmatched` for unknown paths: never the
    /// path itself, whose values are unbounded.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
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
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

/// How long a scrape waits for the database (Prometheus's default scrape timeout is 10 s).
const STATE_PATIENCE: Duration = Duration::from_secs(5);

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
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            http_requests.clone(),
        );
        let http_duration = Family::new_with_constructor(request_buckets as NewHistogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (to the start of the body for streams), by method \
             and route",
            Unit::Seconds,
            http_duration.clone(),
        );
        // 10 ms to about 1.5 hours.
        let dispatch_latency = Histogram::new(exponential_buckets(0.01, 2.0, 20));
        registry.register_with_unit(
            "build_dispatch_latency",
            "Time from a build's creation (or retry) to its start on a worker",
            Unit::Seconds,
            dispatch_latency.clone(),
        );
        let log_bytes = Counter::default();
        registry.register_with_unit(
            "log_ingested",
            "Build log text received from workers",
            Unit::Bytes,
            log_bytes.clone(),
        );
        let broker_errors = Family::default();
        registry.register(
            "broker_errors",
            "Broker operations of this server that failed, by operation (publish, subscribe, consume, \
             ack, nack)",
            broker_errors.clone(),
        );
        let builds = Family::default();
        registry.register(
            "builds",
            "Builds not finished (pending, waiting_for_approval, assigned, started), by team, \
             pipeline, job and status",
            builds.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "builds_pending",
            "Builds waiting for a worker (the dispatch queue)",
            pending.clone(),
        );
        let oldest_pending = Gauge::default();
        registry.register_with_unit(
            "oldest_pending_build_age",
            "How long the oldest pending build has waited (0 when none waits)",
            Unit::Seconds,
            oldest_pending.clone(),
        );
        let checks = Family::default();
        registry.register(
            "checks",
            "Resource checks by state: due (waiting for a worker, or claimed by one whose lease \
             lapsed), running",
            checks.clone(),
        );
        let checks_lagging = Gauge::default();
        registry.register(
            "checks_lagging",
            "Due checks that have waited for over 10 s",
            checks_lagging.clone(),
        );
        let workers = Family::default();
        registry.register(
            "workers",
            "Registered workers by state: running, draining, lost (no heartbeat lately)",
            workers.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "database_up",
            "1 when the last scrape could read the state from the database, 0 when it could not \
             (the state gauges then keep their last values)",
            database_up.clone(),
        );
        registry.register_collector(Box::new(StoreCounters(store)));
        Metrics {
            registry,
            http_requests,
            http_duration,
            dispatch_latency,
            log_bytes,
            broker_errors,
            builds,
            pending,
            oldest_pending,
            checks,
            checks_lagging,
            workers,
            database_up,
            scrape: Mutex::new(()),
        }
    }

    /// Counts an answered HTTP request.
    pub(crate) fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        // A client chooses the method: only the standard ones get a label of their own.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
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
    pub(crate) fn broker_error(&self, operation: &str) {
        self.broker_errors
            .get_or_create(&OperationLabels {
                operation: operation.to_owned(),
            })
            .inc();
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
                .get_or_create(&StateLabels {
                    state: state.to_owned(),
                })
                .set(gauge(value));
        }
        self.checks_lagging.set(gauge(gauges.checks.lagging));
        let mut states = [("running", 0), ("draining", 0), ("lost", 0)];
        for worker in workers {
            let state = worker_state(worker, now, lost_after);
            if let Some((_, count)) = states.iter_mut().find(|(name, _)| *name == state) {
                *count += 1;
            }
        }
        for (state, count) in states {
            self.workers
                .get_or_create(&StateLabels {
                    state: state.to_owned(),
                })
                .set(count);
        }
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
