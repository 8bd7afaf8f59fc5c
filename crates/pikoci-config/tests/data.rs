//! Data-driven tests of the pipeline language.
//!
//! Every `tests/data/valid/*.hcl` must load, and a short rendering of the result must equal the
//! `.expected` file next to it. Every `tests/data/invalid/*.hcl` must fail, and its diagnostics
//! (one per line, `file:line:col: error: message (help)`) must equal the `.expected` file.
//! A first line `# vars: {...}` gives variable values as JSON.
//!
//! The `.expected` files are `expect-test` snapshots: run with `UPDATE_EXPECT=1` to rewrite them
//! from the current output, and review the diff before committing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use expect_test::expect_file;
use pikoci_config::{HttpFetcher, SourceFile, Vars, load};
use pikoci_core::{Hook, Hooks, Pipeline, Step, StepKind};

fn cases(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "hcl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    files
}

fn run(path: &Path) -> Result<String, String> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let file = SourceFile::from_bytes(name, std::fs::read(path).unwrap());
    let mut vars = Vars::new();
    if let Some(json) = file
        .text()
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# vars: "))
    {
        vars.add_json(json).unwrap();
    }
    match load(&file, &vars, &HttpFetcher::default()) {
        Ok(loaded) => {
            let mut out = render(&loaded.pipeline);
            for warning in loaded.warnings.to_string().lines() {
                writeln!(out, "{warning}").unwrap();
            }
            Ok(out)
        }
        Err(diagnostics) => Err(format!("{diagnostics}\n")),
    }
}

/// Compares `actual` with the `.expected` file next to `path` (or rewrites it under
/// `UPDATE_EXPECT=1`); a mismatch is printed as a diff and recorded in `failures`.
fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    let expected = expect_file![path.with_extension("expected")];
    if std::panic::catch_unwind(|| expected.assert_eq(actual)).is_err() {
        failures.push(format!(
            "{} differs from its .expected file",
            path.display()
        ));
    }
}

#[test]
fn valid_pipelines() {
    let mut failures = Vec::new();
    for path in cases("valid") {
        match run(&path) {
            Ok(rendered) => check(&path, &rendered, &mut failures),
            Err(diagnostics) => failures.push(format!(
                "{} should be valid:\n{diagnostics}",
                path.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_pipelines() {
    let mut failures = Vec::new();
    for path in cases("invalid") {
        match run(&path) {
            Ok(rendered) => failures.push(format!(
                "{} should be invalid, got:\n{rendered}",
                path.display()
            )),
            Err(diagnostics) => check(&path, &diagnostics, &mut failures),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A compact, stable rendering of what a pipeline means.
/// Each case of a folder has its own number, so a case is named unambiguously by it.
#[test]
fn case_numbers_are_unique() {
    for folder in ["valid", "invalid"] {
        let mut seen = std::collections::HashMap::new();
        for path in cases(folder) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let number = name.split('-').next().unwrap_or_default().to_owned();
            if let Some(other) = seen.insert(number.clone(), name.clone()) {
                panic!("{folder}/{other} and {folder}/{name} share the number {number}");
            }
        }
    }
}

fn render(pipeline: &Pipeline) -> String {
    let mut out = String::new();
    for variable in &pipeline.variables {
        writeln!(
            out,
            "variable {} = {}",
            variable.name,
            serde_json::to_string(&variable.value).unwrap()
        )
        .unwrap();
    }
    for t in &pipeline.resource_types {
        let commands = [("check", &t.check), ("pull", &t.pull), ("push", &t.push)]
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(",");
        writeln!(
            out,
            "resource_type {} {:?} params={:?} cache={} [{commands}]",
            t.name, t.origin, t.params, t.cache
        )
        .unwrap();
    }
    for t in &pipeline.runner_types {
        if t.origin != pikoci_core::Origin::Builtin {
            writeln!(
                out,
                "runner_type {} {:?} path={:?} args={:?}",
                t.name, t.origin, t.path, t.args
            )
            .unwrap();
        }
    }
    for t in &pipeline.secret_types {
        writeln!(
            out,
            "secret_type {} {:?} config={:?} get={}",
            t.name,
            t.origin,
            t.config,
            t.get.is_some()
        )
        .unwrap();
    }
    for t in &pipeline.service_types {
        writeln!(
            out,
            "service_type {} {:?} params={:?} ready={:?}",
            t.name,
            t.origin,
            t.params,
            t.ready_check.as_ref().map(|r| (r.interval, r.timeout))
        )
        .unwrap();
    }
    for t in &pipeline.notification_types {
        writeln!(
            out,
            "notification_type {} {:?} notify={}",
            t.name,
            t.origin,
            t.notify.is_some()
        )
        .unwrap();
    }
    for r in &pipeline.resources {
        writeln!(
            out,
            "resource {} params={:?} check_interval={:?} tags={:?} cache={:?}",
            r.canonical(),
            r.params,
            r.check_interval.spec(),
            r.tags,
            r.cache
        )
        .unwrap();
    }
    for n in &pipeline.notifications {
        writeln!(
            out,
            "notification {} on={:?} jobs={:?} message={:?}",
            n.canonical(),
            n.on,
            n.jobs,
            n.message
        )
        .unwrap();
    }
    for job in &pipeline.jobs {
        write!(out, "job {}", job.name).unwrap();
        if let Some(of) = &job.instance_of {
            write!(out, " (instance of {} key {:?})", of.base, of.key).unwrap();
        }
        for (flag, on) in [
            ("allow_failure", job.allow_failure),
            ("interruptible", job.interruptible),
            ("disable_retry", job.disable_retry),
        ] {
            if on {
                write!(out, " {flag}").unwrap();
            }
        }
        if job.concurrency > 0 {
            write!(out, " concurrency={}", job.concurrency).unwrap();
        }
        if !job.serial_groups.is_empty() {
            write!(out, " serial_groups={:?}", job.serial_groups).unwrap();
        }
        if !job.tags.is_empty() {
            write!(out, " tags={:?}", job.tags).unwrap();
        }
        if let Some(timeout) = job.timeout {
            write!(out, " timeout={timeout:?}").unwrap();
        }
        writeln!(out).unwrap();
        for step in &job.plan {
            render_step(&mut out, step, 1);
        }
        render_hooks(&mut out, &job.hooks, 1);
        for notify in &job.on_trigger {
            writeln!(
                out,
                "  on_trigger notify {} {:?}",
                notify.notification, notify.params
            )
            .unwrap();
        }
        if let Some(approval) = &job.approval {
            writeln!(
                out,
                "  approve {:?} approvals={} timeout={:?}",
                approval.label, approval.approvals, approval.timeout
            )
            .unwrap();
        }
        for input in &job.inputs {
            writeln!(
                out,
                "  input {} {} default={:?} options={:?} multiple={}",
                input.name, input.value_type, input.default, input.options, input.multiple
            )
            .unwrap();
        }
    }
    out
}

fn render_step(out: &mut String, step: &Step, depth: usize) {
    let pad = "  ".repeat(depth);
    let mut extra = String::new();
    if let Some(timeout) = step.timeout {
        write!(extra, " timeout={timeout:?}").unwrap();
    }
    if step.attempts != 1 {
        write!(extra, " attempts={}", step.attempts).unwrap();
    }
    match &step.kind {
        StepKind::Get(get) => {
            writeln!(
                out,
                "{pad}get {}{}{}{extra}",
                get.resource,
                if get.trigger { " trigger" } else { "" },
                if get.passed.is_empty() {
                    String::new()
                } else {
                    format!(" passed={:?}", get.passed)
                }
            )
            .unwrap();
        }
        StepKind::Task(task) => {
            writeln!(
                out,
                "{pad}task {} run {} args={:?} params={:?}{extra}",
                task.name, task.run.runner, task.run.args, task.run.params
            )
            .unwrap();
            if !task.inputs.is_empty() || !task.outputs.is_empty() {
                writeln!(
                    out,
                    "{pad}  inputs={:?} outputs={:?}",
                    task.inputs, task.outputs
                )
                .unwrap();
            }
        }
        StepKind::Put(put) => {
            writeln!(out, "{pad}put {} {:?}{extra}", put.resource, put.params).unwrap()
        }
        StepKind::Notify(notify) => writeln!(
            out,
            "{pad}notify {} message={:?} {:?}",
            notify.notification, notify.message, notify.params
        )
        .unwrap(),
        StepKind::Service(service) => writeln!(
            out,
            "{pad}service {} {:?}",
            service.service_type, service.overrides
        )
        .unwrap(),
        StepKind::InParallel(group) => {
            writeln!(
                out,
                "{pad}in_parallel limit={} fail_fast={}{extra}",
                group.limit, group.fail_fast
            )
            .unwrap();
            for inner in &group.steps {
                render_step(out, inner, depth + 1);
            }
        }
        StepKind::If(chain) => {
            writeln!(out, "{pad}if").unwrap();
            for branch in &chain.branches {
                writeln!(
                    out,
                    "{pad}  {:?} {:?} condition={:?}",
                    branch.kind,
                    branch.label,
                    branch.condition.as_ref().map(|c| c.source().to_owned())
                )
                .unwrap();
                for inner in &branch.steps {
                    render_step(out, inner, depth + 2);
                }
            }
        }
    }
    render_hooks(out, &step.hooks, depth + 1);
}

fn render_hooks(out: &mut String, hooks: &Hooks, depth: usize) {
    let pad = "  ".repeat(depth);
    for (kind, hook) in hooks.iter() {
        match hook {
            Hook::Command(command) => {
                writeln!(
                    out,
                    "{pad}{} run {} args={:?} params={:?}",
                    kind.as_str(),
                    command.runner,
                    command.args,
                    command.params
                )
                .unwrap();
            }
            Hook::Steps { steps } => {
                writeln!(out, "{pad}{}:", kind.as_str()).unwrap();
                for step in steps {
                    render_step(out, step, depth + 1);
                }
            }
        }
    }
}
