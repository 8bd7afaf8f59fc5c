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
            Roots::System => system_store(),
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

/// The machine's certificate authorities, read once per process. Certificates that cannot be
/// parsed are skipped, as `curl` and `git` skip them.
fn system_store() -> Arc<RootCertStore> {
    static STORE: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            Arc::new(store)
        })
        .clone()
}
