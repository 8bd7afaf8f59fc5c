//! Builds through the real engine and runner, an event recorder, repositories on disk and a
//! `git daemon` serving them.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pikoci_config::{HttpFetcher, SourceFile, Vars};
use pikoci_core::Pipeline;
use pikoci_core::engine::{BuildControl, BuildSpec, Engine, LocalRun, Status};
use pikoci_core::testing::Recorder;
use pikoci_runner::ProcessRunner;
use pikoci_runner::native::GitChecks;

/// A finished build.
pub(crate) struct Build {
    pub(crate) status: Status,
    pub(crate) error: Option<String>,
    pub(crate) events: Arc<Recorder>,
}

impl Build {
    /// Panics with the build's output unless it succeeded.
    pub(crate) fn assert_succeeded(&self) {
        assert_eq!(
            self.status,
            Status::Succeeded,
            "build failed: {:?}\n{}",
            self.error,
            self.events.output()
        );
    }
}

pub(crate) fn pipeline(hcl: &str) -> Pipeline {
    match pikoci_config::load(
        &SourceFile::new("git.hcl", hcl),
        &Vars::new(),
        &HttpFetcher::default(),
    ) {
        Ok(loaded) => loaded.pipeline,
        Err(diagnostics) => panic!("test pipeline is invalid:\n{diagnostics}"),
    }
}

/// Runs `job` of `hcl` with real processes and the git API checks, caches under
/// `<root>/cache`. `versions` empty means a local run (gets check for the newest version, puts
/// are skipped); otherwise a worker-style run with those versions.
pub(crate) async fn build(
    hcl: &str,
    job: &str,
    root: &Path,
    versions: BTreeMap<String, serde_json::Value>,
) -> Build {
    let events = Arc::new(Recorder::default());
    let engine = Engine::new(Arc::new(ProcessRunner::new()), events.clone())
        .with_native_checks(Arc::new(GitChecks::new()));
    let spec = BuildSpec {
        pipeline: Arc::new(pipeline(hcl)),
        job: job.to_owned(),
        team: "main".to_owned(),
        pipeline_name: "demo".to_owned(),
        build_number: "1".to_owned(),
        inputs: BTreeMap::new(),
        local: versions.is_empty().then(LocalRun::default),
        versions,
        secrets: Default::default(),
        work_root: root.join("work"),
        cache_root: Some(root.join("cache")),
    };
    let result = engine.run(spec, BuildControl::default()).await;
    Build {
        status: result.status,
        error: result.error,
        events,
    }
}

/// Runs git in `dir`, asserting that it succeeds; its trimmed stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git is installed");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Whether git succeeds in `dir`.
pub(crate) fn git_ok(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A bare repository `<root>/srv/app.git` and a working clone that feeds it.
pub(crate) struct Upstream {
    pub(crate) srv: PathBuf,
    pub(crate) bare: PathBuf,
    seed: PathBuf,
}

impl Upstream {
    /// The repository with one commit on `main` adding `README` (content "hello").
    pub(crate) fn create(root: &Path) -> Upstream {
        let srv = root.join("srv");
        let bare = srv.join("app.git");
        let seed = root.join("seed");
        std::fs::create_dir_all(&srv).unwrap();
        git(root, &["init", "-q", "--bare", bare.to_str().unwrap()]);
        git(root, &["init", "-q", seed.to_str().unwrap()]);
        git(&seed, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let upstream = Upstream { srv, bare, seed };
        upstream.commit("main", "README", "hello", "first");
        upstream
    }

    /// Commits `file` with `content` on `branch` (created from the current commit if new) and
    /// pushes it; the new commit.
    pub(crate) fn commit(&self, branch: &str, file: &str, content: &str, message: &str) -> String {
        let exists = git_ok(&self.seed, &["rev-parse", "-q", "--verify", branch]);
        let born = git_ok(&self.seed, &["rev-parse", "-q", "--verify", "HEAD"]);
        match (exists, born) {
            (true, _) => drop(git(&self.seed, &["checkout", "-q", branch])),
            (false, true) => drop(git(&self.seed, &["checkout", "-q", "-b", branch])),
            (false, false) => {}
        }
        std::fs::write(self.seed.join(file), content).unwrap();
        git(&self.seed, &["add", file]);
        git(&self.seed, &["commit", "-q", "-m", message]);
        git(&self.seed, &["push", "-q", "origin", branch]);
        self.head(branch)
    }

    /// Tags the head of `branch` and pushes the tag; the tagged commit.
    pub(crate) fn tag(&self, branch: &str, tag: &str) -> String {
        git(&self.seed, &["tag", "-a", "-m", tag, tag, branch]);
        git(&self.seed, &["push", "-q", "origin", tag]);
        self.head(branch)
    }

    /// The commit at the head of `branch` in the served repository.
    pub(crate) fn head(&self, branch: &str) -> String {
        git(&self.bare, &["rev-parse", &format!("refs/heads/{branch}")])
    }
}

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits (with a deadline) until something accepts connections on `port`, failing early if
/// `child` exits.
pub(crate) fn wait_until_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before listening on port {port}");
        }
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `git daemon` serving a directory on a free loopback port, pushes allowed.
pub(crate) struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    pub(crate) fn start(base: &Path) -> GitDaemon {
        let port = free_port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--export-all",
                "--reuseaddr",
                "--enable=receive-pack",
            ])
            .args([
                "--listen=127.0.0.1",
                "--init-timeout=5",
                "--informative-errors",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("git daemon runs");
        let mut daemon = GitDaemon { child, port };
        wait_until_listening(port, &mut daemon.child, "git daemon");
        daemon
    }

    /// The `git://` URL of a repository under the base path.
    pub(crate) fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Kills a child started in its own process group, and everything in the group: `git daemon`
/// runs `git-daemon` as a child, which forks one process per connection.
pub(crate) fn kill_group(child: &mut Child) {
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}
