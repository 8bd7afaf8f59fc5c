//! Pages of the lists that are read whole (teams, pipelines, jobs, resources, secrets,
//! workers): `?after=<name>&limit=`, answered with `meta: {"has_more", "next_after"}`. The
//! cursor is a name, so a page stays where it was when items are added or removed before it.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::page_limit;

/// `?after=<name>&limit=<1..500, default 50>`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamePage {
    /// The name of the previous page's last item (`meta.next_after`): this page starts after
    /// it.
    after: Option<String>,
    /// The page's size, 1 to 500 (50 when not given).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// `{"has_more", "next_after": name | null}`: pass `next_after` as `?after=` for the next page.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NameMeta {
    /// More items follow.
    has_more: bool,
    /// `?after=` for the next page; null on the last.
    #[schema(required = true)]
    next_after: Option<String>,
}

/// The order of a list, which says where `after` leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// By name, byte by byte (teams, pipelines, secrets, workers): the page starts at the
    /// first name after `after`, whether that one still exists or not.
    ByName,
    /// As declared in the pipeline file (jobs, resources): the page starts after the item
    /// named `after`, which must still exist.
    Declared,
}

impl NamePage {
    /// This page of `items`, each named by `name`; with `Order::ByName` the items are sorted
    /// first.
    pub(crate) fn cut<T>(
        &self,
        mut items: Vec<T>,
        order: Order,
        name: impl Fn(&T) -> &str,
    ) -> ApiResult<(Vec<T>, NameMeta)> {
        let limit = page_limit(self.limit)? as usize;
        if order == Order::ByName {
            items.sort_by(|a, b| name(a).cmp(name(b)));
        }
        let start = match (&self.after, order) {
            (None, _) => 0,
            (Some(after), Order::ByName) => {
                items.partition_point(|item| name(item) <= after.as_str())
            }
            (Some(after), Order::Declared) => items
                .iter()
                .position(|item| name(item) == after)
                .map(|at| at + 1)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "after=\"{}\" is not in the list (it was removed, or renamed): list \
                         again from the start",
                        after.escape_debug()
                    ))
                })?,
        };
        let mut page: Vec<T> = items.into_iter().skip(start).take(limit + 1).collect();
        let has_more = page.len() > limit;
        page.truncate(limit);
        let next_after = if has_more {
            page.last().map(|item| name(item).to_owned())
        } else {
            None
        };
        Ok((
            page,
            NameMeta {
                has_more,
                next_after,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{NamePage, Order};

    fn page(after: Option<&str>, limit: u32, order: Order) -> (Vec<&'static str>, Option<String>) {
        let items = vec!["b", "a-b", "c", "ab", "d"];
        let query = NamePage {
            after: after.map(str::to_owned),
            limit: Some(limit),
        };
        let (page, meta) = query.cut(items, order, |s| s).expect("a page");
        assert_eq!(meta.has_more, meta.next_after.is_some());
        (page, meta.next_after)
    }

    #[test]
    fn pages_by_name_follow_the_byte_order_and_survive_removals() {
        assert_eq!(
            page(None, 2, Order::ByName),
            (vec!["a-b", "ab"], Some("ab".into()))
        );
        assert_eq!(
            page(Some("ab"), 2, Order::ByName),
            (vec!["b", "c"], Some("c".into()))
        );
        assert_eq!(page(Some("c"), 2, Order::ByName), (vec!["d"], None));
        // A name that is gone (or never was) still places the page.
        assert_eq!(page(Some("bb"), 5, Order::ByName), (vec!["c", "d"], None));
    }

    #[test]
    fn pages_of_declared_lists_keep_their_order() {
        assert_eq!(
            page(None, 3, Order::Declared),
            (vec!["b", "a-b", "c"], Some("c".into()))
        );
        assert_eq!(page(Some("c"), 3, Order::Declared), (vec!["ab", "d"], None));
        let gone = NamePage {
            after: Some("zz".into()),
            limit: None,
        }
        .cut(vec!["a"], Order::Declared, |s| s)
        .expect_err("an unknown name");
        assert_eq!(gone.status(), axum::http::StatusCode::BAD_REQUEST);
    }
}
