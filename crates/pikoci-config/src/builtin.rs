//! The builtin definitions (`pikoci://NAME`), embedded from the repository's `builtin/` folder at
//! build time so that no network is needed for them.

/// The kinds of definitions a `source` can point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `resource_type`.
    ResourceType,
    /// `runner_type`.
    RunnerType,
    /// `secret_type`.
    SecretType,
    /// `service_type`.
    ServiceType,
    /// `notification_type`.
    NotificationType,
}

impl Kind {
    /// The block name (`resource_type`, ...).
    pub fn block_name(self) -> &'static str {
        match self {
            Kind::ResourceType => "resource_type",
            Kind::RunnerType => "runner_type",
            Kind::SecretType => "secret_type",
            Kind::ServiceType => "service_type",
            Kind::NotificationType => "notification_type",
        }
    }

    /// The folder of `builtin/` holding this kind.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::ResourceType => "resource_types",
            Kind::RunnerType => "runners",
            Kind::SecretType => "secret_types",
            Kind::ServiceType => "services",
            Kind::NotificationType => "notification_types",
        }
    }
}

macro_rules! embed {
    ($($kind:ident $folder:literal [$($name:literal),* $(,)?]),* $(,)?) => {
        /// Every embedded definition: kind, name, HCL text.
        pub const ALL: &[(Kind, &str, &str)] = &[
            $($((
                Kind::$kind,
                $name,
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../builtin/", $folder, "/", $name, ".hcl")),
            ),)*)*
        ];
    };
}

embed! {
    ResourceType "resource_types" ["artifact", "cron", "fs", "git", "github-check", "trigger"],
    RunnerType "runners" ["docker", "exec", "shell"],
    SecretType "secret_types" ["env", "file", "vault"],
    ServiceType "services" ["kafka", "keycloak", "mariadb", "nats", "postgresql", "rabbitmq", "redis", "vault"],
    NotificationType "notification_types" ["discord", "github-check", "slack"],
}

/// The HCL text of the builtin `name` of `kind`.
pub fn lookup(kind: Kind, name: &str) -> Option<&'static str> {
    ALL.iter()
        .find(|(k, n, _)| *k == kind && *n == name)
        .map(|(_, _, text)| *text)
}

/// The builtin names of `kind`.
pub fn names(kind: Kind) -> impl Iterator<Item = &'static str> {
    ALL.iter()
        .filter(move |(k, _, _)| *k == kind)
        .map(|(_, name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file under `builtin/` is embedded, and nothing embedded is missing from disk.
    #[test]
    fn every_builtin_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../builtin");
        let mut on_disk = Vec::new();
        for kind in [
            Kind::ResourceType,
            Kind::RunnerType,
            Kind::SecretType,
            Kind::ServiceType,
            Kind::NotificationType,
        ] {
            for entry in std::fs::read_dir(root.join(kind.folder())).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "hcl") {
                    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                    on_disk.push((kind, name));
                }
            }
        }
        on_disk.sort_by(|a, b| (a.0.folder(), &a.1).cmp(&(b.0.folder(), &b.1)));
        let mut embedded: Vec<(Kind, String)> =
            ALL.iter().map(|(k, n, _)| (*k, (*n).to_owned())).collect();
        embedded.sort_by(|a, b| (a.0.folder(), &a.1).cmp(&(b.0.folder(), &b.1)));
        assert_eq!(on_disk, embedded, "update the embed! list in builtin.rs");
    }
}
