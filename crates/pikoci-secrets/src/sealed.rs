//! Store values sealed to one worker: how the server's `secret "pikoci"` entries travel through
//! the broker (which persists messages) without ever being there in clear.
//!
//! Each worker makes an X25519 key pair when it starts ([`WorkerKey`], never written anywhere)
//! and announces the public half in its heartbeats. For each assignment that needs store
//! entries, the server seals them to that key: an anonymous sealed box made of an ephemeral
//! X25519 key, HKDF-SHA256 over the shared secret and both public keys, and AES-256-GCM with
//! the work's `(build, attempt)` or `(resource, attempt)` as associated data, so that a blob
//! cannot be replayed onto other work, and only the process that holds the private key opens
//! it. Format: version byte, ephemeral public key (32 bytes), nonce (12), ciphertext and tag;
//! in base64 on the wire.
//!
//! The RustCrypto-family `crypto_box` seal was not used: its sealed boxes have no associated
//! data, and the workspace already has AES-256-GCM and HKDF.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hkdf::Hkdf;
use pikoci_core::ErrorKind;
use pikoci_core::protocol::{SealedSecrets, WorkRef};
use pikoci_core::secrets::{
    Secret, SecretError, SecretKind, SecretRequest, SecretSource, SecretValue, SecretValues,
};
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};

/// The format version written in front of every sealed blob.
const VERSION: u8 = 1;

/// HKDF info: domain separation from the store's own encryption at rest.
const INFO: &[u8] = b"pikoci sealed store values v1: x25519 hkdf-sha256 aes-256-gcm";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// A worker's key pair, made at start and kept in memory only. `Debug` shows the public half.
pub struct WorkerKey {
    secret: StaticSecret,
    public: PublicKey,
}

impl fmt::Debug for WorkerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerKey")
            .field("public", &self.public_text())
            .finish_non_exhaustive()
    }
}

impl WorkerKey {
    /// A fresh key pair from the operating system's CSPRNG.
    pub fn generate() -> WorkerKey {
        let secret = StaticSecret::random_from_rng(OsRng);
        let public = PublicKey::from(&secret);
        WorkerKey { secret, public }
    }

    /// The public key as the heartbeat announces it (base64 of 32 bytes).
    pub fn public_text(&self) -> String {
        BASE64.encode(self.public.as_bytes())
    }

    /// Opens what [`seal`] sealed to this key for `work`.
    pub fn open(&self, sealed: &SealedSecrets, work: WorkRef) -> Result<StoreValues, SecretError> {
        let refused = |why: &str| {
            SecretError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "cannot open the store values the server sealed to this worker ({why}): they were sealed to another key (the worker restarted since the server last heard of it) or altered on the way; retry the build"
                ),
            )
        };
        let bytes = BASE64
            .decode(sealed.as_text())
            .map_err(|_| refused("not base64"))?;
        let (&version, rest) = bytes.split_first().ok_or_else(|| refused("empty"))?;
        if version != VERSION {
            return Err(refused(&format!("unknown format {version}")));
        }
        if rest.len() < KEY_LEN + NONCE_LEN {
            return Err(refused("too short"));
        }
        let (ephemeral, rest) = rest.split_at(KEY_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let ephemeral: [u8; KEY_LEN] = ephemeral.try_into().map_err(|_| refused("too short"))?;
        let ephemeral = PublicKey::from(ephemeral);
        let shared = self.secret.diffie_hellman(&ephemeral);
        if !shared.was_contributory() {
            return Err(refused("a degenerate key"));
        }
        let aead = box_cipher(shared.as_bytes(), &ephemeral, &self.public)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| refused("too short"))?;
        let plain = aead
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &associated_data(work),
                },
            )
            .map_err(|_| refused("it does not decrypt for this work with this key"))?;
        StoreValues::from_json(&plain).ok_or_else(|| refused("unreadable content"))
    }
}

/// Seals `values` for `work` to the worker whose heartbeat announced `public_key`.
pub fn seal(
    public_key: &str,
    values: &StoreValues,
    work: WorkRef,
) -> Result<SealedSecrets, SecretError> {
    let recipient: [u8; KEY_LEN] = BASE64
        .decode(public_key.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| {
            SecretError::new(
                ErrorKind::InvalidInput,
                "the worker announced a sealing key that is not 32 bytes in base64: upgrade or restart the worker",
            )
        })?;
    let recipient = PublicKey::from(recipient);
    let ephemeral_secret = EphemeralSecret::random_from_rng(OsRng);
    let ephemeral = PublicKey::from(&ephemeral_secret);
    let shared = ephemeral_secret.diffie_hellman(&recipient);
    if !shared.was_contributory() {
        return Err(SecretError::new(
            ErrorKind::InvalidInput,
            "the worker announced a degenerate sealing key: restart the worker",
        ));
    }
    let aead = box_cipher(shared.as_bytes(), &ephemeral, &recipient)?;
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = aead
        .encrypt(
            &nonce,
            Payload {
                msg: &values.to_json(),
                aad: &associated_data(work),
            },
        )
        .map_err(|_| SecretError::new(ErrorKind::Internal, "cannot seal the store values"))?;
    let mut bytes = Vec::with_capacity(1 + KEY_LEN + NONCE_LEN + ciphertext.len());
    bytes.push(VERSION);
    bytes.extend_from_slice(ephemeral.as_bytes());
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&ciphertext);
    Ok(SealedSecrets::new(BASE64.encode(bytes)))
}

/// The AES-256-GCM key of one box: HKDF-SHA256 over the shared secret, salted with both public
/// keys (so a box is bound to its recipient).
fn box_cipher(
    shared: &[u8; KEY_LEN],
    ephemeral: &PublicKey,
    recipient: &PublicKey,
) -> Result<Aes256Gcm, SecretError> {
    let mut salt = [0u8; 2 * KEY_LEN];
    salt[..KEY_LEN].copy_from_slice(ephemeral.as_bytes());
    salt[KEY_LEN..].copy_from_slice(recipient.as_bytes());
    let mut key = [0u8; KEY_LEN];
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(INFO, &mut key)
        .map_err(|_| SecretError::new(ErrorKind::Internal, "cannot derive a sealing key"))?;
    Ok(Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)))
}

/// What a box is bound to: the work it travels with.
fn associated_data(work: WorkRef) -> Vec<u8> {
    match work {
        WorkRef::Build(build) => format!("build\0{}\0{}", build.build_id.0, build.attempt),
        WorkRef::Check(check) => format!("check\0{}\0{}", check.resource_id.0, check.attempt),
    }
    .into_bytes()
}

/// The store entries one piece of work reads, as the server found them: the names it looked
/// up, and the values of those that exist. `Debug` shows the names only.
///
/// It answers `secret "pikoci"` on the worker (give it to [`crate::Registry::with_store`]): an
/// entry that was looked up and does not exist is left out of the answer (the resolver says
/// the key was not found); a name the server did not look up (a key made of another secret)
/// is an error saying so.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoreValues {
    looked_up: Vec<String>,
    values: BTreeMap<String, SecretValue>,
}

impl fmt::Debug for StoreValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreValues")
            .field("looked_up", &self.looked_up)
            .field("found", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl StoreValues {
    /// Nothing looked up yet.
    pub fn new() -> StoreValues {
        StoreValues::default()
    }

    /// Records that `name` was looked up, and its value when it exists.
    pub fn insert(&mut self, name: impl Into<String>, value: Option<SecretValue>) {
        let name = name.into();
        if let Some(value) = value {
            self.values.insert(name.clone(), value);
        }
        if !self.looked_up.contains(&name) {
            self.looked_up.push(name);
        }
    }

    /// The value of `name`, if it was found.
    pub fn get(&self, name: &str) -> Option<&SecretValue> {
        self.values.get(name)
    }

    fn to_json(&self) -> Vec<u8> {
        let values: serde_json::Map<String, serde_json::Value> = self
            .values
            .iter()
            .map(|(name, value)| {
                let entry = serde_json::json!({
                    "kind": value.kind.as_str(),
                    "value": value.value.expose(),
                });
                (name.clone(), entry)
            })
            .collect();
        serde_json::json!({"looked_up": self.looked_up, "values": values})
            .to_string()
            .into_bytes()
    }

    fn from_json(bytes: &[u8]) -> Option<StoreValues> {
        #[derive(serde::Deserialize)]
        struct Entry {
            kind: String,
            value: String,
        }
        #[derive(serde::Deserialize)]
        struct Content {
            looked_up: Vec<String>,
            values: BTreeMap<String, Entry>,
        }
        let content: Content = serde_json::from_slice(bytes).ok()?;
        let mut values = BTreeMap::new();
        for (name, entry) in content.values {
            let kind = SecretKind::parse(&entry.kind)?;
            values.insert(
                name,
                SecretValue {
                    value: Secret::new(entry.value),
                    kind,
                },
            );
        }
        Some(StoreValues {
            looked_up: content.looked_up,
            values,
        })
    }
}

#[async_trait::async_trait]
impl SecretSource for StoreValues {
    async fn fetch(&self, request: &SecretRequest) -> Result<SecretValues, SecretError> {
        let mut found = SecretValues::new();
        for key in &request.keys {
            match self.values.get(key) {
                Some(value) => {
                    found.insert(key.clone(), value.clone());
                }
                None if self.looked_up.contains(key) => {}
                None => {
                    return Err(SecretError::new(
                        ErrorKind::Unsupported,
                        "the server sent no value for this entry: it sends the entries whose names the pipeline writes out (key = \"NAME\"); a key made of another secret's value is not supported",
                    ));
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests;
