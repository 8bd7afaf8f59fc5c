//! Asking for a secret (a password, a secret's value): hidden on a terminal, or one line of
//! standard input for scripts. Never from a command-line argument, which other users of the
//! machine can see and the shell keeps in its history.

use std::io::IsTerminal as _;

use anyhow::Context;
use pikoci_core::secrets::Secret;

use super::UsageError;

/// A secret: one line of standard input with `from_stdin`, else asked for on the terminal
/// without echo. `flag` is the flag that reads standard input, named when there is no terminal.
pub(crate) fn secret(prompt: &str, from_stdin: bool, flag: &str) -> anyhow::Result<Secret> {
    let text = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).context("cannot read from the terminal")?
    } else {
        return Err(UsageError(format!(
            "no terminal to ask on: pass {flag} and give it on standard input"
        ))
        .into());
    };
    if text.is_empty() {
        return Err(UsageError("nothing was given".to_owned()).into());
    }
    Ok(Secret::new(text))
}

/// A value that may span lines (a key file): all of standard input with `from_stdin`, less
/// one final line break; else asked for on the terminal (one line).
pub(crate) fn value(prompt: &str, from_stdin: bool, flag: &str) -> anyhow::Result<Secret> {
    if !from_stdin {
        return secret(prompt, false, flag);
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .context("cannot read standard input")?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if text.is_empty() {
        return Err(UsageError("standard input was empty".to_owned()).into());
    }
    Ok(Secret::new(text))
}

/// A new password, asked twice on a terminal (once from standard input).
pub(crate) fn new_password(from_stdin: bool, flag: &str) -> anyhow::Result<Secret> {
    let password = secret("New password: ", from_stdin, flag)?;
    if !from_stdin {
        let again = secret("New password again: ", false, flag)?;
        if again != password {
            return Err(UsageError("the two passwords differ: nothing changed".to_owned()).into());
        }
    }
    Ok(password)
}
