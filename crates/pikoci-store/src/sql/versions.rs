//! Resource versions (deduplicated per resource), the versions builds used, and `passed`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use pikoci_core::store::{
    BuildId, BuildStatus, BuildVersion, NewVersion, PassedQuery, ResourceId, ResourceVersion,
    StoreError, StoreResult, VersionId, VersionUse,
};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::convert::{self, canonical_json, digest, ms, to_json};
use super::{SqlStore, limit, retrying};
use crate::entity::{build, build_version, resource, resource_version};
use crate::error::{Context, db_error};

/// Rows per multi-row statement (well under every backend's bound-parameter limit).
const BATCH: usize = 200;

/// A version ready to store.
struct Prepared {
    digest: String,
    version: String,
    metadata: String,
}

impl Prepared {
    /// Its row, a version of `resource_id` found at `at`.
    fn row(&self, resource_id: ResourceId, at: DateTime<Utc>) -> resource_version::ActiveModel {
        resource_version::ActiveModel {
            resource_id: Set(resource_id.0),
            digest: Set(self.digest.clone()),
            version: Set(self.version.clone()),
            metadata: Set(self.metadata.clone()),
            created_at: Set(ms(at)),
            ..Default::default()
        }
    }
}

pub(super) async fn create(
    store: &SqlStore,
    resource_id: ResourceId,
    versions: &[NewVersion],
    at: DateTime<Utc>,
) -> StoreResult<Vec<ResourceVersion>> {
    let mut seen = HashSet::new();
    let mut prepared = Vec::with_capacity(versions.len());
    for new in versions {
        if !new.version.is_object() {
            return Err(StoreError::invalid_input(format!(
                "a version of resource {resource_id} is not a JSON object: {}",
                new.version
            )));
        }
        let version = to_json(&canonical_json(&new.version), "version")?;
        let digest = digest(&version);
        if seen.insert(digest.clone()) {
            prepared.push(Prepared {
                digest,
                version,
                metadata: to_json(&new.metadata, "version metadata")?,
            });
        }
    }
    if prepared.is_empty() {
        return Ok(Vec::new());
    }
    // A unique-key violation means another server stored one of these versions between our
    // read and our insert: run again, and those count as known.
    retrying(true, || create_once(store, resource_id, &prepared, at)).await
}

async fn create_once(
    store: &SqlStore,
    resource_id: ResourceId,
    prepared: &[Prepared],
    at: DateTime<Utc>,
) -> StoreResult<Vec<ResourceVersion>> {
    let txn = store.begin().await?;
    let context = || format!("failed to store versions of resource {resource_id}");
    resource::Entity::find_by_id(resource_id.0)
        .one(&txn)
        .await
        .context(context)?
        .ok_or_else(|| StoreError::not_found(format!("resource {resource_id} does not exist")))?;
    if txn.get_database_backend() == DbBackend::Postgres {
        return create_returning(txn, resource_id, prepared, at).await;
    }
    let mut known = HashSet::new();
    for chunk in prepared.chunks(BATCH) {
        let digests: Vec<&str> = chunk.iter().map(|p| p.digest.as_str()).collect();
        let rows: Vec<String> = resource_version::Entity::find()
            .select_only()
            .column(resource_version::Column::Digest)
            .filter(resource_version::Column::ResourceId.eq(resource_id.0))
            .filter(resource_version::Column::Digest.is_in(digests))
            .into_tuple()
            .all(&txn)
            .await
            .context(context)?;
        known.extend(rows);
    }
    let new: Vec<&Prepared> = prepared
        .iter()
        .filter(|p| !known.contains(&p.digest))
        .collect();
    for chunk in new.chunks(BATCH) {
        let rows = chunk.iter().map(|p| p.row(resource_id, at));
        resource_version::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await
            .context(context)?;
    }
    let mut stored = HashMap::new();
    for chunk in new.chunks(BATCH) {
        let digests: Vec<&str> = chunk.iter().map(|p| p.digest.as_str()).collect();
        let rows = resource_version::Entity::find()
            .filter(resource_version::Column::ResourceId.eq(resource_id.0))
            .filter(resource_version::Column::Digest.is_in(digests))
            .all(&txn)
            .await
            .context(context)?;
        stored.extend(rows.into_iter().map(|row| (row.digest.clone(), row)));
    }
    txn.commit().await.context(context)?;
    let mut created = Vec::with_capacity(new.len());
    for p in new {
        let row = stored.remove(&p.digest).ok_or_else(|| {
            StoreError::internal(format!("a new version of resource {resource_id} vanished"))
        })?;
        created.push(convert::version(row)?);
    }
    created.sort_by_key(|v| v.id);
    Ok(created)
}

/// `create_once` on PostgreSQL: one `INSERT .. ON CONFLICT DO NOTHING RETURNING` per batch,
/// which skips the known versions (another server's too) and returns the new ones. Looking the
/// digests up first, as the other backends do, settles on PostgreSQL into a cached generic plan
/// that filters every stored version of the resource on each call: 4,000 versions a second,
/// slower as the resource's history grows.
async fn create_returning(
    txn: DatabaseTransaction,
    resource_id: ResourceId,
    prepared: &[Prepared],
    at: DateTime<Utc>,
) -> StoreResult<Vec<ResourceVersion>> {
    let context = || format!("failed to store versions of resource {resource_id}");
    let mut created = Vec::with_capacity(prepared.len());
    for chunk in prepared.chunks(BATCH) {
        let rows = chunk.iter().map(|p| p.row(resource_id, at));
        let stored = resource_version::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    resource_version::Column::ResourceId,
                    resource_version::Column::Digest,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_with_returning(&txn)
            .await
            .context(context)?;
        for row in stored {
            created.push(convert::version(row)?);
        }
    }
    txn.commit().await.context(context)?;
    created.sort_by_key(|v| v.id);
    Ok(created)
}

pub(super) async fn list(
    store: &SqlStore,
    resource_id: ResourceId,
    before: Option<VersionId>,
    max: u32,
) -> StoreResult<Vec<ResourceVersion>> {
    let mut query = resource_version::Entity::find()
        .filter(resource_version::Column::ResourceId.eq(resource_id.0));
    if let Some(before) = before {
        query = query.filter(resource_version::Column::Id.lt(before.0));
    }
    query
        .order_by_desc(resource_version::Column::Id)
        .limit(limit(max))
        .all(store.db())
        .await
        .context(|| format!("failed to list the versions of resource {resource_id}"))?
        .into_iter()
        .map(convert::version)
        .collect()
}

pub(super) async fn by_id(store: &SqlStore, id: VersionId) -> StoreResult<ResourceVersion> {
    let row = resource_version::Entity::find_by_id(id.0)
        .one(store.db())
        .await
        .context(|| format!("failed to load version {id}"))?
        .ok_or_else(|| StoreError::not_found(format!("version {id} does not exist")))?;
    convert::version(row)
}

pub(super) async fn find(
    store: &SqlStore,
    resource_id: ResourceId,
    version: &serde_json::Value,
) -> StoreResult<Option<ResourceVersion>> {
    if !version.is_object() {
        return Ok(None);
    }
    let digest = digest(&to_json(&canonical_json(version), "version")?);
    resource_version::Entity::find()
        .filter(resource_version::Column::ResourceId.eq(resource_id.0))
        .filter(resource_version::Column::Digest.eq(digest))
        .one(store.db())
        .await
        .context(|| format!("failed to look up a version of resource {resource_id}"))?
        .map(convert::version)
        .transpose()
}

pub(super) async fn passed(
    store: &SqlStore,
    query: &PassedQuery,
) -> StoreResult<Vec<ResourceVersion>> {
    if query.upstream_jobs.is_empty() {
        return Err(StoreError::invalid_input(
            "a passed query needs at least one upstream job",
        ));
    }
    let jobs: HashSet<i64> = query.upstream_jobs.iter().map(|j| j.0).collect();
    let finished_well = [
        BuildStatus::Succeeded.as_str(),
        BuildStatus::Warning.as_str(),
    ];
    let mut select = Query::select();
    select
        .column((build_version::Entity, build_version::Column::VersionId))
        .from(build_version::Entity)
        .inner_join(
            build::Entity,
            Expr::col((build::Entity, build::Column::Id))
                .equals((build_version::Entity, build_version::Column::BuildId)),
        )
        .and_where(
            Expr::col((build_version::Entity, build_version::Column::ResourceId))
                .eq(query.resource_id.0),
        )
        .and_where(Expr::col((build::Entity, build::Column::Status)).is_in(finished_well))
        .and_where(Expr::col((build::Entity, build::Column::JobId)).is_in(jobs.iter().copied()))
        .group_by_col((build_version::Entity, build_version::Column::VersionId))
        .and_having(
            Expr::col((build::Entity, build::Column::JobId))
                .count_distinct()
                .eq(i64::try_from(jobs.len()).unwrap_or(i64::MAX)),
        )
        .order_by(
            (build_version::Entity, build_version::Column::VersionId),
            sea_orm::Order::Desc,
        );
    if let Some(job) = query.not_built_by {
        let used = Query::select()
            .column((build_version::Entity, build_version::Column::VersionId))
            .from(build_version::Entity)
            .inner_join(
                build::Entity,
                Expr::col((build::Entity, build::Column::Id))
                    .equals((build_version::Entity, build_version::Column::BuildId)),
            )
            .and_where(Expr::col((build::Entity, build::Column::JobId)).eq(job.0))
            .to_owned();
        let triggered = Query::select()
            .column(build::Column::TriggerVersionId)
            .from(build::Entity)
            .and_where(build::Column::JobId.eq(job.0))
            .and_where(build::Column::TriggerVersionId.is_not_null())
            .to_owned();
        select
            .and_where(
                Expr::col((build_version::Entity, build_version::Column::VersionId))
                    .not_in_subquery(used),
            )
            .and_where(
                Expr::col((build_version::Entity, build_version::Column::VersionId))
                    .not_in_subquery(triggered),
            );
    }
    select.limit(limit(query.limit));
    let context = || {
        format!(
            "failed to evaluate passed for resource {}",
            query.resource_id
        )
    };
    let rows = store.db().query_all(&select).await.context(context)?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        ids.push(row.try_get_by_index::<i64>(0).context(context)?);
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    resource_version::Entity::find()
        .filter(resource_version::Column::Id.is_in(ids))
        .order_by_desc(resource_version::Column::Id)
        .all(store.db())
        .await
        .context(context)?
        .into_iter()
        .map(convert::version)
        .collect()
}

pub(super) async fn record_build_versions(
    store: &SqlStore,
    build_id: BuildId,
    versions: &[BuildVersion],
) -> StoreResult<()> {
    insert_build_versions(store.db(), build_id, versions).await
}

/// Records versions a build used, through any connection (a new build's in its transaction).
pub(super) async fn insert_build_versions<C: ConnectionTrait>(
    db: &C,
    build_id: BuildId,
    versions: &[BuildVersion],
) -> StoreResult<()> {
    if versions.is_empty() {
        return Ok(());
    }
    let context = || format!("failed to record the versions build {build_id} used");
    for chunk in versions.chunks(BATCH) {
        let rows = chunk.iter().map(|v| build_version::ActiveModel {
            build_id: Set(build_id.0),
            resource_id: Set(v.resource_id.0),
            version_id: Set(v.version_id.0),
            step_name: Set(v.step_name.clone()),
            version_usage: Set(v.usage.as_str().to_owned()),
            ..Default::default()
        });
        build_version::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    build_version::Column::BuildId,
                    build_version::Column::VersionId,
                    build_version::Column::StepName,
                    build_version::Column::VersionUsage,
                ])
                .do_nothing_on([build_version::Column::Id])
                .to_owned(),
            )
            .exec_without_returning(db)
            .await
            .map_err(|err| db_error(context(), err))?;
    }
    Ok(())
}

pub(super) async fn build_versions(
    store: &SqlStore,
    build_id: BuildId,
) -> StoreResult<Vec<BuildVersion>> {
    load_build_versions(store.db(), build_id).await
}

/// The versions a build used, through any connection.
pub(super) async fn load_build_versions<C: ConnectionTrait>(
    db: &C,
    build_id: BuildId,
) -> StoreResult<Vec<BuildVersion>> {
    let rows = build_version::Entity::find()
        .filter(build_version::Column::BuildId.eq(build_id.0))
        .order_by_asc(build_version::Column::Id)
        .all(db)
        .await
        .context(|| format!("failed to load the versions build {build_id} used"))?;
    Ok(rows
        .into_iter()
        .map(|row| BuildVersion {
            resource_id: ResourceId(row.resource_id),
            version_id: VersionId(row.version_id),
            step_name: row.step_name,
            usage: if row.version_usage == VersionUse::Put.as_str() {
                VersionUse::Put
            } else {
                VersionUse::Get
            },
        })
        .collect())
}
