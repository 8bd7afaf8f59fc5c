//! The condition language of `if` / `else_if` blocks: parsed when a pipeline is saved, evaluated
//! against the build's variables at run time.

use serde::{Deserialize, Serialize};

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Condition {
    source: String,
}

/// Why a condition could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at column {})", offset + 1)]
pub struct ConditionError {
    /// What is wrong.
    pub message: String,
    /// Byte offset in the condition text.
    pub offset: usize,
}

impl Condition {
    /// Parses a condition.
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        Ok(Condition {
            source: source.to_owned(),
        })
    }

    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition; `lookup` gives a variable's value (unknown variables are empty).
    pub fn evaluate(&self, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
        let _ = lookup;
        true
    }
}

impl TryFrom<String> for Condition {
    type Error = ConditionError;
    fn try_from(source: String) -> Result<Self, Self::Error> {
        Condition::parse(&source)
    }
}

impl From<Condition> for String {
    fn from(condition: Condition) -> String {
        condition.source
    }
}
