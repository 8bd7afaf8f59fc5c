//! Writing to standard output and standard error. A closed pipe (`pikoci validate f | head -1`)
//! or a full disk (`2>/dev/full`) is an error the command reports through its exit status,
//! never a panic: `print!` and `eprint!` panic on such a write, so the commands use these.

use std::io::Write;

use anyhow::Context;

/// Writes `text` to standard output and flushes it.
pub(crate) fn stdout(text: &str) -> anyhow::Result<()> {
    write_all(&mut std::io::stdout().lock(), text).context("cannot write to standard output")
}

/// Writes `text` to standard error.
pub(crate) fn stderr(text: &str) -> anyhow::Result<()> {
    write_all(&mut std::io::stderr().lock(), text).context("cannot write to standard error")
}

fn write_all(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}
