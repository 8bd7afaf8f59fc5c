//! Saving what the server sends as a file (`pikoci builds report`, `pikoci export`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use pikoci_client::Download;

/// Where a download went.
pub(crate) enum Saved {
    /// Standard output (`-o -`).
    Stdout,
    /// This file.
    File(PathBuf),
}

/// Writes `download` to `output`: standard output for `-`, else that file, else the name the
/// server suggests (`fallback` when it gives none) in the current directory. A file is written
/// beside its final name and renamed into place once whole, so a cut download leaves nothing
/// behind; an existing file is replaced only with `force`. The bytes written.
pub(crate) async fn save(
    mut download: Download,
    output: Option<&Path>,
    fallback: &str,
    force: bool,
) -> anyhow::Result<(Saved, u64)> {
    let mut written = 0u64;
    if output == Some(Path::new("-")) {
        let mut stdout = std::io::stdout().lock();
        while let Some(chunk) = download.chunk().await? {
            stdout
                .write_all(&chunk)
                .context("cannot write to standard output")?;
            written += chunk.len() as u64;
        }
        stdout.flush().context("cannot write to standard output")?;
        return Ok((Saved::Stdout, written));
    }
    let path = match output {
        Some(path) => path.to_path_buf(),
        None => PathBuf::from(download.file_name().unwrap_or_else(|| fallback.to_owned())),
    };
    if !force && path.exists() {
        anyhow::bail!(
            "{} exists already: choose another name with --output, or replace it with --force",
            path.display()
        );
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    while let Some(chunk) = download.chunk().await? {
        file.write_all(&chunk)
            .with_context(|| format!("cannot write {}", path.display()))?;
        written += chunk.len() as u64;
    }
    file.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    let persisted = if force {
        file.persist(&path).map(drop)
    } else {
        file.persist_noclobber(&path).map(drop)
    };
    persisted.map_err(|err| {
        anyhow::anyhow!(
            "cannot save {}: {}{}",
            path.display(),
            err.error,
            if err.error.kind() == std::io::ErrorKind::AlreadyExists {
                " (choose another name with --output, or replace it with --force)"
            } else {
                ""
            }
        )
    })?;
    Ok((Saved::File(path), written))
}

/// A size for people: `512 B`, `3.4 KiB`, `12.0 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes_read_in_the_largest_whole_unit() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12 * 1024 * 1024), "12.0 MiB");
    }
}
