//! Secret masking: every secret value of three characters or more is replaced by `***`.

/// Replaces secret values by `***`.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Values to hide, longest first so that a secret containing another is hidden whole.
    secrets: Vec<String>,
}

/// The shortest value that is masked (shorter ones would mask too much ordinary text).
pub const MIN_MASKED_LEN: usize = 3;

impl Masker {
    /// A masker for these values (short and duplicate values are dropped).
    pub fn new(values: impl IntoIterator<Item = String>) -> Masker {
        let mut secrets: Vec<String> = values
            .into_iter()
            .filter(|v| v.chars().count() >= MIN_MASKED_LEN)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Masker { secrets }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_long_values_only() {
        let masker = Masker::new(["hunter22".to_owned(), "ab".to_owned(), "hunter".to_owned()]);
        assert_eq!(
            masker.mask("pw=hunter22, short=ab, part=hunter"),
            "pw=***, short=ab, part=***"
        );
        assert_eq!(Masker::default().mask("x"), "x");
    }
}
