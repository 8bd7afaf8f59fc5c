//! Go-style `os.Expand`: `$NAME` and `${NAME}` in runner templates, notification messages and
//! the values of `if` conditions.

/// Expands `$NAME` and `${NAME}` in `text` with the semantics of Go's `os.Expand`.
///
/// * `$NAME` takes the longest run of `[A-Za-z0-9_]` as the name, except that a special
///   character right after the `$` (`*`, `#`, `$`, `@`, `!`, `?`, `-` or a digit) is a
///   one-character name: `$1abc` is the variable `1` followed by `abc`.
/// * `${NAME}` takes everything up to the next `}` as the name; `${}` expands to nothing, and an
///   unterminated `${` is dropped (the text after it is kept).
/// * A `$` at the end of the text, or followed by any other character, is kept literally.
/// * Unknown variables (`lookup` returns `None`) expand to the empty string.
/// * The expansion is a single pass: `$` signs in a variable's value are not expanded again.
///
/// Conditions and runner templates use these same rules.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // `copied` is where the text not yet copied to `out` starts; all indices used to slice are
    // next to an ASCII byte, hence on a character boundary.
    let mut copied = 0;
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&text[copied..j]);
            let (name, width) = shell_name(&text[j + 1..]);
            if !name.is_empty() {
                out.push_str(&lookup(name).unwrap_or_default());
            } else if width == 0 {
                // Not a variable reference: keep the dollar sign.
                out.push('$');
            }
            // else: bad syntax (`${}` or an unterminated `${`), eaten.
            j += width;
            copied = j + 1;
        }
        j += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// The variable name at the start of `text` (which follows a `$`) and how many bytes it spans;
/// an empty name with a non-zero width is bad syntax to drop. Mirrors Go's `getShellName`.
fn shell_name(text: &str) -> (&str, usize) {
    let bytes = text.as_bytes();
    match bytes.first() {
        None => ("", 0),
        Some(b'{') => {
            if bytes.len() > 2 && is_special(bytes[1]) && bytes[2] == b'}' {
                return (&text[1..2], 3);
            }
            match text[1..].find('}') {
                Some(0) => ("", 2),
                Some(end) => (&text[1..=end], end + 2),
                None => ("", 1),
            }
        }
        Some(&first) if is_special(first) => (&text[..1], 1),
        Some(_) => {
            let len = bytes.iter().take_while(|&&b| is_name_byte(b)).count();
            (&text[..len], len)
        }
    }
}

/// Shell special parameters, which are one character long after a `$`.
fn is_special(byte: u8) -> bool {
    matches!(
        byte,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

/// `[A-Za-z0-9_]`.
pub(crate) fn is_name_byte(byte: u8) -> bool {
    byte == b'_' || byte.is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn expand_follows_go_os_expand() {
        let vars = HashMap::from([
            ("A", "1"),
            ("AB", "2"),
            ("1", "one"),
            ("*", "star"),
            ("$", "pid"),
            ("a b", "sp"),
            ("_", "under"),
            ("é", "acute"),
            ("V", "$A"),
        ]);
        let lookup = |name: &str| vars.get(name).map(|v| (*v).to_owned());
        let cases = [
            ("", ""),
            ("plain", "plain"),
            ("$", "$"),
            ("a$", "a$"),
            ("$A", "1"),
            ("$AB", "2"),
            ("$ABC", ""),
            ("$A-x", "1-x"),
            ("a$A$A", "a11"),
            ("${A}B", "1B"),
            ("${A}}", "1}"),
            ("$1abc", "oneabc"),
            ("$12", "one2"),
            ("${12}", ""),
            ("${1}", "one"),
            ("$*", "star"),
            ("${*}", "star"),
            ("$$", "pid"),
            ("$$$", "pid$"),
            ("$-", ""),
            ("$_", "under"),
            ("${a b}", "sp"),
            ("${é}", "acute"),
            ("${}", ""),
            ("x${}y", "xy"),
            ("${A", "A"),
            ("x${", "x"),
            ("$%", "$%"),
            ("$ A", "$ A"),
            ("$é", "$é"),
            ("€$A€", "€1€"),
            ("$V", "$A"),
        ];
        for (text, expected) in cases {
            assert_eq!(expand(text, &lookup), expected, "expanding {text:?}");
        }
    }
}
