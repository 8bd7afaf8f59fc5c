//! Local runs (`pikoci run --resource TYPE.NAME=DIR`): where a local directory is copied so that
//! it lands where a real `get` of the resource would have put its files.

use std::path::PathBuf;

use crate::{Origin, Resource, ResourceType};

/// The directory, relative to the work directory, a real `get` of `resource` fills. The
/// builtin types say where in their own way (`artifact`: its `dir` param, by default the work
/// directory itself; `git`: its `name` param, by default the URL's last part without `.git`;
/// `fs`: the last part of its `path`); any other type gets its `name` param, or the resource's
/// name.
pub(super) fn override_target(resource: &Resource, resource_type: &ResourceType) -> PathBuf {
    let param = |key: &str| {
        resource
            .params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let last_part = |text: &str| {
        text.trim_end_matches('/')
            .rsplit(['/', ':'])
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let builtin = matches!(resource_type.origin, Origin::Builtin);
    let target = match resource_type.name.as_str() {
        "artifact" if builtin => param("dir").unwrap_or(".").to_owned(),
        "git" if builtin => match (param("name"), param("url")) {
            (Some(name), _) => name.to_owned(),
            (None, Some(url)) => {
                let base = last_part(url);
                base.strip_suffix(".git").unwrap_or(&base).to_owned()
            }
            (None, None) => resource.name.clone(),
        },
        "fs" if builtin => match param("path").map(last_part).as_deref() {
            Some("" | "." | "..") | None => "fs".to_owned(),
            Some(base) => base.to_owned(),
        },
        _ => param("name").unwrap_or(&resource.name).to_owned(),
    };
    PathBuf::from(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(type_name: &str, params: &[(&str, &str)]) -> String {
        let resource = Resource {
            type_name: type_name.to_owned(),
            name: "res".to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            check_interval: Default::default(),
            tags: Vec::new(),
            cache: None,
        };
        let resource_type = ResourceType {
            name: type_name.to_owned(),
            origin: Origin::Builtin,
            params: Vec::new(),
            cache: false,
            check: None,
            pull: None,
            push: None,
            runner_override: None,
        };
        override_target(&resource, &resource_type)
            .display()
            .to_string()
    }

    #[test]
    fn an_override_lands_where_the_types_pull_puts_its_files() {
        assert_eq!(target("artifact", &[("dir", "out")]), "out");
        assert_eq!(target("artifact", &[]), ".");
        assert_eq!(target("git", &[("url", "https://h/x/app.git")]), "app");
        assert_eq!(target("git", &[("url", "git@h:x/app.git/")]), "app");
        assert_eq!(target("git", &[("url", "u"), ("name", "src")]), "src");
        assert_eq!(target("fs", &[("path", "/data/in/")]), "in");
        assert_eq!(target("fs", &[("path", "/")]), "fs");
        assert_eq!(target("mine", &[]), "res");
        assert_eq!(target("mine", &[("name", "n")]), "n");
    }
}
