//! The files of `deploy/` that `docs/deploy.md` tells people to install: the example settings
//! name only flags the commands have, and systemd accepts the units.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::pikoci;

/// A file of the repository's `deploy/systemd/`.
fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/systemd")
        .join(name)
}

#[test]
fn the_example_settings_name_only_flags_of_their_command() {
    for (command, file) in [("server", "server.toml"), ("worker", "worker.toml")] {
        let path = deploy_file(file);
        let output = pikoci()
            .args([command, "--config"])
            .arg(&path)
            .arg("--help")
            .output()
            .expect("pikoci runs");
        assert!(
            output.status.success(),
            "pikoci {command} refuses {}:\n{}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn systemd_accepts_the_units() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The units name the installed binary; verify checks that their command exists.
    let binary = env!("CARGO_BIN_EXE_pikoci");
    for unit in ["pikoci.service", "pikoci-worker@.service"] {
        let text = std::fs::read_to_string(deploy_file(unit)).expect("the unit");
        assert!(
            text.contains("ExecStart=/usr/local/bin/pikoci "),
            "{unit} does not start /usr/local/bin/pikoci"
        );
        std::fs::write(
            dir.path().join(unit),
            text.replace("/usr/local/bin/pikoci", binary),
        )
        .expect("a copy of the unit");
    }
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("pikoci.service"))
        .arg(dir.path().join("pikoci-worker@ci-1.service"))
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|err| {
            panic!("systemd-analyze (Debian's systemd package) is needed to check the units: {err}")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("pikoci"),
        "systemd-analyze verify finds fault with the units:\n{stderr}"
    );
}
