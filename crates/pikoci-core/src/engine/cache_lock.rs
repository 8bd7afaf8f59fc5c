//! Exclusive use of a resource's cache directory (`CACHE_DIR`): a check and a get of the same
//! resource, or two gets, never write one cache at once. The lock is an advisory file lock on
//! the file `<dir>.lock` next to the directory (the directory's contents belong to the scripts),
//! so it also holds between worker processes that share a cache root; the operating system
//! releases it when the guard is dropped or the process dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often a waiting user of a cache tries again.
const RETRY: Duration = Duration::from_millis(100);

/// Holds a cache directory until dropped.
#[derive(Debug)]
pub(super) struct CacheLock {
    _file: File,
}

/// Takes the cache directory `dir` for this process, waiting while another check or get holds
/// it; `waiting` is called once if it has to wait. An error says why the lock could not be
/// taken (or that `cancel` fired while waiting).
pub(super) async fn lock(
    dir: &Path,
    cancel: &CancellationToken,
    waiting: impl FnOnce(),
) -> Result<CacheLock, String> {
    let path = lock_path(dir);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| {
            format!(
                "cannot open the cache lock {}: {err}; check that the worker may write its cache directory",
                path.display()
            )
        })?;
    let mut waiting = Some(waiting);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(CacheLock { _file: file }),
            Err(TryLockError::WouldBlock) => {
                if let Some(waiting) = waiting.take() {
                    waiting();
                }
                tokio::select! {
                    () = cancel.cancelled() => {
                        return Err(format!(
                            "cancelled while waiting for the cache {}",
                            dir.display()
                        ));
                    }
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
            Err(TryLockError::Error(err)) => {
                return Err(format!(
                    "cannot lock the cache {} (lock file {}): {err}",
                    dir.display(),
                    path.display()
                ));
            }
        }
    }
}

/// `<dir>.lock`.
fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    dir.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_held_cache_waits_until_released_and_a_cancel_ends_the_wait() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("main").join("git.repo");
        std::fs::create_dir_all(&dir).expect("cache dir");
        let cancel = CancellationToken::new();
        let held = lock(&dir, &cancel, || panic!("the first user must not wait"))
            .await
            .expect("lock");
        assert!(root.path().join("main").join("git.repo.lock").exists());

        // A second user waits, says so once, and gets the cache when the first lets go.
        let waited = Arc::new(AtomicBool::new(false));
        let flag = waited.clone();
        let (cache, token) = (dir.clone(), cancel.clone());
        let second = tokio::spawn(async move {
            lock(&cache, &token, move || flag.store(true, Ordering::SeqCst)).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "the second user did not wait");
        assert!(waited.load(Ordering::SeqCst));
        drop(held);
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second user got the cache")
            .expect("task")
            .expect("lock");

        // While the second holds it, a third is cancelled while waiting.
        let third_cancel = CancellationToken::new();
        let (cache, token) = (dir.clone(), third_cancel.clone());
        let third = tokio::spawn(async move { lock(&cache, &token, || {}).await });
        tokio::time::sleep(Duration::from_millis(150)).await;
        third_cancel.cancel();
        let err = third.await.expect("task").expect_err("cancelled");
        assert!(
            err.contains("cancelled while waiting for the cache"),
            "{err}"
        );
        drop(second);
    }
}
