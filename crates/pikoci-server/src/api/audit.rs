//! `GET /teams/{tc}/audit`: a team's audit log, newest first, a page at a time.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use pikoci_core::store::AuditId;
use pikoci_core::store::audit::{AuditEntry, AuditQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::page_limit;
use super::scope::{self, TeamPath};
use super::views::time;
use crate::Server;

/// `?user=&exclude_user=&action=&exclude_action=&pipeline=&since=&until=&before=&after=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    /// Entries by this user only (`system`: what the server's own configuration did).
    user: Option<String>,
    /// Entries not by this user.
    exclude_user: Option<String>,
    /// This action only (`pipeline.paused`).
    action: Option<String>,
    /// Not this action.
    exclude_action: Option<String>,
    /// About this pipeline only.
    pipeline: Option<String>,
    /// At or after this time (RFC 3339).
    since: Option<String>,
    /// Before this time (RFC 3339).
    until: Option<String>,
    /// Entries older than this one: `meta.oldest_id` of the previous page.
    before: Option<i64>,
    /// Entries newer than this one: `meta.newest_id` of a page seen before.
    after: Option<i64>,
    /// The page's size, 1 to 500 (50 when not given).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

fn rfc3339(name: &str, text: Option<&String>) -> ApiResult<Option<DateTime<Utc>>> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|at| at.with_timezone(&Utc))
            .map_err(|error| {
                ApiError::invalid(format!(
                    "{name}=\"{}\" is not an RFC 3339 time ({error}): write 2026-12-03T08:00:00Z",
                    text.escape_debug()
                ))
            })
    })
    .transpose()
}

/// An entry: `{"id", "actor", "action", "target_type", "target_name", "pipeline", "details",
/// "created_at"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditEntry)]
pub(crate) struct EntryView {
    id: i64,
    /// A user's name, or `system`.
    actor: String,
    /// `pipeline.created`, `member.role_changed`, ...
    action: String,
    /// `pipeline`, `job`, `member`, `secret` or `worker_token`.
    target_type: String,
    /// `ci`, `ci/test`, `alice`, `ci/DEPLOY_KEY`, ...
    target_name: String,
    #[schema(required = true)]
    pipeline: Option<String>,
    /// More about it (a role, a build number).
    #[schema(value_type = Object)]
    details: serde_json::Value,
    created_at: String,
}

impl EntryView {
    fn new(entry: AuditEntry) -> EntryView {
        EntryView {
            id: entry.id.0,
            created_at: time(entry.created_at),
            actor: entry.actor,
            action: entry.action,
            target_type: entry.target_type,
            target_name: entry.target_name,
            pipeline: entry.pipeline,
            details: entry.details,
        }
    }
}

/// `{"has_more", "oldest_id", "newest_id"}`: `before=oldest_id` reads the next (older) page,
/// `after=newest_id` what was added since.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditMeta {
    /// More entries than this page match, on the side it was read towards.
    has_more: bool,
    oldest_id: i64,
    newest_id: i64,
}

/// A page of entries; `meta` is left out when the page is empty.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    data: Vec<EntryView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    meta: Option<AuditMeta>,
}

/// `GET /teams/{tc}/audit`: who did what in the team, newest first.
#[utoipa::path(get, path = "/teams/{tc}/audit", tag = "teams", summary = "Read a team's audit log",
    params(TeamPath, AuditParams),
    responses((status = 200, description = "A page of entries, newest first.", body = AuditPage)))]
pub(crate) async fn audit_log(
    State(server): State<Server>,
    ApiPath(path): ApiPath<TeamPath>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> ApiResult<Json<AuditPage>> {
    let team = scope::team(&server, &path.tc).await?;
    let limit = page_limit(params.limit)?;
    if params.before.is_some() && params.after.is_some() {
        return Err(ApiError::invalid(
            "give before or after, not both: before reads older entries, after newer ones",
        ));
    }
    let query = AuditQuery {
        since: rfc3339("since", params.since.as_ref())?,
        until: rfc3339("until", params.until.as_ref())?,
        user: params.user,
        exclude_user: params.exclude_user,
        action: params.action,
        exclude_action: params.exclude_action,
        pipeline: params.pipeline,
        before: params.before.map(AuditId),
        after: params.after.map(AuditId),
        limit: limit + 1,
    };
    let mut entries = server.store().audit_entries(team.id, &query).await?;
    let has_more = entries.len() > limit as usize;
    if has_more {
        // The extra entry is on the side the page was read towards.
        if query.after.is_some() {
            entries.remove(0);
        } else {
            entries.truncate(limit as usize);
        }
    }
    let meta = match (entries.last(), entries.first()) {
        (Some(oldest), Some(newest)) => Some(AuditMeta {
            has_more,
            oldest_id: oldest.id.0,
            newest_id: newest.id.0,
        }),
        _ => None,
    };
    Ok(Json(AuditPage {
        data: entries.into_iter().map(EntryView::new).collect(),
        meta,
    }))
}
