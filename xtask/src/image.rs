//! `cargo xtask image`: the container image `pikoci:<version>`, built with podman from files on
//! this machine (no registry is reachable, so nothing is pulled): the release binary, the
//! shared libraries it and git need, Debian's git with its HTTP helpers, a static busybox for
//! `/bin/sh` and the usual commands, and Debian's CA certificates. The root filesystem is
//! imported as an image with its configuration (`podman import --change`), then started: the
//! binary answers, validates and runs a pipeline inside, and a server in it serves the API to
//! the host and runs a build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::it::runner::{self, Env, TempDir, set_mode, write_file};

/// The image's name; tagged with the workspace's version and `latest`.
const NAME: &str = "pikoci";

/// Programs copied from the machine, with the shared libraries they need.
const PROGRAMS: [&str; 4] = [
    "/usr/bin/git",
    "/usr/lib/git-core/git-remote-http",
    "/usr/lib/git-core/git-remote-https",
    "/usr/lib/git-core/git-upload-pack",
];

/// What the image runs as: an unprivileged user whose home holds the work.
const USER: &str = "pikoci:x:1000:1000:PikoCI:/var/lib/pikoci:/bin/sh";

/// The Debian packages whose files go into the image, besides podman's.
const PACKAGES: [&str; 2] = ["git", "ca-certificates"];

/// How long one container of the smoke test may run.
const CONTAINER_SECONDS: u32 = 300;

/// Builds the image and starts it.
pub(crate) fn run() -> anyhow::Result<()> {
    runner::install_missing()?;
    install_packages()?;
    let version = env!("CARGO_PKG_VERSION");
    let binary = build_release()?;
    let dir = TempDir::new("image")?;
    let env = Env::write(&dir.0)?;
    let image = format!("{NAME}:{version}");
    build(&env, &dir.0, &binary, &image)?;
    eprintln!("== starting {image}");
    smoke_test(&env, &image)?;
    println!(
        "xtask image: built and started {image} (also tagged {NAME}:latest); run it with \
         `podman run -p 8080:8080 {image}` (a server in memory; see docs/deploy.md)"
    );
    Ok(())
}

/// Installs git and the CA certificates with apt when they are missing.
fn install_packages() -> anyhow::Result<()> {
    let present = Path::new(PROGRAMS[0]).is_file() && Path::new(CERTIFICATES).is_file();
    if present {
        return Ok(());
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y"])
            .args(PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|status| status.success())
    };
    eprintln!("$ apt-get install -y {}", PACKAGES.join(" "));
    if !install() {
        let _ = Command::new("apt-get").arg("update").status();
        if !install() {
            bail!(
                "the image needs Debian's {}: install them (`apt-get install -y {}`, as root)",
                PACKAGES.join(" and "),
                PACKAGES.join(" ")
            );
        }
    }
    Ok(())
}

/// Debian's CA certificates.
const CERTIFICATES: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `cargo build --release -p pikoci`; the binary.
fn build_release() -> anyhow::Result<PathBuf> {
    crate::cargo(&["build", "--release", "--locked", "-p", "pikoci"])?;
    let binary = crate::it::target_dir()?.join("release/pikoci");
    if !binary.is_file() {
        bail!(
            "cargo built pikoci, but {} does not exist",
            binary.display()
        );
    }
    Ok(binary)
}

/// Assembles the root filesystem and imports it as `image`.
fn build(env: &Env, dir: &Path, binary: &Path, image: &str) -> anyhow::Result<()> {
    let root = dir.join("rootfs");
    for sub in [
        "bin",
        "dev",
        "etc/ssl/certs",
        "proc",
        "sys",
        "tmp",
        "usr/local/bin",
        "var/lib/pikoci",
    ] {
        std::fs::create_dir_all(root.join(sub))
            .with_context(|| format!("failed to create {}", root.join(sub).display()))?;
    }
    // Whatever the umask: every directory readable by the image's user.
    for dir in [
        "bin",
        "etc",
        "etc/ssl",
        "etc/ssl/certs",
        "usr",
        "usr/local",
        "usr/local/bin",
    ] {
        set_mode(&root.join(dir), 0o755)?;
    }
    set_mode(&root.join("tmp"), 0o1777)?;
    copy_with_libraries(binary, &root, Path::new("/usr/local/bin/pikoci"))?;
    for program in PROGRAMS {
        let path = Path::new(program);
        if !path.is_file() {
            bail!("{program} is missing: install Debian's git (`apt-get install -y git`)");
        }
        copy_with_libraries(path, &root, path)?;
    }
    // Busybox for `sh` and the commands steps expect; git's own helpers call `git`.
    let busybox = runner::static_busybox().context("a static busybox is installed")?;
    copy(&busybox, &root.join("bin/busybox"))?;
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("failed to run {} --list", busybox.display()))?;
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        let link = root.join("bin").join(applet);
        if applet != "busybox" && !link.exists() {
            std::os::unix::fs::symlink("busybox", &link)
                .with_context(|| format!("failed to link the busybox applet {applet}"))?;
        }
    }
    let certificates = Path::new(CERTIFICATES);
    if !certificates.is_file() {
        bail!(
            "{} is missing: install Debian's CA certificates (`apt-get install -y ca-certificates`)",
            certificates.display()
        );
    }
    copy(
        certificates,
        &root.join("etc/ssl/certs/ca-certificates.crt"),
    )?;
    write_file(
        &root.join("etc/passwd"),
        &format!("root:x:0:0:root:/root:/bin/sh\n{USER}\n"),
    )?;
    write_file(&root.join("etc/group"), "root:x:0:\npikoci:x:1000:\n")?;
    write_file(
        &root.join("etc/nsswitch.conf"),
        "passwd: files\ngroup: files\nhosts: files dns\n",
    )?;
    // The home and work of the user the image runs as.
    std::os::unix::fs::chown(root.join("var/lib/pikoci"), Some(1000), Some(1000))
        .context("failed to give /var/lib/pikoci to uid 1000 (the image is built as root)")?;
    let tarball = runner::tar(&root, &dir.join("rootfs.tar"))?;
    let tarball = tarball.as_str();
    let changes = [
        "ENTRYPOINT [\"/usr/local/bin/pikoci\"]",
        "CMD [\"server\"]",
        "ENV PATH=/usr/local/bin:/usr/bin:/bin",
        "ENV HOME=/var/lib/pikoci",
        "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "ENV GIT_EXEC_PATH=/usr/lib/git-core",
        // Inside a container the API must listen beyond loopback to be reached at all: the
        // port is only reachable where it is published (`-p 8080:8080`).
        "ENV PIKOCI_LISTEN_ADDRESS=0.0.0.0",
        "ENV PIKOCI_WORK_DIR=/var/lib/pikoci/work",
        "WORKDIR /var/lib/pikoci",
        "USER pikoci",
        "EXPOSE 8080",
        "LABEL org.opencontainers.image.title=PikoCI",
        "LABEL org.opencontainers.image.licenses=Apache-2.0",
    ];
    let mut args = vec!["import".to_owned()];
    for change in changes {
        args.push("--change".to_owned());
        args.push(change.to_owned());
    }
    args.push(tarball.to_owned());
    args.push(image.to_owned());
    eprintln!("$ podman import ... {tarball} {image}");
    let import = env.docker(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    if !import.status.success() {
        bail!(
            "podman cannot import the image: {}",
            String::from_utf8_lossy(&import.stderr).trim()
        );
    }
    let tag = env.docker(&["tag", image, &format!("{NAME}:latest")])?;
    if !tag.status.success() {
        bail!(
            "podman cannot tag the image: {}",
            String::from_utf8_lossy(&tag.stderr).trim()
        );
    }
    // The image this one replaced, untagged now: not kept on a machine that builds often.
    let _ = env.docker(&["image", "prune", "-f"]);
    Ok(())
}

/// Copies `program` to `root/destination` and every shared library it loads (as `ldd` lists
/// them) to the same path under `root`.
fn copy_with_libraries(program: &Path, root: &Path, destination: &Path) -> anyhow::Result<()> {
    copy(program, &inside(root, destination))?;
    let ldd = Command::new("ldd")
        .arg(program)
        .output()
        .context("failed to run ldd")?;
    let text = String::from_utf8_lossy(&ldd.stdout);
    for line in text.lines() {
        // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let library = Path::new(path);
        let target = inside(root, library);
        if !target.exists() {
            copy(library, &target)?;
        }
    }
    Ok(())
}

/// `path` under `root`.
fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Copies a file (following links), creating its directory, keeping its mode.
fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("failed to copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Starts the image: the binary answers, git runs, a pipeline validates and runs, and a
/// server serves the API to the host and runs the example's build.
fn smoke_test(env: &Env, image: &str) -> anyhow::Result<()> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let examples = examples
        .canonicalize()
        .with_context(|| format!("cannot find {}", examples.display()))?;
    let mount = format!("{}:/examples:ro", examples.display());
    expect(env, &["run", "--rm", image, "--version"], "pikoci")?;
    expect(
        env,
        &["run", "--rm", "--entrypoint", "git", image, "--version"],
        "git version",
    )?;
    // git's HTTPS helper loads its libraries (libcurl, TLS): run without arguments, it only
    // prints its usage.
    let https = env.docker_within(
        CONTAINER_SECONDS,
        &[
            "run",
            "--rm",
            "--entrypoint",
            "/usr/lib/git-core/git-remote-https",
            image,
        ],
    )?;
    let text = String::from_utf8_lossy(&https.stderr);
    if !text.contains("remote-curl") || text.contains("error while loading shared libraries") {
        bail!("git's HTTPS helper does not start in the image:\n{text}");
    }
    expect(
        env,
        &[
            "run",
            "--rm",
            "-v",
            &mount,
            image,
            "validate",
            "/examples/hello.hcl",
        ],
        "is valid",
    )?;
    expect(
        env,
        &[
            "run",
            "--rm",
            "-v",
            &mount,
            image,
            "run",
            "--pipeline-config",
            "/examples/hello.hcl",
            "--job",
            "test",
        ],
        "all good",
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let name = format!("pikoci-image-test-{}", std::process::id());
    let container = Container { env, name: &name };
    let started = env.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        // On the host's network: loopback only.
        "-e",
        "PIKOCI_LISTEN_ADDRESS=127.0.0.1",
        "-e",
        &format!("PIKOCI_USERS={}", crate::it::ADMIN_USER),
        "-v",
        &mount,
        image,
        "server",
        "--port",
        &port.to_string(),
        "--pipeline-config",
        "/examples/hello.hcl",
    ])?;
    if !started.status.success() {
        bail!(
            "the image did not start a server: {}",
            String::from_utf8_lossy(&started.stderr).trim()
        );
    }
    let result = wait_for_build(port);
    if result.is_err()
        && let Ok(logs) = env.docker(&["logs", &name])
    {
        eprintln!(
            "the container's log:\n{}{}",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        );
    }
    drop(container);
    result
}

/// A container of the smoke test, removed when dropped (whatever happened).
struct Container<'a> {
    env: &'a Env,
    name: &'a str,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.env.docker(&["rm", "-f", self.name]);
    }
}

/// Runs `docker ARGS`; fails unless it succeeds with `expected` in its output.
fn expect(env: &Env, args: &[&str], expected: &str) -> anyhow::Result<()> {
    eprintln!("$ podman {}", args.join(" "));
    let out = env.docker_within(CONTAINER_SECONDS, args)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !text.contains(expected) {
        bail!(
            "`podman {}` did not work ({}; expected {expected:?} in its output):\n{text}",
            args.join(" "),
            out.status
        );
    }
    Ok(())
}

/// Waits until the server in the container answers and build `test/1` of the example
/// finished, and succeeded. The short route's answer has the build's status only (the whole
/// build's has its steps' too).
fn wait_for_build(port: u16) -> anyhow::Result<()> {
    let started = Instant::now();
    let path = "/api/v1/teams/main/pipelines/hello/jobs/test/builds/1/pending_reason";
    let mut last = String::new();
    let mut token = None;
    while started.elapsed() < Duration::from_secs(120) {
        if token.is_none() {
            token = crate::it::log_in(port).ok();
        }
        if let Some(token) = &token
            && let Ok(answer) = crate::it::http_request(port, "GET", path, Some(token), None)
        {
            if answer.contains("\"status\":\"succeeded\"") {
                eprintln!("the server in the container ran build test/1: succeeded");
                return Ok(());
            }
            if ["failed", "errored", "cancelled"]
                .iter()
                .any(|status| answer.contains(&format!("\"status\":\"{status}\"")))
            {
                bail!("build test/1 in the container did not succeed: {answer}");
            }
            last = answer;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("the server in the container did not run build test/1 within 120 s; last answer: {last}")
}
