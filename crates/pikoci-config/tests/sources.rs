//! `source` resolution: builtins, fetched definitions, merging of local attributes, and the
//! errors of each way it can fail. HTTP itself is tested against a loopback server in
//! `src/source.rs`; here a map of URLs stands in for the network.

use std::collections::BTreeMap;

use pikoci_config::{Diagnostics, Loaded, SourceFetcher, SourceFile, Vars, load};
use pikoci_core::{Origin, Pipeline};

#[derive(Debug, Default)]
struct Fixed(BTreeMap<&'static str, Result<&'static str, &'static str>>);

impl SourceFetcher for Fixed {
    fn fetch(&self, url: &str) -> Result<String, String> {
        match self.0.get(url) {
            Some(Ok(text)) => Ok((*text).to_owned()),
            Some(Err(why)) => Err((*why).to_owned()),
            None => Err(format!("failed to fetch \"{url}\": status 404")),
        }
    }
}

const S3: &str = r#"
# a comment before the block
resource_type "s3" {
  params = ["bucket"]
  check "exec" {
    path = "/bin/sh"
    args = ["-ec", "echo '[]'"]
  }
  pull "exec" { path = "true" }
}
runner_type "ignored" {
  run { path = "x" }
}
"#;

fn fetcher() -> Fixed {
    Fixed(BTreeMap::from([
        ("https://example.com/s3.hcl", Ok(S3)),
        ("https://token@example.com/s3.hcl?token=s3cret", Ok(S3)),
        (
            "https://example.com/broken.hcl",
            Ok("resource_type \"x\" {\n  check \"exec\" {\n"),
        ),
        ("https://example.com/empty.hcl", Ok("# nothing here\n")),
        (
            "https://user:s3cret@example.com/empty.hcl",
            Ok("# nothing here\n"),
        ),
        (
            "https://user:s3cret@example.com/bad-attr.hcl",
            Ok("resource_type \"x\" {\n  cahce = true\n}\n"),
        ),
        (
            "https://example.com/deep.hcl",
            Ok("resource_type \"x\" {\n  params = [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]\n}\n"),
        ),
        (
            "https://example.com/bad-attr.hcl",
            Ok("resource_type \"x\" {\n  cahce = true\n}\n"),
        ),
        (
            "https://example.com/down.hcl",
            Err("failed to fetch \"https://example.com/down.hcl\": connection refused"),
        ),
    ]))
}

fn load_text(text: &str) -> Result<Loaded, Diagnostics> {
    load(&SourceFile::new("p.hcl", text), &Vars::new(), &fetcher())
}

fn pipeline(text: &str) -> Pipeline {
    match load_text(text) {
        Ok(loaded) => loaded.pipeline,
        Err(diagnostics) => panic!("{diagnostics}"),
    }
}

fn errors(text: &str) -> String {
    load_text(text).expect_err("should be invalid").to_string()
}

#[test]
fn fetched_definitions_take_the_local_name_and_merge_local_attributes() {
    let p = pipeline(
        r#"
resource_type "bucket" {
  source = "https://example.com/s3.hcl"
  cache  = true
  runner "docker" { image = "amazon/aws-cli" }
}
resource "bucket" "b" {
  params { bucket = "x" }
}
"#,
    );
    let t = p.resource_type("bucket").unwrap();
    assert_eq!(
        t.origin,
        Origin::Source {
            url: "https://example.com/s3.hcl".to_owned()
        }
    );
    assert_eq!(t.params, ["bucket"]);
    assert!(t.cache);
    assert!(t.check.is_some() && t.pull.is_some() && t.push.is_none());
    assert_eq!(t.runner_override.as_ref().unwrap().runner, "docker");
}

#[test]
fn builtin_sources_need_no_network() {
    let p = pipeline(
        r#"
service_type "db" {
  source = "pikoci://postgresql"
  params = ["version"]
}
notification_type "chat" { source = "pikoci://slack" }
secret_type "vault" {
  source  = "pikoci://vault"
  address = "http://127.0.0.1:8200"
}
"#,
    );
    assert_eq!(p.service_type("db").unwrap().params, ["version"]);
    assert!(p.notification_type("chat").unwrap().notify.is_some());
    let vault = p.secret_type("vault").unwrap();
    assert_eq!(
        vault.config.get("address").map(String::as_str),
        Some("http://127.0.0.1:8200")
    );
    assert!(vault.get.is_none(), "vault is implemented natively");
}

#[test]
fn every_way_a_source_can_fail_is_explained() {
    let out = errors(
        r#"
resource_type "a" { source = "https://example.com/missing.hcl" }
resource_type "b" { source = "https://example.com/down.hcl" }
resource_type "c" { source = "https://example.com/broken.hcl" }
resource_type "d" { source = "https://example.com/empty.hcl" }
resource_type "e" { source = "https://example.com/bad-attr.hcl" }
resource_type "f" { source = "git://example.com/x" }
service_type "g" { source = "pikoci://git" }
"#,
    );
    for needle in [
        "p.hcl:2:30: error: failed to resolve source for resource_type \"a\": failed to fetch \"https://example.com/missing.hcl\": status 404",
        "p.hcl:3:30: error: failed to resolve source for resource_type \"b\": failed to fetch \"https://example.com/down.hcl\": connection refused",
        "p.hcl:4:30: error: failed to resolve source for resource_type \"c\": https://example.com/broken.hcl:",
        "no resource_type block found in source \"https://example.com/empty.hcl\"",
        "https://example.com/bad-attr.hcl:2:3: unsupported attribute \"cahce\" in resource_type \"x\"",
        "unsupported source URL scheme: \"git://example.com/x\"",
        "failed to resolve source for service_type \"g\": there is no builtin service_type \"git\"",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn credentials_in_a_source_url_are_never_shown_or_kept() {
    let p = pipeline(
        r#"
resource_type "bucket" { source = "https://token@example.com/s3.hcl?token=s3cret" }
resource "bucket" "b" {
  params { bucket = "x" }
}
"#,
    );
    assert_eq!(
        p.resource_type("bucket").unwrap().origin,
        Origin::Source {
            url: "https://***@example.com/s3.hcl?token=***".to_owned()
        }
    );
    let out = errors(
        r#"
resource_type "a" { source = "https://user:s3cret@example.com/empty.hcl" }
resource_type "b" { source = "https://user:s3cret@example.com/bad-attr.hcl" }
resource_type "c" { source = "git://user:s3cret@example.com/x" }
"#,
    );
    assert!(!out.contains("s3cret"), "{out}");
    for needle in [
        "no resource_type block found in source \"https://user:***@example.com/empty.hcl\"",
        "https://user:***@example.com/bad-attr.hcl:2:3: unsupported attribute \"cahce\"",
        "unsupported source URL scheme: \"git://user:***@example.com/x\"",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn fetched_text_gets_the_bracket_depth_limit() {
    let out = errors(r#"resource_type "a" { source = "https://example.com/deep.hcl" }"#);
    assert!(
        out.contains(
            "https://example.com/deep.hcl:2:24: syntax error: parentheses and brackets nest \
             more than 12 levels deep here"
        ),
        "{out}"
    );
}

#[test]
fn every_builtin_parses_and_validates() {
    use pikoci_config::builtin::{ALL, Kind};
    let mut text = String::new();
    for (kind, name, _) in ALL {
        let local = format!("builtin-{name}");
        text.push_str(&format!(
            "{} \"{local}\" {{ source = \"pikoci://{name}\" }}\n",
            kind.block_name()
        ));
        if *kind == Kind::ResourceType {
            text.push_str(&format!("resource \"{local}\" \"r\" {{}}\n"));
        }
    }
    let p = pipeline(&text);
    assert_eq!(
        p.resource_types.len()
            + p.runner_types.len()
            + p.secret_types.len()
            + p.service_types.len()
            + p.notification_types.len(),
        // Declared builtins, plus the three builtin runners added under their own names.
        ALL.len() + 3
    );
}
