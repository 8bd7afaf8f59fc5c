//! Engine behaviour, driven through the `Runner` trait with a scripted runner: fast and
//! deterministic (time is paused where timeouts matter).

mod support;

use std::collections::BTreeMap;

use pikoci_core::StepKind;
use pikoci_core::engine::{BuildControl, Status, StepType};
use support::{Options, pipeline, run, run_pipeline, run_with, task};

const CRON: &str = "resource \"cron\" \"tick\" {}\n";

/// Resolved secrets holding one masked value.
fn secret(placeholder: impl Into<String>, value: &str) -> pikoci_core::secrets::ResolvedSecrets {
    let mut secrets = pikoci_core::secrets::ResolvedSecrets::default();
    secrets.insert(
        placeholder,
        pikoci_core::secrets::SecretValue::secret(value),
    );
    secrets
}

/// Runs job "a" of `hcl`, cancelling the build once a step runs: when the runner reports a
/// step hanging.
async fn run_cancelled_once_hanging(hcl: &str) -> support::Run {
    let control = BuildControl::default();
    let runner = std::sync::Arc::new(support::ScriptedRunner::default());
    tokio::spawn({
        let cancel = control.cancel.clone();
        let runner = runner.clone();
        async move {
            runner.hanging.notified().await;
            cancel.cancel();
        }
    });
    let options = Options {
        control,
        runner,
        ..Options::default()
    };
    run_with(hcl, "a", options).await
}

fn job(body: &str) -> String {
    format!("job \"a\" {{\n{body}}}\n")
}

#[tokio::test]
async fn failure_stops_the_plan_and_hooks_run_in_order() {
    let hcl = job(&format!(
        "{}task \"a\" {{\n  run \"exec\" {{\n    path = \"step\"\n    args = [\"fail\"]\n  }}\n  on_failure \"exec\" {{\n    path = \"step\"\n    args = [\"print:step failed\"]\n  }}\n  ensure \"exec\" {{ path = \"true\" }}\n}}\n{}on_failure \"exec\" {{\n  path = \"step\"\n  args = [\"env:BUILD_STATUS\"]\n}}\nensure \"exec\" {{ path = \"true\" }}\n",
        task("first", "print:hi"),
        task("b", "print:never"),
    ));
    let r = run(&hcl, "a").await;
    assert_eq!(r.status(), Status::Failed);
    assert_eq!(
        r.events.finished(),
        [
            "first: succeeded",
            "a: failed",
            "a:on_failure: succeeded",
            "a:ensure: succeeded",
            "on_failure: succeeded",
            "ensure: succeeded"
        ]
    );
    assert_eq!(r.events.log("on_failure"), "BUILD_STATUS=failed");
    assert!(
        r.events.log("a").contains("exit status 1"),
        "{}",
        r.events.log("a")
    );
    assert!(
        r.events
            .log("a")
            .contains("--- Available environment variables ---\nBUILD_JOB_NAME")
    );
}

#[tokio::test]
async fn attempts_rerun_the_step_and_mark_each_attempt() {
    let hcl = job(
        "task \"t\" {\n  attempts = 3\n  run \"exec\" {\n    path = \"step\"\n    args = [\"print:try; fail\"]\n  }\n  on_failure \"exec\" { path = \"true\" }\n}\n",
    );
    let r = run(&hcl, "a").await;
    assert_eq!(
        r.runner
            .invocations
            .lock()
            .unwrap()
            .iter()
            .filter(|i| i.program == "step")
            .count(),
        3
    );
    let log = r.events.log("t");
    assert!(
        log.contains("--- attempt 2/3 ---") && log.contains("--- attempt 3/3 ---"),
        "{log}"
    );
    assert!(!log.contains("attempt 1/3"));
    assert_eq!(
        r.events
            .finished()
            .iter()
            .filter(|s| s.starts_with("t:on_failure"))
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn each_attempt_has_its_own_timeout() {
    let hcl = job(
        "task \"t\" {\n  attempts = 2\n  timeout = \"1s\"\n  run \"exec\" {\n    path = \"step\"\n    args = [\"hang\"]\n  }\n}\n",
    );
    let r = run(&hcl, "a").await;
    assert_eq!(r.status(), Status::Failed);
    let log = r.events.log("t");
    assert_eq!(log.matches("step timed out after 1s").count(), 2, "{log}");
}

#[tokio::test(start_paused = true)]
async fn a_job_timeout_fails_the_build_and_runs_on_cancel_then_ensure() {
    let hcl = "job \"a\" {\n  timeout = \"2s\"\n".to_owned()
        + &task("sleepy", "hang")
        + "on_failure \"exec\" { path = \"true\" }\non_cancel \"exec\" {\n  path = \"step\"\n  args = [\"env:BUILD_STATUS\"]\n}\nensure \"exec\" { path = \"true\" }\n}\n";
    let r = run(&hcl, "a").await;
    assert_eq!(r.status(), Status::Failed);
    assert_eq!(r.result.error.as_deref(), Some("job timed out after 2s"));
    assert_eq!(
        r.events.finished(),
        [
            "sleepy: cancelled",
            "on_cancel: succeeded",
            "ensure: succeeded"
        ]
    );
    // Decision D15: the hooks see the build's status, not a cancellation.
    assert_eq!(r.events.log("on_cancel"), "BUILD_STATUS=failed");
}

#[tokio::test]
async fn allow_failure_gives_a_warning() {
    let hcl = "job \"a\" {\n  allow_failure = true\n".to_owned()
        + &task("t", "fail")
        + "on_failure \"exec\" {\n  path = \"step\"\n  args = [\"env:BUILD_STATUS\"]\n}\n}\n";
    let r = run(&hcl, "a").await;
    assert_eq!(r.status(), Status::Warning);
    assert_eq!(r.events.log("on_failure"), "BUILD_STATUS=warning");
}

#[tokio::test]
async fn exports_flow_to_later_steps() {
    let hcl = format!(
        "resource_type \"repo\" {{\n  check \"exec\" {{\n    path = \"step\"\n    args = [\"print:noise; print:[{{\\\"ref\\\":\\\"abc\\\",\\\"metadata\\\":{{\\\"sha\\\":\\\"d\\\"}}}}]\"]\n  }}\n  pull \"exec\" {{\n    path = \"step\"\n    args = [\"env:version_ref; env:version_metadata_sha\"]\n  }}\n}}\nresource \"repo\" \"my-repo\" {{}}\n{}",
        job(&format!(
            "get \"repo\" \"my-repo\" {{}}\n{}{}{}",
            task("build", "export:VERSION=1.2.3; export:# c; export:bad"),
            task(
                "use",
                "env:TASK_BUILD_VERSION; env:GET_MY_REPO_REF; env:GET_MY_REPO_METADATA_SHA"
            ),
            task("late", "export:X=1; fail"),
        ))
    );
    let r = run(&hcl, "a").await;
    assert_eq!(
        r.events
            .log("my-repo")
            .lines()
            .filter(|l| l.starts_with("version_"))
            .collect::<Vec<_>>(),
        ["version_ref=abc", "version_metadata_sha=d"]
    );
    assert_eq!(
        r.events.log("use"),
        "TASK_BUILD_VERSION=1.2.3\nGET_MY_REPO_REF=abc\nGET_MY_REPO_METADATA_SHA=d"
    );
    assert!(
        r.events
            .log("build")
            .contains("WARNING: ignoring line \"bad\"")
    );
    assert_eq!(r.status(), Status::Failed);
}

#[tokio::test]
async fn inputs_and_outputs_are_checked() {
    let hcl = job(
        "task \"needs\" {\n  inputs = [\"missing/\"]\n  run \"exec\" {\n    path = \"step\"\n    args = [\"print:ran\"]\n  }\n}\n",
    );
    let r = run(&hcl, "a").await;
    assert_eq!(
        r.events.error("needs").as_deref(),
        Some("input \"missing/\" does not exist")
    );
    assert!(!r.events.log("needs").contains("ran"));
    let hcl = job(
        "task \"makes\" {\n  outputs = [\"bin/app\"]\n  run \"exec\" {\n    path = \"step\"\n    args = [\"touch:bin/other\"]\n  }\n}\n",
    );
    let r = run(&hcl, "a").await;
    assert!(
        r.events
            .log("makes")
            .ends_with("task finished but output \"bin/app\" was not produced")
    );
    let hcl = job(
        "task \"makes\" {\n  outputs = [\"bin/app\"]\n  run \"exec\" {\n    path = \"step\"\n    args = [\"touch:bin/app\"]\n  }\n}\n",
    );
    assert_eq!(run(&hcl, "a").await.status(), Status::Succeeded);
}

#[tokio::test]
async fn in_parallel_shares_a_snapshot_and_merges_new_exports() {
    let hcl = job(&format!(
        "{}in_parallel {{\n  limit = 1\n{}{}}}\n{}",
        task("before", "export:OLD=1"),
        task("x", "export:FROM_X=1; export:OLD=2; env:TASK_Y_FROM_Y"),
        task("y", "export:FROM_Y=1; env:TASK_X_FROM_X"),
        task(
            "after",
            "env:TASK_X_FROM_X; env:TASK_Y_FROM_Y; env:TASK_BEFORE_OLD"
        ),
    ));
    let r = run(&hcl, "a").await;
    assert_eq!(r.status(), Status::Succeeded);
    assert_eq!(r.events.log("x"), "TASK_Y_FROM_Y=");
    assert_eq!(r.events.log("y"), "TASK_X_FROM_X=");
    assert_eq!(
        r.events.log("after"),
        "TASK_X_FROM_X=1\nTASK_Y_FROM_Y=1\nTASK_BEFORE_OLD=1"
    );
    assert_eq!(r.events.parent("x").as_deref(), Some("in_parallel"));
}

#[tokio::test]
async fn fail_fast_cancels_the_running_siblings_and_runs_their_on_cancel() {
    let slow = "task \"slow\" {\n  run \"exec\" {\n    path = \"step\"\n    args = [\"hang\"]\n  }\n  on_failure \"exec\" { path = \"true\" }\n  on_cancel \"exec\" { path = \"true\" }\n}\n";
    let hcl = job(&format!(
        "in_parallel {{\n  fail_fast = true\n{slow}{}on_failure \"exec\" {{ path = \"true\" }}\nensure \"exec\" {{ path = \"true\" }}\n}}\n{}",
        task("bad", "fail"),
        task("never", "print:no"),
    ));
    let r = run(&hcl, "a").await;
    assert_eq!(r.status(), Status::Failed);
    assert_eq!(
        r.events.finished(),
        [
            "bad: failed",
            "slow: cancelled",
            "slow:on_cancel: succeeded",
            "in_parallel: failed",
            "in_parallel:on_failure: succeeded",
            "in_parallel:ensure: succeeded",
        ]
    );
}

#[tokio::test]
async fn fail_fast_marks_steps_waiting_for_a_slot_failed_without_running_them() {
    let hcl = job(&format!(
        "in_parallel {{\n  limit = 1\n  fail_fast = true\n{}{}}}\n",
        task("bad", "fail"),
        "get \"cron\" \"tick\" {}\n",
    ));
    let r = run(&(CRON.to_owned() + &hcl), "a").await;
    assert_eq!(
        r.events.finished(),
        ["bad: failed", "tick: failed", "in_parallel: failed"]
    );
    assert_eq!(
        r.events.error("tick").as_deref(),
        Some("not started: the group was stopped")
    );
    assert_eq!(r.events.step_type("tick"), Some(StepType::Get));
}

#[tokio::test]
async fn cancelling_the_build_cancels_the_steps_waiting_for_a_slot() {
    for fail_fast in [false, true] {
        let hcl = job(&format!(
            "in_parallel {{\n  limit = 1\n  fail_fast = {fail_fast}\n{}{}}}\n",
            task("long", "hang"),
            task("waiting", "print:no"),
        ));
        // Cancelled once the first step runs: the second one then waits for the only slot.
        let r = run_cancelled_once_hanging(&hcl).await;
        assert_eq!(r.status(), Status::Cancelled, "fail_fast = {fail_fast}");
        let mut finished = r.events.finished();
        finished.sort();
        assert_eq!(
            finished,
            [
                "in_parallel: cancelled",
                "long: cancelled",
                "waiting: cancelled",
            ],
            "fail_fast = {fail_fast}"
        );
        assert_eq!(r.events.log("waiting"), "", "fail_fast = {fail_fast}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_timeout_cancels_the_steps_waiting_for_a_slot() {
    let group = format!(
        "in_parallel {{\n  limit = 1\n  fail_fast = true\n  TIMEOUT{}{}}}\n",
        task("long", "hang"),
        task("waiting", "print:no"),
    );
    let by_group = job(&group.replace("TIMEOUT", "timeout = \"5s\"\n"));
    let by_job = format!(
        "job \"a\" {{\n  timeout = \"5s\"\n{}}}\n",
        group.replace("TIMEOUT", "")
    );
    for hcl in [by_group, by_job] {
        let r = run(&hcl, "a").await;
        assert_eq!(r.status(), Status::Failed, "{hcl}");
        let finished = r.events.finished();
        assert!(
            finished.contains(&"waiting: cancelled".to_owned()),
            "{hcl}: {finished:?}"
        );
        assert_eq!(r.events.log("waiting"), "", "{hcl}");
    }
}

#[tokio::test]
async fn a_fail_fast_group_fails_with_the_error_of_the_step_that_stopped_it() {
    // Listed before the failing step: the cancelled sibling and the step waiting for a slot
    // must not give the group their errors.
    let hcl = job(&format!(
        "in_parallel {{\n  limit = 2\n  fail_fast = true\n{}{}{}}}\n",
        task("slow", "hang"),
        task("bad", "fail"),
        task("never", "print:no"),
    ));
    let r = run(&hcl, "a").await;
    let mut finished = r.events.finished();
    finished.sort();
    assert_eq!(
        finished,
        [
            "bad: failed",
            "in_parallel: failed",
            "never: failed",
            "slow: cancelled",
        ]
    );
    let cause = r.events.error("bad").unwrap();
    assert_ne!(r.events.error("slow").as_deref(), Some(cause.as_str()));
    assert_eq!(r.events.error("in_parallel"), Some(cause));
}

#[tokio::test]
async fn if_chains_run_the_first_true_branch() {
    let chain = "if \"check-prod\" {\n  condition = \"$TASK_DETECT_ENV_ENV == 'production'\"\n"
        .to_owned()
        + &task("deploy-prod", "print:prod")
        + "}\nelse_if \"check-staging\" {\n  condition = \"$TASK_DETECT_ENV_ENV == 'staging'\"\n"
        + &task("deploy-staging", "print:staging")
        + "}\nelse {\n"
        + &task("skip", "print:unknown")
        + "}\n";
    let hcl = job(&(task("detect-env", "export:ENV=staging") + &chain));
    let r = run(&hcl, "a").await;
    assert_eq!(r.status(), Status::Succeeded);
    let finished = r.events.finished();
    assert!(
        finished.contains(&"check-prod: skipped".to_owned()),
        "{finished:?}"
    );
    assert!(finished.contains(&"deploy-staging: succeeded".to_owned()));
    assert!(finished.contains(&"else: skipped".to_owned()));
    assert!(
        !finished
            .iter()
            .any(|s| s.starts_with("deploy-prod") || s.starts_with("skip:"))
    );
    // No branch true and no else: the if step succeeds doing nothing.
    let hcl = job(&("if \"never\" {\n  condition = \"$NOPE\"\n".to_owned()
        + &task("x", "print:x")
        + "}\n"
        + &task("next", "print:next")));
    let r = run(&hcl, "a").await;
    assert_eq!(r.status(), Status::Succeeded);
    assert!(r.events.finished().contains(&"next: succeeded".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn services_are_stopped_before_job_hooks_even_when_not_ready() {
    let service = "service_type \"pg\" {\n  start \"exec\" {\n    path = \"step\"\n    args = [\"print:starting\"]\n  }\n  ready_check \"exec\" {\n    path = \"step\"\n    args = [\"fail\"]\n    interval = \"1s\"\n    timeout = \"3s\"\n  }\n  stop \"exec\" {\n    path = \"step\"\n    args = [\"print:stopping\"]\n  }\n}\n";
    let hcl = service.to_owned()
        + CRON
        + &job(&("service \"pg\" {}\nget \"cron\" \"tick\" {}\n".to_owned()
            + &task("t", "print:t")
            + "on_failure \"exec\" { path = \"true\" }\nensure \"exec\" { path = \"true\" }\n"));
    let r = run(&hcl, "a").await;
    assert_eq!(r.status(), Status::Failed);
    assert_eq!(
        r.events.finished(),
        [
            "pg:start: succeeded",
            "pg:ready: failed",
            "pg:stop: succeeded",
            "on_failure: succeeded",
            "ensure: succeeded"
        ]
    );
    assert!(
        r.events
            .log("pg:ready")
            .ends_with("ready_check timed out after 3s")
    );
    let ok = service.replace("args = [\"fail\"]", "args = [\"print:ready\"]");
    let hcl = ok
        + &job(&("service \"pg\" {}\n".to_owned()
            + &task("t", "print:t")
            + "on_success \"exec\" { path = \"true\" }\n"));
    let r = run(&hcl, "a").await;
    assert_eq!(
        r.events.finished(),
        [
            "pg:start: succeeded",
            "pg:ready: succeeded",
            "t: succeeded",
            "pg:stop: succeeded",
            "on_success: succeeded"
        ]
    );
}

#[tokio::test]
async fn two_services_of_one_type_are_told_apart() {
    let hcl = "service_type \"db\" {\n  start \"exec\" { path = \"true\" }\n  stop \"exec\" { path = \"true\" }\n}\n".to_owned()
        + &job("service \"db\" {}\nservice \"db\" {}\n");
    let r = run(&hcl, "a").await;
    assert_eq!(
        r.events.finished(),
        [
            "db:start: succeeded",
            "db #2:start: succeeded",
            "db:stop: succeeded",
            "db #2:stop: succeeded"
        ]
    );
}

#[tokio::test]
async fn cancellation_kills_the_step_then_runs_cancel_hooks_and_stops_services() {
    let hcl = "service_type \"db\" {\n  start \"exec\" { path = \"true\" }\n  stop \"exec\" { path = \"true\" }\n}\n".to_owned()
        + &job(&("service \"db\" {}\n".to_owned()
            + "task \"long\" {\n  run \"exec\" {\n    path = \"step\"\n    args = [\"hang\"]\n  }\n  on_cancel \"exec\" { path = \"true\" }\n  ensure \"exec\" { path = \"true\" }\n}\n"
            + "on_cancel \"exec\" {\n  path = \"step\"\n  args = [\"env:BUILD_STATUS\"]\n}\n"));
    let r = run_cancelled_once_hanging(&hcl).await;
    assert_eq!(r.status(), Status::Cancelled);
    assert_eq!(
        r.events.finished(),
        [
            "db:start: succeeded",
            "long: cancelled",
            "long:on_cancel: succeeded",
            "long:ensure: succeeded",
            "db:stop: succeeded",
            "on_cancel: succeeded"
        ]
    );
    assert_eq!(r.events.log("on_cancel"), "BUILD_STATUS=cancelled");
}

#[tokio::test]
async fn secrets_are_substituted_and_masked() {
    let hcl = "variable \"pw\" {\n  type = string\n  secret \"pikoci\" { key = \"pw\" }\n}\n"
        .to_owned()
        + &job(&task(
            "leak",
            "print:the password is ${var.pw}; print:ab is short; env:SECRET",
        )
        .replace("path = \"step\"", "path = \"step\"\n    SECRET = var.pw"));
    let placeholder = "__pikoci_secret:pikoci::pw__".to_owned();
    let options = Options {
        secrets: secret(placeholder, "hunter22"),
        ..Options::default()
    };
    let r = run_with(&hcl, "a", options).await;
    assert_eq!(
        r.events.log("leak"),
        "the password is ***\nab is short\nSECRET=***"
    );
    assert_eq!(r.env_of("password", "SECRET").as_deref(), Some("hunter22"));
}

#[tokio::test]
async fn undeclared_params_are_warned_about_and_dropped() {
    let hcl = "resource \"cron\" \"c\" {\n  params { foo = \"1\" }\n}\n".to_owned()
        + &job("get \"cron\" \"c\" {}\n");
    let r = run(&hcl, "a").await;
    let log = r.events.log("c");
    assert!(
        log.starts_with(
            "WARNING: param \"foo\" is not declared by resource_type \"cron\" and was ignored"
        ),
        "{log}"
    );
    assert!(
        r.runner
            .invocations
            .lock()
            .unwrap()
            .iter()
            .all(|i| !i.env.contains_key("param_foo"))
    );
}

#[tokio::test]
async fn a_command_without_path_is_a_no_op_and_shell_rules_apply() {
    let hcl = job(
        "task \"nothing\" {\n  run \"exec\" {}\n}\ntask \"both\" {\n  run \"shell\" {\n    cmd = \"x\"\n  }\n}\n",
    );
    // Validation rejects cmd with file; the engine still refuses a pipeline that has both.
    let mut both = pipeline(&hcl);
    if let StepKind::Task(task) = &mut both.jobs[0].plan[1].kind {
        task.run.params.insert("file".to_owned(), "y.sh".to_owned());
    }
    let r = run_pipeline(both, "a", Options::default()).await;
    assert_eq!(r.events.finished()[0], "nothing: succeeded");
    assert_eq!(
        r.events.error("both").as_deref(),
        Some("shell runner: cannot set both \"cmd\" and \"file\"")
    );
}

#[tokio::test]
async fn put_and_notify_are_skipped_in_local_runs_and_run_otherwise() {
    let hcl = "notification_type \"chat\" {\n  params = [\"room\"]\n  notify \"exec\" {\n    path = \"step\"\n    args = [\"env:NOTIFY_MESSAGE; env:param_room; env:notify_extra\"]\n  }\n}\nnotification \"chat\" \"team\" {\n  params { room = \"ops\" }\n  message = \"Build $BUILD_NUMBER\\\\ndone\"\n}\n".to_owned()
        + CRON
        + &job("put \"cron\" \"tick\" {}\nnotify \"chat\" \"team\" { extra = \"1\" }\n");
    let r = run(&hcl, "a").await;
    assert_eq!(r.events.finished(), ["tick: skipped", "team: skipped"]);
    assert_eq!(
        r.events.log("tick"),
        "skipping put step (local execution): cron.tick"
    );
    let r = run_with(
        &hcl,
        "a",
        Options {
            local: false,
            ..Options::default()
        },
    )
    .await;
    assert_eq!(r.status(), Status::Succeeded, "{:?}", r.events.finished());
    assert_eq!(
        r.events.log("team"),
        "NOTIFY_MESSAGE=Build 7\ndone\nparam_room=ops\nnotify_extra=1"
    );
}

#[tokio::test]
async fn hooks_are_named_by_step_and_index() {
    let hcl = job(&(task("t", "print:t").replace(
        "}\n}\n",
        "}\n  on_success \"exec\" { path = \"true\" }\n}\n",
    ) + "ensure \"exec\" { path = \"true\" }\nensure \"exec\" { path = \"true\" }\n"));
    let r = run(&hcl, "a").await;
    assert_eq!(
        r.events.finished(),
        [
            "t: succeeded",
            "t:on_success: succeeded",
            "ensure #1: succeeded",
            "ensure #2: succeeded"
        ]
    );
}

#[tokio::test]
async fn metadata_and_inputs_reach_commands() {
    let hcl = "job \"a\" {\n  input \"env\" { type = \"string\" }\n".to_owned()
        + &task(
            "t",
            "env:BUILD_NUMBER; env:BUILD_JOB_NAME; env:BUILD_PIPELINE_NAME; env:BUILD_TEAM_NAME; env:INPUT_env",
        )
        + "}\n";
    let options = Options {
        inputs: BTreeMap::from([("env".to_owned(), "staging".to_owned())]),
        ..Options::default()
    };
    let r = run_with(&hcl, "a", options).await;
    assert_eq!(
        r.events.log("t"),
        "BUILD_NUMBER=7\nBUILD_JOB_NAME=a\nBUILD_PIPELINE_NAME=demo\nBUILD_TEAM_NAME=main\nINPUT_env=staging"
    );
}

#[tokio::test]
async fn gets_use_given_versions_and_fail_without_one_outside_local_runs() {
    let hcl = CRON.to_owned() + &job("get \"cron\" \"tick\" {}\n");
    let options = Options {
        local: false,
        versions: BTreeMap::from([("cron.tick".to_owned(), serde_json::json!({"date": "today"}))]),
        ..Options::default()
    };
    let r = run_with(&hcl, "a", options).await;
    assert_eq!(r.status(), Status::Succeeded);
    assert_eq!(r.env_of("date:", "version_date").as_deref(), Some("today"));
    let r = run_with(
        &hcl,
        "a",
        Options {
            local: false,
            ..Options::default()
        },
    )
    .await;
    assert_eq!(
        r.events.error("tick").as_deref(),
        Some("no version found for resource \"cron.tick\"")
    );
}

#[tokio::test(start_paused = true)]
async fn in_parallel_timeout_covers_the_group_and_attempts_rerun_it() {
    let hcl = job(&format!(
        "in_parallel {{\n  timeout = \"5s\"\n  attempts = 2\n{}{}}}\n",
        task("quick", "print:quick"),
        task("stuck", "hang"),
    ));
    let r = run(&hcl, "a").await;
    assert_eq!(r.status(), Status::Failed);
    let log = r.events.log("in_parallel");
    assert_eq!(
        log.matches("in_parallel timed out after 5s").count(),
        2,
        "{log}"
    );
    assert!(log.contains("--- attempt 2/2 ---"), "{log}");
    let quick_runs = r
        .events
        .finished()
        .iter()
        .filter(|s| s.as_str() == "quick: succeeded")
        .count();
    assert_eq!(quick_runs, 2, "the whole group reruns");
    let finished = r.events.finished();
    assert!(
        finished.contains(&"stuck: cancelled".to_owned()),
        "a step stopped by its group's timeout is cancelled: {finished:?}"
    );
}

#[tokio::test]
async fn unlabeled_hooks_run_their_steps_and_never_change_the_status() {
    let hcl = CRON.to_owned()
        + &job(&(task("main", "print:main")
            + "on_success {\n  put \"cron\" \"tick\" {}\n  task \"cleanup\" {\n    run \"exec\" {\n      path = \"step\"\n      args = [\"print:cleaning; fail\"]\n    }\n  }\n}\n"));
    let r = run(&hcl, "a").await;
    assert_eq!(
        r.status(),
        Status::Succeeded,
        "a failing hook does not fail the build"
    );
    assert_eq!(
        r.events.finished(),
        [
            "main: succeeded",
            "tick: skipped",
            "cleanup: failed",
            "on_success: failed"
        ]
    );
    // The hook's steps are nested under the hook, as in the plan.
    assert_eq!(r.events.parent("tick").as_deref(), Some("on_success"));
    assert_eq!(r.events.parent("cleanup").as_deref(), Some("on_success"));
    assert_eq!(r.events.log("cleanup").lines().next(), Some("cleaning"));
}

#[tokio::test]
async fn types_without_pull_record_the_version_and_export_it() {
    let hcl = "resource \"trigger\" \"deploy\" {}\n".to_owned()
        + &job(&("get \"trigger\" \"deploy\" {}\n".to_owned()
            + &task("t", "env:GET_DEPLOY_BUILD_SHA")));
    let options = Options {
        local: false,
        versions: BTreeMap::from([(
            "trigger.deploy".to_owned(),
            serde_json::json!({"build_sha": "abc"}),
        )]),
        ..Options::default()
    };
    let r = run_with(&hcl, "a", options).await;
    assert_eq!(r.status(), Status::Succeeded);
    assert_eq!(r.events.log("t"), "GET_DEPLOY_BUILD_SHA=abc");
    assert_eq!(r.events.finished()[0], "deploy: succeeded");
}

#[tokio::test]
async fn cached_resources_get_a_cache_dir_and_others_do_not() {
    let hcl = "resource_type \"cached\" {\n  cache = true\n  check \"exec\" {\n    path = \"step\"\n    args = [\"env:CACHE_DIR; print:[{}]\"]\n  }\n  pull \"exec\" {\n    path = \"step\"\n    args = [\"env:CACHE_DIR\"]\n  }\n}\nresource \"cached\" \"on\" {}\nresource \"cached\" \"off\" { cache = false }\n".to_owned()
        + &job("get \"cached\" \"on\" {}\nget \"cached\" \"off\" {}\n");
    let r = run(&hcl, "a").await;
    assert_eq!(r.status(), Status::Succeeded);
    let on = r.events.log("on");
    assert!(on.contains("/cache/main/demo/cached.on"), "{on}");
    assert!(
        r.events.log("off").lines().any(|l| l == "CACHE_DIR="),
        "{}",
        r.events.log("off")
    );
}

#[tokio::test]
async fn secret_placeholders_in_args_and_params_are_substituted() {
    let hcl = "variable \"pw\" {\n  type = string\n  secret \"pikoci\" { key = \"pw\" }\n}\n"
        .to_owned()
        + &job(&task("t", "print:${var.pw}"));
    let options = Options {
        secrets: secret("__pikoci_secret:pikoci::pw__".to_owned(), "s3cr3t"),
        ..Options::default()
    };
    let r = run_with(&hcl, "a", options).await;
    let invocations = r.runner.invocations.lock().unwrap();
    assert_eq!(invocations[0].args, ["print:s3cr3t"]);
    drop(invocations);
    assert_eq!(r.events.log("t"), "***");
}

#[tokio::test]
async fn automatic_notifications_follow_on_and_the_job_filter() {
    let notifications = "notification_type \"chat\" {\n  notify \"exec\" {\n    path = \"step\"\n    args = [\"env:notify_build_status; env:NOTIFY_MESSAGE\"]\n  }\n}\nnotification \"chat\" \"failures\" {\n  message = \"$BUILD_JOB_NAME broke\"\n  on      = [\"failure\"]\n  exclude = [\"lint\"]\n}\nnotification \"chat\" \"everything\" {\n  on   = [\"all\"]\n  jobs = [\"lint\"]\n}\n";
    let jobs = "job \"lint\" {\n".to_owned()
        + &task("l", "fail")
        + "}\njob \"test\" {\n"
        + &task("t", "fail")
        + "}\njob \"ok\" {\n"
        + &task("o", "print:fine")
        + "}\n";
    let hcl = notifications.to_owned() + &jobs;
    let remote = || Options {
        local: false,
        ..Options::default()
    };
    let r = run_with(&hcl, "test", remote()).await;
    assert_eq!(r.events.finished(), ["t: failed", "failures: succeeded"]);
    assert_eq!(
        r.events.log("failures"),
        "notify_build_status=failure\nNOTIFY_MESSAGE=test broke"
    );
    let r = run_with(&hcl, "lint", remote()).await;
    assert_eq!(r.events.finished(), ["l: failed", "everything: succeeded"]);
    let r = run_with(&hcl, "ok", remote()).await;
    assert_eq!(r.events.finished(), ["o: succeeded"]);
    let r = run(&hcl, "test").await;
    assert_eq!(
        r.events.finished(),
        ["t: failed"],
        "local runs send nothing"
    );
}

#[tokio::test]
async fn exports_are_reported_as_events_with_secrets_masked() {
    let hcl = "variable \"pw\" {\n  type = string\n  secret \"pikoci\" { key = \"pw\" }\n}\n"
        .to_owned()
        + &job(&task("t", "export:PLAIN=1; export:LEAK=${var.pw}"));
    let options = Options {
        secrets: secret("__pikoci_secret:pikoci::pw__".to_owned(), "s3cr3t"),
        ..Options::default()
    };
    let r = run_with(&hcl, "a", options).await;
    let exported: Vec<(String, String)> = r
        .events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            pikoci_core::engine::Event::Exported { name, value, .. } => Some((name, value)),
            _ => None,
        })
        .collect();
    assert_eq!(
        exported,
        [
            ("TASK_T_PLAIN".to_owned(), "1".to_owned()),
            ("TASK_T_LEAK".to_owned(), "***".to_owned())
        ]
    );
}

#[tokio::test]
async fn plain_store_values_are_substituted_but_not_masked() {
    let hcl =
        "variable \"region\" {\n  type = string\n  secret \"pikoci\" { key = \"region\" }\n}\n"
            .to_owned()
            + &job(&task("t", "print:${var.region}"));
    let mut secrets = pikoci_core::secrets::ResolvedSecrets::default();
    secrets.insert(
        "__pikoci_secret:pikoci::region__",
        pikoci_core::secrets::SecretValue::plain("eu-west-1"),
    );
    let r = run_with(
        &hcl,
        "a",
        Options {
            secrets,
            ..Options::default()
        },
    )
    .await;
    assert_eq!(r.events.log("t"), "eu-west-1");
}

#[tokio::test]
async fn a_put_to_a_trigger_refuses_secret_params_and_stores_the_others() {
    let hcl = "variable \"pw\" {\n  type = string\n  secret \"pikoci\" { key = \"pw\" }\n}\n"
        .to_owned()
        + "resource \"trigger\" \"deploy\" {}\n"
        + &job("put \"trigger\" \"deploy\" {\n  env = \"prod\"\n}\n");
    let options = || Options {
        local: false,
        secrets: secret("__pikoci_secret:pikoci::pw__".to_owned(), "s3cr3t"),
        ..Options::default()
    };
    let triggers = |r: &support::Run| {
        r.events.picked(|e| match e {
            pikoci_core::engine::Event::Trigger { params, .. } => Some(params.clone()),
            _ => None,
        })
    };
    let r = run_with(&hcl, "a", options()).await;
    assert_eq!(r.status(), Status::Succeeded, "{:?}", r.events.finished());
    assert_eq!(
        triggers(&r),
        [BTreeMap::from([("env".to_owned(), "prod".to_owned())])]
    );

    let leaking = hcl.replace(
        "env = \"prod\"",
        "env = \"prod\"\n  token = \"pw=${var.pw}\"",
    );
    let r = run_with(&leaking, "a", options()).await;
    assert_eq!(r.status(), Status::Failed);
    assert!(triggers(&r).is_empty());
    let error = r.events.error("deploy").unwrap();
    assert!(
        error.contains("param \"token\" holds a secret value"),
        "{error}"
    );
    assert!(!format!("{:?}", r.events.events()).contains("s3cr3t"));
}

#[tokio::test]
async fn a_resource_name_outside_the_work_directory_fails_get_and_put() {
    let hcl = CRON.to_owned()
        + &job("get \"cron\" \"tick\" {}\n")
        + &job("put \"cron\" \"tick\" {}\n").replace("job \"a\"", "job \"b\"");
    for (name, problem) in [
        ("../outside", "must stay inside the work directory"),
        ("/etc", "must be a path relative to the work directory"),
    ] {
        // The pipeline's loader refuses such a name: alter the loaded pipeline, as a stored
        // pipeline from an older version could be.
        let mut pipeline = support::pipeline(&hcl);
        pipeline.resources[0]
            .params
            .insert("name".to_owned(), name.to_owned());
        for job in ["a", "b"] {
            let options = Options {
                local: false,
                versions: BTreeMap::from([("cron.tick".to_owned(), serde_json::json!({}))]),
                ..Options::default()
            };
            let r = support::run_pipeline(pipeline.clone(), job, options).await;
            assert_eq!(r.status(), Status::Failed, "{job} {name}");
            let error = r.events.error("tick").unwrap();
            assert!(
                error.starts_with("resource \"cron.tick\": the name param ")
                    && error.contains(problem),
                "{error}"
            );
            assert!(r.runner.invocations.lock().unwrap().is_empty());
        }
    }
}

/// Runs job "a" of a pipeline whose `store` resource type's `command` (`check` or `push`)
/// prints the version `{"ref": "v-s3cr3t"}`, `s3cr3t` being a secret, and `step` is the job's
/// plan; the build must succeed.
async fn run_printing_a_secret_version(command: &str, step: &str, local: bool) -> support::Run {
    let hcl = "variable \"pw\" {\n  type = string\n  secret \"pikoci\" { key = \"pw\" }\n}\n"
        .to_owned()
        + &format!(
            "resource_type \"store\" {{\n  {command} \"exec\" {{\n    path = \"step\"\n    args = [\"print:[{{\\\"ref\\\":\\\"v-s3cr3t\\\"}}]\"]\n  }}\n}}\n"
        )
        + "resource \"store\" \"it\" {}\n"
        + &job(&format!("{step} \"store\" \"it\" {{}}\n"));
    let options = Options {
        local,
        secrets: secret("__pikoci_secret:pikoci::pw__".to_owned(), "s3cr3t"),
        ..Options::default()
    };
    let r = run_with(&hcl, "a", options).await;
    assert_eq!(r.status(), Status::Succeeded, "{:?}", r.events.finished());
    r
}

#[tokio::test]
async fn versions_a_push_prints_are_reported_with_secrets_masked() {
    let r = run_printing_a_secret_version("push", "put", false).await;
    let versions = r.events.picked(|e| match e {
        pikoci_core::engine::Event::Versions { versions, .. } => Some(versions.clone()),
        _ => None,
    });
    assert_eq!(versions, [vec![serde_json::json!({"ref": "v-***"})]]);
}

#[tokio::test]
async fn the_version_a_local_check_finds_is_reported_with_secrets_masked() {
    let r = run_printing_a_secret_version("check", "get", true).await;
    let used = r.events.picked(|e| match e {
        pikoci_core::engine::Event::VersionUsed { version, .. } => Some(version.clone()),
        _ => None,
    });
    assert_eq!(used, [serde_json::json!({"ref": "v-***"})]);
}

/// A check outside any build: the newest known version reaches the command as `version_*`,
/// the versions it prints on stdout come back oldest first (what it says on stderr is only
/// shown), and its secrets are masked in them.
#[tokio::test]
async fn a_check_gets_the_newest_version_and_returns_what_it_prints() {
    use pikoci_core::engine::{CheckSpec, Engine};

    let hcl = "resource_type \"repo\" {\n  check \"exec\" {\n    path = \"step\"\n    args = [\"warn:[not a version]; print:[{\\\"ref\\\":\\\"abc-next\\\"},{\\\"ref\\\":\\\"s3cr3t\\\"}]; warn:{}\"]\n  }\n}\nresource \"repo\" \"app\" {}\nresource_type \"none\" {}\nresource \"none\" \"x\" {}\n";
    let pipeline = std::sync::Arc::new(pipeline(hcl));
    let work = tempfile::tempdir().unwrap();
    let recorder = std::sync::Arc::new(pikoci_core::testing::Recorder::default());
    let runner = std::sync::Arc::new(support::ScriptedRunner::default());
    let engine = Engine::new(runner.clone(), recorder.clone());
    let spec = |resource: &str| CheckSpec {
        pipeline: pipeline.clone(),
        resource: resource.to_owned(),
        team: "main".to_owned(),
        pipeline_name: "demo".to_owned(),
        newest: Some(serde_json::json!({"ref": "abc"})),
        secrets: secret("s3cr3t", "s3cr3t"),
        work_root: work.path().to_owned(),
        cache_root: None,
    };
    let result = engine.check(spec("repo.app"), Default::default()).await;
    assert_eq!(result.error, None);
    assert_eq!(
        result.versions,
        [
            serde_json::json!({"ref": "abc-next"}),
            serde_json::json!({"ref": "***"})
        ]
    );
    let invocation = runner.invocations.lock().unwrap()[0].clone();
    assert_eq!(
        invocation.env.get("version_ref").map(String::as_str),
        Some("abc")
    );

    let result = engine.check(spec("none.x"), Default::default()).await;
    assert_eq!(
        result,
        pikoci_core::engine::CheckResult {
            versions: vec![],
            error: None
        }
    );
    assert!(
        recorder.output().contains("has no check"),
        "{}",
        recorder.output()
    );

    let result = engine.check(spec("repo.gone"), Default::default()).await;
    assert!(result.error.unwrap().contains("\"repo.gone\" not found"));
    // The work directories are gone.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}
