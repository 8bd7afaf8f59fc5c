//! `cargo xtask it runner`: the builtin `docker` runner against a real container engine.
//!
//! No Docker daemon runs on the project's machines, but podman does (`../shared/ENVIRONMENT.md`):
//! the suite installs podman, runc and a static busybox when they are missing, puts a `docker`
//! wrapper script first on `PATH` (`podman --runtime runc --cgroup-manager cgroupfs`), points
//! `CONTAINERS_CONF` at ulimits the machines allow, imports a busybox image built from a local
//! root filesystem (no registry is reachable), checks that a container really runs, then runs
//! `crates/pikoci-runner/tests/docker.rs` with the image's name in `PIKOCI_TEST_DOCKER_IMAGE`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// The image the tests run; built here when it is missing.
const IMAGE: &str = "pikoci-test/busybox:1";

/// The Debian packages the suite needs.
const PACKAGES: &str = "podman runc busybox-static";

/// Where a static busybox may be.
const BUSYBOX_PATHS: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// The `docker` command the tests (and the runner) call.
const WRAPPER: &str = "#!/bin/sh
# podman as `docker`: the runtime and cgroup manager that work on the project's machines.
exec podman --runtime runc --cgroup-manager cgroupfs \"$@\"
";

/// Container limits the machines allow (podman's defaults are higher than they permit).
const CONTAINERS_CONF: &str = "[containers]
default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]
";

/// What podman needs here, for error messages.
const NEEDS: &str = "podman needs runc and conmon (`apt-get install -y podman runc busybox-static`), \
    root (or rootless podman set up with /etc/subuid and /etc/subgid), and a kernel allowing \
    namespaces, overlay mounts and cgroups; see ../shared/ENVIRONMENT.md";

/// Runs the suite.
pub(crate) fn run() -> anyhow::Result<()> {
    install_missing()?;
    let dir = TempDir::new("runner")?;
    let result = prepare_and_test(&dir.0);
    drop(dir);
    result
}

fn prepare_and_test(dir: &Path) -> anyhow::Result<()> {
    let env = Env::write(dir)?;
    if !env.docker(&["image", "exists", IMAGE])?.status.success() {
        build_image(&env, &dir.join("image"))?;
    }
    check_container_runs(&env)?;
    let path = env.path.to_str().context("PATH is valid UTF-8")?;
    let conf = env
        .conf
        .to_str()
        .context("the temporary directory is valid UTF-8")?;
    crate::cargo_with_env(
        &[
            "test",
            "--locked",
            "-p",
            "pikoci-runner",
            "--features",
            "it",
            "--test",
            "docker",
        ],
        &[
            ("PATH", path),
            ("CONTAINERS_CONF", conf),
            ("PIKOCI_TEST_DOCKER_IMAGE", IMAGE),
        ],
    )
}

/// Installs podman, runc and busybox-static with apt when one of them is missing.
pub(crate) fn install_missing() -> anyhow::Result<()> {
    super::apt_ensure("the runner suite", PACKAGES, || {
        on_path("podman") && on_path("runc") && static_busybox().is_some()
    })
}

/// The wrapper and configuration the suite runs with, written into the temporary directory.
pub(crate) struct Env {
    /// `PATH` with the wrapper's directory first.
    path: OsString,
    /// The containers.conf file.
    conf: PathBuf,
}

impl Env {
    pub(crate) fn write(dir: &Path) -> anyhow::Result<Env> {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin)
            .with_context(|| format!("failed to create {}", bin.display()))?;
        let wrapper = bin.join("docker");
        write_file(&wrapper, WRAPPER)?;
        set_mode(&wrapper, 0o755)?;
        let conf = dir.join("containers.conf");
        write_file(&conf, CONTAINERS_CONF)?;
        let mut paths = vec![bin];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(paths).context("PATH with the wrapper directory")?;
        Ok(Env { path, conf })
    }

    /// Runs the `docker` wrapper with `args`, capturing its output, stopped after `seconds`
    /// (coreutils' `timeout`: a container that hangs must not hang the suite).
    pub(crate) fn docker_within(&self, seconds: u32, args: &[&str]) -> anyhow::Result<Output> {
        Command::new("timeout")
            .args(["--kill-after=10", &seconds.to_string(), "docker"])
            .args(args)
            .env("PATH", &self.path)
            .env("CONTAINERS_CONF", &self.conf)
            .output()
            .with_context(|| format!("failed to run `docker {}` (podman)", args.join(" ")))
    }

    /// Runs the `docker` wrapper with `args`, capturing its output.
    pub(crate) fn docker(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new("docker")
            .args(args)
            .env("PATH", &self.path)
            .env("CONTAINERS_CONF", &self.conf)
            .output()
            .with_context(|| format!("failed to run `docker {}` (podman)", args.join(" ")))
    }
}

/// Builds `IMAGE` from a root filesystem holding a static busybox and its applet links.
fn build_image(env: &Env, dir: &Path) -> anyhow::Result<()> {
    let busybox = static_busybox().context("a static busybox is installed")?;
    let root = dir.join("rootfs");
    for sub in ["bin", "dev", "etc", "proc", "root", "sys", "tmp", "workdir"] {
        std::fs::create_dir_all(root.join(sub))
            .with_context(|| format!("failed to create {}", root.join(sub).display()))?;
    }
    set_mode(&root.join("tmp"), 0o1777)?;
    std::fs::copy(&busybox, root.join("bin/busybox"))
        .with_context(|| format!("failed to copy {}", busybox.display()))?;
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("failed to run {} --list", busybox.display()))?;
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
                .with_context(|| format!("failed to link the busybox applet {applet}"))?;
        }
    }
    write_file(&root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    write_file(&root.join("etc/group"), "root:x:0:\n")?;
    let tarball = tar(&root, &dir.join("rootfs.tar"))?;
    eprintln!("$ podman import {tarball} {IMAGE}");
    let import = env.docker(&["import", &tarball, IMAGE])?;
    if !import.status.success() {
        bail!(
            "podman cannot import the test image {IMAGE}: {}\n{NEEDS}",
            String::from_utf8_lossy(&import.stderr).trim()
        );
    }
    Ok(())
}

/// Packs the root filesystem `root` into `tarball` (owners as numbers); its path as text.
pub(crate) fn tar(root: &Path, tarball: &Path) -> anyhow::Result<String> {
    let tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .arg("--numeric-owner")
        .arg("-cf")
        .arg(tarball)
        .arg(".")
        .output()
        .context("failed to run tar (apt-get install -y tar)")?;
    if !tar.status.success() {
        bail!(
            "tar failed: {}",
            String::from_utf8_lossy(&tar.stderr).trim()
        );
    }
    tarball
        .to_str()
        .map(str::to_owned)
        .context("the temporary directory is valid UTF-8")
}

/// Fails, saying what is missing, when podman cannot run a container.
fn check_container_runs(env: &Env) -> anyhow::Result<()> {
    let out = env.docker(&["run", "--rm", IMAGE, "/bin/sh", "-ec", "echo container-ok"])?;
    if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("container-ok") {
        return Ok(());
    }
    bail!(
        "podman cannot run a container, so the docker runner cannot be tested:\n{}\n{NEEDS}. \
         Try it by hand with \
         `podman --runtime runc --cgroup-manager cgroupfs run --rm {IMAGE} /bin/sh -ec 'echo ok'`",
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// The first busybox on the machine that is statically linked (it runs alone in the image).
pub(crate) fn static_busybox() -> Option<PathBuf> {
    BUSYBOX_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|path| std::fs::read(path).is_ok_and(|elf| is_static_elf(&elf)))
}

/// Whether `elf` is a 64-bit little-endian ELF executable without a program interpreter.
fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8).map(|b| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(b);
            u64::from_le_bytes(bytes)
        })
    };
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(offset), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..usize::from(count)).all(|i| {
        let at = usize::try_from(offset).unwrap_or(usize::MAX) + i * usize::from(size);
        u32_at(at).is_some_and(|kind| kind != PT_INTERP)
    })
}

pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

pub(crate) fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("failed to set the mode of {}", path.display()))
}

/// A directory of this run, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A new directory named after `label` (`pikoci-it-<label>-...`).
    pub(crate) fn new(label: &str) -> anyhow::Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "pikoci-it-{label}-{}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
