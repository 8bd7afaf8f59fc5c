//! Encryption at rest: AES-256-GCM (RustCrypto `aes-gcm`) with a key derived from
//! `PIKOCI_SECRET_KEY` by HKDF-SHA256. Each value gets a random 96-bit nonce, and its scope and
//! name are authenticated with it, so a stored value cannot be moved to another entry.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use pikoci_core::ErrorKind;
use pikoci_core::secrets::{Secret, SecretError};
use sha2::Sha256;

/// The environment variable holding the master key.
pub const KEY_VARIABLE: &str = "PIKOCI_SECRET_KEY";

/// The shortest master key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// The format version written in front of every ciphertext.
const VERSION: u8 = 1;

/// HKDF salt and info: fixed, for domain separation (the master key is random and long).
const SALT: &[u8] = b"pikoci secret store";
const INFO: &[u8] = b"pikoci secret store v1: aes-256-gcm value key";

/// Encrypts and decrypts store values.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(***)")
    }
}

impl Cipher {
    /// A cipher whose key is derived from `master_key` (at least [`MIN_KEY_LEN`] bytes; use a
    /// random one, e.g. `openssl rand -base64 32`).
    pub fn new(master_key: &Secret) -> Result<Cipher, SecretError> {
        let master_key = master_key.expose().trim();
        if master_key.len() < MIN_KEY_LEN {
            return Err(SecretError::new(
                ErrorKind::InvalidInput,
                format!(
                    "{KEY_VARIABLE} is too short: use at least {MIN_KEY_LEN} random characters, e.g. the output of `openssl rand -base64 32`"
                ),
            ));
        }
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(SALT), master_key.as_bytes())
            .expand(INFO, &mut key)
            .map_err(|_| {
                SecretError::new(ErrorKind::InvalidInput, "cannot derive the store key")
            })?;
        let aead = Aes256Gcm::new(&Key::<Aes256Gcm>::from(key));
        Ok(Cipher { aead })
    }

    /// A cipher keyed by `PIKOCI_SECRET_KEY`.
    pub fn from_env() -> Result<Cipher, SecretError> {
        match std::env::var(KEY_VARIABLE) {
            Ok(key) if !key.trim().is_empty() => Cipher::new(&Secret::new(key)),
            _ => Err(SecretError::new(
                ErrorKind::InvalidInput,
                format!(
                    "secret storage is not configured: set {KEY_VARIABLE} to a random key of at least {MIN_KEY_LEN} characters"
                ),
            )),
        }
    }

    /// Encrypts `value`, binding it to `context` (the entry's scope and name).
    pub fn seal(&self, value: &Secret, context: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: value.expose().as_bytes(),
                    aad: context,
                },
            )
            .map_err(|_| SecretError::new(ErrorKind::InvalidInput, "cannot encrypt the value"))?;
        let mut sealed = Vec::with_capacity(1 + nonce.len() + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts what [`Cipher::seal`] produced for the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Secret, SecretError> {
        let refused = || {
            SecretError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "cannot decrypt a stored secret: {KEY_VARIABLE} is not the key it was stored with, or the stored value was altered"
                ),
            )
        };
        let (version, rest) = sealed.split_first().ok_or_else(refused)?;
        if *version != VERSION || rest.len() < 12 {
            return Err(refused());
        }
        let (nonce, ciphertext) = rest.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| refused())?;
        let plain = self
            .aead
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| refused())?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Secret {
        Secret::new(text)
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn values_round_trip_and_are_not_stored_in_clear() {
        let cipher = Cipher::new(&key(KEY)).unwrap();
        let sealed = cipher.seal(&key("hunter22"), b"team/main/TOKEN").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"hunter22"));
        assert_eq!(
            cipher.open(&sealed, b"team/main/TOKEN").unwrap().expose(),
            "hunter22"
        );
        // A fresh nonce every time.
        assert_ne!(
            sealed,
            cipher.seal(&key("hunter22"), b"team/main/TOKEN").unwrap()
        );
        assert_eq!(format!("{cipher:?}"), "Cipher(***)");
    }

    #[test]
    fn another_key_another_entry_or_an_altered_value_is_refused() {
        let cipher = Cipher::new(&key(KEY)).unwrap();
        let sealed = cipher.seal(&key("hunter22"), b"a").unwrap();
        let other = Cipher::new(&key("another key that is long enough!!")).unwrap();
        let error = other.open(&sealed, b"a").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::PermissionDenied);
        assert!(
            error
                .to_string()
                .contains("PIKOCI_SECRET_KEY is not the key")
        );
        assert!(cipher.open(&sealed, b"b").is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(cipher.open(&altered, b"a").is_err());
        assert!(cipher.open(&[], b"a").is_err());
        assert!(cipher.open(&[2; 40], b"a").is_err());
    }

    #[test]
    fn short_keys_are_refused() {
        let error = Cipher::new(&key("short")).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert!(
            error
                .to_string()
                .starts_with("PIKOCI_SECRET_KEY is too short")
        );
    }
}
