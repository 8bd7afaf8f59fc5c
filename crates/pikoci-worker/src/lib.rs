//! The worker library: the worker loop on top of the engine, and the path from a pipeline to
//! the secrets a piece of work needs ([`secrets`], shared with `pikoci run`).
//!
//! A [`Worker`] needs only the broker: it never talks to a server directly, and the server's
//! embedded worker is the same loop over the in-memory broker. Its contract with the servers
//! is [`pikoci_core::protocol`]:
//!
//! - **Inbox.** It reads `pikoci.worker.<id>` and `pikoci.broadcast`, both in its own group.
//!   Every delivery is acked once its handling started, also a malformed message, one of an
//!   unknown type or of a newer protocol version (those are logged and ignored). Deliveries are
//!   at least once: an assignment of work it runs, or ran recently, is ignored.
//! - **Builds.** An `assign` takes one of the `slots`; when none is free, or while draining, the
//!   worker answers `rejected` with the reason. Otherwise it answers `accepted` and runs the
//!   build: secrets resolved on this machine, then the engine, whose events become messages on
//!   `pikoci.events`, in order, through one outbox per build (see `outbox`): a step's logs are
//!   sent as `log` batches (every 250 ms or 64 KiB, `seq` from 0 per step) before its
//!   `step_finished`; `build_finished` is the build's last message. `cancel` stops the build the
//!   normal way (`on_cancel` and `ensure` hooks run, it ends `cancelled`); `abort` stops it and
//!   everything about it that was not published yet is dropped.
//! - **Checks.** An `assign_check` does **not** take a build slot (checks are short and must not
//!   starve behind long builds, nor builds behind checks), but at most `check_slots`
//!   ([`DEFAULT_CHECK_SLOTS`]) run at once, as its heartbeats tell the servers; more are
//!   rejected. A check answers `accepted`, then `check_finished` with the
//!   versions found and the end of its output (64 KiB at most).
//! - **Heartbeats and leases.** A heartbeat goes to `pikoci.heartbeats` at start and every
//!   `heartbeat_interval`, listing the work running. A server answers with `leases`: work in
//!   `lost` is aborted at once. A heartbeat the broker confirmed it keeps holds the leases of
//!   the builds it lists: servers take a lease back only once their probes show the heartbeats
//!   sent before it lapsed delivered, and after telling the worker to abort, so builds go on
//!   while no server answers (a server restarting, or none running). A check's lease needs a
//!   server's renewal. Work that no such confirmation held for `lease_timeout` minus one
//!   heartbeat interval, counted from when the heartbeat was sent (or from the acceptance),
//!   is aborted by the worker itself: the worker is cut off, a server may have handed the work
//!   to another worker by then, and it must never run twice at once.
//! - **Stopping.** [`WorkerStop::drain`]: take no more work (heartbeats say `draining`), return
//!   once the work running ended. [`WorkerStop::now`]: abort everything and return.
//! - **Disk.** The engine removes each build's and check's work directory, the secret lookup its
//!   own; resource caches stay in `<work_dir>/cache`.
//! - **Outboxes.** While the broker refuses or is slow, messages wait (retried with backoff,
//!   never dropped unless the work is aborted): up to [`OUTBOX_MEMORY_BYTES`] per piece of work
//!   in memory, the rest in a spill file under `<work_dir>/outbox`, read back in order. A spill
//!   file is removed when its work ends, and those a stopped or killed worker left are removed
//!   when a worker starts on that work directory (not those a live worker holds locked).
//!   Outboxes do not survive the process. A spill that fails (disk full) stops the build, which
//!   ends `errored` with the file and the error, its messages kept in memory meanwhile.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod config;
mod outbox;
pub mod secrets;
mod work;
mod worker;

pub use config::{
    DEFAULT_CHECK_SLOTS, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_LEASE_TIMEOUT, WorkerConfig,
    WorkerError, WorkerStop,
};
pub use outbox::OUTBOX_MEMORY_BYTES;
pub use worker::Worker;
