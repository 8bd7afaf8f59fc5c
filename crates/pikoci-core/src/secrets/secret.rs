//! The value types: [`Secret`], a string that redacts itself, and what a source returns.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret value. `Debug` and `Display` print `***`, so a secret that ends up in a log line,
/// an error or a `{:?}` dump shows nothing; [`Secret::expose`] is the one way to the text.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself: call it only where the value is used, never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value itself, unwrapped.
    pub fn into_exposed(self) -> String {
        self.0
    }

    /// Whether the value is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

/// Whether a value is hidden in output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretKind {
    /// A secret: masked as `***` wherever it appears.
    #[default]
    Secret,
    /// A plain configuration value (entries of the store `pikoci` of kind `plain`): not masked.
    Plain,
}

impl SecretKind {
    /// The name used by the store and its API: `secret` or `plain`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Secret => "secret",
            SecretKind::Plain => "plain",
        }
    }

    /// Parses `secret` or `plain`.
    pub fn parse(name: &str) -> Option<SecretKind> {
        match name {
            "secret" => Some(SecretKind::Secret),
            "plain" => Some(SecretKind::Plain),
            _ => None,
        }
    }
}

/// One value a source returned, and whether it is masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretValue {
    /// The value.
    pub value: Secret,
    /// Masked or not.
    pub kind: SecretKind,
}

impl SecretValue {
    /// A value that is masked.
    pub fn secret(value: impl Into<String>) -> SecretValue {
        SecretValue {
            value: Secret::new(value),
            kind: SecretKind::Secret,
        }
    }

    /// A value that is shown.
    pub fn plain(value: impl Into<String>) -> SecretValue {
        SecretValue {
            value: Secret::new(value),
            kind: SecretKind::Plain,
        }
    }
}

/// What a source returns for one path: its values by key.
pub type SecretValues = BTreeMap<String, SecretValue>;
