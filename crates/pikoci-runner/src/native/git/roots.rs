//! The certificate authorities the API checks trust: the machine's CA bundle, so that a
//! private CA installed on the worker works for the API as it does for `git`, or a given file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ureq::tls::{Certificate, PemItem, RootCerts, parse_pem};

/// Where Linux distributions and BSDs keep their CA bundle.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The bundle named by `SSL_CERT_FILE`, else the first system bundle found, else the Mozilla
/// roots built into the binary.
pub(crate) fn system() -> RootCerts {
    let candidates = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from));
    for path in candidates {
        if let Ok(certificates) = load(&path) {
            return RootCerts::from(certificates);
        }
    }
    RootCerts::WebPki
}

/// The certificates of a PEM file.
pub(crate) fn load(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path)
        .map_err(|err| format!("cannot read the certificates in {}: {err}", path.display()))?;
    let certificates: Vec<Certificate<'static>> = parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(certificate)) => Some(certificate),
            _ => None,
        })
        .collect();
    if certificates.is_empty() {
        return Err(format!("no PEM certificates found in {}", path.display()));
    }
    Ok(certificates)
}

/// Roots made of exactly `certificates`.
pub(crate) fn only(certificates: Vec<Certificate<'static>>) -> RootCerts {
    RootCerts::Specific(Arc::new(certificates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = load(&path).unwrap_err();
        assert!(error.starts_with("no PEM certificates found in"), "{error}");
        let missing = load(&dir.path().join("missing.pem")).unwrap_err();
        assert!(
            missing.starts_with("cannot read the certificates in"),
            "{missing}"
        );
    }
}
