//! Store benchmarks, each backend side by side: 100,000 log chunk inserts, 10,000 version
//! inserts, `claim_next_pending` latency with 10,000 pending builds, and the checks of 1,500
//! due resources claimed (in batches of 4, as a worker's room for checks) and finished.
//!
//! `cargo bench -p pikoci-store --bench store -- [mem] [sqlite] [postgres] [mysql]` (all four
//! without arguments). PostgreSQL and MySQL need `PIKOCI_TEST_POSTGRES_URL` /
//! `PIKOCI_TEST_MYSQL_URL` naming a database that may be created and filled; a backend asked
//! for and not configured is an error, never a silent skip.

// A command-line report: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use pikoci_core::model::{Job, Pipeline, Resource};
use pikoci_core::schedule::CheckInterval;
use pikoci_core::store::{
    BuildStatus, CheckClaim, CheckRecord, ClaimRequest, NewBuild, NewLogChunk, NewVersion,
    PipelineSpec, Store, TeamScope,
};

const LOG_CHUNKS: usize = 100_000;
const LOG_BATCH: usize = 100;
const VERSIONS: usize = 10_000;
const VERSION_BATCH: usize = 100;
const PENDING: usize = 10_000;
const JOBS: usize = 100;
const CLAIMS: usize = 200;
/// 1,500 resources checked every 10 s: 150 checks a second to keep up.
const CHECKED_RESOURCES: usize = 1_500;
const CHECK_BATCH: usize = 4;

struct Report {
    backend: &'static str,
    log_chunks: Duration,
    versions: Duration,
    claim_p50: Duration,
    claim_p99: Duration,
    checks: Duration,
}

fn main() -> anyhow::Result<()> {
    let asked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let backends: Vec<&str> = if asked.is_empty() {
        vec!["mem", "sqlite", "postgres", "mysql"]
    } else {
        asked.iter().map(String::as_str).collect()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let mut reports = Vec::new();
    for backend in backends {
        let (name, url) = match backend {
            "mem" => ("mem", "mem".to_owned()),
            "sqlite" => (
                "sqlite",
                format!("sqlite://{}/bench.db", dir.path().display()),
            ),
            "postgres" => ("postgres", env_url("PIKOCI_TEST_POSTGRES_URL")?),
            "mysql" => ("mysql", env_url("PIKOCI_TEST_MYSQL_URL")?),
            other => {
                anyhow::bail!("unknown backend \"{other}\": use mem, sqlite, postgres or mysql")
            }
        };
        eprintln!("benchmarking {name} ...");
        reports.push(runtime.block_on(bench(name, &url))?);
    }
    println!(
        "{:<10} {:>22} {:>22} {:>12} {:>12} {:>22}",
        "backend", "100k log chunks", "10k versions", "claim p50", "claim p99", "1.5k checks"
    );
    for r in reports {
        println!(
            "{:<10} {:>22} {:>22} {:>12} {:>12} {:>22}",
            r.backend,
            rate(r.log_chunks, LOG_CHUNKS),
            rate(r.versions, VERSIONS),
            format!("{:.2?}", r.claim_p50),
            format!("{:.2?}", r.claim_p99),
            rate(r.checks, CHECKED_RESOURCES),
        );
    }
    Ok(())
}

fn env_url(var: &str) -> anyhow::Result<String> {
    std::env::var(var).with_context(|| {
        format!("{var} is not set (`cargo xtask it store` shows how the databases are made)")
    })
}

fn rate(took: Duration, count: usize) -> String {
    format!("{:.2?} ({:.0}/s)", took, count as f64 / took.as_secs_f64())
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
}

fn job(name: String) -> Job {
    Job::new(name)
}

async fn bench(backend: &'static str, url: &str) -> anyhow::Result<Report> {
    let store = pikoci_store::connect(url).await?;
    let team = store
        .create_team(&format!("bench-{}", rand::random::<u32>()), at(0))
        .await?;
    let model = Pipeline {
        jobs: (0..JOBS).map(|n| job(format!("job-{n}"))).collect(),
        resources: vec![Resource {
            type_name: "git".into(),
            name: "repo".into(),
            params: Default::default(),
            check_interval: CheckInterval::parse("@every 1m")?,
            tags: Vec::new(),
            cache: None,
        }],
        ..Pipeline::default()
    };
    let spec = PipelineSpec {
        name: "bench".into(),
        config: String::new(),
        vars: serde_json::Value::Null,
        model,
    };
    let pipeline = store.set_pipeline(team.id, spec, at(0)).await?.pipeline;
    let jobs = store.jobs(pipeline.id).await?;
    let resource = store.resources(pipeline.id).await?.remove(0);

    // Log chunks: one build, 100 steps, flushed 100 chunks at a time as a busy worker would.
    let build = store
        .create_build(NewBuild {
            job_id: jobs[0].id,
            status: BuildStatus::Pending,
            inputs: serde_json::Value::Null,
            trigger: None,
            versions: Vec::new(),
            once_per_versions: false,
            created_at: at(1),
        })
        .await?;
    let line =
        b"2026-01-01T00:00:00.000Z  Compiling pikoci-store v0.1.0 (/work/crates/pikoci-store)\n";
    let started = Instant::now();
    for batch in 0..LOG_CHUNKS / LOG_BATCH {
        let chunks: Vec<NewLogChunk> = (0..LOG_BATCH)
            .map(|i| NewLogChunk {
                build_id: build.id,
                attempt: 1,
                step: u32::try_from(i).unwrap_or(0),
                seq: batch as u64,
                data: line.repeat(8),
                created_at: at(2),
            })
            .collect();
        store.append_log_chunks(&chunks).await?;
    }
    let log_chunks = started.elapsed();
    store
        .transition_build(&pikoci_core::store::BuildTransition {
            action: None,
            build_id: build.id,
            from: vec![BuildStatus::Pending],
            to: BuildStatus::Cancelled,
            attempt: None,
            error: None,
            at: at(3),
        })
        .await?;

    // Versions: checks reporting 100 new versions at a time.
    let started = Instant::now();
    for batch in 0..VERSIONS / VERSION_BATCH {
        let versions: Vec<NewVersion> = (0..VERSION_BATCH)
            .map(|i| NewVersion {
                version: serde_json::json!({ "ref": format!("{batch:04}-{i:03}") }),
                metadata: serde_json::json!([{ "name": "author", "value": "bench" }]),
            })
            .collect();
        store.create_versions(resource.id, &versions, at(4)).await?;
    }
    let versions = started.elapsed();

    // Claims: 10,000 pending builds over 100 jobs; time each claim.
    for n in 0..PENDING {
        store
            .create_build(NewBuild {
                job_id: jobs[n % JOBS].id,
                status: BuildStatus::Pending,
                inputs: serde_json::Value::Null,
                trigger: None,
                versions: Vec::new(),
                once_per_versions: false,
                created_at: at(5),
            })
            .await?;
    }
    let request = ClaimRequest {
        worker_id: "bench".into(),
        worker_tags: Vec::new(),
        teams: TeamScope::Only(team.id),
        exclusive: false,
        lease_until: at(1000),
    };
    let mut latencies = Vec::with_capacity(CLAIMS);
    for _ in 0..CLAIMS {
        let started = Instant::now();
        store
            .claim_next_pending(&request)
            .await?
            .context("a pending build")?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let percentile = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    let checks = checks(&store).await?;
    let report = Report {
        backend,
        log_chunks,
        versions,
        claim_p50: percentile(50),
        claim_p99: percentile(99),
        checks,
    };
    store.delete_team(team.id).await?;
    store.close().await?;
    Ok(report)
}

/// The checks of [`CHECKED_RESOURCES`] due resources (one pipeline, `@every 10s`), claimed
/// [`CHECK_BATCH`] at a time and each finished: the store's part of keeping up with them.
async fn checks(store: &dyn Store) -> anyhow::Result<Duration> {
    // A team of its own, so that no other resource is due.
    let team = store
        .create_team(&format!("bench-checks-{}", rand::random::<u32>()), at(0))
        .await?
        .id;
    let model = Pipeline {
        jobs: vec![job("unit".into())],
        resources: (0..CHECKED_RESOURCES)
            .map(|n| {
                Ok(Resource {
                    type_name: "git".into(),
                    name: format!("repo-{n}"),
                    params: Default::default(),
                    check_interval: CheckInterval::parse("@every 10s")?,
                    tags: Vec::new(),
                    cache: None,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        ..Pipeline::default()
    };
    let spec = PipelineSpec {
        name: "checks".into(),
        config: String::new(),
        vars: serde_json::Value::Null,
        model,
    };
    store.set_pipeline(team, spec, at(10)).await?;
    let claim = CheckClaim {
        worker_id: "bench".into(),
        worker_tags: Vec::new(),
        exclusive: false,
        teams: TeamScope::Only(team),
        now: at(20),
        lapsed_before: None,
        lease_until: at(1000),
    };
    let started = Instant::now();
    let mut done = 0;
    loop {
        let claimed = store.claim_due_checks(&claim, CHECK_BATCH).await?;
        if claimed.is_empty() {
            break;
        }
        for check in claimed {
            let record = CheckRecord {
                finished_at: at(21),
                error: None,
                log: String::new(),
            };
            store
                .finish_check(check.resource.id, check.attempt, record)
                .await?;
            done += 1;
        }
    }
    let took = started.elapsed();
    store.delete_team(team).await?;
    anyhow::ensure!(
        done == CHECKED_RESOURCES,
        "{done} checks were claimed, not {CHECKED_RESOURCES}"
    );
    Ok(took)
}
