//! The spill file of one outbox: encoded messages its memory budget could not hold, appended as
//! length-prefixed frames and read back in order.
//!
//! The file is locked while its outbox lives. A worker that starts removes the spill files no
//! one holds locked (their outbox ended with its process), and leaves alone those of a worker
//! still running on the same work directory.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pikoci_core::protocol::MAX_MESSAGE_BYTES;

/// The directory of spill files, under a worker's work directory.
pub(crate) fn spill_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("outbox")
}

/// What a spill file name ends with.
const EXTENSION: &str = "spill";

/// A frame's header: the length of its message, as a little-endian `u32`.
const HEADER_BYTES: usize = 4;

/// How often creating a spill file is tried again after losing a race (see [`create`]).
const CREATE_ATTEMPTS: usize = 4;

/// A spill file that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpillError {
    /// Creating or appending failed: the message stays in memory.
    #[error("cannot write the outbox spill file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Reading back failed: the messages still in the file are lost.
    #[error(
        "cannot read the outbox spill file {}: {source} ({lost} messages in it could not be sent)",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
        /// How many messages were in the file, not read.
        lost: u64,
    },
    /// A leftover spill file cannot be removed.
    #[error("cannot remove the leftover outbox spill file {}: {source}", path.display())]
    Remove {
        /// The file (or the directory when it cannot be read).
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// The spill file of one outbox, made on its first append and removed when dropped.
#[derive(Debug)]
pub(crate) struct Spill {
    dir: PathBuf,
    /// Starts the file name, to tell an operator whose file it is (`build-3-1`).
    label: String,
    file: Option<Open>,
    /// A write or read failed: nothing more is appended.
    broken: bool,
}

#[derive(Debug)]
struct Open {
    path: PathBuf,
    file: Arc<File>,
    /// Where the next frame goes.
    write_at: u64,
    /// Where the oldest frame not read yet starts.
    read_at: u64,
    /// Frames written and not read yet.
    frames: u64,
}

impl Spill {
    /// A spill in `dir` (made when needed), its file name starting with `label`.
    pub(crate) fn new(dir: PathBuf, label: String) -> Spill {
        Spill {
            dir,
            label,
            file: None,
            broken: false,
        }
    }

    /// Whether every message appended was read back.
    pub(crate) fn is_empty(&self) -> bool {
        self.file.as_ref().is_none_or(|open| open.frames == 0)
    }

    /// Whether a write or read failed: the queue keeps new messages in memory from then on.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// The file, once made.
    #[cfg(test)]
    pub(crate) fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|open| open.path.as_path())
    }

    /// Appends `message`. On failure the message is handed back with the error, and the spill
    /// takes nothing more.
    pub(crate) async fn append(&mut self, message: Vec<u8>) -> Result<(), (SpillError, Vec<u8>)> {
        let open = match &mut self.file {
            Some(open) => open,
            None => {
                let (dir, label) = (self.dir.clone(), self.label.clone());
                match blocking(move || create(&dir, &label)).await {
                    Ok((path, file)) => {
                        tracing::info!(path = %path.display(), "the broker is behind: keeping further messages of this work on disk");
                        self.file.insert(Open {
                            path,
                            file: Arc::new(file),
                            write_at: 0,
                            read_at: 0,
                            frames: 0,
                        })
                    }
                    Err(source) => {
                        self.broken = true;
                        let path = self.dir.clone();
                        return Err((SpillError::Write { path, source }, message));
                    }
                }
            }
        };
        let (file, at) = (open.file.clone(), open.write_at);
        let (message, written) = blocking(move || {
            let written = write_frame(&file, at, &message);
            (message, written)
        })
        .await;
        match written {
            Ok(size) => {
                open.write_at += size;
                open.frames += 1;
                Ok(())
            }
            Err(source) => {
                self.broken = true;
                let path = open.path.clone();
                Err((SpillError::Write { path, source }, message))
            }
        }
    }

    /// The oldest messages not read yet, at least one and then as many as fit in `max_bytes`.
    /// On failure, the messages read before it come with the error, and the rest is lost.
    pub(crate) async fn read(&mut self, max_bytes: usize) -> (Vec<Vec<u8>>, Option<SpillError>) {
        let Some(open) = self.file.as_mut().filter(|open| open.frames > 0) else {
            return (Vec::new(), None);
        };
        let (file, at, frames) = (open.file.clone(), open.read_at, open.frames);
        let (read, next_at, failure) =
            blocking(move || read_frames(&file, at, frames, max_bytes)).await;
        open.read_at = next_at;
        open.frames -= read.len() as u64;
        let failure = failure.map(|source| {
            let lost = std::mem::take(&mut open.frames);
            SpillError::Read {
                path: open.path.clone(),
                source,
                lost,
            }
        });
        if failure.is_some() {
            self.broken = true;
        } else if open.frames == 0 {
            // Everything was read: start over, so that a broker slow for hours does not fill
            // the disk with messages already sent.
            let file = open.file.clone();
            match blocking(move || file.set_len(0)).await {
                Ok(()) => (open.write_at, open.read_at) = (0, 0),
                Err(error) => {
                    tracing::warn!(path = %open.path.display(), %error, "cannot empty an outbox spill file; appending after what was read");
                }
            }
        }
        (read, failure)
    }
}

impl Drop for Spill {
    // Removing is one unlink, done here so that it happens however the outbox ends (also when
    // its task panics or is dropped).
    fn drop(&mut self) {
        if let Some(open) = &self.file {
            match fs::remove_file(&open.path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(path = %open.path.display(), %error, "cannot remove an outbox spill file; the worker removes it when it starts next");
                }
            }
            // Only when empty: other outboxes may be spilling.
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

/// Removes the spill files in `dir` that no outbox holds (left by a worker that stopped or
/// died), and `dir` when that leaves it empty. Returns how many it removed.
pub(crate) fn remove_leftovers(dir: &Path) -> Result<usize, SpillError> {
    let removal = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SpillError::Remove { path, source }
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(removal(dir)(error)),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(removal(dir))?.path();
        if path.extension().is_none_or(|e| e != EXTENSION) {
            continue;
        }
        let file = match File::open(&path) {
            Ok(file) => file,
            // Its outbox ended meanwhile.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(removal(&path)(error)),
        };
        match file.try_lock() {
            Ok(()) => {
                fs::remove_file(&path).map_err(removal(&path))?;
                removed += 1;
            }
            // A live outbox, maybe of another worker on the same work directory.
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(error)) => return Err(removal(&path)(error)),
        }
    }
    let _ = fs::remove_dir(dir);
    Ok(removed)
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Only when the runtime shuts down, which drops this task too.
        Err(_) => std::future::pending().await,
    }
}

/// A new spill file in `dir`, readable by this user only, locked.
fn create(dir: &Path, label: &str) -> io::Result<(PathBuf, File)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let path = dir.join(format!(
            "{label}-{}.{EXTENSION}",
            uuid::Uuid::now_v7().simple()
        ));
        let mut folder = fs::DirBuilder::new();
        folder.recursive(true);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            folder.mode(0o700);
            options.mode(0o600);
        }
        folder.create(dir)?;
        let file = match options.open(&path) {
            Ok(file) => file,
            // Another outbox removed the directory, empty, between the two calls.
            Err(error) if error.kind() == io::ErrorKind::NotFound && attempt < CREATE_ATTEMPTS => {
                continue;
            }
            Err(error) => return Err(error),
        };
        match file.try_lock() {
            Ok(()) => return Ok((path, file)),
            // A starting worker took it for a leftover, between the two calls.
            Err(TryLockError::WouldBlock) if attempt < CREATE_ATTEMPTS => {}
            Err(error) => return Err(error.into()),
        }
    }
}

/// Writes `message` as a frame at `at`; returns the frame's size.
fn write_frame(mut file: &File, at: u64, message: &[u8]) -> io::Result<u64> {
    let length = u32::try_from(message.len())
        .ok()
        .filter(|&length| length as usize <= MAX_MESSAGE_BYTES)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a message of {} bytes is over the limit", message.len()),
            )
        })?;
    file.seek(SeekFrom::Start(at))?;
    file.write_all(&length.to_le_bytes())?;
    file.write_all(message)?;
    Ok((HEADER_BYTES + message.len()) as u64)
}

/// Reads up to `frames` frames from `at` (at least one, then as many as fit in `max_bytes`);
/// returns them, where the next one starts, and the error that stopped the reading, if any.
fn read_frames(
    mut file: &File,
    mut at: u64,
    frames: u64,
    max_bytes: usize,
) -> (Vec<Vec<u8>>, u64, Option<io::Error>) {
    let mut read = Vec::new();
    let mut bytes = 0;
    if let Err(error) = file.seek(SeekFrom::Start(at)) {
        return (read, at, Some(error));
    }
    while (read.len() as u64) < frames {
        let mut header = [0; HEADER_BYTES];
        if let Err(error) = file.read_exact(&mut header) {
            return (read, at, Some(error));
        }
        let length = u32::from_le_bytes(header) as usize;
        if length > MAX_MESSAGE_BYTES {
            let error = io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a frame of {length} bytes at offset {at}: the file is damaged"),
            );
            return (read, at, Some(error));
        }
        if !read.is_empty() && bytes + length > max_bytes {
            break;
        }
        let mut message = vec![0; length];
        if let Err(error) = file.read_exact(&mut message) {
            return (read, at, Some(error));
        }
        at += (HEADER_BYTES + length) as u64;
        bytes += length;
        read.push(message);
    }
    (read, at, None)
}

/// Cuts the spill file at `path` to `length` bytes, as a damaged disk would.
#[cfg(test)]
pub(crate) fn cut_spill_file(path: &Path, length: u64) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(length).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(count: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|n| format!("message {n} {}", "x".repeat(n % 50)).into_bytes())
            .collect()
    }

    #[tokio::test]
    async fn frames_come_back_in_order_within_the_size_asked_and_the_file_goes_with_the_spill() {
        let work = tempfile::tempdir().unwrap();
        let dir = spill_dir(work.path());
        let mut spill = Spill::new(dir.clone(), "build-1-1".to_owned());
        assert!(spill.is_empty() && spill.path().is_none());
        let sent = messages(300);
        for message in &sent[..200] {
            spill.append(message.clone()).await.unwrap();
        }
        let path = spill.path().unwrap().to_path_buf();
        assert!(path.starts_with(&dir) && path.is_file());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("build-1-1-") && name.ends_with(".spill"),
            "{name}"
        );
        let mut back = Vec::new();
        // Reading and writing interleave; each read stays within its size.
        let (first, failure) = spill.read(100).await;
        assert!(failure.is_none());
        assert!(first.len() > 1 && first.iter().map(Vec::len).sum::<usize>() <= 100);
        back.extend(first);
        for message in &sent[200..] {
            spill.append(message.clone()).await.unwrap();
        }
        while !spill.is_empty() {
            let (read, failure) = spill.read(1000).await;
            assert!(failure.is_none());
            back.extend(read);
        }
        assert_eq!(back, sent);
        // Drained: the file was emptied, and is used again.
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
        spill.append(b"again".to_vec()).await.unwrap();
        assert_eq!(spill.read(1).await.0, [b"again".to_vec()]);
        drop(spill);
        assert!(!path.exists() && !dir.exists());
    }

    #[tokio::test]
    async fn a_message_larger_than_the_size_asked_is_read_alone() {
        let work = tempfile::tempdir().unwrap();
        let mut spill = Spill::new(spill_dir(work.path()), "check-1-1".to_owned());
        spill.append(vec![b'a'; 500]).await.unwrap();
        spill.append(vec![b'b'; 10]).await.unwrap();
        assert_eq!(spill.read(100).await.0, [vec![b'a'; 500]]);
        assert_eq!(spill.read(100).await.0, [vec![b'b'; 10]]);
    }

    #[tokio::test]
    async fn a_spill_that_cannot_be_made_names_its_path_and_hands_the_message_back() {
        let work = tempfile::tempdir().unwrap();
        // A file where the directory should be.
        let dir = spill_dir(work.path());
        fs::write(&dir, "not a directory").unwrap();
        let mut spill = Spill::new(dir.clone(), "build-1-1".to_owned());
        let (error, message) = spill.append(b"kept".to_vec()).await.unwrap_err();
        assert_eq!(message, b"kept");
        assert!(spill.is_broken());
        let SpillError::Write { path, source } = &error else {
            panic!("{error}");
        };
        assert_eq!(*path, dir);
        assert!(source.raw_os_error().is_some(), "{source}");
        assert!(error.to_string().contains(&dir.display().to_string()));
    }

    #[tokio::test]
    async fn a_damaged_file_loses_what_is_left_and_says_so() {
        let work = tempfile::tempdir().unwrap();
        let mut spill = Spill::new(spill_dir(work.path()), "build-1-1".to_owned());
        for message in messages(10) {
            spill.append(message).await.unwrap();
        }
        let path = spill.path().unwrap().to_path_buf();
        // Cut in the middle of the second frame.
        let first = (HEADER_BYTES + messages(1)[0].len()) as u64;
        cut_spill_file(&path, first + 6);
        let (read, failure) = spill.read(1 << 20).await;
        assert_eq!(read, messages(1));
        let text = failure.unwrap().to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("(9 messages in it"),
            "{text}"
        );
        assert!(spill.is_empty() && spill.is_broken());
    }

    #[tokio::test]
    async fn leftovers_are_removed_but_not_the_files_of_live_outboxes() {
        let work = tempfile::tempdir().unwrap();
        let dir = spill_dir(work.path());
        assert_eq!(remove_leftovers(&dir).unwrap(), 0, "no directory yet");
        let mut live = Spill::new(dir.clone(), "build-2-1".to_owned());
        live.append(b"live".to_vec()).await.unwrap();
        fs::write(dir.join("build-1-1-0191.spill"), b"\x04\0\0\0left").unwrap();
        fs::write(dir.join("notes.txt"), b"not ours").unwrap();
        assert_eq!(remove_leftovers(&dir).unwrap(), 1);
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 2);
        assert!(left[0].starts_with("build-2-1-") && left[1] == "notes.txt");
        assert_eq!(live.read(10).await.0, [b"live".to_vec()]);
        fs::remove_file(dir.join("notes.txt")).unwrap();
        drop(live);
        assert!(!dir.exists());
    }
}
