//! The certificate authorities a client trusts, and the TLS configuration made from them.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::ClientError;

/// The certificate authorities trusted for `https://`.
#[derive(Debug, Clone, Default)]
pub enum Roots {
    /// The machine's: the files named by `SSL_CERT_FILE` / `SSL_CERT_DIR`, else the system
    /// bundle (such as `/etc/ssl/certs/ca-certificates.crt`), so that a private CA installed
    /// on the machine works as it does for `git` and `curl`.
    #[default]
    System,
    /// Exactly these, and not the machine's.
    Only(CaCertificates),
}

/// Certificate authorities read from a PEM file.
#[derive(Debug, Clone)]
pub struct CaCertificates(Arc<Vec<CertificateDer<'static>>>);

/// Why a PEM file of certificate authorities could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The file could not be read or is not PEM.
    #[error("cannot read the certificates in {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The file holds no certificate.
    #[error("no PEM certificates found in {path}")]
    Empty {
        /// The file.
        path: String,
    },
}

impl CaCertificates {
    /// The certificates of the PEM file at `path` (other PEM sections are skipped).
    pub fn from_pem_file(path: &Path) -> Result<CaCertificates, CaError> {
        let shown = path.display().to_string();
        let read = |reason: String| CaError::Read {
            path: shown.clone(),
            reason,
        };
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|err| read(err.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| read(err.to_string()))?;
        if certificates.is_empty() {
            return Err(CaError::Empty { path: shown });
        }
        Ok(CaCertificates(Arc::new(certificates)))
    }
}

impl Roots {
    /// A rustls configuration trusting these roots, on the ring provider, speaking HTTP/1.1.
    pub(crate) fn tls_config(&self) -> Result<rustls::ClientConfig, ClientError> {
        let store = match self {
            Roots::System => system_store()?,
            Roots::Only(certificates) => {
                let mut store = RootCertStore::empty();
                for certificate in certificates.0.iter() {
                    store
                        .add(certificate.clone())
                        .map_err(|err| ClientError::Tls(err.to_string()))?;
                }
                Arc::new(store)
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| ClientError::Tls(err.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The machine's certificate authorities, read once per process (or why they could not be).
static SYSTEM: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();

impl Roots {
    /// Reads the machine's certificate authorities now, on a thread where blocking is allowed,
    /// if they are used and not read yet. Async code calls this before building a client, so
    /// that the files are not read on the runtime's threads.
    pub async fn load(&self) -> Result<(), ClientError> {
        if matches!(self, Roots::System) && SYSTEM.get().is_none() {
            tokio::task::spawn_blocking(|| SYSTEM.get_or_init(read_system).is_ok())
                .await
                .map_err(|err| {
                    ClientError::Tls(format!("cannot read the certificate authorities: {err}"))
                })?;
        }
        Ok(())
    }
}

/// The machine's certificate authorities (read here if [`Roots::load`] did not read them).
fn system_store() -> Result<Arc<RootCertStore>, ClientError> {
    SYSTEM
        .get_or_init(read_system)
        .clone()
        .map_err(ClientError::Tls)
}

fn read_system() -> Result<Arc<RootCertStore>, String> {
    let found = rustls_native_certs::load_native_certs();
    let errors = found.errors.iter().map(ToString::to_string).collect();
    system_roots(found.certs, errors)
}

/// A store of the parsable `certificates` (others are skipped, as `curl` and `git` skip
/// them), or an error when none was found and reading failed: every `https://` request would
/// fail anyway, with a less helpful error.
fn system_roots(
    certificates: Vec<CertificateDer<'static>>,
    errors: Vec<String>,
) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(certificates);
    if store.is_empty() && !errors.is_empty() {
        return Err(format!(
            "cannot read the machine's certificate authorities ({}); check the files named by \
             SSL_CERT_FILE and SSL_CERT_DIR, or install the system's CA bundle",
            errors.join("; ")
        ));
    }
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_system_roots_and_read_errors_are_reported() {
        let error = system_roots(Vec::new(), vec!["open file: not found".to_owned()]).unwrap_err();
        assert!(error.contains("(open file: not found)"), "{error}");
        assert!(error.contains("SSL_CERT_FILE and SSL_CERT_DIR"), "{error}");
        assert!(system_roots(Vec::new(), Vec::new()).unwrap().is_empty());
    }
}
