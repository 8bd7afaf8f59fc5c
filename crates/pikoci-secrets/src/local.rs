//! The builtin secret types that read the worker itself: `file` and `env`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pikoci_core::ErrorKind;
use pikoci_core::engine::env::is_pikoci_config;
use pikoci_core::secrets::{SecretError, SecretRequest, SecretSource, SecretValue, SecretValues};

use crate::format::Format;

/// Looks up a variable of the worker process's environment (replaceable in tests).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The worker process's own environment.
pub fn process_env() -> EnvLookup {
    Arc::new(|name: &str| std::env::var(name).ok())
}

/// The largest secret file read (a secret file is small; this protects memory).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Where the `file` type never reads: the kernel's views of the worker's processes and devices
/// (`/proc/self/environ` holds the worker's own configuration).
const KERNEL_ROOTS: [&str; 2] = ["/proc", "/sys"];

/// The builtin `file` secret type: reads and parses a file on the worker.
#[derive(Debug, Clone, Default)]
pub struct FileSource {
    /// Where relative paths start (default: the process's working directory).
    base: Option<PathBuf>,
}

impl FileSource {
    /// A source resolving relative paths against the process's working directory.
    pub fn new() -> FileSource {
        FileSource::default()
    }

    /// A source resolving relative paths against `base`.
    pub fn with_base(base: impl Into<PathBuf>) -> FileSource {
        FileSource {
            base: Some(base.into()),
        }
    }

    fn absolute(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            return path.to_path_buf();
        }
        match &self.base {
            Some(base) => base.join(path),
            None => std::env::current_dir()
                .map(|cwd| cwd.join(path))
                .unwrap_or_else(|_| path.to_path_buf()),
        }
    }
}

#[async_trait::async_trait]
impl SecretSource for FileSource {
    async fn fetch(&self, request: &SecretRequest) -> Result<SecretValues, SecretError> {
        let config_path = request.config("path").filter(|p| !p.is_empty());
        let path = match (request.path.as_str(), config_path) {
            ("", None) => {
                return Err(SecretError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "no file to read: set path in the variable's secret block or in secret_type \"{}\"",
                        request.secret_type
                    ),
                ));
            }
            ("", Some(path)) => path,
            (path, _) => path,
        };
        let format = Format::select(request.config("format"), config_path, Format::Raw)?;
        let path = self.absolute(path);
        let shown = path.display().to_string();
        let io_error = |err: std::io::Error| {
            let kind = match err.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Unavailable,
            };
            SecretError::new(kind, format!("cannot read {shown}")).with_source(err)
        };
        // Checked on the resolved path, so a symlink (or `..`) cannot lead around it; the file
        // read is the one checked.
        let path = tokio::fs::canonicalize(&path).await.map_err(io_error)?;
        if let Some(root) = KERNEL_ROOTS.iter().find(|root| path.starts_with(root)) {
            return Err(SecretError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "cannot read {shown}: files under {root} describe the worker's own processes \
                     (such as its environment) and are never read as secrets; keep the secret in \
                     a file of its own"
                ),
            ));
        }
        // A device or a FIFO is refused before it is opened: its length says nothing of what
        // reading it returns (`/dev/zero` never ends), and opening a FIFO waits for a writer.
        let not_regular = || {
            SecretError::new(
                ErrorKind::InvalidInput,
                format!(
                    "cannot read {shown}: it is not a regular file; keep the secret in a file \
                     of its own"
                ),
            )
        };
        let metadata = tokio::fs::metadata(&path).await.map_err(io_error)?;
        if !metadata.is_file() {
            return Err(not_regular());
        }
        if metadata.len() > MAX_FILE_BYTES {
            return Err(too_large(&shown));
        }
        let file = tokio::fs::File::open(&path).await.map_err(io_error)?;
        // The file opened may not be the one checked (replaced in between).
        if !file.metadata().await.map_err(io_error)?.is_file() {
            return Err(not_regular());
        }
        let text = read_capped(file, &shown).await?;
        format.parse_values(&text, &request.secret_type)
    }
}

/// The error for a secret file over [`MAX_FILE_BYTES`].
fn too_large(shown: &str) -> SecretError {
    SecretError::new(
        ErrorKind::Internal,
        format!("{shown} is larger than {MAX_FILE_BYTES} bytes"),
    )
}

/// Reads at most [`MAX_FILE_BYTES`] from `reader` as UTF-8 text, refusing more: a file can grow
/// after its size was checked.
async fn read_capped(
    reader: impl tokio::io::AsyncRead + Unpin,
    shown: &str,
) -> Result<String, SecretError> {
    use tokio::io::AsyncReadExt;

    let mut bytes = Vec::new();
    reader
        .take(MAX_FILE_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .await
        .map_err(|err| {
            SecretError::new(ErrorKind::Unavailable, format!("cannot read {shown}"))
                .with_source(err)
        })?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_BYTES {
        return Err(too_large(shown));
    }
    String::from_utf8(bytes).map_err(|_| {
        SecretError::new(
            ErrorKind::InvalidInput,
            format!("cannot read {shown}: it is not UTF-8 text; save the file as UTF-8"),
        )
    })
}

/// The builtin `env` secret type: the variable's `key`, after the type's `prefix`, names an
/// environment variable of the worker. Unset variables are left out of the answer (the
/// resolver reports them as missing keys); an empty one is a value.
#[derive(Clone)]
pub struct EnvSource {
    lookup: EnvLookup,
}

impl std::fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvSource").finish_non_exhaustive()
    }
}

impl Default for EnvSource {
    fn default() -> EnvSource {
        EnvSource::new(process_env())
    }
}

impl EnvSource {
    /// A source reading variables through `lookup`.
    pub fn new(lookup: EnvLookup) -> EnvSource {
        EnvSource { lookup }
    }
}

#[async_trait::async_trait]
impl SecretSource for EnvSource {
    async fn fetch(&self, request: &SecretRequest) -> Result<SecretValues, SecretError> {
        let prefix = request.config("prefix").unwrap_or_default();
        let mut values = SecretValues::new();
        for key in &request.keys {
            let name = format!("{prefix}{key}");
            if is_pikoci_config(&name) {
                return Err(SecretError::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "secret type \"{}\" may not read the environment variable {name}: \
                         PIKOCI_* variables are PikoCI's own configuration, never a pipeline's secret; \
                         give the value another name",
                        request.secret_type
                    ),
                ));
            }
            if let Some(value) = (self.lookup)(&name) {
                values.insert(key.clone(), SecretValue::secret(value));
            }
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pikoci_core::{Origin, SecretType};

    use super::*;

    fn request(path: &str, config: &[(&str, &str)], keys: &[&str]) -> SecretRequest {
        SecretRequest {
            secret_type: "t".to_owned(),
            definition: Some(SecretType {
                name: "t".to_owned(),
                origin: Origin::Builtin,
                params: Vec::new(),
                config: config
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                get: None,
                runner_override: None,
            }),
            path: path.to_owned(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    fn exposed(values: SecretValues) -> BTreeMap<String, String> {
        values
            .into_iter()
            .map(|(k, v)| (k, v.value.into_exposed()))
            .collect()
    }

    #[tokio::test]
    async fn files_are_read_with_the_format_rules() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.json"), "{\"a\": \"1\"}").unwrap();
        std::fs::write(dir.path().join("s.env"), "A=2\n").unwrap();
        std::fs::write(dir.path().join("plain.txt"), "whole\n").unwrap();
        let source = FileSource::with_base(dir.path());
        // Config path with its extension.
        let values = source
            .fetch(&request("", &[("path", "s.json")], &["a"]))
            .await
            .unwrap();
        assert_eq!(exposed(values), BTreeMap::from([("a".into(), "1".into())]));
        // The variable's path wins over the config path; the format still comes from the config.
        let values = source
            .fetch(&request("s.env", &[("path", "x.env")], &["A"]))
            .await
            .unwrap();
        assert_eq!(exposed(values), BTreeMap::from([("A".into(), "2".into())]));
        // No config path and no format: raw.
        let values = source
            .fetch(&request("plain.txt", &[], &["content"]))
            .await
            .unwrap();
        assert_eq!(
            exposed(values),
            BTreeMap::from([("content".into(), "whole".into())])
        );
        // An explicit format.
        let values = source
            .fetch(&request("s.env", &[("format", "env")], &["A"]))
            .await
            .unwrap();
        assert_eq!(exposed(values).len(), 1);
    }

    #[tokio::test]
    async fn file_errors_say_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let source = FileSource::with_base(dir.path());
        let err = source.fetch(&request("", &[], &["a"])).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().starts_with("no file to read"), "{err}");
        let err = source
            .fetch(&request("missing.json", &[], &["a"]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.full_message().contains("missing.json"), "{err}");
    }

    #[tokio::test]
    async fn only_regular_files_are_read() {
        // `/dev/zero` has length 0 and never ends; a FIFO waits for a writer when opened.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        let source = FileSource::with_base(dir.path());
        for path in ["/dev/zero", "zero", "fifo", "."] {
            let err = source
                .fetch(&request(path, &[], &["content"]))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{path}: {err}");
            assert!(
                err.to_string()
                    .ends_with("is not a regular file; keep the secret in a file of its own"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn reading_stops_past_the_size_limit() {
        // A file that grows after its size was checked reads like an endless reader.
        let err = read_capped(tokio::io::repeat(b'a'), "growing")
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "growing is larger than 1048576 bytes");
        let limit = usize::try_from(MAX_FILE_BYTES).unwrap();
        let full = vec![b'a'; limit];
        assert_eq!(
            read_capped(full.as_slice(), "full").await.unwrap().len(),
            limit
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![b'a'; limit + 1]).unwrap();
        let err = FileSource::with_base(dir.path())
            .fetch(&request("big", &[], &["content"]))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("big is larger than 1048576 bytes"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn files_of_the_kernel_are_refused_even_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", dir.path().join("env")).unwrap();
        std::os::unix::fs::symlink("/proc/self", dir.path().join("self")).unwrap();
        let source = FileSource::with_base(dir.path());
        for path in [
            "/proc/self/environ",
            "env",
            "self/environ",
            "/tmp/../proc/self/environ",
            "/sys",
        ] {
            let err = source
                .fetch(&request(path, &[], &["content"]))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{path}: {err}");
            assert!(err.to_string().contains("never read as secrets"), "{err}");
        }
    }

    #[tokio::test]
    async fn env_refuses_pikoci_configuration_variables() {
        let lookup: EnvLookup = Arc::new(|name: &str| match name {
            "PIKOCI_SECRET_KEY" => Some("the-worker-key".to_owned()),
            _ => None,
        });
        let source = EnvSource::new(lookup);
        for (prefix, key) in [("", "PIKOCI_SECRET_KEY"), ("PIKOCI_", "SECRET_KEY")] {
            let err = source
                .fetch(&request("", &[("prefix", prefix)], &[key]))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::PermissionDenied);
            let message = err.full_message();
            assert!(message.contains("PIKOCI_SECRET_KEY"), "{message}");
            assert!(message.contains("PikoCI's own configuration"), "{message}");
            assert!(!message.contains("the-worker-key"), "{message}");
        }
    }

    #[tokio::test]
    async fn env_reads_prefixed_variables_and_leaves_out_unset_ones() {
        let lookup: EnvLookup = Arc::new(|name: &str| match name {
            "CI_TOKEN" => Some("t0k".to_owned()),
            "CI_EMPTY" => Some(String::new()),
            _ => None,
        });
        let source = EnvSource::new(lookup);
        let values = source
            .fetch(&request(
                "",
                &[("prefix", "CI_")],
                &["TOKEN", "EMPTY", "UNSET"],
            ))
            .await
            .unwrap();
        assert_eq!(
            exposed(values),
            BTreeMap::from([
                ("EMPTY".into(), String::new()),
                ("TOKEN".into(), "t0k".into())
            ])
        );
    }
}
