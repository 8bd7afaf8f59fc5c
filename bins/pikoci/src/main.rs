//! `pikoci`: the one command-line tool of PikoCI (see the library for the commands).

use std::process::ExitCode;

fn main() -> ExitCode {
    pikoci_cli::main()
}
