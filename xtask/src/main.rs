//! `cargo xtask`: PikoCI's developer tasks.
//!
//! `cargo xtask ci` is the one command that runs every check and test the project has; README's
//! test command and `.ci/run` both run it.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]
// A command-line tool: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod image;
mod it;

use std::process::Command;

use anyhow::{Context, bail};

fn usage() -> String {
    let suites: Vec<String> = it::SUITES
        .iter()
        .map(|s| format!("    {:<10}{}", s.name, s.description))
        .collect();
    format!(
        "usage: cargo xtask <task>

tasks:
  ci          every check and test: cargo fmt --check, cargo clippy (all targets, warnings are
              errors), cargo deny (licences, bans, sources), cargo test for the whole workspace,
              then every integration suite
  it [SUITE]  integration suites against real services (all of them without SUITE):
{}
  bench NAME  benchmarks, reported as figures (never asserted):
{}
  chaos [--quick]
              release binaries killed mid-build (workers, servers, brokers, a frozen worker) on
              every database and broker: no build lost, none run twice at once; --quick runs
              each scenario on one combination (part of ci), without it the whole matrix
  image       the container image pikoci:<version>, built with podman from the release binary
              and Debian's files on this machine (no registry), then started: the binary, git, a
              pipeline run inside, a server serving the host and running a build
  fuzz [TARGET] [--seconds N]
              cargo-fuzz targets (nightly): {}, each for N seconds
              (default 600), all of them without TARGET
  help        this text",
        suites.join("\n"),
        BENCHES
            .iter()
            .map(|(name, description, _)| format!("    {name:<10}{description}"))
            .collect::<Vec<_>>()
            .join("\n"),
        FUZZ_TARGETS.join(", ")
    )
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("it") => it::run(args.get(1).map(String::as_str)),
        Some("bench") => bench(args.get(1).map(String::as_str)),
        Some("fuzz") => fuzz(&args[1..]),
        Some("chaos") => it::server::chaos(&args[1..]),
        Some("image") => image::run(),
        Some("help" | "--help" | "-h") => {
            println!("{}", usage());
            Ok(())
        }
        Some(other) => bail!("unknown task \"{other}\"\n\n{}", usage()),
        None => bail!("no task given\n\n{}", usage()),
    }
}

/// Benchmarks: name, description, runner.
type Bench = (&'static str, &'static str, fn() -> anyhow::Result<()>);

const BENCHES: &[Bench] = &[
    (
        "store",
        "log chunk and version inserts, claim latency: mem, sqlite, postgres, mysql",
        it::store::bench,
    ),
    (
        "pubsub",
        "round-trip latency and throughput of 10k messages: mem, nats, rabbitmq, kafka (tansu)",
        it::pubsub::bench,
    ),
    (
        "engine",
        "engine overhead per no-op step: pikoci run vs the same processes from a shell script",
        bench_engine,
    ),
    (
        "server",
        "webhook to first step process (p50/p95/p99 of 500) and idle RSS: mem embedded, nats, \
         rabbitmq, kafka; worker kill to rerun; RSS with 100 pipelines of 50 jobs",
        it::server::bench,
    ),
    (
        "checks",
        "1,500 resources checked every 10 s for 10 minutes on postgres: check lag, server CPU, \
         database transactions per second",
        it::server::bench_checks,
    ),
    (
        "logs",
        "log ingest on postgres: 100 builds of 10,000 lines at once, chunks, bytes, row writes, \
         an SSE client reconnecting every 2 s",
        it::server::bench_logs,
    ),
    (
        "ui",
        "the web UI in headless Chromium: first paint, load and weight of the pipeline page of \
         200 jobs and of a build page with a 100,000-line log, and opening that log",
        it::ui::bench,
    ),
];

/// `cargo xtask bench engine`: needs no service, only the release `pikoci` binary it builds.
fn bench_engine() -> anyhow::Result<()> {
    cargo(&["bench", "--locked", "-p", "pikoci", "--bench", "engine"])
}

fn bench(name: Option<&str>) -> anyhow::Result<()> {
    let names: Vec<&str> = BENCHES.iter().map(|(n, _, _)| *n).collect();
    let Some(name) = name else {
        bail!(
            "no benchmark given; the benchmarks are: {}",
            names.join(", ")
        );
    };
    match BENCHES.iter().find(|(n, _, _)| *n == name) {
        Some((_, _, run)) => run(),
        None => bail!(
            "no benchmark named \"{name}\"; the benchmarks are: {}",
            names.join(", ")
        ),
    }
}

/// The targets of the `fuzz/` crate.
const FUZZ_TARGETS: &[&str] = &["parser", "evaluator", "condition"];

/// `cargo xtask fuzz [TARGET] [--seconds N]`: runs cargo-fuzz targets one after the other, each
/// on one core, with its learned corpus in `fuzz/corpus/TARGET` and the committed seeds (the
/// test pipelines and examples for the parser, `fuzz/seeds/TARGET` for the others).
fn fuzz(args: &[String]) -> anyhow::Result<()> {
    let mut targets: Vec<&str> = Vec::new();
    let mut seconds = 600u64;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().context("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .with_context(|| format!("--seconds needs a number, not \"{value}\""))?;
            }
            target if FUZZ_TARGETS.contains(&target) => targets.push(target),
            other => bail!(
                "unknown fuzz target \"{other}\"; the targets are: {}",
                FUZZ_TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask is not inside the repository")?
        .to_path_buf();
    for target in targets {
        let corpus = format!("corpus/{target}");
        std::fs::create_dir_all(root.join("fuzz").join(&corpus))
            .with_context(|| format!("failed to create fuzz/{corpus}"))?;
        let seeds: Vec<String> = match target {
            "parser" => vec![
                "../crates/pikoci-config/tests/data/valid".into(),
                "../crates/pikoci-config/tests/data/invalid".into(),
                "../examples".into(),
            ],
            _ => vec![format!("seeds/{target}")],
        };
        let max_time = format!("-max_total_time={seconds}");
        let mut fuzz_args = vec!["run", "nightly", "cargo", "fuzz", "run", target, &corpus];
        fuzz_args.extend(seeds.iter().map(String::as_str));
        // An input that takes over 10 s is a failure too: validation must never hang.
        fuzz_args.extend(["--", &max_time, "-max_len=65536", "-timeout=10"]);
        eprintln!("$ rustup {}", fuzz_args.join(" "));
        // cargo-fuzz builds with nightly into fuzz/target, never the workspace's target dir.
        let status = Command::new("rustup")
            .args(&fuzz_args)
            .current_dir(root.join("fuzz"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTUP_TOOLCHAIN")
            .status()
            .context("failed to run rustup: cargo fuzz needs rustup with a nightly toolchain")?;
        if !status.success() {
            bail!(
                "fuzz target \"{target}\" failed ({status}); the input is in fuzz/artifacts/{target} \
                 (install cargo-fuzz with `cargo install cargo-fuzz --locked` if it is missing)"
            );
        }
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    deny()?;
    oidc_provider()?;
    cargo(&["test", "--workspace", "--locked"])?;
    it::run(None)?;
    eprintln!("== chaos --quick");
    it::server::chaos(&["--quick".to_owned()])?;
    println!("xtask ci: every check passed");
    Ok(())
}

/// Installs the OpenID provider the single sign-on tests run (`tests/oidc`, npm's
/// `oidc-provider` at the version its lock file pins) when it is missing.
fn oidc_provider() -> anyhow::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc");
    if dir.join("node_modules/oidc-provider/package.json").exists() {
        return Ok(());
    }
    eprintln!("$ npm ci --prefix tests/oidc");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .status()
        .context(
            "failed to run npm, which installs the OpenID provider of the single sign-on tests: \
             install Node.js and npm (`apt-get install nodejs npm`; .ci/run does this)",
        )?;
    if !status.success() {
        bail!("npm ci --prefix tests/oidc failed ({status})");
    }
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

/// Runs cargo with `args`, failing when it fails.
pub(crate) fn cargo(args: &[&str]) -> anyhow::Result<()> {
    cargo_with_env(args, &[])
}

/// Runs cargo with `args` and extra environment variables.
pub(crate) fn cargo_with_env(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("failed to run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The line every crate root carries, so that clippy in `cargo xtask ci` fails on a
    /// dependency nobody uses (test builds are exempt: they share the dev-dependencies).
    const UNUSED_DEPENDENCIES_LINT: &str =
        "#![cfg_attr(not(test), warn(unused_crate_dependencies))]";

    #[test]
    fn every_crate_root_denies_unused_dependencies() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut roots = vec![root.join("xtask/src/main.rs")];
        for dir in ["crates", "bins"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                // A package with a library carries the line there: its binary, a thin `main`
                // calling the library, sees every dependency of the package and cannot.
                let package = entry.unwrap().path();
                let lib = package.join("src/lib.rs");
                roots.push(if lib.exists() {
                    lib
                } else {
                    package.join("src/main.rs")
                });
            }
        }
        assert!(roots.len() > 3);
        for path in roots {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.lines().any(|line| line == UNUSED_DEPENDENCIES_LINT),
                "{} lacks `{UNUSED_DEPENDENCIES_LINT}`",
                path.display()
            );
        }
    }
}
