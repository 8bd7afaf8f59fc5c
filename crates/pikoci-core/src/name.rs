//! Names: canonical names (slugs), slugs made from `for_each` keys, and environment variable
//! prefixes made from step names.

/// The longest canonical name, in bytes.
pub const MAX_CANONICAL_LEN: usize = 255;

/// Whether `name` is canonical: non-empty, at most 255 bytes, only `a-z`, `0-9`, `-` and `_`,
/// not starting or ending with `-` or `_`.
pub fn is_canonical(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CANONICAL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !name.starts_with(['-', '_'])
        && !name.ends_with(['-', '_'])
}

/// Turns free text into a canonical name, the way `for_each` keys become job name suffixes:
/// `1.21` → `1-21`, `Hello World` → `hello-world`, `x&y` → `xandy`, `Ünïcode` → `unicode`.
/// May return an empty string (for `...`, say); callers reject that.
pub fn slugify(text: &str) -> String {
    let text = text
        .trim()
        .replace('&', "and")
        .replace('@', "at")
        .replace(['\'', '"', '’', '‘', '“', '”'], "");
    let ascii = deunicode::deunicode(&text).to_ascii_lowercase();
    let mut slug = String::with_capacity(ascii.len());
    for c in ascii.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if c == '-' && slug.ends_with('-') {
            continue;
        }
        slug.push(c);
    }
    slug.trim_matches(['-', '_']).to_owned()
}

/// The environment variable form of a name: upper case, every character outside `A-Z0-9`
/// replaced by `_` (`my-repo` → `MY_REPO`, `build.app` → `BUILD_APP`).
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The closest of `candidates` to `name` within edit distance 2, for "did you mean" hints
/// (`name` itself excluded).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|candidate| *candidate != name)
        .map(|candidate| (strsim::levenshtein(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        for ok in ["a", "build", "my-job", "my_job", "a1", "1-21", "x--y"] {
            assert!(is_canonical(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "Build",
            "-a",
            "a-",
            "_a",
            "a_",
            "a.b",
            "a b",
            "é",
            long.as_str(),
        ] {
            assert!(!is_canonical(bad), "{bad}");
        }
    }

    #[test]
    fn slugs_follow_the_for_each_rules() {
        for (text, slug) in [
            ("1.21", "1-21"),
            ("Hello World", "hello-world"),
            ("a_b", "a_b"),
            ("x&y", "xandy"),
            ("me@home", "meathome"),
            ("...", ""),
            ("  linux  ", "linux"),
            ("it's", "its"),
            ("Ünïcödé", "unicode"),
            ("a -- b", "a-b"),
            ("_x_", "x"),
        ] {
            assert_eq!(slugify(text), slug, "{text:?}");
        }
    }

    #[test]
    fn env_names() {
        assert_eq!(env_name("my-repo"), "MY_REPO");
        assert_eq!(env_name("build.app"), "BUILD_APP");
        assert_eq!(env_name("Metadata_sha"), "METADATA_SHA");
    }
}
