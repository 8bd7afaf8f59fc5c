//! Approval votes on builds waiting for approval: one per voter and build.

use chrono::{DateTime, Utc};
use pikoci_core::store::audit::actions::BUILD_APPROVED;
use pikoci_core::store::{ApprovalVote, BuildId, BuildStatus, StoreError, StoreResult};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::SqlStore;
use super::builds::load;
use super::convert::{ms, time};
use crate::entity::approval_vote;
use crate::error::{Context, db_error};

pub(super) async fn record(
    store: &SqlStore,
    build_id: BuildId,
    voter: &str,
    at: DateTime<Utc>,
) -> StoreResult<Vec<ApprovalVote>> {
    if voter.is_empty() || voter.len() > 255 {
        return Err(StoreError::invalid_input(format!(
            "invalid approver name \"{voter}\": it must have 1 to 255 bytes"
        )));
    }
    let txn = store.begin().await?;
    // Two votes of one user at once: the second waits, and sees the first.
    crate::entity::build::Entity::find_by_id(build_id.0)
        .lock_exclusive()
        .one(&txn)
        .await
        .context(|| format!("failed to lock build {build_id}"))?;
    let build = load(&txn, build_id).await?;
    if build.status != BuildStatus::WaitingForApproval {
        return Err(StoreError::conflict(format!(
            "build {build_id} is {}, not waiting for approval: the approval was not recorded",
            build.status
        )));
    }
    let row = approval_vote::ActiveModel {
        build_id: Set(build_id.0),
        voter: Set(voter.to_owned()),
        created_at: Set(ms(at)),
        ..Default::default()
    };
    let context = || format!("failed to record an approval of build {build_id}");
    // Read first: MySQL counts the no-op of a conflicting insert as a row affected.
    let voted = approval_vote::Entity::find()
        .filter(approval_vote::Column::BuildId.eq(build_id.0))
        .filter(approval_vote::Column::Voter.eq(voter))
        .one(&txn)
        .await
        .context(context)?
        .is_some();
    approval_vote::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([approval_vote::Column::BuildId, approval_vote::Column::Voter])
                .do_nothing_on([approval_vote::Column::Id])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(|err| db_error(context(), err))?;
    // A second vote of the same user changes nothing, and is not recorded again.
    if !voted {
        super::builds::audit_build(&txn, &build, BUILD_APPROVED, serde_json::json!({}), at).await?;
    }
    txn.commit().await.context(context)?;
    list(store, build_id).await
}

pub(super) async fn list(store: &SqlStore, build_id: BuildId) -> StoreResult<Vec<ApprovalVote>> {
    Ok(approval_vote::Entity::find()
        .filter(approval_vote::Column::BuildId.eq(build_id.0))
        .order_by_asc(approval_vote::Column::Id)
        .all(store.db())
        .await
        .context(|| format!("failed to load the approvals of build {build_id}"))?
        .into_iter()
        .map(|row| ApprovalVote {
            voter: row.voter,
            at: time(row.created_at),
        })
        .collect())
}
