//! `cargo xtask`: PikoCI's developer tasks.

// A command-line tool: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

//!
//! `cargo xtask ci` is the one command that runs every check and test the project has; README's
//! test command and `.ci/run` both run it.

use std::process::Command;

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  ci      every check and test: cargo fmt --check, cargo clippy (all targets, warnings are
          errors), cargo deny (licences, bans, sources), cargo test for the whole workspace
  help    this text";

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("ci") => ci(),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task \"{other}\"\n\n{USAGE}"),
        None => bail!("no task given\n\n{USAGE}"),
    }
}

fn ci() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    deny()?;
    cargo(&["test", "--workspace", "--locked"])?;
    println!("xtask ci: every check passed");
    Ok(())
}

/// cargo-deny's licence, ban and source checks (advisories need the network, which CI lacks).
fn deny() -> anyhow::Result<()> {
    let installed = Command::new("cargo")
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !installed {
        bail!(
            "cargo-deny is not installed: run `cargo install cargo-deny --locked` (.ci/run does this)"
        );
    }
    cargo(&["deny", "--locked", "check", "licenses", "bans", "sources"])
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .status()
        .with_context(|| format!("failed to run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}
