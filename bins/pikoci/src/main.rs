//! `pikoci`: the one command-line tool of PikoCI.

mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// PikoCI: a self-hosted CI/CD system whose pipelines are HCL files.
#[derive(Debug, Parser)]
#[command(name = "pikoci", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::Args),
}

/// Exit status for a pipeline that is invalid.
const EXIT_INVALID: u8 = 1;
/// Exit status for bad command-line input (a missing file, a malformed --var, ...).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Whether to colour output written to stderr.
fn stderr_color(no_color: bool) -> bool {
    use std::io::IsTerminal;
    !no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
