//! What killed workers left running, found and stopped when a worker starts on the same
//! machine.
//!
//! `PR_SET_PDEATHSIG` (see `spawner`) kills a step's main process with its worker, but not
//! what the step started besides: processes left in its group, daemons that made a session of
//! their own (`setsid`, double forks), and containers (the container engine runs them). A
//! runner that belongs to a worker marks all of it with the worker's id: every process it
//! starts gets [`WORKER_MARKER`]`=<id>` in its environment (which its children inherit), every
//! container `docker run` starts gets the label `pikoci.worker=<id>`.
//!
//! Which workers are dead is told by their lock files (see `worker_lock`): every worker running
//! on this machine holds the lock on `pikoci-worker-<id>.lock` in the temporary directory, and
//! the kernel drops it when the worker dies. When a worker starts, [`reap`] takes the locks
//! nobody holds in that directory, whatever their names: those workers are dead, and so is an
//! earlier run of the starting worker's own name. It kills the processes marked with one of
//! these ids (their whole process group when the group is a step's own), removes the containers
//! labelled with one, then removes the dead workers' lock files while still holding their locks.
//!
//! What is left alone: the processes and containers of live workers (their locks are held),
//! and those marked with an id that has no lock file in the directory (a worker that used
//! another temporary directory, or ran on another machine sharing the container engine); this
//! process, its ancestors and its descendants (its own steps); the processes of other users
//! (their environment cannot be read); processes that dropped the marker from their
//! environment; and zombies (already dead).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use crate::container;
use crate::worker_lock;

/// The environment variable naming the worker that started a process.
pub const WORKER_MARKER: &str = "PIKOCI_WORKER_ID";

/// How many times the processes are scanned and killed: a process forking while its group is
/// killed one member at a time may leave a child the next scan finds.
const ROUNDS: usize = 10;

/// The pause between two rounds, for killed processes to become zombies.
const ROUND_PAUSE: Duration = Duration::from_millis(20);

/// What [`ProcessRunner::reap_leftovers`](crate::ProcessRunner::reap_leftovers) stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// The other workers found dead (their lock files nobody held), whose leftovers were
    /// looked for with the worker's own and whose lock files were then removed; sorted.
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

/// Kills the processes and removes the containers marked with `worker` or with a dead worker
/// whose lock file is in `lock_dir`, except this process, its ancestors and its descendants;
/// then removes the dead workers' lock files.
pub(crate) async fn reap(worker: &str, lock_dir: &Path) -> Reaped {
    let (own, dir) = (worker.to_owned(), lock_dir.to_path_buf());
    // Held until their files are removed, after the reaping: a worker of one of these names
    // that starts meanwhile waits for it.
    let (dead, mut problems) =
        tokio::task::spawn_blocking(move || worker_lock::take_dead_workers(&dir, &own))
            .await
            .unwrap_or_default();
    let dead_workers: Vec<String> = dead.iter().map(|lock| lock.id().to_owned()).collect();
    let mut ids: BTreeSet<String> = dead_workers.iter().cloned().collect();
    ids.insert(worker.to_owned());
    // Containers first: their engine's helpers started from a step (podman's conmon) carry the
    // marker too, and end by themselves once their container is removed.
    let (containers, engine_problems) = container::remove_of_workers(&ids).await;
    problems.extend(engine_problems);
    let (processes, groups) = tokio::task::spawn_blocking(move || {
        let killed = kill_marked(&ids);
        for lock in dead {
            lock.remove();
        }
        killed
    })
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

/// Kills the processes marked with one of `workers`, round after round until a scan finds none
/// left; returns the pids killed and the groups killed whole.
#[cfg(target_os = "linux")]
fn kill_marked(workers: &BTreeSet<String>) -> (Vec<u32>, Vec<u32>) {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::Pid;

    let this = std::process::id() as i32;
    let own_group = nix::unistd::getpgrp().as_raw();
    let mut killed = BTreeSet::new();
    let mut groups = BTreeSet::new();
    for _ in 0..ROUNDS {
        let processes = scan(workers);
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
fn kill_marked(_workers: &BTreeSet<String>) -> (Vec<u32>, Vec<u32>) {
    (Vec::new(), Vec::new())
}

/// Every live process of `/proc` (zombies left out), with whether its environment marks it as
/// started by one of `workers`. Processes that vanish while being read, or whose environment
/// this user may not read, count as unmarked.
#[cfg(target_os = "linux")]
fn scan(workers: &BTreeSet<String>) -> Vec<Process> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|item| item.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (parent, group) = parse_stat(&stat)?;
            let marked = std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| marked_by(&environ, workers));
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

/// Whether a `/proc/<pid>/environ` (entries separated by NUL) sets [`WORKER_MARKER`] to one of
/// `workers`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn marked_by(environ: &[u8], workers: &BTreeSet<String>) -> bool {
    environ
        .split(|byte| *byte == 0)
        .filter_map(marker_value)
        .any(|worker| workers.contains(worker))
}

/// The value of an environment entry (`NAME=value`) that sets [`WORKER_MARKER`].
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn marker_value(entry: &[u8]) -> Option<&str> {
    let value = entry
        .strip_prefix(WORKER_MARKER.as_bytes())?
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
    fn the_marker_must_name_one_of_the_workers_whole() {
        let workers = BTreeSet::from(["box-1".to_owned(), "dead-2".to_owned()]);
        let marked = |environ: &[u8]| marked_by(environ, &workers);
        assert!(marked(b"PATH=/bin\0PIKOCI_WORKER_ID=box-1\0HOME=/root\0"));
        assert!(marked(b"PIKOCI_WORKER_ID=dead-2"));
        assert!(!marked(b"PIKOCI_WORKER_ID=box\0"));
        assert!(!marked(b"PIKOCI_WORKER_ID=box-10\0"));
        assert!(!marked(b"PIKOCI_WORKER_ID=\0"));
        assert!(!marked(b"PIKOCI_WORKER_IDX=box-1\0"));
        assert!(!marked(b"X_PIKOCI_WORKER_ID=box-1\0"));
        assert!(!marked(b"PIKOCI_WORKER_ID=other\0HOME=box-1\0"));
        assert!(!marked(b"PIKOCI_WORKER_ID=box-\xff\0"));
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
