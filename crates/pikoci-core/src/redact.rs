//! Hiding credentials in URLs before they reach a message, a log or `Debug` output. The one
//! redactor of the workspace: the store, the brokers and the git checks all use it.

/// Query parameters whose values are hidden (matched case-insensitively as parts of the name,
/// so `sslpassword` and `access_token` are hidden too).
const SECRET_QUERY_KEYS: [&str; 3] = ["password", "secret", "token"];

/// `url` with its credentials replaced by `***`: the password of `scheme://user:password@host`
/// (the user stays, to say who connected), a bare `scheme://token@host` user (often a token),
/// and the values of query parameters named like a password, secret or token. Text that is not
/// a `scheme://` URL (`mem`, `sqlite::memory:`, a host list) is returned as it is.
///
/// Passwords are not always percent-encoded as URLs require, so the user information ends at the
/// last `@` before the first `?` or `#` (a password may hold `/` and `@`), and when the only `@`
/// comes after a `?` or `#` (a password holding one of them, or an address in the query), at the
/// last `@` of all: when in doubt, too much is hidden rather than too little.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (userinfo, remainder) = match userinfo_end(rest) {
        Some(at) => {
            let shown = match rest[..at].split_once(':') {
                Some((user, _)) => format!("{user}:***@"),
                None => "***@".to_owned(),
            };
            (shown, &rest[at + 1..])
        }
        None => (String::new(), rest),
    };
    let remainder = match remainder.split_once('?') {
        Some((before, query)) => format!("{before}?{}", redact_query(query)),
        None => remainder.to_owned(),
    };
    format!("{scheme}://{userinfo}{remainder}")
}

/// `url` without its user information: `http://user:password@proxy:3128` gives
/// `http://proxy:3128`. Text without `scheme://` (`user:password@proxy:3128`, as proxies are
/// often written) is read as starting with its authority. The user information ends where
/// [`url`] says.
pub fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (&url[..scheme.len() + 3], rest),
        None => ("", url),
    };
    match userinfo_end(rest) {
        Some(at) => format!("{scheme}{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Where the user information of the text after `scheme://` ends (its `@`), if it has one: the
/// last `@` before the first `?` or `#`, else the last `@` of all.
fn userinfo_end(rest: &str) -> Option<usize> {
    let head_end = rest.find(['?', '#']).unwrap_or(rest.len());
    rest[..head_end].rfind('@').or_else(|| rest.rfind('@'))
}

/// The query `a=1&password=x` as `a=1&password=***`.
fn redact_query(query: &str) -> String {
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret_key(key) => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    let mut shown = pairs.join("&");
    if let Some(fragment) = fragment {
        shown.push('#');
        shown.push_str(fragment);
    }
    shown
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_QUERY_KEYS.iter().any(|secret| key.contains(secret))
}

#[cfg(test)]
mod tests {
    use super::{url, without_userinfo};

    #[test]
    fn passwords_and_tokens_are_hidden() {
        assert_eq!(
            url("postgres://ci:hunter2@db:5432/pikoci?sslmode=disable"),
            "postgres://ci:***@db:5432/pikoci?sslmode=disable"
        );
        assert_eq!(
            url("nats://pikoci:p%40ss@nats:4222"),
            "nats://pikoci:***@nats:4222"
        );
        assert_eq!(
            url("https://ghp_token@github.com/o/r"),
            "https://***@github.com/o/r"
        );
        assert_eq!(url("amqp://u:p:q@host/%2f"), "amqp://u:***@host/%2f");
        assert_eq!(
            url("postgres://db/pikoci?user=ci&Password=hunter2&access_token=t#x"),
            "postgres://db/pikoci?user=ci&Password=***&access_token=***#x"
        );
    }

    #[test]
    fn passwords_with_url_delimiters_are_hidden_whole() {
        for (password, hidden) in [
            ("pa/ss", "postgres://u:***@db/x"),
            ("pa@ss", "postgres://u:***@db/x"),
            ("p@a/s@s", "postgres://u:***@db/x"),
            ("pa#ss", "postgres://u:***@db/x"),
            ("pa?ss", "postgres://u:***@db/x"),
            ("p/a?s#s", "postgres://u:***@db/x"),
        ] {
            let shown = url(&format!("postgres://u:{password}@db/x"));
            assert_eq!(shown, hidden, "password {password:?}");
        }
        assert_eq!(
            url("postgres://u:pa/ss@db/x?password=a@b&sslmode=disable"),
            "postgres://u:***@db/x?password=***&sslmode=disable"
        );
        assert_eq!(
            url("https://tok/en@github.com/o/r"),
            "https://***@github.com/o/r"
        );
    }

    #[test]
    fn an_at_sign_in_doubt_hides_what_comes_before_it() {
        // A path or a query holding an `@` cannot be told from a password holding a `/` or a
        // `?`: the text before it is hidden.
        assert_eq!(url("https://host/x@y"), "https://***@y");
        assert_eq!(url("https://h:443/x?to=a@b.c"), "https://h:***@b.c");
    }

    #[test]
    fn userinfo_is_removed_with_or_without_a_scheme() {
        for (given, kept) in [
            ("http://u:p@proxy:3128", "http://proxy:3128"),
            ("http://u:p/a@ss@proxy:3128/", "http://proxy:3128/"),
            ("socks5://token@proxy", "socks5://proxy"),
            ("u:p@proxy:3128", "proxy:3128"),
            ("http://proxy:3128", "http://proxy:3128"),
            ("proxy:3128", "proxy:3128"),
        ] {
            assert_eq!(without_userinfo(given), kept, "{given}");
        }
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for plain in [
            "mem",
            "sqlite::memory:",
            "sqlite:///var/lib/pikoci.db",
            "kafka://a:9092,b:9092",
            "a:9092,b:9092",
            "git@github.com:o/r.git",
        ] {
            assert_eq!(url(plain), plain);
        }
    }
}
