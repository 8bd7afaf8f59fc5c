//! Log chunks (append-only, zstd-compressed, idempotent by key) and retention.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pikoci_core::store::{
    BuildId, LogChunk, LogCursor, LogPosition, NewLogChunk, StoreError, StoreResult,
};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::convert::{int, ms, time, uint};
use super::{SqlStore, limit};
use crate::entity::{build, log_chunk};
use crate::error::{Context, corrupt};

/// The zstd level: fast, and log text still shrinks several times.
const ZSTD_LEVEL: i32 = 3;

/// Chunks per multi-row insert.
const BATCH: usize = 100;

/// Above this many bytes, compression moves off the async runtime's threads.
const BLOCKING_THRESHOLD: usize = 256 * 1024;

/// A chunk ready to insert.
struct Compressed {
    build_id: i64,
    attempt: i32,
    step: i32,
    seq: i64,
    data: Vec<u8>,
    raw_len: i32,
    created_at: i64,
}

fn compress(chunks: &[NewLogChunk]) -> StoreResult<Vec<Compressed>> {
    chunks
        .iter()
        .map(|chunk| {
            let data = zstd::bulk::compress(&chunk.data, ZSTD_LEVEL).map_err(|err| {
                corrupt(
                    format!("failed to compress a log chunk of build {}", chunk.build_id),
                    err,
                )
            })?;
            Ok(Compressed {
                build_id: chunk.build_id.0,
                attempt: int(chunk.attempt, "attempt")?,
                step: int(chunk.step, "step index")?,
                seq: i64::try_from(chunk.seq).map_err(|_| {
                    StoreError::invalid_input(format!(
                        "log sequence number {} is too large",
                        chunk.seq
                    ))
                })?,
                raw_len: i32::try_from(chunk.data.len())
                    .map_err(|_| StoreError::invalid_input("a log chunk is larger than 2 GiB"))?,
                data,
                created_at: ms(chunk.created_at),
            })
        })
        .collect()
}

/// A stored chunk's bytes; `raw_len` bounds the output (a corrupt row cannot balloon memory).
fn decompress(data: &[u8], raw_len: i32) -> std::io::Result<Vec<u8>> {
    zstd::bulk::decompress(data, usize::try_from(raw_len).unwrap_or(0))
}

pub(super) async fn append(store: &SqlStore, chunks: &[NewLogChunk]) -> StoreResult<()> {
    if chunks.is_empty() {
        return Ok(());
    }
    let total: usize = chunks.iter().map(|c| c.data.len()).sum();
    let compressed = if total > BLOCKING_THRESHOLD {
        let owned = chunks.to_vec();
        tokio::task::spawn_blocking(move || compress(&owned))
            .await
            .map_err(|err| corrupt("log compression failed", err))??
    } else {
        compress(chunks)?
    };
    for batch in compressed.chunks(BATCH) {
        let rows = batch.iter().map(|c| log_chunk::ActiveModel {
            build_id: Set(c.build_id),
            attempt: Set(c.attempt),
            step: Set(c.step),
            seq: Set(c.seq),
            data: Set(c.data.clone()),
            raw_len: Set(c.raw_len),
            created_at: Set(c.created_at),
            ..Default::default()
        });
        log_chunk::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    log_chunk::Column::BuildId,
                    log_chunk::Column::Attempt,
                    log_chunk::Column::Step,
                    log_chunk::Column::Seq,
                ])
                .do_nothing_on([log_chunk::Column::Id])
                .to_owned(),
            )
            .exec_without_returning(store.db())
            .await
            .context(|| format!("failed to store log chunks of build {}", batch[0].build_id))?;
    }
    Ok(())
}

pub(super) async fn read(
    store: &SqlStore,
    build_id: BuildId,
    after: Option<LogCursor>,
    max: u32,
) -> StoreResult<Vec<LogChunk>> {
    let mut query = log_chunk::Entity::find().filter(log_chunk::Column::BuildId.eq(build_id.0));
    if let Some(after) = after {
        query = query.filter(log_chunk::Column::Id.gt(after.0));
    }
    let rows = query
        .order_by_asc(log_chunk::Column::Id)
        .limit(limit(max))
        .all(store.db())
        .await
        .context(|| format!("failed to read the log of build {build_id}"))?;
    chunks(build_id, rows)
}

pub(super) async fn read_attempt(
    store: &SqlStore,
    build_id: BuildId,
    attempt: u32,
    from: LogPosition,
    max: u32,
) -> StoreResult<Vec<LogChunk>> {
    let step = int(from.step, "step index")?;
    let mut from_here = Condition::any().add(log_chunk::Column::Step.gt(step));
    // A sequence number past what a row can hold: nothing more in that step.
    if let Ok(seq) = i64::try_from(from.seq) {
        from_here = from_here.add(
            Condition::all()
                .add(log_chunk::Column::Step.eq(step))
                .add(log_chunk::Column::Seq.gte(seq)),
        );
    }
    let rows = log_chunk::Entity::find()
        .filter(log_chunk::Column::BuildId.eq(build_id.0))
        .filter(log_chunk::Column::Attempt.eq(int(attempt, "attempt")?))
        .filter(from_here)
        .order_by_asc(log_chunk::Column::Step)
        .order_by_asc(log_chunk::Column::Seq)
        .limit(limit(max))
        .all(store.db())
        .await
        .context(|| format!("failed to read the log of build {build_id}, attempt {attempt}"))?;
    chunks(build_id, rows)
}

pub(super) async fn chunk_counts(
    store: &SqlStore,
    build_id: BuildId,
    attempt: u32,
) -> StoreResult<BTreeMap<u32, u64>> {
    let rows: Vec<(i32, i64)> = log_chunk::Entity::find()
        .select_only()
        .column(log_chunk::Column::Step)
        .column_as(log_chunk::Column::Id.count(), "chunks")
        .filter(log_chunk::Column::BuildId.eq(build_id.0))
        .filter(log_chunk::Column::Attempt.eq(int(attempt, "attempt")?))
        .group_by(log_chunk::Column::Step)
        .into_tuple()
        .all(store.db())
        .await
        .context(|| {
            format!("failed to count the log chunks of build {build_id}, attempt {attempt}")
        })?;
    Ok(rows
        .into_iter()
        .map(|(step, chunks)| (uint(step), u64::try_from(chunks).unwrap_or(0)))
        .collect())
}

/// Stored rows as chunks, uncompressed.
fn chunks(build_id: BuildId, rows: Vec<log_chunk::Model>) -> StoreResult<Vec<LogChunk>> {
    rows.into_iter()
        .map(|row| {
            let data = decompress(&row.data, row.raw_len).map_err(|err| {
                corrupt(
                    format!("corrupt log chunk {} of build {build_id}", row.id),
                    err,
                )
            })?;
            Ok(LogChunk {
                cursor: LogCursor(row.id),
                build_id,
                attempt: uint(row.attempt),
                step: uint(row.step),
                seq: u64::try_from(row.seq).unwrap_or(0),
                data,
                created_at: time(row.created_at),
            })
        })
        .collect()
}

pub(super) async fn delete_logs_before(
    store: &SqlStore,
    cutoff: DateTime<Utc>,
) -> StoreResult<u64> {
    let finished_before = Query::select()
        .column(build::Column::Id)
        .from(build::Entity)
        .and_where(build::Column::FinishedAt.lt(ms(cutoff)))
        .to_owned();
    let deleted = log_chunk::Entity::delete_many()
        .filter(log_chunk::Column::BuildId.in_subquery(finished_before))
        .exec(store.db())
        .await
        .context(|| "failed to delete old logs")?;
    Ok(deleted.rows_affected)
}

pub(super) async fn delete_builds_before(
    store: &SqlStore,
    cutoff: DateTime<Utc>,
) -> StoreResult<u64> {
    // Logs first, in their own statement: the bulk of the rows, without leaning on cascades.
    delete_logs_before(store, cutoff).await?;
    let deleted = build::Entity::delete_many()
        .filter(build::Column::FinishedAt.lt(ms(cutoff)))
        .exec(store.db())
        .await
        .context(|| "failed to delete old builds")?;
    Ok(deleted.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_shrink() {
        let text = "2026-01-01T00:00:00Z cargo test: ok\n".repeat(2000);
        let chunk = |seq, data: Vec<u8>| NewLogChunk {
            build_id: BuildId(1),
            attempt: 1,
            step: 0,
            seq,
            data,
            created_at: time(0),
        };
        let stored =
            compress(&[chunk(0, text.clone().into_bytes()), chunk(1, Vec::new())]).unwrap();
        assert!(
            stored[0].data.len() * 10 < text.len(),
            "{} bytes",
            stored[0].data.len()
        );
        assert_eq!(
            decompress(&stored[0].data, stored[0].raw_len).unwrap(),
            text.as_bytes()
        );
        assert!(
            decompress(&stored[1].data, stored[1].raw_len)
                .unwrap()
                .is_empty()
        );
        assert!(decompress(&stored[0].data, 10).is_err());
    }
}
