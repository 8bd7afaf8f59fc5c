//! Starts step processes so that they die with this process, however it ends.
//!
//! A worker killed with SIGKILL (or crashing) runs no destructor: without help, its steps would
//! run on, unsupervised, while the server hands their builds to another worker. So each step's
//! process-group leader asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`,
//! Linux).
//!
//! Linux counts the *thread* that forked a process as its parent: the signal fires when that
//! thread exits, even while the rest of the process runs on. Tokio's threads can exit under a
//! healthy worker (the blocking pool ends threads idle for 10 s; `block_in_place` hands a
//! worker thread's work to a new thread and turns the old one into a blocking-pool thread; a
//! runtime made on a short-lived thread ends with it), which would kill a step in the middle of
//! a build. So every step is forked by one dedicated thread that never exits (it waits for
//! requests on a channel whose sender lives in a static): the signal then fires only when the
//! whole process ends.
//!
//! Only the leader gets the signal. Processes a step left in the background (its group's other
//! members, daemons in sessions of their own) are not killed by the kernel when the worker dies;
//! the runner kills the whole group whenever it is still alive to do so (end of the step,
//! cancellation, drop), and the next worker to start on the machine kills the rest (see
//! `reaper`).
//!
//! Forking copies the page tables of the process that forks and turns its pages copy-on-write
//! until the child execs: cheap for a small worker, but a server with its embedded worker,
//! starting 150 check processes a second, spent most of its time on it. A program that calls
//! [`enable_launcher`] first thing in `main` (the `pikoci` binaries do) starts steps through
//! itself instead: `posix_spawn` (which shares memory with the child until the exec, copying
//! nothing) runs this program as a launcher, which sets the parent-death signal, checks its
//! parent is still alive and execs the step's program, keeping its pid, group, pipes,
//! environment and directory. The program is found in the step's `PATH` before the launcher
//! starts, so a missing one is still an error of the spawn. The step's variables that steer
//! the dynamic loader (`LD_*`, `GLIBC_TUNABLES`) reach the launcher under another name and are
//! put back for the exec, so a step's `LD_PRELOAD` or `LD_LIBRARY_PATH` applies to the step's
//! program, not to the launcher. Other programs (tests, embedders), a program without
//! `/proc/self/exe`, and a set-user-ID one fork as before. (The standard library uses
//! `posix_spawn` for a command with a working directory only with glibc 2.29 or later, and
//! forks on older ones.)

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
#[cfg(target_os = "linux")]
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, mpsc};

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// The first argument of this program when it is started as a launcher.
const LAUNCH: &str = "__pikoci-launch-step";

/// This program, also once its file was replaced or deleted (an upgrade under a running worker).
const SELF: &str = "/proc/self/exe";

/// Whether steps start through this program ([`enable_launcher`]).
static LAUNCHER: AtomicBool = AtomicBool::new(false);

/// A step's process: everything it is started with.
pub(crate) struct Process {
    /// A program name (looked up in the step's `PATH`) or an absolute path.
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    /// The whole environment of the process.
    pub(crate) env: BTreeMap<OsString, OsString>,
    pub(crate) workdir: PathBuf,
}

/// One process to start, and where to send it (or why it could not start).
struct Request {
    process: Process,
    /// The runtime whose reactor watches the child (the caller's).
    runtime: tokio::runtime::Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// Starts `process` from the spawning thread, in a process group of its own, with stdin closed
/// and stdout and stderr piped, set up to be killed when this process dies. Must be called
/// from within a tokio runtime.
pub(crate) async fn spawn(process: Process) -> io::Result<Child> {
    let gone = || io::Error::other("the thread that starts step processes is not running");
    let spawner = spawner().ok_or_else(gone)?;
    let (reply, answer) = oneshot::channel();
    spawner
        .send(Request {
            process,
            runtime: tokio::runtime::Handle::current(),
            reply,
        })
        .map_err(|_| gone())?;
    answer.await.map_err(|_| gone())?
}

/// The spawning thread's inbox, started on first use (`None` if the thread cannot start).
fn spawner() -> Option<&'static mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<Request>>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (requests, received) = mpsc::channel();
            std::thread::Builder::new()
                .name("pikoci-spawner".to_owned())
                .spawn(move || serve(received))
                .ok()
                .map(|_| requests)
        })
        .as_ref()
}

/// The spawning thread: returns only when every sender is gone, and the one sender lives in a
/// static.
fn serve(requests: mpsc::Receiver<Request>) {
    while let Ok(Request {
        process,
        runtime,
        reply,
    }) = requests.recv()
    {
        let started = command(process).and_then(|mut command| {
            let _entered = runtime.enter();
            command.spawn()
        });
        // A caller that went away drops the child, which kills it (`kill_on_drop`).
        let _ = reply.send(started);
    }
}

/// The command that starts `process`: through the launcher when it is enabled, else directly
/// (forking this process).
fn command(process: Process) -> io::Result<Command> {
    // The launcher runs in the working directory: a program found relative to it must not
    // be found relative to it a second time.
    let workdir = std::path::absolute(&process.workdir)?;
    let mut command = if LAUNCHER.load(Ordering::Relaxed) {
        let path = process.env.get(OsStr::new("PATH")).map(OsString::as_os_str);
        let program = find_program(&process.program, path, &workdir)?;
        let mut command = Command::new(SELF);
        command
            .arg(LAUNCH)
            .arg(std::process::id().to_string())
            .arg(program)
            .arg(&process.program)
            .args(&process.args)
            .env_clear()
            .envs(
                process
                    .env
                    .iter()
                    .map(|(name, value)| (hide_from_loader(name), value)),
            );
        command
    } else {
        let mut command = Command::new(&process.program);
        die_with_this_process(&mut command);
        command.args(&process.args).env_clear().envs(&process.env);
        command
    };
    command
        .current_dir(&workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    Ok(command)
}

/// The prefix under which the launcher receives the step's variables that would change how
/// the dynamic loader and the C library start the launcher itself (`LD_PRELOAD`,
/// `LD_LIBRARY_PATH`, `GLIBC_TUNABLES`, ...): the launcher puts them back for the step.
const HIDDEN: &str = "PIKOCI_LAUNCHER_HIDDEN_";

/// The name under which the launcher receives the step's variable `name`: the loader's own
/// variables, and those that already start with [`HIDDEN`] (so that the launcher's undoing
/// is exact), get the prefix; others keep their name.
fn hide_from_loader(name: &OsStr) -> OsString {
    let bytes = name.as_encoded_bytes();
    if bytes.starts_with(b"LD_")
        || bytes == b"GLIBC_TUNABLES"
        || bytes.starts_with(HIDDEN.as_bytes())
    {
        let mut hidden = OsString::from(HIDDEN);
        hidden.push(name);
        hidden
    } else {
        name.to_owned()
    }
}

/// Where `execvp` would find `program` with `path` as the `PATH` (the C library's default
/// when there is none) from `workdir`: the first executable file of that name in one of its
/// directories, or `program` itself when it names a path. Errors as the exec would: not found,
/// or permission denied when only files that cannot be run were found.
fn find_program(program: &Path, path: Option<&OsStr>, workdir: &Path) -> io::Result<PathBuf> {
    use nix::errno::Errno;
    let error = |errno: Errno| io::Error::from_raw_os_error(errno as i32);
    if program.as_os_str().is_empty() {
        return Err(error(Errno::ENOENT));
    }
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        let candidate = workdir.join(program);
        return match executable(&candidate) {
            Some(true) => Ok(candidate),
            Some(false) => Err(error(Errno::EACCES)),
            None => Err(error(Errno::ENOENT)),
        };
    }
    let path = path.unwrap_or(OsStr::new("/bin:/usr/bin"));
    let mut denied = false;
    for dir in std::env::split_paths(path) {
        // An empty entry is the working directory.
        let candidate = workdir.join(dir).join(program);
        match executable(&candidate) {
            Some(true) => return Ok(candidate),
            Some(false) => denied = true,
            None => {}
        }
    }
    Err(error(if denied { Errno::EACCES } else { Errno::ENOENT }))
}

/// Whether this process may execute the file `path` (its mode, and the file system not
/// mounted `noexec`); `None` when it is no file.
fn executable(path: &Path) -> Option<bool> {
    std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    Some(nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok())
}

/// Makes steps start through this program (see the module), and, when this process was itself
/// started as a step's launcher, turns it into the step: the call then does not return. To be
/// called first thing in `main`, before any thread starts; Linux only (elsewhere a no-op).
pub fn enable_launcher() {
    #[cfg(target_os = "linux")]
    {
        let mut args = std::env::args_os();
        if args.nth(1).as_deref() == Some(OsStr::new(LAUNCH)) {
            let why = launch(args);
            // The step's stderr: its log says why it did not start.
            let _ = writeln!(io::stderr(), "pikoci: {why}");
            std::process::exit(127);
        }
        // Without /proc (a bare chroot or container) this program cannot start itself: fork.
        // Nor does a set-user-ID or set-group-ID program run others for its callers.
        if Path::new(SELF).exists() && !privileged() {
            LAUNCHER.store(true, Ordering::Relaxed);
        }
    }
}

/// Whether this process runs with rights its caller does not have: a set-user-ID or
/// set-group-ID file, or one with file capabilities. The C library then runs it in secure mode
/// (`AT_SECURE`), which also drops variables (`TMPDIR`, `LOCPATH`, ...) from the environment
/// that a launcher would pass on.
#[cfg(target_os = "linux")]
fn privileged() -> bool {
    use nix::unistd::{getegid, geteuid, getgid, getuid};
    getuid() != geteuid() || getgid() != getegid() || secure_mode()
}

/// Whether the kernel started this process in secure mode: `AT_SECURE` in its auxiliary
/// vector (pairs of native words, `/proc/self/auxv`). Unknown counts as secure.
#[cfg(target_os = "linux")]
fn secure_mode() -> bool {
    const AT_SECURE: usize = 23;
    const WORD: usize = std::mem::size_of::<usize>();
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return true;
    };
    let word = |bytes: &[u8]| {
        bytes
            .try_into()
            .map(usize::from_ne_bytes)
            .unwrap_or(usize::MAX)
    };
    auxv.chunks_exact(2 * WORD)
        .any(|pair| word(&pair[..WORD]) == AT_SECURE && word(&pair[WORD..]) != 0)
}

/// Whether steps start through this program ([`enable_launcher`] found it could).
pub fn launcher_enabled() -> bool {
    LAUNCHER.load(Ordering::Relaxed)
}

/// Keeps other processes of this user, the steps this process starts among them, from reading
/// its memory and environment (`/proc/PID/environ`, `/proc/PID/mem`, ptrace), where a server
/// or worker holds database and broker credentials and the secret store's key: Linux's
/// `PR_SET_DUMPABLE` set to 0 (no core dumps either). A step gets the default back when it
/// execs its program. To be called first thing in `main`, after [`enable_launcher`]; Linux
/// only (elsewhere a no-op).
pub fn hide_from_steps() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_dumpable(false)
        .map_err(|errno| io::Error::from_raw_os_error(errno as i32))?;
    Ok(())
}

/// The launcher: `<parent pid> <program path> <argv0> <args...>`, with the step's environment
/// (the loader's variables hidden, see [`hide_from_loader`]). Returns only on failure.
#[cfg(target_os = "linux")]
fn launch(mut args: impl Iterator<Item = OsString>) -> String {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStringExt;

    use nix::sys::signal::{SigHandler, Signal};

    let Some(parent) = args
        .next()
        .and_then(|pid| pid.to_str()?.parse::<i32>().ok())
    else {
        return format!("{LAUNCH} is internal to PikoCI: it starts a step's process");
    };
    let argv: Result<Vec<CString>, _> = args.map(|arg| CString::new(arg.into_vec())).collect();
    let Some((program, argv)) = argv.ok().and_then(|mut argv| {
        let program = (!argv.is_empty()).then(|| argv.remove(0))?;
        (!argv.is_empty()).then_some((program, argv))
    }) else {
        return "the launcher was given no program to run".to_owned();
    };
    if privileged() {
        return format!("{LAUNCH} does not run in a set-user-ID or set-group-ID program");
    }
    if let Err(errno) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        return format!("cannot ask to die with the worker: {errno}");
    }
    if nix::unistd::getppid().as_raw() != parent {
        return "the worker that started this step is gone".to_owned();
    }
    // Rust programs ignore SIGPIPE, and an ignored signal stays ignored across exec: give the
    // step the default, as a fork would.
    // SAFETY: this process has one thread and installs no handler: setting the default action
    // races with nothing.
    #[allow(unsafe_code)]
    let reset = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    if let Err(errno) = reset {
        return format!("cannot restore SIGPIPE's default action: {errno}");
    }
    let env: Result<Vec<CString>, _> = std::env::vars_os()
        .map(|(name, value)| {
            let name = name.into_vec();
            let mut variable = match name.strip_prefix(HIDDEN.as_bytes()) {
                Some(step) => step.to_vec(),
                None => name,
            };
            variable.push(b'=');
            variable.extend(value.into_vec());
            CString::new(variable)
        })
        .collect();
    let Ok(env) = env else {
        return "the step's environment holds a NUL byte".to_owned();
    };
    // `execvpe` with a path runs a file without a `#!` line with /bin/sh, as a fork would.
    let Err(errno) = nix::unistd::execvpe(&program, &argv, &env);
    format!("cannot run {}: {errno}", program.to_string_lossy())
}

/// Has the kernel kill the child with SIGKILL when its parent (the spawning thread, so this
/// process) dies. If this process died before the request took effect, the child fails to
/// start instead of running unsupervised.
#[cfg(target_os = "linux")]
fn die_with_this_process(command: &mut Command) {
    let parent = nix::unistd::Pid::this();
    let set_up = move || -> io::Result<()> {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .map_err(|errno| io::Error::from_raw_os_error(errno as i32))?;
        if nix::unistd::getppid() != parent {
            return Err(io::Error::from_raw_os_error(
                nix::errno::Errno::ESRCH as i32,
            ));
        }
        Ok(())
    };
    // SAFETY: `pre_exec` runs the closure in the child between fork and exec, where only
    // async-signal-safe functions may be called (another thread may have held a lock, such as
    // the allocator's, at the fork). The closure makes two async-signal-safe system calls,
    // prctl(PR_SET_PDEATHSIG) and getppid, and builds `io::Error`s from an errno, which does
    // not allocate; it touches no lock and no shared state.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(set_up);
    }
}

/// Elsewhere there is no parent-death signal: a killed process leaves its steps running.
#[cfg(not(target_os = "linux"))]
fn die_with_this_process(_command: &mut Command) {}
