//! The one percent-encoder of the workspace (RFC 3986), for URL path segments, query values and
//! the user and password of database URLs.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Every byte but the unreserved characters (letters, digits, `-`, `.`, `_`, `~`) is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` with every byte but the unreserved characters as `%XX` (upper-case hex), so that it
/// is safe as one path segment, one query value, or the user or password of a URL.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn only_unreserved_characters_stay() {
        assert_eq!(encode("group/sub app"), "group%2Fsub%20app");
        assert_eq!(encode("feature/x-1.2_~"), "feature%2Fx-1.2_~");
        assert_eq!(encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
        assert_eq!(encode("é"), "%C3%A9");
    }
}
