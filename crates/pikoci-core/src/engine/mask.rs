//! Secret masking: every secret value of three characters or more is replaced by `***`.
//!
//! Output reaches the masker one line at a time, so a multi-line secret (a PEM key) is also
//! masked line by line: each of its lines of three characters or more is a pattern of its own.
//! Every occurrence of every pattern is found first (overlapping ones included) and the union of
//! the matched ranges is replaced, so overlapping secrets, a secret inside a longer word and a
//! secret containing another leave no fragment behind.

/// Replaces secret values by `***`. `Debug` shows how many patterns it holds, never them.
#[derive(Clone, Default)]
pub struct Masker {
    /// Texts to hide, longest first, without duplicates.
    patterns: Vec<String>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

/// The shortest value that is masked (shorter ones would mask too much ordinary text).
pub const MIN_MASKED_LEN: usize = 3;

/// What a masked range becomes.
const MASK: &str = "***";

impl Masker {
    /// A masker for these values (values shorter than [`MIN_MASKED_LEN`] characters are not
    /// masked; nor are lines that short of multi-line values).
    pub fn new(values: impl IntoIterator<Item = String>) -> Masker {
        let mut patterns: Vec<String> = Vec::new();
        for value in values {
            for pattern in patterns_of(&value) {
                if pattern.chars().count() >= MIN_MASKED_LEN {
                    patterns.push(pattern.to_owned());
                }
            }
        }
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        Masker { patterns }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every secret replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for pattern in &self.patterns {
            let mut from = 0;
            while let Some(found) = text[from..].find(pattern.as_str()) {
                let start = from + found;
                ranges.push((start, start + pattern.len()));
                // Next search one character later: overlapping occurrences count too.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if ranges.is_empty() {
            return text.to_owned();
        }
        ranges.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut current: Option<(usize, usize)> = None;
        for (start, end) in ranges {
            match &mut current {
                Some((_, current_end)) if start < *current_end => {
                    *current_end = (*current_end).max(end);
                }
                _ => {
                    if let Some((s, e)) = current.take() {
                        out.push_str(&text[copied..s]);
                        out.push_str(MASK);
                        copied = e;
                    }
                    current = Some((start, end));
                }
            }
        }
        if let Some((s, e)) = current {
            out.push_str(&text[copied..s]);
            out.push_str(MASK);
            copied = e;
        }
        out.push_str(&text[copied..]);
        out
    }
}

impl Masker {
    /// `value` with every secret in its strings (object keys included) replaced by `***`.
    pub fn mask_json(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        if self.is_empty() {
            return value;
        }
        match value {
            Value::String(text) => Value::String(self.mask(&text)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.mask_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.mask(&k), self.mask_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// The texts that stand for `value` in output: the value itself, the value without surrounding
/// white space, and for multi-line values each line (also without its white space).
fn patterns_of(value: &str) -> Vec<&str> {
    let mut patterns = vec![value, value.trim()];
    if value.contains(['\n', '\r']) {
        for line in value.split(['\n', '\r']) {
            patterns.push(line);
            patterns.push(line.trim());
        }
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(values: &[&str]) -> Masker {
        Masker::new(values.iter().map(|v| (*v).to_owned()))
    }

    #[test]
    fn masks_long_values_only() {
        let masker = masker(&["hunter22", "ab", "hunter"]);
        assert_eq!(
            masker.mask("pw=hunter22, short=ab, part=hunter"),
            "pw=***, short=ab, part=***"
        );
        assert_eq!(Masker::default().mask("x"), "x");
        assert!(Masker::new(["ab".to_owned()]).is_empty());
        assert_eq!(masker.mask("nothing here"), "nothing here");
    }

    #[test]
    fn exactly_three_characters_are_masked() {
        assert_eq!(masker(&["abc"]).mask("xabcx abc"), "x***x ***");
        // Three characters, not three bytes: two multibyte characters stay.
        assert_eq!(masker(&["éé"]).mask("éé"), "éé");
    }

    #[test]
    fn secrets_inside_longer_words_are_masked() {
        assert_eq!(
            masker(&["s3cret"]).mask("prefix_s3cret_suffix and s3crets"),
            "prefix_***_suffix and ***s"
        );
    }

    #[test]
    fn overlapping_secrets_leave_no_fragment() {
        // Replacing one after the other would leave "ghi" of the second secret visible.
        let masker = masker(&["abcdef", "defghi"]);
        assert_eq!(masker.mask("abcdefghi"), "***");
        assert_eq!(masker.mask("xx abcdef yy defghi"), "xx *** yy ***");
        // A secret containing another: the longer one is hidden whole.
        let masker = self::masker(&["pass", "password123"]);
        assert_eq!(masker.mask("password123 pass"), "*** ***");
        // Overlapping occurrences of one secret.
        assert_eq!(self::masker(&["aaa"]).mask("aaaa b aaa"), "*** b ***");
    }

    #[test]
    fn adjacent_secrets_are_masked_each() {
        assert_eq!(masker(&["abc", "xyz"]).mask("abcxyz"), "******");
    }

    #[test]
    fn multibyte_text_and_secrets() {
        let masker = masker(&["пароль", "🔑🔑🔑", "日本語"]);
        assert_eq!(
            masker.mask("ключ: пароль, emoji 🔑🔑🔑🔑, 日本語のテキスト"),
            "ключ: ***, emoji ***, ***のテキスト"
        );
        // A secret of ASCII next to multibyte text.
        assert_eq!(self::masker(&["abc"]).mask("éabcé"), "é***é");
    }

    #[test]
    fn multi_line_secrets_are_masked_line_by_line() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
        let masker = masker(&[pem, "a\nbcd\r\nxy"]);
        assert_eq!(masker.mask(pem), "***");
        for line in pem.lines() {
            assert_eq!(masker.mask(line), "***", "{line}");
        }
        assert_eq!(masker.mask("  MIIEvQIBADANBgkq  "), "  ***  ");
        // Lines of the second value: "bcd" is masked, "a" and "xy" are too short.
        assert_eq!(masker.mask("a bcd xy"), "a *** xy");
    }

    #[test]
    fn surrounding_white_space_of_a_value_does_not_matter() {
        let masker = masker(&["  token123\n"]);
        assert_eq!(masker.mask("token=token123"), "token=***");
    }

    #[test]
    fn json_strings_and_keys_are_masked() {
        let masker = masker(&["s3cr3t"]);
        assert_eq!(
            masker
                .mask_json(serde_json::json!({"ref": "a-s3cr3t", "s3cr3t": [1, "s3cr3t"], "n": 2})),
            serde_json::json!({"ref": "a-***", "***": [1, "***"], "n": 2})
        );
    }

    #[test]
    fn the_mask_itself_is_not_remasked() {
        let masker = masker(&["***x", "abc"]);
        assert_eq!(masker.mask("abc ***x"), "*** ***");
    }
}
