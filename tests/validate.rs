//! End-to-end tests of `pikoci validate`: the real binary, real files, exit codes and output.

mod support;

use std::process::Output;

use support::{repo, text};

fn pikoci(args: &[&str]) -> Output {
    support::pikoci()
        .args(args)
        .output()
        .expect("the pikoci binary runs")
}

fn temp_file(name: &str, contents: &str) -> String {
    let dir = std::env::temp_dir().join(format!("pikoci-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    support::write(&dir, name, contents)
}

#[test]
fn a_valid_pipeline_prints_a_summary_and_exits_0() {
    let out = pikoci(&["validate", &repo("examples/hello.hcl")]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("hello.hcl is valid: 5 jobs, 1 resource"),
        "{stdout}"
    );
    assert!(stdout.contains("matrix--amd64-linux"), "{stdout}");
    assert!(
        stdout.contains("resource types: cron (builtin)"),
        "{stdout}"
    );
}

#[test]
fn an_invalid_pipeline_prints_every_diagnostic_and_exits_1() {
    let file = temp_file(
        "broken.hcl",
        "resource \"cron\" \"tick\" {}\njob \"a\" {\n  tsk \"t\" {}\n  get \"cron\" \"tock\" {}\n}\n",
    );
    let out = pikoci(&["validate", "--no-color", &file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unknown block \"tsk\" in job \"a\""),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean \"task\"?"), "{stderr}");
    assert!(stderr.contains("broken.hcl:3:3"), "{stderr}");
    assert!(
        stderr.contains("unknown resource \"cron.tock\""),
        "{stderr}"
    );
    assert!(stderr.contains("broken.hcl:4:7"), "{stderr}");
    assert!(stderr.contains("2 errors found"), "{stderr}");
    // A source snippet with a caret under the offending name.
    assert!(stderr.contains("^^^"), "{stderr}");
    assert!(
        !stderr.contains("\u{1b}["),
        "no colour when asked: {stderr}"
    );
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn a_file_over_the_size_limit_is_refused_without_reading_it_whole() {
    let big = temp_file("big.hcl", &"#".repeat(5 * 1024 * 1024));
    // /dev/zero never ends: reading it whole would never finish.
    let endless = if cfg!(unix) {
        "/dev/zero"
    } else {
        big.as_str()
    };
    for file in [big.as_str(), endless] {
        let out = pikoci(&["validate", "--no-color", file]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("the file is larger than the limit of 4194304 bytes (4 MiB)"),
            "{stderr}"
        );
        assert!(stderr.contains("1 error found"), "{stderr}");
    }
}

#[test]
fn variables_come_from_the_vars_file_and_var_flags() {
    let pipeline = temp_file(
        "vars.hcl",
        "variable \"n\" { type = number }\nvariable \"s\" { type = string }\njob \"a\" { concurrency = var.n }\n",
    );
    let vars = temp_file("vars.json", r#"{"n": 2, "s": "from-file"}"#);
    let out = pikoci(&["validate", &pipeline, "--vars", &vars, "--var", "n=4"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = pikoci(&["validate", &pipeline, "--var", "s=x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("variable \"n\" has no value"),
        "{}",
        text(&out.stderr)
    );
    let out = pikoci(&["validate", &pipeline, "--var", "n=many", "--var", "s=x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("declared as number but was given \"many\""));
}

#[test]
fn usage_errors_exit_2() {
    let out = pikoci(&["validate", "/nonexistent/pipeline.hcl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read pipeline file /nonexistent/pipeline.hcl"));

    let out = pikoci(&["validate", &repo("examples/hello.hcl"), "--var", "novalue"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("expected NAME=VALUE"));

    let bad_vars = temp_file("bad.json", "[1, 2]");
    let out = pikoci(&["validate", &repo("examples/hello.hcl"), "--vars", &bad_vars]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("must hold a JSON object"));

    let out = pikoci(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = pikoci(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_explains_the_flags() {
    let out = pikoci(&["validate", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for needle in [
        "--var <NAME=VALUE>",
        "--vars <FILE>",
        "PIKOCI_VARS",
        "--no-color",
        "Exits 2 on usage errors",
    ] {
        assert!(help.contains(needle), "missing {needle:?} in:\n{help}");
    }
}
