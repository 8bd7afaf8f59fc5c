//! From what the API listed to the versions a check reports, oldest first, following the
//! first-check rule: only the newest item when nothing is known yet.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::provider::{PullRequest, Tag};

/// `[{"ref": sha}]`.
pub(crate) fn commit(sha: &str) -> Vec<Value> {
    vec![json!({ "ref": sha })]
}

/// The open pull requests targeting `branch` (all of them when `None`), by number; only the
/// newest (the highest number) on the first check.
pub(crate) fn pull_requests(
    mut pulls: Vec<PullRequest>,
    branch: Option<&str>,
    first_check: bool,
) -> Vec<Value> {
    if let Some(branch) = branch {
        pulls.retain(|p| p.base == branch);
    }
    pulls.sort_by_key(|p| p.number);
    pulls.dedup_by_key(|p| p.number);
    if first_check && let Some(newest) = pulls.pop() {
        pulls = vec![newest];
    }
    pulls
        .into_iter()
        .map(|p| json!({ "ref": p.head, "pr": p.number }))
        .collect()
}

/// The tags in version order that come after `newest_tag`; only the newest tag on the first
/// check, or when `newest_tag` no longer exists.
pub(crate) fn tags(mut tags: Vec<Tag>, newest_tag: Option<&str>) -> Vec<Value> {
    tags.sort_by(|a, b| version_order(&a.name, &b.name));
    tags.dedup_by(|a, b| a.name == b.name);
    let start = match newest_tag.and_then(|seen| tags.iter().position(|t| t.name == seen)) {
        Some(seen) => seen + 1,
        None => tags.len().saturating_sub(1),
    };
    tags.into_iter()
        .skip(start)
        .map(|t| json!({ "ref": t.commit, "tag": t.name }))
        .collect()
}

/// Orders names as versions, like `git tag --sort=version:refname`: runs of digits compare
/// as numbers (`v1.9` < `v1.10`), everything else byte by byte.
pub(crate) fn version_order(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = split_digits(a);
                let (db, rb) = split_digits(b);
                let order = compare_numbers(da, db);
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn split_digits(text: &[u8]) -> (&[u8], &[u8]) {
    let end = text
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// Compares two runs of digits by value, however long; `01` before `1` when equal.
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let trim = |n: &[u8]| -> usize { n.iter().take_while(|c| **c == b'0').count() };
    let (za, zb) = (trim(a), trim(b));
    let (va, vb) = (&a[za..], &b[zb..]);
    va.len()
        .cmp(&vb.len())
        .then_with(|| va.cmp(vb))
        .then_with(|| zb.cmp(&za))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str) -> Tag {
        Tag {
            name: name.to_owned(),
            commit: format!("sha-{name}"),
        }
    }

    fn names(versions: &[Value]) -> Vec<&str> {
        versions
            .iter()
            .map(|v| v["tag"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn sorts_like_git_version_refname() {
        let mut list = vec![
            "v1.10.0",
            "v1.9.0",
            "v1.0.0-rc1",
            "v1.0.0",
            "v10.0.0",
            "v2.0.0",
            "v1.09",
        ];
        list.sort_by(|a, b| version_order(a, b));
        assert_eq!(
            list,
            [
                "v1.0.0",
                "v1.0.0-rc1",
                "v1.09",
                "v1.9.0",
                "v1.10.0",
                "v2.0.0",
                "v10.0.0"
            ]
        );
        assert_eq!(
            version_order("1.99999999999999999999", "1.100000000000000000000"),
            Ordering::Less
        );
    }

    #[test]
    fn tags_after_the_newest_known_one() {
        let all = || vec![tag("v1.10.0"), tag("v1.2.0"), tag("v1.9.0"), tag("v2.0.0")];
        assert_eq!(names(&tags(all(), None)), ["v2.0.0"]);
        assert_eq!(names(&tags(all(), Some("v1.9.0"))), ["v1.10.0", "v2.0.0"]);
        assert_eq!(names(&tags(all(), Some("v2.0.0"))), Vec::<&str>::new());
        assert_eq!(names(&tags(all(), Some("deleted"))), ["v2.0.0"]);
        assert!(tags(Vec::new(), None).is_empty());
    }

    #[test]
    fn pull_requests_by_number_newest_alone_on_the_first_check() {
        let pr = |number, base: &str| PullRequest {
            number,
            head: format!("head-{number}"),
            base: base.to_owned(),
        };
        let all = || vec![pr(12, "main"), pr(7, "main"), pr(9, "release")];
        assert_eq!(
            pull_requests(all(), None, false),
            [
                json!({"ref": "head-7", "pr": 7}),
                json!({"ref": "head-9", "pr": 9}),
                json!({"ref": "head-12", "pr": 12})
            ]
        );
        assert_eq!(
            pull_requests(all(), None, true),
            [json!({"ref": "head-12", "pr": 12})]
        );
        assert_eq!(
            pull_requests(all(), Some("release"), true),
            [json!({"ref": "head-9", "pr": 9})]
        );
        assert!(pull_requests(all(), Some("gone"), true).is_empty());
    }
}
