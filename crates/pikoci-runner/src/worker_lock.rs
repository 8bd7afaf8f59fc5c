//! The lock on a worker's name on this machine: the file `pikoci-worker-<id>.lock` in a
//! directory (the temporary directory), held with `flock` for as long as the worker runs.
//!
//! A worker that starts kills what an earlier run of its name left (see `reaper`), so two live
//! workers with one name would kill each other's steps: the second one to start cannot take
//! the lock and refuses to run.
//!
//! The files are also the record of which workers ran here, and of which run: a worker writes
//! a random token for its run into its file, and marks every process and container it starts
//! with that token. The kernel drops a worker's lock when its process ends, even by SIGKILL,
//! but the file stays: a file whose lock no one holds belongs to a dead run, and its token
//! names what that run left. A starting worker's reaper takes such a lock, reads the token and
//! removes the file while it holds the lock, then kills what carries the token. Because the
//! token belongs to one run, nothing of a live worker can be taken for a dead one's: not a
//! worker of the same name that runs with another temporary directory, not one that started
//! since. Files of other users, and anything but plain files (a symbolic link), are never
//! read. Whoever takes a lock checks afterwards that the file it locked is still the one at
//! the path: a lock on a file that was removed meanwhile guards nothing.
//!
//! A worker that stops cleanly leaves its file too: a daemon one of its steps left in a
//! session of its own is then reaped by the next worker that starts.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pikoci_core::protocol::check_worker_id;

/// What the name of a lock file starts with, before the worker's id.
const PREFIX: &str = "pikoci-worker-";

/// What the name of a lock file ends with, after the worker's id.
const SUFFIX: &str = ".lock";

/// How long [`WorkerLock::acquire`] waits for a lock someone else holds: the reaper of another
/// worker holds a dead worker's lock while it kills what that worker left.
const PATIENCE: Duration = Duration::from_secs(5);

/// How often a lock someone else holds is tried again.
const POLL: Duration = Duration::from_millis(100);

/// How many times a lock file removed right after it was locked is opened again: once per
/// reaper that removed it, which only happens while nobody holds it.
const REOPENS: usize = 20;

/// The lock on the name of a worker running on this machine, held until it is dropped. Its
/// file stays when it is dropped, with the token of the run in it.
#[derive(Debug)]
pub struct WorkerLock {
    id: String,
    path: PathBuf,
    /// The token of this run, written into the file.
    run: String,
    /// The token an earlier run of this name left in the file, if any.
    previous_run: Option<String>,
    /// Holds the lock while it is open.
    file: File,
}

/// A worker found dead by a starting worker's reaper: its lock file is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadWorker {
    /// Its name.
    pub(crate) id: String,
    /// The token of its run, as its file held it (none when it died before writing one).
    pub(crate) run: Option<String>,
}

/// Why a worker's name cannot be locked.
#[derive(Debug, thiserror::Error)]
pub enum WorkerLockError {
    /// The name is no worker name: no file is made of it.
    #[error("cannot lock worker name \"{id}\": {reason}")]
    InvalidName {
        /// The name.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The lock file cannot be opened (or made).
    #[error("cannot open the lock on worker name \"{id}\" ({})", path.display())]
    Open {
        /// The name.
        id: String,
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A live worker of this name holds the lock.
    #[error(
        "another worker named \"{id}\" is running on this machine (it holds {}): give each \
         worker its own --name",
        path.display()
    )]
    Held {
        /// The name.
        id: String,
        /// The lock file.
        path: PathBuf,
    },
    /// Locking failed.
    #[error("cannot lock worker name \"{id}\" ({})", path.display())]
    Lock {
        /// The name.
        id: String,
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The lock file was removed each time right after it was locked.
    #[error(
        "cannot lock worker name \"{id}\": its lock file {} was removed {REOPENS} times right \
         after this worker locked it; is something else cleaning that directory?",
        path.display()
    )]
    Removed {
        /// The name.
        id: String,
        /// The lock file.
        path: PathBuf,
    },
}

impl WorkerLock {
    /// Takes the lock on the worker name `id` in `dir` (the file `<dir>/pikoci-worker-<id>.lock`,
    /// made when missing) and writes a new run token into it. A lock someone else holds is
    /// waited for a few seconds, since a starting worker's reaper may hold it for a moment; then
    /// the name is taken by a live worker. Blocks while it waits.
    pub fn acquire(id: &str, dir: &Path) -> Result<WorkerLock, WorkerLockError> {
        WorkerLock::acquire_within(id, dir, PATIENCE)
    }

    /// [`WorkerLock::acquire`], waiting at most `patience` for a lock someone else holds.
    pub(crate) fn acquire_within(
        id: &str,
        dir: &Path,
        patience: Duration,
    ) -> Result<WorkerLock, WorkerLockError> {
        let path = lock_path(id, dir)?;
        let file = create(id, &path)?;
        lock_opened(id, path, file, patience)
    }

    /// The worker name it locks.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token of this run: what the worker's processes and containers are marked with.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The token an earlier run of this name left in the file (a worker killed before, on
    /// this machine, with this temporary directory).
    pub fn previous_run(&self) -> Option<&str> {
        self.previous_run.as_deref()
    }

    /// The user that owns the lock file: this process's.
    pub(crate) fn owner(&self) -> io::Result<u32> {
        Ok(self.file.metadata()?.uid())
    }
}

/// Takes the lock file of worker `id` in `dir` when it is a plain file of `owner` that nobody
/// holds: its worker died. Reads the token of its run and removes the file while holding the
/// lock, so that a worker of that name starting meanwhile makes a new one. `None` when the
/// file is gone, held (a live worker), another user's or no plain file. `id` must be a worker
/// name.
fn take_dead(id: &str, dir: &Path, owner: u32) -> io::Result<Option<DeadWorker>> {
    let path = dir.join(file_name(id));
    // For writing, as `acquire` opens it; never through a symbolic link.
    let mut file = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(file) => file,
        // `ELOOP`: a symbolic link.
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) || error.raw_os_error() == Some(nix::libc::ELOOP) =>
        {
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() || metadata.uid() != owner {
        return Ok(None);
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(error)) => return Err(error),
    }
    // Removed by another reaper since it was opened, maybe made again by a worker of this
    // name that is starting: not a dead worker's file any more.
    if !is_at(&file, &path)? {
        return Ok(None);
    }
    let run = read_run(&mut file)?;
    // Removed while locked: whoever opened it meanwhile finds it gone once it locks it.
    std::fs::remove_file(&path)?;
    Ok(Some(DeadWorker {
        id: id.to_owned(),
        run,
    }))
}

/// The workers of `dir` found dead, their lock files removed, leaving out `own` (the worker
/// that looks, which holds its own lock); sorted by id. Only files of `owner` count. Also what
/// could not be looked at.
pub(crate) fn take_dead_workers(
    dir: &Path,
    own: &str,
    owner: u32,
) -> (Vec<DeadWorker>, Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            return (
                Vec::new(),
                vec![format!(
                    "cannot list the worker locks in {}: {error}",
                    dir.display()
                )],
            );
        }
    };
    let mut dead = Vec::new();
    let mut problems = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(id_of) else {
            continue;
        };
        if id == own {
            continue;
        }
        match take_dead(id, dir, owner) {
            Ok(Some(worker)) => dead.push(worker),
            Ok(None) => {}
            Err(error) => problems.push(format!(
                "cannot tell whether the worker of {} is dead: {error}",
                dir.join(&name).display()
            )),
        }
    }
    dead.sort_by(|a, b| a.id.cmp(&b.id));
    (dead, problems)
}

/// The run token a lock file holds; `None` for anything else (an empty file: a worker that
/// died between making the file and writing its token).
fn read_run(file: &mut File) -> io::Result<Option<String>> {
    let mut text = String::new();
    file.rewind()?;
    // A token is 32 characters: a longer file is no lock file of ours.
    file.take(64).read_to_string(&mut text).or_else(|error| {
        if error.kind() == io::ErrorKind::InvalidData {
            Ok(0)
        } else {
            Err(error)
        }
    })?;
    let token = text.trim();
    Ok(is_token(token).then(|| token.to_owned()))
}

/// Whether `text` is a run token: 32 lowercase hexadecimal digits.
fn is_token(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new run token: 128 random bits, as hexadecimal.
fn new_run() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The worker id a lock file is named after; `None` for other files, and for names that are
/// no worker id.
fn id_of(file_name: &str) -> Option<&str> {
    let id = file_name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    check_worker_id(id).is_ok().then_some(id)
}

/// The name of the lock file of worker `id`.
fn file_name(id: &str) -> String {
    format!("{PREFIX}{id}{SUFFIX}")
}

/// The lock file of worker `id` in `dir`, once `id` is known to be a worker name (no `/`, no
/// `..`).
fn lock_path(id: &str, dir: &Path) -> Result<PathBuf, WorkerLockError> {
    check_worker_id(id).map_err(|reason| WorkerLockError::InvalidName {
        id: id.to_owned(),
        reason,
    })?;
    Ok(dir.join(file_name(id)))
}

/// Opens the lock file at `path`, made when missing.
fn create(id: &str, path: &Path) -> Result<File, WorkerLockError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        // Only this user reads a run token, and a symbolic link is never followed.
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| WorkerLockError::Open {
            id: id.to_owned(),
            path: path.to_path_buf(),
            source,
        })
}

/// Locks `file`, opened at `path` (which may have been removed since), waiting at most
/// `patience` while someone else holds it.
fn lock_opened(
    id: &str,
    path: PathBuf,
    mut file: File,
    patience: Duration,
) -> Result<WorkerLock, WorkerLockError> {
    let deadline = Instant::now() + patience;
    let mut reopens = 0;
    let lock_error = |path: &Path, source| WorkerLockError::Lock {
        id: id.to_owned(),
        path: path.to_path_buf(),
        source,
    };
    loop {
        match file.try_lock() {
            Ok(()) => {
                if is_at(&file, &path).map_err(|error| lock_error(&path, error))? {
                    let previous_run =
                        read_run(&mut file).map_err(|error| lock_error(&path, error))?;
                    let run = new_run();
                    write_run(&mut file, &run).map_err(|error| lock_error(&path, error))?;
                    return Ok(WorkerLock {
                        id: id.to_owned(),
                        path,
                        run,
                        previous_run,
                        file,
                    });
                }
                // A reaper took this file as a dead worker's and removed it: the lock is on
                // a file nobody else will look at. Make a new one.
                if reopens == REOPENS {
                    return Err(WorkerLockError::Removed {
                        id: id.to_owned(),
                        path,
                    });
                }
                reopens += 1;
                file = create(id, &path)?;
            }
            Err(TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return Err(WorkerLockError::Held {
                        id: id.to_owned(),
                        path,
                    });
                }
                std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
            }
            Err(TryLockError::Error(error)) => return Err(lock_error(&path, error)),
        }
    }
}

/// Replaces what `file` holds with the run token `run`.
fn write_run(file: &mut File, run: &str) -> io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(run.as_bytes())
}

/// Whether `file` is the file at `path` (a removed file is at no path).
fn is_at(file: &File, path: &Path) -> io::Result<bool> {
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(at) => Ok(at.dev() == open.dev() && at.ino() == open.ino()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The identity of a file, to compare.
    fn identity(metadata: &std::fs::Metadata) -> (u64, u64) {
        (metadata.dev(), metadata.ino())
    }

    /// Whether the lock holds the file at its path.
    fn holds_the_file_at_its_path(lock: &WorkerLock) -> bool {
        let at = std::fs::metadata(lock.path()).expect("the lock file is there");
        identity(&at) == identity(&lock.file.metadata().unwrap())
    }

    fn owner(dir: &Path) -> u32 {
        std::fs::metadata(dir).unwrap().uid()
    }

    #[test]
    fn a_worker_name_is_held_by_one_worker_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = WorkerLock::acquire("w1", dir.path()).expect("the first worker gets the name");
        let err = WorkerLock::acquire_within("w1", dir.path(), Duration::ZERO)
            .expect_err("a second worker with the name");
        let message = err.to_string();
        assert!(
            message.contains("another worker named \"w1\" is running on this machine")
                && message.contains("give each worker its own --name"),
            "{message}"
        );
        WorkerLock::acquire("w2", dir.path()).expect("another name is free");
        let first_run = first.run().to_owned();
        assert!(is_token(&first_run), "{first_run}");
        assert_eq!(first.previous_run(), None);
        drop(first);
        let second = WorkerLock::acquire("w1", dir.path())
            .expect("the name is free once its worker is gone");
        assert_eq!(second.previous_run(), Some(first_run.as_str()));
        assert_ne!(second.run(), first_run);
        let path = dir.path().join("pikoci-worker-w1.lock");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), second.run());
        assert_eq!(
            std::fs::metadata(&path).unwrap().mode() & 0o777,
            0o600,
            "only its user reads a run token"
        );
    }

    #[test]
    fn names_that_are_no_worker_ids_make_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("inner");
        std::fs::create_dir(&inner).unwrap();
        for id in ["../escape", "", "a/b", "a b"] {
            let err = WorkerLock::acquire(id, &inner).expect_err(id);
            assert!(
                matches!(err, WorkerLockError::InvalidName { .. }),
                "{id:?}: {err}"
            );
        }
        assert_eq!(std::fs::read_dir(&inner).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_lock_file_removed_before_it_was_locked_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path("w1", dir.path()).unwrap();
        // Opened by a starting worker, then removed by a reaper before the worker locks it.
        let opened = create("w1", &path).unwrap();
        let removed = identity(&opened.metadata().unwrap());
        std::fs::remove_file(&path).unwrap();
        let lock = lock_opened("w1", path.clone(), opened, Duration::ZERO)
            .expect("the worker locks the new file");
        assert!(holds_the_file_at_its_path(&lock));
        assert_ne!(identity(&std::fs::metadata(&path).unwrap()), removed);
        // A reaper now sees a live worker.
        assert!(
            take_dead("w1", dir.path(), owner(dir.path()))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_lock_a_reaper_holds_is_waited_for_then_taken_on_the_file_at_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path("w1", dir.path()).unwrap();
        std::fs::write(&path, b"").unwrap();
        // A reaper holds the dead worker's lock...
        let reaper = File::open(&path).unwrap();
        reaper.try_lock().unwrap();
        let starting = {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || WorkerLock::acquire("w1", &dir))
        };
        // ...while the starting worker opens the old file, so that it locks the file the
        // reaper removes.
        let deadline = Instant::now() + Duration::from_secs(10);
        while open_descriptors(&path) < 2 {
            assert!(
                Instant::now() < deadline,
                "the starting worker never opened the lock file"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::remove_file(&path).unwrap();
        drop(reaper);
        let lock = starting
            .join()
            .unwrap()
            .expect("the starting worker gets the lock once the reaper is done");
        assert!(holds_the_file_at_its_path(&lock));
        assert!(
            take_dead("w1", dir.path(), owner(dir.path()))
                .unwrap()
                .is_none()
        );
    }

    /// How many open descriptors of this process are `path`.
    fn open_descriptors(path: &Path) -> usize {
        let path = path.canonicalize().unwrap();
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
            .count()
    }

    #[test]
    fn only_unheld_plain_lock_files_of_this_user_are_dead_workers() {
        let dir = tempfile::tempdir().unwrap();
        let owner = owner(dir.path());
        let live = WorkerLock::acquire("live", dir.path()).unwrap();
        let token = new_run();
        for (name, content) in [
            ("pikoci-worker-dead-2.lock", token.as_str()),
            ("pikoci-worker-dead-1.lock", ""),
            // The worker that looks: its own lock, even when nobody holds it.
            ("pikoci-worker-me.lock", token.as_str()),
            ("pikoci-worker-bad_name.lock", ""),
            ("pikoci-worker-.lock", ""),
            ("something-else.lock", ""),
        ] {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        // A link to the live worker's file is no dead worker.
        std::os::unix::fs::symlink(live.path(), dir.path().join("pikoci-worker-link.lock"))
            .unwrap();
        // Files of another user are never taken.
        let (theirs, problems) = take_dead_workers(dir.path(), "me", owner + 1);
        assert!(
            theirs.is_empty() && problems.is_empty(),
            "{theirs:?} {problems:?}"
        );

        let (dead, problems) = take_dead_workers(dir.path(), "me", owner);
        assert_eq!(
            dead,
            [
                DeadWorker {
                    id: "dead-1".into(),
                    run: None
                },
                DeadWorker {
                    id: "dead-2".into(),
                    run: Some(token.clone())
                }
            ]
        );
        assert!(problems.is_empty(), "{problems:?}");
        for gone in ["pikoci-worker-dead-1.lock", "pikoci-worker-dead-2.lock"] {
            assert!(!dir.path().join(gone).exists(), "{gone} is removed");
        }
        assert!(live.path().exists() && dir.path().join("pikoci-worker-me.lock").exists());
        let (again, _) = take_dead_workers(dir.path(), "me", owner);
        assert!(again.is_empty(), "{again:?}");
        let (_, problems) = take_dead_workers(&dir.path().join("missing"), "me", owner);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("cannot list the worker locks in"),
            "{problems:?}"
        );
    }

    #[test]
    fn only_run_tokens_are_read_from_lock_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        let token = new_run();
        for (content, expected) in [
            (format!("{token}\n").into_bytes(), Some(token.clone())),
            (token.to_uppercase().into_bytes(), None),
            (token.as_bytes()[..31].to_vec(), None),
            (vec![0xff; 32], None),
            (b"x".repeat(100), None),
        ] {
            std::fs::write(&path, content).unwrap();
            let mut file = File::open(&path).unwrap();
            assert_eq!(read_run(&mut file).unwrap(), expected);
        }
    }

    #[test]
    fn lock_file_names_give_worker_ids() {
        assert_eq!(id_of("pikoci-worker-box-1.lock"), Some("box-1"));
        assert_eq!(id_of("pikoci-worker-.lock"), None);
        assert_eq!(id_of("pikoci-worker-a.b.lock"), None);
        assert_eq!(id_of("pikoci-worker-box-1.lock.tmp"), None);
        assert_eq!(id_of("other-box-1.lock"), None);
        assert_eq!(
            id_of(&file_name("embedded-1a2b3c4d")),
            Some("embedded-1a2b3c4d")
        );
    }
}
