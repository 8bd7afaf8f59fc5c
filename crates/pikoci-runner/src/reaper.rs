//! What killed workers left running, found and stopped when a worker starts on the same
//! machine.
//!
//! `PR_SET_PDEATHSIG` (see `spawner`) kills a step's main process with its worker, but not
//! what the step started besides: processes left in its group, daemons that made a session of
//! their own (`setsid`, double forks), and containers (the container engine runs them). A
//! runner that belongs to a worker marks all of it with the worker's run: every process it
//! starts gets [`RUN_MARKER`]`=<run token>` (and [`WORKER_MARKER`]`=<id>`) in its environment,
//! which its children inherit, every container `docker run` starts gets the labels
//! `pikoci.worker-run=<run token>` and `pikoci.worker=<id>`.
//!
//! Which runs are dead is told by the workers' lock files (see `worker_lock`): every worker
//! running on this machine holds the lock on `pikoci-worker-<id>.lock` in the temporary
//! directory, with its run token in it, and the kernel drops the lock when the worker dies.
//! When a worker starts, [`reap`] takes the lock files of this user that nobody holds in that
//! directory, whatever their names, reads their run tokens and removes them; the token an
//! earlier run of the starting worker's own name left in its file counts too. It removes the
//! containers labelled with one of these runs, then kills the processes marked with one
//! (their whole process group when the group is a step's own).
//!
//! What is left alone: everything of a live worker, whose run token is its own and in no
//! file nobody holds (a worker of the same name with another temporary directory included);
//! what dead runs with no lock file here left; this process, its ancestors and its
//! descendants (its own steps); the processes of other users (their environment cannot be
//! read); processes that dropped the marker from their environment; and zombies (already
//! dead).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use crate::container;
use crate::worker_lock::{self, WorkerLock};

/// The environment variable naming the worker that started a process.
pub const WORKER_MARKER: &str = "PIKOCI_WORKER_ID";

/// The environment variable holding the token of the worker run that started a process: what
/// the reaper goes by.
pub const RUN_MARKER: &str = "PIKOCI_WORKER_RUN";

/// How many times the processes are scanned and killed: a process forking while its group is
/// killed one member at a time may leave a child the next scan finds.
const ROUNDS: usize = 10;

/// The pause between two rounds, for killed processes to become zombies.
const ROUND_PAUSE: Duration = Duration::from_millis(20);

/// What [`ProcessRunner::reap_leftovers`](crate::ProcessRunner::reap_leftovers) stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// The other workers found dead (their lock files nobody held, now removed), whose
    /// leftovers were looked for with those of the worker's own earlier run; sorted.
    pub dead_workers: Vec<String>,
    /// The marked processes killed (pids), alone or with their group.
    pub processes: Vec<u32>,
    /// The process groups killed whole (their ids).
    pub groups: Vec<u32>,
    /// The labelled containers killed and removed (their ids).
    pub containers: Vec<String>,
    /// What could not be done (a container engine that failed, a lock directory that cannot
    /// be read), to log.
    pub problems: Vec<String>,
}

impl Reaped {
    /// Whether nothing was stopped (dead workers that left nothing running do not count).
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty() && self.groups.is_empty() && self.containers.is_empty()
    }
}

/// Removes the containers and kills the processes marked with the run of a dead worker whose
/// lock file is next to `lock`'s, or with the earlier run of `lock`'s own name, except this
/// process, its ancestors and its descendants. The dead workers' lock files are removed.
pub(crate) async fn reap(lock: &WorkerLock) -> Reaped {
    let own = lock.id().to_owned();
    let dir = lock
        .path()
        .parent()
        .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
    let (dead, mut problems) = match lock.owner() {
        Ok(owner) => {
            tokio::task::spawn_blocking(move || worker_lock::take_dead_workers(&dir, &own, owner))
                .await
                .unwrap_or_default()
        }
        Err(error) => (
            Vec::new(),
            vec![format!(
                "cannot read the owner of {}: {error}",
                lock.path().display()
            )],
        ),
    };
    let dead_workers: Vec<String> = dead.iter().map(|worker| worker.id.clone()).collect();
    let mut runs: BTreeSet<String> = dead.into_iter().filter_map(|worker| worker.run).collect();
    runs.extend(lock.previous_run().map(str::to_owned));
    if runs.is_empty() {
        return Reaped {
            dead_workers,
            problems,
            ..Reaped::default()
        };
    }
    // Containers first: their engine's helpers started from a step (podman's conmon) carry the
    // marker too, and end by themselves once their container is removed.
    let (containers, engine_problems) = container::remove_of_runs(&runs).await;
    problems.extend(engine_problems);
    let (processes, groups) = tokio::task::spawn_blocking(move || kill_marked(&runs))
        .await
        .unwrap_or_default();
    Reaped {
        dead_workers,
        processes,
        groups,
        containers,
        problems,
    }
}

/// One process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Process {
    pid: i32,
    parent: i32,
    group: i32,
    /// Its environment holds the marker.
    marked: bool,
}

/// What one round decides to kill.
#[derive(Debug, Default, PartialEq, Eq)]
struct Kills {
    /// Groups killed whole.
    groups: BTreeSet<i32>,
    /// Marked processes killed alone (their group also holds processes that are not theirs).
    alone: BTreeSet<i32>,
}

/// Kills the processes marked with one of `runs`, round after round until a scan finds none
/// left; returns the pids killed and the groups killed whole.
#[cfg(target_os = "linux")]
fn kill_marked(runs: &BTreeSet<String>) -> (Vec<u32>, Vec<u32>) {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::Pid;

    let this = std::process::id() as i32;
    let own_group = nix::unistd::getpgrp().as_raw();
    let mut killed = BTreeSet::new();
    let mut groups = BTreeSet::new();
    for _ in 0..ROUNDS {
        let processes = scan(runs);
        let kills = choose(&processes, this, own_group);
        let hit: Vec<i32> = processes
            .iter()
            .filter(|p| {
                p.marked && (kills.alone.contains(&p.pid) || kills.groups.contains(&p.group))
            })
            .map(|p| p.pid)
            .collect();
        // Nothing marked left, or only processes already killed that are still dying.
        if hit.iter().all(|pid| killed.contains(pid)) {
            break;
        }
        for group in &kills.groups {
            // A group gone since the scan is no error.
            let _ = killpg(Pid::from_raw(*group), Signal::SIGKILL);
        }
        for pid in &kills.alone {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        killed.extend(hit);
        groups.extend(kills.groups);
        std::thread::sleep(ROUND_PAUSE);
    }
    let pids = |set: BTreeSet<i32>| {
        set.into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .collect()
    };
    (pids(killed), pids(groups))
}

/// Elsewhere there is no `/proc` to scan: containers are still removed.
#[cfg(not(target_os = "linux"))]
fn kill_marked(_runs: &BTreeSet<String>) -> (Vec<u32>, Vec<u32>) {
    (Vec::new(), Vec::new())
}

/// Every live process of `/proc` (zombies left out), with whether its environment marks it as
/// started by one of `runs`. Processes that vanish while being read, or whose environment
/// this user may not read, count as unmarked.
#[cfg(target_os = "linux")]
fn scan(runs: &BTreeSet<String>) -> Vec<Process> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|item| item.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (parent, group) = parse_stat(&stat)?;
            let marked = std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| marked_by(&environ, runs));
            Some(Process {
                pid,
                parent,
                group,
                marked,
            })
        })
        .collect()
}

/// The parent and the process group of a `/proc/<pid>/stat` line; `None` for a zombie (or a
/// line that cannot be read).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_stat(stat: &str) -> Option<(i32, i32)> {
    // The command name, in parentheses, may hold spaces and parentheses: the fields that
    // follow start after the last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some((parent, group))
}

/// Whether a `/proc/<pid>/environ` (entries separated by NUL) sets [`RUN_MARKER`] to one of
/// `runs`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn marked_by(environ: &[u8], runs: &BTreeSet<String>) -> bool {
    environ
        .split(|byte| *byte == 0)
        .filter_map(marker_value)
        .any(|run| runs.contains(run))
}

/// The value of an environment entry (`NAME=value`) that sets [`RUN_MARKER`].
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn marker_value(entry: &[u8]) -> Option<&str> {
    let value = entry
        .strip_prefix(RUN_MARKER.as_bytes())?
        .strip_prefix(b"=")?;
    std::str::from_utf8(value).ok()
}

/// What to kill among `processes`: the marked ones that are neither `this` process, nor one of
/// its ancestors, nor one of its descendants. A marked process's group is killed whole when
/// it is not `own_group`, holds no spared process, and either its leader is marked (the group
/// of a step, or a session a step made) or, its leader gone, holds only marked processes;
/// otherwise the marked process is killed alone.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn choose(processes: &[Process], this: i32, own_group: i32) -> Kills {
    let by_pid: HashMap<i32, &Process> = processes.iter().map(|p| (p.pid, p)).collect();
    let ancestors = {
        let mut ancestors = BTreeSet::new();
        let mut at = by_pid.get(&this).map(|p| p.parent);
        while let Some(pid) = at.filter(|pid| *pid > 0 && ancestors.insert(*pid)) {
            at = by_pid.get(&pid).map(|p| p.parent);
        }
        ancestors
    };
    let descends_from_this = |process: &Process| {
        let mut seen = BTreeSet::new();
        let mut at = process.parent;
        while at > 0 && seen.insert(at) {
            if at == this {
                return true;
            }
            at = by_pid.get(&at).map_or(0, |p| p.parent);
        }
        false
    };
    let spared = |p: &Process| p.pid == this || ancestors.contains(&p.pid) || descends_from_this(p);
    let targets: Vec<&Process> = processes
        .iter()
        .filter(|p| p.marked && !spared(p))
        .collect();
    let mut kills = Kills::default();
    for target in targets {
        let group = target.group;
        let members = || processes.iter().filter(move |p| p.group == group);
        let whole = group != own_group
            && group > 0
            && !members().any(&spared)
            && match by_pid.get(&group) {
                Some(leader) => leader.marked,
                None => members().all(|p| p.marked),
            };
        if whole {
            kills.groups.insert(group);
        } else {
            kills.alone.insert(target.pid);
        }
    }
    kills
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: i32, parent: i32, group: i32, marked: bool) -> Process {
        Process {
            pid,
            parent,
            group,
            marked,
        }
    }

    #[test]
    fn the_marker_must_name_one_of_the_runs_whole() {
        let runs = BTreeSet::from(["run-1".to_owned(), "run-2".to_owned()]);
        let marked = |environ: &[u8]| marked_by(environ, &runs);
        assert!(marked(b"PATH=/bin\0PIKOCI_WORKER_RUN=run-1\0HOME=/root\0"));
        assert!(marked(b"PIKOCI_WORKER_RUN=run-2"));
        assert!(!marked(b"PIKOCI_WORKER_RUN=run\0"));
        assert!(!marked(b"PIKOCI_WORKER_RUN=run-10\0"));
        assert!(!marked(b"PIKOCI_WORKER_RUN=\0"));
        assert!(!marked(b"PIKOCI_WORKER_RUNX=run-1\0"));
        assert!(!marked(b"X_PIKOCI_WORKER_RUN=run-1\0"));
        // The worker's name is no mark: only its run is.
        assert!(!marked(b"PIKOCI_WORKER_ID=run-1\0"));
        assert!(!marked(b"PIKOCI_WORKER_RUN=other\0HOME=run-1\0"));
        assert!(!marked(b"PIKOCI_WORKER_RUN=run-\xff\0"));
        assert!(!marked(b""));
    }

    #[test]
    fn stat_lines_give_parent_and_group_and_zombies_nothing() {
        assert_eq!(
            parse_stat("42 (sleep) S 1 40 40 0 -1 4194560 95 0"),
            Some((1, 40))
        );
        assert_eq!(
            parse_stat("43 (a) b (c)) R 7 43 43 0"),
            Some((7, 43)),
            "a name with spaces and parentheses"
        );
        assert_eq!(parse_stat("44 (sh) Z 1 44 44 0"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    /// This process is 100 (group 100), started by 10; 200 is its step (group 200).
    fn family() -> Vec<Process> {
        vec![
            process(1, 0, 1, false),
            process(10, 1, 10, true),
            process(100, 10, 100, true),
            process(200, 100, 200, true),
        ]
    }

    #[test]
    fn this_process_its_ancestors_and_its_steps_are_spared() {
        assert_eq!(choose(&family(), 100, 100), Kills::default());
    }

    #[test]
    fn a_step_group_or_session_with_a_marked_leader_is_killed_whole() {
        let mut processes = family();
        processes.extend([
            // A step group of the earlier incarnation: the leader was killed by the
            // parent-death signal, its background child runs on, with an unmarked child.
            process(300, 1, 300, true),
            process(301, 300, 300, false),
            // A daemon's own session.
            process(400, 1, 400, true),
            // Unmarked, or marked by another worker: left alone.
            process(500, 1, 500, false),
        ]);
        let kills = choose(&processes, 100, 100);
        assert_eq!(kills.groups, BTreeSet::from([300, 400]));
        assert!(kills.alone.is_empty());
    }

    #[test]
    fn a_group_that_is_not_the_steps_loses_only_its_marked_processes() {
        let mut processes = family();
        processes.extend([
            // Joined the group of an unmarked process.
            process(600, 1, 600, false),
            process(601, 1, 600, true),
            // In this process's own group.
            process(700, 1, 100, true),
            // Leader gone, an unmarked member: only the marked one goes.
            process(801, 1, 800, true),
            process(802, 1, 800, false),
            // Leader gone, every member marked: the whole group.
            process(901, 1, 900, true),
            process(902, 901, 900, true),
        ]);
        let kills = choose(&processes, 100, 100);
        assert_eq!(kills.groups, BTreeSet::from([900]));
        assert_eq!(kills.alone, BTreeSet::from([601, 700, 801]));
    }

    #[test]
    fn a_group_holding_a_step_of_this_process_is_not_killed_whole() {
        let mut processes = family();
        // A leftover that joined the group of one of this process's steps.
        processes.push(process(1000, 1, 200, true));
        let kills = choose(&processes, 100, 100);
        assert!(kills.groups.is_empty());
        assert_eq!(kills.alone, BTreeSet::from([1000]));
    }
}
