//! `pikoci`: the one command-line tool of PikoCI. The commands live in this library so that
//! the thin `pikoci-server` and `pikoci-worker` binaries run exactly the same code.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]
// Output goes through `output`, whose writes fail instead of panicking: the workspace lints
// against `print!` and `eprint!` hold here too.

mod backends;
mod config_file;
mod logging;
mod output;
mod remote;
mod render;
mod run;
mod server;
mod signals;
mod validate;
mod worker;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// PikoCI: a self-hosted CI/CD system whose pipelines are HCL files.
#[derive(Debug, Parser)]
#[command(name = "pikoci", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one job of a pipeline on this machine, without a server.
    ///
    /// A get runs the resource's check to find its newest version, then pulls it (or copies a
    /// directory given with --resource); put and notify steps are shown as skipped. Output is
    /// shown live, step by step, with a summary at the end. Exits 0 when the build succeeded
    /// (or ended with a warning), 1 when it failed or was cancelled (Ctrl-C), 2 on usage or
    /// pipeline errors, or when the output cannot be written.
    Run(run::Args),
    /// Check a pipeline file and print a summary, or every problem with its location.
    ///
    /// Checks syntax, variables, functions, references between blocks, names, durations and
    /// schedules, the way the server checks a pipeline before accepting it. Prints a summary and
    /// exits 0 when the file is valid; prints every problem with its location and exits 1 when
    /// it is not. Exits 2 on usage errors (a missing file, a malformed --var or vars file) and
    /// when the output cannot be written.
    Validate(validate::Args),
    /// Run the PikoCI server: the HTTP API, the scheduler, the dispatcher and, unless
    /// --run-worker=false, a worker in the same process.
    ///
    /// `pikoci server --pipeline-config pipeline.hcl` is a complete CI system in memory; add
    /// --db-system sqlite|postgres|mysql to keep state, and --pubsub-system
    /// nats|rabbitmq|kafka for standalone workers (`pikoci worker`) on other machines. SIGTERM
    /// or Ctrl-C stops gracefully, a second one at once.
    // Boxed: the server's flags are by far the largest variant.
    Server(Box<server::Args>),
    /// Run a standalone worker: it takes builds and checks from the broker (never connecting to
    /// a server) and runs them on this machine.
    ///
    /// SIGTERM or Ctrl-C stops taking work and lets running builds finish within
    /// --drain-timeout; a second one stops at once (the builds then run again elsewhere).
    Worker(worker::Args),
    /// Save a server to talk to, and make it the current target.
    ///
    /// Logs in as --username (the password is asked for, hidden) or with an API token read
    /// from standard input (--token-stdin), checks that you are in the team, then saves the
    /// address, the team and the token in $XDG_CONFIG_HOME/pikoci/targets.toml, readable by
    /// you only.
    Login(remote::targets::LoginArgs),
    /// End the session on the server and forget its token.
    Logout(remote::accounts::RemoteOnly),
    /// Who you are on the server: your user, your teams and roles.
    Whoami(remote::accounts::RemoteOnly),
    /// Change your password (asked for, hidden); your other sessions end.
    Password(remote::accounts::PasswordArgs),
    /// Your API tokens: list, create (personal, or for one team with a role), delete.
    Tokens(remote::accounts::TokensArgs),
    /// The server's users (global admins): list, create, set-admin, reset-password, delete.
    Users(remote::accounts::UsersArgs),
    /// Hash a password for `pikoci server --users NAME:HASH` (argon2id), without a server.
    UserPassword(remote::accounts::UserPasswordArgs),
    /// Make a global worker token for `pikoci server --worker-token` and `pikoci worker`,
    /// without a server; or print the server's (--show).
    ///
    /// Workers sign every message with their token, and the server drops what is not signed
    /// with a token it knows. A team's token (`pikoci teams worker-token`) makes a worker that
    /// serves that team only.
    WorkerToken(remote::worker_tokens::WorkerTokenArgs),
    /// List the saved servers, or make one the current target (--delete forgets it).
    Target(remote::targets::TargetArgs),
    /// A server's teams: list, create, delete, their members (members, set-member,
    /// remove-member) and their worker tokens (worker-token).
    Teams(remote::teams::TeamsArgs),
    /// A server's pipelines: list, get, set (showing what changes first), delete, rename,
    /// pause, unpause, expose, hide.
    Pipelines(remote::PipelinesArgs),
    /// A pipeline's jobs: list, trigger (--watch follows the build), pause, unpause.
    Jobs(remote::JobsArgs),
    /// Builds: list, get, watch (live, exits with the build's status), logs, report,
    /// mark-warning, cancel, retry, approve, reject.
    Builds(remote::BuildsArgs),
    /// A pipeline's resources: list, check, versions, add-version, pin, unpin, webhook-url.
    Resources(remote::ResourcesArgs),
    /// A team's trigger streams: fire an event (its `trigger` resources get a new version),
    /// list the events.
    Triggers(remote::TriggersArgs),
    /// Entries of the server's secret store `pikoci`, a team's or a pipeline's (--pipeline):
    /// list (names and kinds), set (a secret's value asked for, hidden, or read from --stdin;
    /// never from the command line), delete.
    Secrets(remote::secrets::SecretsArgs),
    /// The server's workers: list, prune the lost ones, delete one.
    Workers(remote::WorkersArgs),
    /// A team's audit log, newest first: who set, paused, deleted or triggered what, who
    /// changed members, secrets and the worker token. Filters by user, action, pipeline and
    /// time.
    Audit(remote::audit::AuditArgs),
    /// Single sign-on: identity providers (list, set, delete; global admins), whether
    /// passwords are accepted (local-login on|off), and your linked identities (identities,
    /// unlink).
    Sso(remote::sso::SsoArgs),
    /// Save the server's whole state (teams, pipelines, builds and their logs, versions,
    /// secrets sealed as they are stored) as a SQLite file: a backup, or a move to another
    /// server or database with `pikoci import`.
    Export(remote::state::ExportArgs),
    /// Replace a server's whole state by a file `pikoci export` wrote. The server's secret key
    /// must be the one of the server that exported it, for the secrets to open.
    Import(remote::state::ImportArgs),
    /// Print a completion script for a shell: `pikoci completions bash > ~/.local/share/bash-completion/completions/pikoci`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Exit status for a pipeline that is invalid, or a build that failed.
const EXIT_INVALID: u8 = 1;
/// Exit status for bad command-line input (a missing file, a malformed --var, ...), and for
/// output that cannot be written.
const EXIT_USAGE: u8 = 2;

/// Runs `pikoci` with the process's arguments.
pub fn main() -> ExitCode {
    set_up_process();
    main_with(std::env::args_os().collect())
}

/// What every command does first: steps start through this binary (when this process was
/// started as a step's launcher, it becomes the step here), and steps cannot read this
/// process's memory or environment, which hold credentials.
fn set_up_process() {
    pikoci_runner::enable_launcher();
    if let Err(err) = pikoci_runner::hide_from_steps() {
        let _ = output::stderr(&format!(
            "warning: steps may read this process's environment and memory: {err}\n"
        ));
    }
}

/// Runs `pikoci <subcommand>` with the process's other arguments: the thin `pikoci-server`
/// and `pikoci-worker` binaries.
pub fn main_as(subcommand: &str) -> ExitCode {
    set_up_process();
    let mut args: Vec<OsString> = std::env::args_os().collect();
    args.insert(1.min(args.len()), subcommand.into());
    main_with(args)
}

fn main_with(args: Vec<OsString>) -> ExitCode {
    let cli = match parse(&args) {
        Ok(Ok(cli)) => cli,
        Ok(Err(err)) => return usage_message(&err),
        Err(err) => {
            let _ = output::stderr(&format!("error: {err:#}\n"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Server(args) => server::run(*args),
        Command::Worker(args) => worker::run(args),
        Command::Login(args) => return remote::targets::login(args),
        Command::Target(args) => return remote::targets::target(args),
        Command::Logout(args) => return remote::accounts::logout(args),
        Command::Whoami(args) => return remote::accounts::whoami(args),
        Command::Password(args) => return remote::accounts::password(args),
        Command::Tokens(args) => return remote::accounts::tokens(args),
        Command::Users(args) => return remote::accounts::users(args),
        Command::UserPassword(args) => return remote::accounts::user_password(args),
        Command::WorkerToken(args) => return remote::worker_tokens::worker_token(args),
        Command::Teams(args) => return remote::teams::run(args),
        Command::Pipelines(args) => return remote::pipelines::run(args),
        Command::Jobs(args) => return remote::builds::run_jobs(args),
        Command::Builds(args) => return remote::builds::run_builds(args),
        Command::Resources(args) => return remote::resources::run(args),
        Command::Triggers(args) => return remote::resources::run_triggers(args),
        Command::Workers(args) => return remote::resources::run_workers(args),
        Command::Audit(args) => return remote::audit::run(args),
        Command::Sso(args) => return remote::sso::run(args),
        Command::Secrets(args) => return remote::secrets::run(args),
        Command::Export(args) => return remote::state::export(args),
        Command::Import(args) => return remote::state::import(args),
        Command::Completions { shell } => completions(shell),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // Nowhere left to report a failed write of the error itself: the status says it.
            let _ = output::stderr(&format!("error: {err:#}\n"));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Writes the completion script of `shell` to standard output.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pikoci", &mut script);
    output::stdout(&String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}

/// Parses the command line, with the `-c` config file of `server` and `worker` as defaults.
fn parse(args: &[OsString]) -> anyhow::Result<Result<Cli, clap::Error>> {
    let mut command = Cli::command();
    for subcommand in ["server", "worker"] {
        if let Some(path) = config_file::config_path(args, subcommand) {
            command = config_file::apply(command, subcommand, &path)?;
        }
    }
    Ok(command
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches)))
}

/// Prints help, the version or a usage error the way clap does, but a failed write is an
/// error (exit 2), not a silent success.
fn usage_message(err: &clap::Error) -> ExitCode {
    if err.print().is_err() {
        return ExitCode::from(EXIT_USAGE);
    }
    match u8::try_from(err.exit_code()) {
        Ok(code) => ExitCode::from(code),
        Err(_) => ExitCode::from(EXIT_USAGE),
    }
}

/// Whether to colour output written to stdout.
fn stdout_color(no_color: bool) -> bool {
    use std::io::IsTerminal;
    color_allowed(no_color) && std::io::stdout().is_terminal()
}

/// Whether to colour output written to stderr.
fn stderr_color(no_color: bool) -> bool {
    use std::io::IsTerminal;
    color_allowed(no_color) && std::io::stderr().is_terminal()
}

/// Neither `--no-color` nor a non-empty `NO_COLOR` asks for plain output.
fn color_allowed(no_color: bool) -> bool {
    !no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own checks of the command line (unique names, valid defaults), which it makes
    /// only when a command is parsed in a debug build: every subcommand here at once.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
