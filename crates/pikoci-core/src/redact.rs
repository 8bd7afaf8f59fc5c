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
/// The user information ends at the last `@` before the first `/`: a password holding a `/` must
/// be percent-encoded (`%2F`), as URLs require anyway.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    let shown = format!("{scheme}://{authority}{path}");
    match shown.split_once('?') {
        Some((before, query)) => format!("{before}?{}", redact_query(query)),
        None => shown,
    }
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
    use super::url;

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
    fn urls_without_credentials_are_unchanged() {
        for plain in [
            "mem",
            "sqlite::memory:",
            "sqlite:///var/lib/pikoci.db",
            "https://host/x@y",
            "kafka://a:9092,b:9092",
            "a:9092,b:9092",
            "git@github.com:o/r.git",
        ] {
            assert_eq!(url(plain), plain);
        }
    }
}
