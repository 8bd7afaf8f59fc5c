//! The builtin resource types `cron`, `fs`, `artifact` and `trigger`, run for real: their HCL
//! commands through the engine and real processes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use pikoci_config::{HttpFetcher, SourceFile, Vars};
use pikoci_core::engine::{BuildControl, BuildSpec, Engine, Event, LocalRun, Status};
use pikoci_core::testing::Recorder;
use pikoci_runner::ProcessRunner;

struct Build {
    status: Status,
    events: Arc<Recorder>,
}

async fn build(
    hcl: &str,
    job: &str,
    local: bool,
    versions: BTreeMap<String, serde_json::Value>,
    root: &Path,
) -> Build {
    let pipeline = match pikoci_config::load(
        &SourceFile::new("p.hcl", hcl),
        &Vars::new(),
        &HttpFetcher::default(),
    ) {
        Ok(loaded) => loaded.pipeline,
        Err(diagnostics) => panic!("{diagnostics}"),
    };
    let events = Arc::new(Recorder::default());
    let engine = Engine::new(Arc::new(ProcessRunner::new()), events.clone());
    let spec = BuildSpec {
        pipeline: Arc::new(pipeline),
        job: job.to_owned(),
        team: "main".to_owned(),
        pipeline_name: "builtins".to_owned(),
        build_number: "1".to_owned(),
        inputs: BTreeMap::new(),
        versions,
        secrets: Default::default(),
        local: local.then(LocalRun::default),
        work_root: root.join("work"),
        cache_root: Some(root.join("cache")),
    };
    let result = engine.run(spec, BuildControl::default()).await;
    Build {
        status: result.status,
        events,
    }
}

#[tokio::test]
async fn cron_checks_give_a_date_and_pulls_print_it() {
    let dir = tempfile::tempdir().unwrap();
    let hcl = "resource \"cron\" \"tick\" {}\njob \"a\" {\n  get \"cron\" \"tick\" {}\n  task \"t\" {\n    run \"shell\" { cmd = \"echo got $GET_TICK_DATE\" }\n  }\n}\n";
    let b = build(hcl, "a", true, BTreeMap::new(), dir.path()).await;
    assert_eq!(b.status, Status::Succeeded, "{}", b.events.output());
    let used = b.events.used();
    let date = used[0]["date"]
        .as_str()
        .expect("a cron version has a date")
        .to_owned();
    let output = b.events.output();
    assert!(output.contains(&format!("date: {date}")), "{output}");
    assert!(output.contains(&format!("got {date}")), "{output}");
}

#[tokio::test]
async fn fs_checks_hash_a_file_and_pulls_copy_it() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("config.txt");
    std::fs::write(&watched, "v1\n").unwrap();
    let hcl = format!(
        "resource \"fs\" \"cfg\" {{\n  params {{ path = \"{}\" }}\n}}\njob \"a\" {{\n  get \"fs\" \"cfg\" {{}}\n  task \"t\" {{\n    run \"shell\" {{ cmd = \"cat config.txt; echo hash=$GET_CFG_HASH\" }}\n  }}\n}}\n",
        watched.display()
    );
    let b = build(&hcl, "a", true, BTreeMap::new(), dir.path()).await;
    assert_eq!(b.status, Status::Succeeded, "{}", b.events.output());
    let version = &b.events.used()[0];
    assert_eq!(version["path"], watched.display().to_string());
    let hash = version["hash"].as_str().unwrap().to_owned();
    assert_eq!(hash.len(), 64, "a sha256: {hash}");
    let output = b.events.output();
    assert!(
        output.contains("v1") && output.contains(&format!("hash={hash}")),
        "{output}"
    );
    std::fs::write(&watched, "v2\n").unwrap();
    let b = build(&hcl, "a", true, BTreeMap::new(), dir.path()).await;
    assert_ne!(
        b.events.used()[0]["hash"].as_str().unwrap(),
        hash,
        "the hash follows the content"
    );
}

#[tokio::test]
async fn artifacts_round_trip_through_put_and_get() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let hcl = format!(
        "resource \"artifact\" \"out\" {{\n  params {{\n    dir      = \"unpacked\"\n    base_dir = \"{}\"\n  }}\n}}\njob \"make\" {{\n  task \"build\" {{\n    run \"shell\" {{ cmd = \"mkdir -p output && echo built > output/app.txt\" }}\n  }}\n  put \"artifact\" \"out\" {{ dir = \"output\" }}\n}}\njob \"use\" {{\n  get \"artifact\" \"out\" {{}}\n  task \"show\" {{\n    run \"shell\" {{ cmd = \"cat unpacked/app.txt\" }}\n  }}\n}}\n",
        store.display()
    );
    let made = build(&hcl, "make", false, BTreeMap::new(), dir.path()).await;
    assert_eq!(made.status, Status::Succeeded, "{}", made.events.output());
    let produced = made.events.produced();
    assert_eq!(produced.len(), 1, "{produced:?}");
    assert!(
        produced[0]["sha"].as_str().is_some_and(|s| s.len() == 64),
        "{produced:?}"
    );
    let versions = BTreeMap::from([("artifact.out".to_owned(), produced[0].clone())]);
    let used = build(&hcl, "use", false, versions, dir.path()).await;
    assert_eq!(used.status, Status::Succeeded, "{}", used.events.output());
    assert!(
        used.events.output().contains("built"),
        "{}",
        used.events.output()
    );
    // A local run finds the newest artifact with the type's check.
    let local = build(&hcl, "use", true, BTreeMap::new(), dir.path()).await;
    assert_eq!(local.status, Status::Succeeded, "{}", local.events.output());
    assert_eq!(local.events.used()[0]["sha"], produced[0]["sha"]);
}

#[tokio::test]
async fn trigger_puts_become_trigger_events_and_gets_need_no_command() {
    let dir = tempfile::tempdir().unwrap();
    let hcl = "resource \"trigger\" \"deploy\" {}\njob \"up\" {\n  put \"trigger\" \"deploy\" { build_sha = \"abc\" }\n}\njob \"down\" {\n  get \"trigger\" \"deploy\" { trigger = true }\n  task \"t\" {\n    run \"shell\" { cmd = \"echo sha=$GET_DEPLOY_BUILD_SHA\" }\n  }\n}\n";
    let up = build(hcl, "up", false, BTreeMap::new(), dir.path()).await;
    assert_eq!(up.status, Status::Succeeded);
    let trigger = up.events.events().into_iter().find_map(|e| match e {
        Event::Trigger { resource, params } => Some((resource, params)),
        _ => None,
    });
    assert_eq!(
        trigger,
        Some((
            "trigger.deploy".to_owned(),
            BTreeMap::from([("build_sha".to_owned(), "abc".to_owned())])
        ))
    );
    let versions = BTreeMap::from([(
        "trigger.deploy".to_owned(),
        serde_json::json!({"build_sha": "abc", "trigger_id": 1}),
    )]);
    let down = build(hcl, "down", false, versions, dir.path()).await;
    assert_eq!(down.status, Status::Succeeded, "{}", down.events.output());
    assert!(down.events.output().contains("sha=abc"));
    assert_eq!(down.events.used()[0]["trigger_id"], 1);
}
