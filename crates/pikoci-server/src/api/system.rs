//! Health, readiness, workers, and the answers to paths and methods the API does not have.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use super::paging::{NameMeta, NamePage, Order};
use super::views::{Deleted, WorkerView};
use super::{Data, Page, data};
use crate::Server;
use crate::auth::Caller;

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    status: &'static str,
}

/// `GET /healthz`: `{"status": "ok"}` whenever the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", summary = "Liveness",
    responses((status = 200, description = "The process answers.", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `{"version"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Version {
    /// The server's version: `0.1.0`.
    version: &'static str,
}

/// `GET /api/v1/version`: the server's version.
#[utoipa::path(get, path = "/version", tag = "system", summary = "The server's version",
    responses((status = 200, description = "The server's version.", body = Data<Version>)))]
pub(crate) async fn version() -> Json<Data<Version>> {
    data(Version {
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `{"status": "ready", "store": true, "broker": true}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready`.
    status: &'static str,
    /// The store answered.
    store: bool,
    /// The broker answered.
    broker: bool,
}

/// `GET /readyz`: `{"status": "ready", "store": true, "broker": true}`, or 503 `unavailable`
/// with `details: {"store", "broker"}` when either does not answer.
#[utoipa::path(get, path = "/readyz", tag = "system", summary = "Readiness: the store and the broker answer",
    responses(
        (status = 200, description = "The store and the broker answer: the server can serve.", body = Ready),
        (status = 503, description = "The store or the broker does not answer (`unavailable`); `details`: `{\"store\", \"broker\"}`.", body = ErrorBody<'_>),
    ))]
pub(crate) async fn readyz(State(server): State<Server>) -> Response {
    let readiness = server.readiness().await;
    if readiness.store && readiness.broker {
        return Json(Ready {
            status: "ready",
            store: true,
            broker: true,
        })
        .into_response();
    }
    let failing: Vec<&str> = [
        (!readiness.store).then_some("the store"),
        (!readiness.broker).then_some("the broker"),
    ]
    .into_iter()
    .flatten()
    .collect();
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("not ready: {} does not answer", failing.join(" and ")),
    )
    .with_details(serde_json::json!({ "store": readiness.store, "broker": readiness.broker }))
    .into_response()
}

/// `GET /api/v1/workers?after=&limit=`: the registered workers by id, a page at a time: `lost`
/// when it sent no heartbeat within the server's `worker_lost_after` (15 s), else `draining`
/// when it takes no new work (shutting down), else `running`.
#[utoipa::path(get, path = "/workers", tag = "system", summary = "List the workers", params(NamePage),
    responses((status = 200, description = "The registered workers by id, a page at a time.", body = Page<Vec<WorkerView>, NameMeta>)))]
pub(crate) async fn workers(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiQuery(page): ApiQuery<NamePage>,
) -> ApiResult<Json<Page<Vec<WorkerView>, NameMeta>>> {
    let mut workers = server.store().workers().await?;
    let teams: HashMap<_, _> = server
        .store()
        .list_teams()
        .await?
        .into_iter()
        .map(|team| (team.id, team.name))
        .collect();
    // Global workers, and those of the caller's teams.
    if let Some(visible) = caller.account().and_then(|account| account.visible_teams()) {
        workers.retain(|worker| {
            worker
                .team_id
                .is_none_or(|id| teams.get(&id).is_some_and(|name| visible.contains(name)))
        });
    }
    let (workers, meta) = page.cut(workers, Order::ByName, |worker| &worker.worker_id)?;
    let now = server.clock().now();
    let lost_after = server.config().worker_lost_after;
    Ok(Json(Page {
        data: workers
            .iter()
            .map(|worker| {
                let team = worker.team_id.map(|id| {
                    teams
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| format!("team {id}"))
                });
                let state = crate::metrics::worker_state(worker, now, lost_after);
                WorkerView::new(worker, team, state)
            })
            .collect(),
        meta,
    }))
}

/// `{"pruned": [id]}`: the workers forgotten.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Pruned {
    pruned: Vec<String>,
}

/// `POST /api/v1/workers/prune`: forgets the lost workers (no heartbeat within
/// `worker_lost_after`), so that lists show the workers there are. A worker that comes back
/// registers again with its next heartbeat; its builds were already given to others.
#[utoipa::path(post, path = "/workers/prune", tag = "system", summary = "Forget the lost workers",
    responses((status = 200, description = "The ids of the workers forgotten.", body = Data<Pruned>)))]
pub(crate) async fn prune_workers(State(server): State<Server>) -> ApiResult<Json<Data<Pruned>>> {
    let lost_after = chrono::Duration::from_std(server.config().worker_lost_after)
        .unwrap_or(chrono::Duration::MAX);
    let cutoff = server.clock().now() - lost_after;
    let pruned = server.store().delete_workers_before(cutoff).await?;
    if !pruned.is_empty() {
        tracing::info!(workers = ?pruned, "lost workers forgotten");
    }
    Ok(data(Pruned { pruned }))
}

/// `/workers/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct WorkerPath {
    /// The worker's id (its `--name`, or by default a name made from its host name).
    id: String,
}

/// `DELETE /api/v1/workers/{id}`: forgets one worker, as `prune` does the lost ones. A worker
/// that is alive registers again with its next heartbeat: to stop one, stop its process.
#[utoipa::path(delete, path = "/workers/{id}", tag = "system", summary = "Forget a worker", params(WorkerPath),
    responses((status = 200, description = "The worker, forgotten.", body = Data<Deleted>)))]
pub(crate) async fn delete_worker(
    State(server): State<Server>,
    ApiPath(path): ApiPath<WorkerPath>,
) -> ApiResult<Json<Data<Deleted>>> {
    if !server.store().delete_worker(&path.id).await? {
        return Err(ApiError::not_found(format!(
            "there is no worker \"{}\" (`GET /api/v1/workers` lists them)",
            path.id.escape_debug()
        )));
    }
    tracing::info!(worker = %path.id, "worker forgotten");
    Ok(data(Deleted { deleted: path.id }))
}

/// `GET /api/v1/workers/health`: whether a worker can take work now, for a banner or a
/// probe: `{"healthy", "running", "draining", "lost", "free_slots"}`. Healthy when at least one
/// running worker (heartbeat within `worker_lost_after`, not draining) has a free build slot.
#[utoipa::path(get, path = "/workers/health", tag = "system", summary = "Whether a worker can take work",
    responses((status = 200, description = "Whether a worker can take work now.", body = Data<WorkersHealth>)))]
pub(crate) async fn workers_health(
    State(server): State<Server>,
) -> ApiResult<Json<Data<WorkersHealth>>> {
    let workers = server.store().workers().await?;
    let states = crate::metrics::WorkerStates::of(
        &workers,
        server.clock().now(),
        server.config().worker_lost_after,
    );
    Ok(data(WorkersHealth {
        healthy: states.free_slots > 0,
        running: states.running,
        draining: states.draining,
        lost: states.lost,
        free_slots: states.free_slots,
    }))
}

/// `{"healthy", "running", "draining", "lost", "free_slots"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkersHealth {
    /// A running worker has a free build slot.
    healthy: bool,
    /// Workers running (heartbeat within `worker_lost_after`, taking work).
    running: u32,
    /// Workers shutting down: they finish their builds and take no new ones.
    draining: u32,
    /// Workers that sent no heartbeat within `worker_lost_after`.
    lost: u32,
    /// Build slots free on running workers.
    free_slots: u32,
}

/// `GET /metrics`: the server's metrics in Prometheus's text format (`metrics.rs`).
#[utoipa::path(get, path = "/metrics", tag = "system", summary = "Prometheus metrics",
    responses((status = 200, description = "The server's metrics in Prometheus's text format 0.0.4 (see docs/operations.md).",
        content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
pub(crate) async fn metrics(State(server): State<Server>) -> ApiResult<Response> {
    let text = server
        .inner
        .metrics
        .scrape(
            server.store().as_ref(),
            server.clock().now(),
            server.config().worker_lost_after,
        )
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the metrics could not be written as text",
            )
        })?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Any other path: 404.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no such route: {method} {}; the API lives under /api/v1",
        uri.path()
    ))
}

/// A known path with another method: 405.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}
