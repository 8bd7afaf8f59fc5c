//! Records of build logs: append-only chunks.

use chrono::{DateTime, Utc};

use super::{BuildId, LogCursor};

/// A chunk of a step's output to store (lines flushed together by the worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogChunk {
    /// The build.
    pub build_id: BuildId,
    /// The build attempt that produced it.
    pub attempt: u32,
    /// The step's index in the build.
    pub step: u32,
    /// The chunk's sequence number within the step; with the three fields above, the key that
    /// makes storing a chunk twice harmless.
    pub seq: u64,
    /// The output, uncompressed (the store compresses it).
    pub data: Vec<u8>,
    /// When the worker flushed it.
    pub created_at: DateTime<Utc>,
}

/// A place in one attempt's log, in the order its text reads: step by step, each step's chunks
/// by sequence number. The default is the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    /// The step's index.
    pub step: u32,
    /// The chunk's sequence number within the step.
    pub seq: u64,
}

impl LogPosition {
    /// The position right after `chunk`: where to read on from.
    pub fn after(chunk: &LogChunk) -> LogPosition {
        match chunk.seq.checked_add(1) {
            Some(seq) => LogPosition {
                step: chunk.step,
                seq,
            },
            None => LogPosition {
                step: chunk.step.saturating_add(1),
                seq: 0,
            },
        }
    }
}

/// A stored chunk, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Its position in the build's log: read on after it to follow the log.
    pub cursor: LogCursor,
    /// The build.
    pub build_id: BuildId,
    /// The build attempt that produced it.
    pub attempt: u32,
    /// The step's index in the build.
    pub step: u32,
    /// The sequence number within the step.
    pub seq: u64,
    /// The output, uncompressed.
    pub data: Vec<u8>,
    /// When the worker flushed it.
    pub created_at: DateTime<Utc>,
}
