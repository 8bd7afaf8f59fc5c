//! `/teams/{tc}/triggers/{name}`: a team's trigger streams, read by its `trigger` resources
//! named `name` (`resource "trigger" "<name>"`): an event fired here becomes a new version of
//! each of them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pikoci_core::store::{TriggerEvent, TriggerEventId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiResult;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::views::time;
use super::{Data, Page, cut_page, data, page_limit};
use crate::Server;

/// `/teams/{tc}/triggers/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TriggerPath {
    /// The team's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "main")]
    tc: String,
    /// The stream: the name of the team's `trigger` resources that read it.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "deploy")]
    name: String,
}

/// `{"version"?: {"name": "value"}}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FireTrigger)]
pub(crate) struct FireBody {
    /// What the event carries: names to strings; the version of the resources that read the
    /// stream.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    version: serde_json::Map<String, serde_json::Value>,
}

/// What firing did: the event, and how many of the team's resources read the stream (and were
/// checked at once; 0 when no `resource "trigger" "<name>"` exists in the team).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TriggerFired)]
pub(crate) struct FiredView {
    #[serde(flatten)]
    event: EventView,
    /// The team's resources that read the stream.
    readers: usize,
}

/// An event of a trigger stream: `{"id", "trigger", "version", "created_at"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TriggerEvent)]
pub(crate) struct EventView {
    /// A larger id is a newer event: `?after=` for the next page.
    id: i64,
    /// The stream's name.
    trigger: String,
    /// What the event carries.
    #[schema(value_type = BTreeMap<String, String>)]
    version: serde_json::Value,
    created_at: String,
}

impl EventView {
    fn new(name: &str, event: &TriggerEvent) -> Self {
        EventView {
            id: event.id.0,
            trigger: name.to_owned(),
            version: event.version.clone(),
            created_at: time(event.created_at),
        }
    }
}

/// `{"has_more", "next_after"}`: pass `next_after` as `?after=` for the next (newer) page.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventsMeta {
    has_more: bool,
    #[schema(required = true)]
    next_after: Option<i64>,
}

/// `?after=<event id>&limit=<1..500, default 50>`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Events newer than this one: `meta.next_after` of the previous page.
    after: Option<i64>,
    /// The page's size, 1 to 500 (50 when not given).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// `POST /teams/{tc}/triggers/{name}`: 201 with the event; the team's resources that read the
/// stream are checked now, and find it as a new version.
#[utoipa::path(post, path = "/teams/{tc}/triggers/{name}", tag = "triggers", summary = "Fire a trigger",
    params(TriggerPath),
    request_body(content = Option<FireBody>, description = "May be empty: an event with no values."),
    responses((status = 201, description = "The event, on the stream, and how many resources read it.", body = Data<FiredView>)))]
pub(crate) async fn fire(
    State(server): State<Server>,
    ApiPath(path): ApiPath<TriggerPath>,
    ApiJson(body): ApiJson<FireBody>,
) -> ApiResult<(StatusCode, Json<Data<FiredView>>)> {
    let (event, readers) = server
        .fire_trigger(&path.tc, &path.name, body.version)
        .await?;
    tracing::info!(team = %path.tc, trigger = %path.name, event = event.id.0, readers, "trigger fired through the API");
    Ok((
        StatusCode::CREATED,
        data(FiredView {
            event: EventView::new(&path.name, &event),
            readers,
        }),
    ))
}

/// `GET /teams/{tc}/triggers/{name}?after=&limit=`: the stream's events, oldest first.
#[utoipa::path(get, path = "/teams/{tc}/triggers/{name}", tag = "triggers", summary = "List a trigger's events",
    params(TriggerPath, EventsQuery),
    responses((status = 200, description = "A page of the stream's events, oldest first.", body = Page<Vec<EventView>, EventsMeta>)))]
pub(crate) async fn list(
    State(server): State<Server>,
    ApiPath(path): ApiPath<TriggerPath>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> ApiResult<Json<Page<Vec<EventView>, EventsMeta>>> {
    let limit = page_limit(query.limit)?;
    let mut events = server
        .trigger_events(
            &path.tc,
            &path.name,
            query.after.map(TriggerEventId),
            limit + 1,
        )
        .await?;
    let (has_more, next_after) = cut_page(&mut events, limit, |e| e.id.0);
    Ok(Json(Page {
        meta: EventsMeta {
            has_more,
            next_after,
        },
        data: events
            .iter()
            .map(|event| EventView::new(&path.name, event))
            .collect(),
    }))
}
