//! A git repository served on loopback by `git daemon`, for the end-to-end tests of the
//! server: commit, and the server's checks see the new head.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A bare repository `app.git` behind `git daemon` on 127.0.0.1, with a work tree to commit
/// from. The daemon is killed when dropped.
pub(crate) struct GitServer {
    daemon: Child,
    work: PathBuf,
    /// `git://127.0.0.1:PORT/app.git`.
    pub(crate) url: String,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap_or_else(|e| panic!("git is needed by this test (git {args:?}): {e}"));
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl GitServer {
    /// A repository with one commit on `main`, served under `root`.
    pub(crate) fn start(root: &Path) -> GitServer {
        let bare = root.join("app.git");
        std::fs::create_dir_all(&bare).unwrap();
        git(
            &bare,
            &["init", "--bare", "--initial-branch=main", "--quiet"],
        );
        let work = root.join("app-work");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "--initial-branch=main", "--quiet"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let daemon = Command::new("git")
            .args([
                "daemon",
                "--export-all",
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", root.display()),
                root.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: `git daemon` runs `git-daemon` as a child, and both go.
            .process_group(0)
            .spawn()
            .expect("git daemon starts");
        let server = GitServer {
            daemon,
            work,
            url: format!("git://127.0.0.1:{port}/app.git"),
        };
        server.commit("README", "version 1\n");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "git daemon never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Writes `file`, commits and pushes; returns the new commit's sha.
    pub(crate) fn commit(&self, file: &str, contents: &str) -> String {
        std::fs::write(self.work.join(file), contents).unwrap();
        git(&self.work, &["add", "--all"]);
        git(
            &self.work,
            &["commit", "--quiet", "-m", &format!("change {file}")],
        );
        git(&self.work, &["push", "--quiet", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.daemon.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
