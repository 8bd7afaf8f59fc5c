//! `…/{pc}/resources`: resources, their versions, checks, pins, webhook tokens, and the
//! webhook endpoint itself.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use pikoci_core::ErrorKind;
use pikoci_core::store::{MAX_PIN_COMMENT, Role, VersionId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::builds::summaries;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::paging::{NameMeta, NamePage, Order};
use super::scope::{self, PipelinePath, ResourcePath, ResourceScope, VersionPath};
use super::views::{BuildView, PageMeta, ResourceView, VersionView};
use super::{Data, Page, cut_page, data, page_limit};
use crate::Server;
use crate::auth::Caller;

/// `GET …/{pc}/resources?after=<type.name>&limit=`: the pipeline's resources in declaration
/// order (without webhook tokens), a page at a time.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/resources", tag = "resources", summary = "List a pipeline's resources", params(PipelinePath, NamePage),
    responses((status = 200, description = "The pipeline's resources in declaration order, without webhook tokens, a page at a time (`after` is a `type.name`).", body = Page<Vec<ResourceView>, NameMeta>)))]
pub(crate) async fn list(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelinePath>,
    ApiQuery(page): ApiQuery<NamePage>,
) -> ApiResult<Json<Page<Vec<ResourceView>, NameMeta>>> {
    let scope = scope::pipeline(&server, &path.tc, &path.pc).await?;
    let resources: Vec<(String, _)> = server
        .store()
        .resources(scope.pipeline.id)
        .await?
        .into_iter()
        .map(|r| (r.canonical(), r))
        .collect();
    let (resources, meta) = page.cut(resources, Order::Declared, |(name, _)| name)?;
    Ok(Json(Page {
        data: resources
            .iter()
            .map(|(_, r)| ResourceView::summary(&scope.team.name, &scope.pipeline.name, r))
            .collect(),
        meta,
    }))
}

/// `GET …/resources/{rc}`: the resource, with its webhook token for maintainers.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/resources/{rc}", tag = "resources", summary = "Get a resource", params(ResourcePath),
    responses((status = 200, description = "The resource, with its webhook token when the caller may maintain the pipeline.", body = Data<ResourceView>)))]
pub(crate) async fn get(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<ResourcePath>,
) -> ApiResult<Json<Data<ResourceView>>> {
    let scope = scope::resource(&server, &path).await?;
    Ok(data(detailed(&scope, &caller)))
}

/// The resource, with its webhook token for those who may change the pipeline (maintainers):
/// the token lets anyone who has it start checks.
fn detailed(scope: &ResourceScope, caller: &Caller) -> ResourceView {
    let maintainer = caller
        .account()
        .and_then(|account| account.role_in(&scope.team.name))
        .is_some_and(|role| role >= Role::Maintain);
    if maintainer {
        ResourceView::detailed(&scope.team.name, &scope.pipeline.name, &scope.resource)
    } else {
        ResourceView::summary(&scope.team.name, &scope.pipeline.name, &scope.resource)
    }
}

/// `?before=<version id>&limit=<1..500, default 50>`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionsQuery {
    /// Versions older than this version id: `meta.next_before` of the previous page.
    before: Option<i64>,
    /// The page's size, 1 to 500 (50 when not given).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// `GET …/resources/{rc}/versions`: versions newest first, with `meta: {has_more,
/// next_before}`.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/resources/{rc}/versions", tag = "resources", summary = "List a resource's versions", params(ResourcePath, VersionsQuery),
    responses((status = 200, description = "A page of the resource's versions, newest first.", body = Page<Vec<VersionView>, PageMeta>)))]
pub(crate) async fn versions(
    State(server): State<Server>,
    ApiPath(path): ApiPath<ResourcePath>,
    ApiQuery(query): ApiQuery<VersionsQuery>,
) -> ApiResult<Json<Page<Vec<VersionView>>>> {
    let limit = page_limit(query.limit)?;
    let scope = scope::resource(&server, &path).await?;
    let mut versions = server
        .store()
        .versions(scope.resource.id, query.before.map(VersionId), limit + 1)
        .await?;
    let (has_more, next_before) = cut_page(&mut versions, limit, |v| v.id.0);
    Ok(Json(Page {
        meta: PageMeta {
            has_more,
            next_before,
        },
        data: versions
            .iter()
            .map(|version| VersionView::new(&scope.resource, version))
            .collect(),
    }))
}

/// `{"version": {"name": "value"}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AddVersion)]
pub(crate) struct AddVersionBody {
    /// The version: names to strings, as the resource's check would give it
    /// (`{"ref": "4f1c2a9"}`).
    #[schema(value_type = BTreeMap<String, String>)]
    version: serde_json::Map<String, serde_json::Value>,
}

/// `POST …/resources/{rc}/versions`: adds a version by hand, as if a check had found it (to
/// build a commit the check has not reached, or one it never will): 201 with the version when
/// it is new, and the jobs a new version triggers start on it; 200 with it when it existed.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/resources/{rc}/versions", tag = "resources", summary = "Add a version by hand", params(ResourcePath),
    request_body = AddVersionBody,
    responses(
        (status = 201, description = "The version, new: it triggers what a checked one would.", body = Data<VersionView>),
        (status = 200, description = "The version, which existed already (nothing is triggered).", body = Data<VersionView>),
    ))]
pub(crate) async fn add_version(
    State(server): State<Server>,
    ApiPath(path): ApiPath<ResourcePath>,
    ApiJson(body): ApiJson<AddVersionBody>,
) -> ApiResult<(StatusCode, Json<Data<VersionView>>)> {
    let scope = scope::resource(&server, &path).await?;
    let (version, created) = server.add_version(&scope.resource, body.version).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, data(VersionView::new(&scope.resource, &version))))
}

/// `POST …/resources/{rc}/versions/{id}/trigger`: builds, with this version, of the jobs a new
/// version of the resource triggers (each with a `get` of it with `trigger = true` and no
/// `passed`): to build an older version again. 201 with the builds (summaries); 409 with the
/// reasons when none could be made (no such job, paused, pinned to another version...).
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/resources/{rc}/versions/{id}/trigger", tag = "resources", summary = "Build a version again", params(VersionPath),
    responses((status = 201, description = "The builds made, one per job the resource triggers; `meta.skipped` says why the other jobs made none.", body = Page<Vec<BuildView>, TriggeredMeta>)))]
pub(crate) async fn trigger_version(
    State(server): State<Server>,
    ApiPath(path): ApiPath<VersionPath>,
) -> ApiResult<(StatusCode, Json<Page<Vec<BuildView>, TriggeredMeta>>)> {
    let scope = scope::resource(&server, &path.resource()).await?;
    let (builds, skipped) = server
        .trigger_version(&scope.resource, VersionId(path.id))
        .await?;
    let jobs = server.store().jobs(scope.pipeline.id).await?;
    let views = summaries(&server, &scope.team.name, &scope.pipeline, &jobs, &builds).await?;
    Ok((
        StatusCode::CREATED,
        Json(Page {
            data: views,
            meta: TriggeredMeta { skipped },
        }),
    ))
}

/// `{"skipped"}`: why jobs the version triggers made no build (`job "deploy" is paused`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TriggeredMeta {
    skipped: Vec<String>,
}

/// `POST …/resources/{rc}/check`: checks the resource now; the resource as it is then.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/resources/{rc}/check", tag = "resources", summary = "Check a resource now", params(ResourcePath),
    responses((status = 200, description = "The resource, its check due now.", body = Data<ResourceView>)))]
pub(crate) async fn check(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<ResourcePath>,
) -> ApiResult<Json<Data<ResourceView>>> {
    let mut scope = scope::resource(&server, &path).await?;
    server.check_resource(scope.resource.id).await?;
    scope.resource = server.store().resource_by_id(scope.resource.id).await?;
    Ok(data(detailed(&scope, &caller)))
}

/// `{"version_id", "comment"}`: one of the resource's versions, and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Pin)]
pub(crate) struct PinBody {
    /// The version's id (`GET …/versions`).
    version_id: i64,
    /// Why the resource is pinned (at most 1,000 characters): shown with the pin and kept in
    /// the audit log.
    #[serde(default)]
    comment: Option<String>,
}

/// `{"comment"}`, all optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Unpin)]
pub(crate) struct UnpinBody {
    /// Why the resource is unpinned (at most 1,000 characters): kept in the audit log.
    #[serde(default)]
    comment: Option<String>,
}

/// `POST …/resources/{rc}/pin` `{"version_id", "comment"}`: builds use that version until
/// unpinned. Pinning again replaces the version and the comment.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/resources/{rc}/pin", tag = "resources", summary = "Pin a resource to a version", params(ResourcePath), request_body = PinBody,
    responses((status = 200, description = "The resource, pinned: builds use that version until it is unpinned.", body = Data<ResourceView>)))]
pub(crate) async fn pin(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<ResourcePath>,
    ApiJson(body): ApiJson<PinBody>,
) -> ApiResult<Json<Data<ResourceView>>> {
    let version = Some(VersionId(body.version_id));
    let comment = body.comment.unwrap_or_default();
    set_pin(&server, &caller, &path, version, &comment).await
}

/// `POST …/resources/{rc}/unpin` `{"comment"}` (optional).
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/resources/{rc}/unpin", tag = "resources", summary = "Unpin a resource", params(ResourcePath), request_body(content = Option<UnpinBody>, description = "May be empty: no comment."),
    responses((status = 200, description = "The resource, unpinned.", body = Data<ResourceView>)))]
pub(crate) async fn unpin(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<ResourcePath>,
    ApiJson(body): ApiJson<UnpinBody>,
) -> ApiResult<Json<Data<ResourceView>>> {
    let comment = body.comment.unwrap_or_default();
    set_pin(&server, &caller, &path, None, &comment).await
}

async fn set_pin(
    server: &Server,
    caller: &Caller,
    path: &ResourcePath,
    version: Option<VersionId>,
    comment: &str,
) -> ApiResult<Json<Data<ResourceView>>> {
    let comment = comment.trim();
    let length = comment.chars().count();
    if length > MAX_PIN_COMMENT {
        return Err(ApiError::invalid(format!(
            "\"comment\" has {length} characters; at most {MAX_PIN_COMMENT} are kept: shorten it"
        )));
    }
    let mut scope = scope::resource(server, path).await?;
    server
        .store()
        .pin_version(scope.resource.id, version, comment)
        .await
        .map_err(|error| {
            let Some(version) = version else {
                return ApiError::from(error);
            };
            let message = format!(
                "resource \"{}\" has no version {version}: list its versions with GET …/versions",
                scope.resource.canonical()
            );
            match error.kind() {
                ErrorKind::NotFound => ApiError::not_found(message),
                ErrorKind::InvalidInput => ApiError::invalid(message),
                _ => ApiError::from(error),
            }
        })?;
    scope.resource = server.store().resource_by_id(scope.resource.id).await?;
    Ok(data(detailed(&scope, caller)))
}

/// `POST …/resources/{rc}/webhook_token`: `{"token"}`, a new token; the old one stops working.
#[utoipa::path(post, path = "/teams/{tc}/pipelines/{pc}/resources/{rc}/webhook_token", tag = "resources", summary = "Regenerate a resource's webhook token", params(ResourcePath),
    responses((status = 200, description = "A new webhook token; the old one stops working.", body = Data<WebhookToken>)))]
pub(crate) async fn regenerate_webhook_token(
    State(server): State<Server>,
    ApiPath(path): ApiPath<ResourcePath>,
) -> ApiResult<Json<Data<WebhookToken>>> {
    let scope = scope::resource(&server, &path).await?;
    let token = server
        .store()
        .regenerate_webhook_token(scope.resource.id)
        .await?;
    tracing::info!(resource = %scope.resource.canonical(), pipeline = %scope.pipeline.name, "webhook token regenerated");
    Ok(data(WebhookToken { token }))
}

/// The path of a webhook.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct WebhookPath {
    /// The resource's webhook token.
    token: String,
}

/// `POST /api/v1/webhooks/{token}` (any body, ignored): checks the token's resource now;
/// `{"resource": "type.name"}`. An unknown token is a 404 with the same message whatever the
/// token, so tokens cannot be probed.
#[utoipa::path(post, path = "/webhooks/{token}", tag = "resources", summary = "Call a webhook: check its resource now", params(WebhookPath),
    request_body(content = Option<Value>, content_type = "*/*", description = "Anything (ignored)."),
    responses((status = 200, description = "The resource whose check is now due.", body = Data<WebhookCalled>)))]
pub(crate) async fn webhook(
    State(server): State<Server>,
    ApiPath(path): ApiPath<WebhookPath>,
) -> ApiResult<Json<Data<WebhookCalled>>> {
    match server.webhook(&path.token).await {
        Ok(resource) => Ok(data(WebhookCalled {
            resource: resource.canonical(),
        })),
        Err(error) if error.kind == ErrorKind::NotFound => {
            Err(ApiError::not_found("unknown webhook token"))
        }
        Err(error) => Err(error.into()),
    }
}

/// `{"token"}`: a resource's webhook token, for `POST /api/v1/webhooks/{token}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookToken {
    token: String,
}

/// `{"resource": "type.name"}`: the resource a webhook called for.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookCalled {
    resource: String,
}
