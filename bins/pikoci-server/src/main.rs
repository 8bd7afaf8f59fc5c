//! `pikoci-server`: the same as `pikoci server`, flags and all.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::process::ExitCode;

fn main() -> ExitCode {
    pikoci_cli::main_as("server")
}
