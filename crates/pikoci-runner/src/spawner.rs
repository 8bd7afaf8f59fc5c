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

use std::io;
use std::sync::{OnceLock, mpsc};

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// One process to start, and where to send it (or why it could not start).
struct Request {
    command: Command,
    /// The runtime whose reactor watches the child (the caller's).
    runtime: tokio::runtime::Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// Starts `command` from the spawning thread, set up to be killed when this process dies.
/// Must be called from within a tokio runtime.
pub(crate) async fn spawn(mut command: Command) -> io::Result<Child> {
    die_with_this_process(&mut command);
    let gone = || io::Error::other("the thread that starts step processes is not running");
    let spawner = spawner().ok_or_else(gone)?;
    let (reply, answer) = oneshot::channel();
    spawner
        .send(Request {
            command,
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
        mut command,
        runtime,
        reply,
    }) = requests.recv()
    {
        let started = {
            let _entered = runtime.enter();
            command.spawn()
        };
        // A caller that went away drops the child, which kills it (`kill_on_drop`).
        let _ = reply.send(started);
    }
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
