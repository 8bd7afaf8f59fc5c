//! End-to-end tests of writing output: a closed pipe (`pikoci validate f | head -1`) or a full
//! disk (`2>/dev/full`) makes `pikoci` exit 2 with an error, never panic (exit 101) or claim
//! success.

mod support;

use std::fs::File;
use std::process::{Command, Output, Stdio};

use support::{repo, text, write};

/// Which of the child's streams is broken, and how.
#[derive(Debug, Clone, Copy)]
enum Broken {
    StdoutClosed,
    StdoutFull,
    StderrClosed,
    StderrFull,
}

const ALL: [Broken; 4] = [
    Broken::StdoutClosed,
    Broken::StdoutFull,
    Broken::StderrClosed,
    Broken::StderrFull,
];

/// Runs `command` with one stream broken; the other one is captured.
fn run_broken(mut command: Command, broken: Broken) -> Output {
    // The read end is closed before the child starts, so its first write fails for sure.
    let closed = || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        Stdio::from(writer)
    };
    let full = || Stdio::from(File::create("/dev/full").unwrap());
    match broken {
        Broken::StdoutClosed => command.stdout(closed()).stderr(Stdio::piped()),
        Broken::StdoutFull => command.stdout(full()).stderr(Stdio::piped()),
        Broken::StderrClosed => command.stderr(closed()).stdout(Stdio::piped()),
        Broken::StderrFull => command.stderr(full()).stdout(Stdio::piped()),
    };
    command.output().expect("the pikoci binary runs")
}

/// `args` write to the stream `broken` breaks: the command must fail cleanly.
fn assert_fails_cleanly(args: &[&str], broken: Broken) {
    let mut command = support::pikoci();
    command.args(args);
    let out = run_broken(command, broken);
    let captured = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} with {broken:?}: {captured}"
    );
    assert!(
        !captured.contains("panicked"),
        "{args:?} with {broken:?}: {captured}"
    );
}

#[test]
fn validate_fails_cleanly_when_its_summary_cannot_be_written() {
    let hello = repo("examples/hello.hcl");
    assert_fails_cleanly(&["validate", &hello], Broken::StdoutClosed);
    assert_fails_cleanly(&["validate", &hello], Broken::StdoutFull);
}

#[test]
fn validate_fails_cleanly_when_its_diagnostics_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write(dir.path(), "broken.hcl", "job \"a\" {\n  tsk \"t\" {}\n}\n");
    assert_fails_cleanly(&["validate", &broken], Broken::StderrClosed);
    assert_fails_cleanly(&["validate", &broken], Broken::StderrFull);
}

#[test]
fn help_and_version_fail_cleanly_when_they_cannot_be_written() {
    for args in [&["--help"][..], &["run", "--help"], &["--version"]] {
        assert_fails_cleanly(args, Broken::StdoutClosed);
        assert_fails_cleanly(args, Broken::StdoutFull);
    }
    assert_fails_cleanly(&["no-such-command"], Broken::StderrFull);
}

#[test]
fn run_fails_cleanly_when_its_output_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write(
        dir.path(),
        "p.hcl",
        "job \"a\" {\n  task \"t\" {\n    run \"shell\" { cmd = \"echo hi\" }\n  }\n}\n",
    );
    let work = dir.path().join("work").display().to_string();
    for broken in [Broken::StdoutClosed, Broken::StdoutFull] {
        assert_fails_cleanly(
            &["run", "-p", &pipeline, "-j", "a", "--work-dir", &work],
            broken,
        );
    }
    // An error (here: no --job) that cannot be written still exits 2.
    for broken in ALL {
        assert_fails_cleanly(&["run", "-p", &pipeline, "--work-dir", &work], broken);
    }
}
