//! Authenticated messages: every message on the broker carries an HMAC-SHA256 of its bytes,
//! made with the key of a worker token's scope, so that access to the broker alone lets nobody
//! fake a build's result or receive its work.
//!
//! A payload is one header line, then the envelope's JSON:
//!
//! ```text
//! pikoci-mac1 team:web 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! {"v":1,"type":"heartbeat",…}
//! ```
//!
//! The MAC covers the topic the message is published to, the key id and the JSON, so a message
//! cannot be moved to another worker's inbox or passed off under another key. It is not
//! encrypted: the broker can read it (what a message may carry is chosen with that in mind:
//! store values travel sealed to the worker, see [`super::SealedSecrets`]).
//!
//! Keys ([`KeyScope`]):
//! - `global`: the global worker token's. Global workers, and the server towards them.
//! - `team:<name>`: a team's worker token's. Workers of that team only, and the server towards
//!   them; regenerating the team's token changes it.
//! - `server`: known to servers only, for what servers publish to each other (probes).
//!
//! Every holder of a token can act as any worker of its scope; the server keeps a team's
//! workers to that team's work (see the server's ingest).

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Envelope, ProtocolError};
use crate::secrets::Secret;

/// What a worker token starts with.
pub const TOKEN_PREFIX: &str = "pkw_";

/// How many bytes a key has.
pub const KEY_BYTES: usize = 32;

/// The first word of every authenticated payload.
const MAGIC: &str = "pikoci-mac1";

/// The most bytes a header line takes (the magic, the longest key id, the MAC): what is left of
/// [`super::MAX_MESSAGE_BYTES`] is the envelope's.
pub const MAX_HEADER_BYTES: usize = 512;

/// Whose key signs a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyScope {
    /// The global worker token's: workers that serve every team.
    Global,
    /// A team's worker token's: workers of that team (its canonical name).
    Team(String),
    /// The servers' own, never given out.
    Server,
}

impl KeyScope {
    /// The id in a payload's header: `global`, `team:<name>` or `server`.
    pub fn key_id(&self) -> String {
        match self {
            KeyScope::Global => "global".to_owned(),
            KeyScope::Team(team) => format!("team:{team}"),
            KeyScope::Server => "server".to_owned(),
        }
    }

    /// The scope of a key id; `None` when it names none.
    pub fn parse(key_id: &str) -> Option<KeyScope> {
        match key_id {
            "global" => Some(KeyScope::Global),
            "server" => Some(KeyScope::Server),
            _ => key_id
                .strip_prefix("team:")
                .filter(|team| crate::name::is_canonical(team))
                .map(|team| KeyScope::Team(team.to_owned())),
        }
    }

    /// The team it is limited to, if any.
    pub fn team(&self) -> Option<&str> {
        match self {
            KeyScope::Team(team) => Some(team),
            KeyScope::Global | KeyScope::Server => None,
        }
    }
}

impl fmt::Display for KeyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyScope::Global => f.write_str("the global worker token"),
            KeyScope::Team(team) => write!(f, "team \"{team}\"'s worker token"),
            KeyScope::Server => f.write_str("the servers' key"),
        }
    }
}

/// A key: its scope and 32 secret bytes. `Debug` shows the scope only.
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey {
    scope: KeyScope,
    key: [u8; KEY_BYTES],
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MacKey")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl MacKey {
    /// A key of `scope` with these bytes.
    pub fn new(scope: KeyScope, key: [u8; KEY_BYTES]) -> MacKey {
        MacKey { scope, key }
    }

    /// Its scope.
    pub fn scope(&self) -> &KeyScope {
        &self.scope
    }

    /// The worker token that holds this key (`None` for the servers' key): `pkw_<64 hex>` for
    /// the global one, `pkw_<team>.<64 hex>` for a team's.
    pub fn token(&self) -> Option<Secret> {
        let hex = hex(&self.key);
        match &self.scope {
            KeyScope::Global => Some(Secret::new(format!("{TOKEN_PREFIX}{hex}"))),
            KeyScope::Team(team) => Some(Secret::new(format!("{TOKEN_PREFIX}{team}.{hex}"))),
            KeyScope::Server => None,
        }
    }

    /// The key's bytes as 64 hex digits (what the store keeps).
    pub fn to_hex(&self) -> Secret {
        Secret::new(hex(&self.key))
    }

    /// The key of `scope` from 64 hex digits; `None` when they are not.
    pub fn from_hex(scope: KeyScope, hex: &str) -> Option<MacKey> {
        unhex(hex).map(|key| MacKey::new(scope, key))
    }

    fn mac(&self, topic: &str, key_id: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        for part in [MAGIC.as_bytes(), topic.as_bytes(), key_id.as_bytes()] {
            mac.update(part);
            mac.update(b"\0");
        }
        mac.update(body);
        mac
    }

    /// `body` (an encoded envelope) with its header, for publishing to `topic`.
    pub fn seal(&self, topic: &str, body: &[u8]) -> Vec<u8> {
        let key_id = self.scope.key_id();
        let tag = self.mac(topic, &key_id, body).finalize().into_bytes();
        let header = format!("{MAGIC} {key_id} {}\n", hex(&tag));
        let mut payload = Vec::with_capacity(header.len() + body.len());
        payload.extend_from_slice(header.as_bytes());
        payload.extend_from_slice(body);
        payload
    }

    /// Encodes `envelope` and seals it for `topic`.
    pub fn encode(&self, topic: &str, envelope: &Envelope) -> Result<Vec<u8>, ProtocolError> {
        Ok(self.seal(topic, &envelope.encode()?))
    }
}

/// A payload's header read, its MAC not checked yet.
#[derive(Debug)]
pub struct Signed<'a> {
    /// The scope of the key it claims.
    pub scope: KeyScope,
    key_id: &'a str,
    tag: [u8; 32],
    body: &'a [u8],
}

impl<'a> Signed<'a> {
    /// Reads the header of `payload`; what is wrong with it otherwise.
    pub fn read(payload: &'a [u8]) -> Result<Signed<'a>, AuthError> {
        let newline = payload
            .iter()
            .take(MAX_HEADER_BYTES)
            .position(|b| *b == b'\n')
            .ok_or(AuthError::Unsigned)?;
        let header = std::str::from_utf8(&payload[..newline]).map_err(|_| AuthError::Unsigned)?;
        let mut words = header.split(' ');
        if words.next() != Some(MAGIC) {
            return Err(AuthError::Unsigned);
        }
        let (Some(key_id), Some(tag), None) = (words.next(), words.next(), words.next()) else {
            return Err(AuthError::Malformed);
        };
        let scope = KeyScope::parse(key_id).ok_or(AuthError::Malformed)?;
        let tag = unhex(tag).ok_or(AuthError::Malformed)?;
        Ok(Signed {
            scope,
            key_id,
            tag,
            body: &payload[newline + 1..],
        })
    }

    /// The envelope's bytes, when `key` (of the claimed scope) made the MAC for `topic`.
    pub fn verify(&self, key: &MacKey, topic: &str) -> Result<&'a [u8], AuthError> {
        if key.scope != self.scope {
            return Err(AuthError::WrongKey);
        }
        key.mac(topic, self.key_id, self.body)
            .verify_slice(&self.tag)
            .map_err(|_| AuthError::WrongKey)?;
        Ok(self.body)
    }
}

/// Why a payload is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No header: a sender without a worker token (or of a release before them).
    #[error("the message is not signed: give its sender a worker token")]
    Unsigned,
    /// A header that cannot be read.
    #[error("the message's signature header is malformed")]
    Malformed,
    /// Signed with another key, or changed since: a stale or foreign token, or a forgery.
    #[error(
        "the message's signature does not match the key of its scope (a stale or foreign worker token, or a forgery)"
    )]
    WrongKey,
}

/// Why text is not a worker token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this is not a worker token: {0}; a worker token is \"pkw_\" then 64 hex digits (global) or \"pkw_<team>.\" then 64 hex digits (a team's), as `pikoci worker-token` or `pikoci teams worker-token` print it"
)]
pub struct TokenError(&'static str);

impl FromStr for MacKey {
    type Err = TokenError;

    /// Reads a worker token (never a server key).
    fn from_str(token: &str) -> Result<MacKey, TokenError> {
        let rest = token
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError("it does not start with \"pkw_\""))?;
        let (scope, hex) = match rest.rsplit_once('.') {
            None => (KeyScope::Global, rest),
            Some((team, hex)) if crate::name::is_canonical(team) => {
                (KeyScope::Team(team.to_owned()), hex)
            }
            Some(_) => return Err(TokenError("the team it names is not a canonical name")),
        };
        MacKey::from_hex(scope, hex).ok_or(TokenError("its key is not 64 hex digits"))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex(text: &str) -> Option<[u8; KEY_BYTES]> {
    if text.len() != 2 * KEY_BYTES || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; KEY_BYTES];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scope: KeyScope, byte: u8) -> MacKey {
        MacKey::new(scope, [byte; KEY_BYTES])
    }

    #[test]
    fn a_sealed_payload_verifies_with_its_key_and_topic_only() {
        let web = key(KeyScope::Team("web".into()), 7);
        let payload = web.seal("pikoci.events", b"{\"v\":1}");
        let signed = Signed::read(&payload).unwrap();
        assert_eq!(signed.scope, KeyScope::Team("web".into()));
        assert_eq!(signed.verify(&web, "pikoci.events").unwrap(), b"{\"v\":1}");
        assert_eq!(
            signed.verify(&web, "pikoci.worker.other"),
            Err(AuthError::WrongKey)
        );
        let stale = key(KeyScope::Team("web".into()), 8);
        assert_eq!(
            signed.verify(&stale, "pikoci.events"),
            Err(AuthError::WrongKey)
        );
        assert_eq!(
            signed.verify(&key(KeyScope::Global, 7), "pikoci.events"),
            Err(AuthError::WrongKey)
        );
    }

    #[test]
    fn a_changed_body_or_key_id_fails() {
        let global = key(KeyScope::Global, 1);
        let mut payload = global.seal("t", b"{\"outcome\":\"failed\"}");
        let at = payload.len() - 8;
        payload[at] = b'X';
        assert_eq!(
            Signed::read(&payload).unwrap().verify(&global, "t"),
            Err(AuthError::WrongKey)
        );
        // The same MAC under another key id.
        let payload = global.seal("t", b"{}");
        let text = String::from_utf8(payload).unwrap();
        let moved = text.replacen("global", "team:web", 1);
        let signed = Signed::read(moved.as_bytes()).unwrap();
        let web = key(KeyScope::Team("web".into()), 1);
        assert_eq!(signed.verify(&web, "t"), Err(AuthError::WrongKey));
    }

    #[test]
    fn unsigned_and_malformed_headers_are_told_apart() {
        assert_eq!(Signed::read(b"{\"v\":1}").unwrap_err(), AuthError::Unsigned);
        assert_eq!(Signed::read(b"").unwrap_err(), AuthError::Unsigned);
        assert_eq!(
            Signed::read(b"pikoci-mac1 global\n{}").unwrap_err(),
            AuthError::Malformed
        );
        assert_eq!(
            Signed::read(b"pikoci-mac1 team:Bad 00\n{}").unwrap_err(),
            AuthError::Malformed
        );
        assert_eq!(
            Signed::read(b"pikoci-mac1 global zz\n{}").unwrap_err(),
            AuthError::Malformed
        );
    }

    #[test]
    fn tokens_round_trip_and_bad_ones_say_why() {
        let web = key(KeyScope::Team("web".into()), 0xab);
        let token = web.token().unwrap();
        assert!(token.expose().starts_with("pkw_web."));
        assert_eq!(token.expose().parse::<MacKey>().unwrap(), web);
        let global = key(KeyScope::Global, 0x01);
        assert_eq!(
            global.token().unwrap().expose().parse::<MacKey>().unwrap(),
            global
        );
        assert!(key(KeyScope::Server, 0).token().is_none());
        for bad in ["", "pko_00", "pkw_", "pkw_Web.00", "pkw_1234"] {
            let err = bad.parse::<MacKey>().unwrap_err().to_string();
            assert!(err.contains("not a worker token"), "{bad}: {err}");
        }
        assert!(!format!("{web:?}").contains("abab"));
    }
}
