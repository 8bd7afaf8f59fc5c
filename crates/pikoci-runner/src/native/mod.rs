//! Resource checks the worker does itself instead of running the type's `check` command
//! (implementations of the engine's [`NativeChecks`](pikoci_core::engine::NativeChecks) port).
//!
//! [`GitChecks`]: the builtin `git` type's provider API checks (GitHub, GitLab,
//! Gitea/Forgejo), so that a worker needs only `git` on its machine (decision D13).

mod git;

pub use git::GitChecks;
