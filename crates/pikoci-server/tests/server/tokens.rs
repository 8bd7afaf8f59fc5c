//! Worker tokens on the broker: what is not signed with a key the server knows is dropped, and
//! a team's workers get that team's work only and cannot speak for anyone else.

use std::collections::BTreeMap;
use std::time::Duration;

use pikoci_core::broker::Broker;
use pikoci_core::protocol::auth::{KeyScope, MacKey};
use pikoci_core::protocol::{Message, Outcome, topics};
use pikoci_core::store::BuildStatus;
use serde_json::json;

use crate::builds::UNIT;
use crate::harness::{Harness, SRC, envelope, heartbeat_message, signed};

/// Team `other`, and its worker token.
async fn other_team(h: &Harness) -> MacKey {
    let team = h
        .store
        .create_team("other", h.clock.now())
        .await
        .expect("team");
    let token = h.server.worker_token(Some(team.id)).await.expect("token");
    token.expose().parse().expect("a worker token")
}

/// A build of job `unit`, triggered by hand.
async fn trigger_unit(h: &Harness) -> pikoci_core::store::Build {
    let job = h.job("unit").await;
    h.server
        .trigger_job(job.id, BTreeMap::new())
        .await
        .expect("triggered")
}

async fn registered(h: &Harness) -> Vec<String> {
    let workers = h.store.workers().await.expect("workers");
    workers.into_iter().map(|w| w.worker_id).collect()
}

#[tokio::test(start_paused = true)]
async fn heartbeats_unsigned_or_signed_with_an_unknown_key_register_nobody() {
    let h = Harness::start(SRC).await;
    let beat = |id: &str| envelope(id, heartbeat_message(id, 1, &[], None));
    let unsigned = beat("unsigned").encode().expect("encodes");
    let forged = MacKey::new(KeyScope::Global, [1; 32]);
    let unknown_team = MacKey::new(KeyScope::Team("nobody".into()), [1; 32]);
    // A servers' key is not a worker's.
    let server_key = MacKey::new(KeyScope::Server, [9; 32]);
    let payloads = [
        unsigned,
        signed(&forged, topics::HEARTBEATS, &beat("forged")),
        signed(&unknown_team, topics::HEARTBEATS, &beat("stranger")),
        signed(&server_key, topics::HEARTBEATS, &beat("posing")),
    ];
    for payload in payloads {
        h.mem
            .publish(topics::HEARTBEATS, payload)
            .await
            .expect("publish");
    }
    // The real one, behind them, registers.
    let mut w = h.worker("w1").await;
    w.heartbeat(&[]).await;
    assert_eq!(registered(&h).await, ["w1"]);
}

#[tokio::test(start_paused = true)]
async fn a_team_token_serves_its_team_only_and_claims_no_other_scope() {
    let h = Harness::start(&format!("{SRC}{UNIT}")).await;
    let other = other_team(&h).await;
    // Claiming team main, or every team, with team other's token: dropped.
    let posing_main = h.team_worker("posing-main", "main", other.clone()).await;
    posing_main
        .send(heartbeat_message_of(&posing_main.id, Some("main")))
        .await;
    let mut posing_global = h.team_worker("posing-global", "other", other.clone()).await;
    posing_global.team = None;
    posing_global
        .send(heartbeat_message_of(&posing_global.id, None))
        .await;
    // Team other's own worker registers, for team other.
    let mut tw = h.team_worker("tw", "other", other.clone()).await;
    tw.start_heartbeats();
    h.wait_for("the team worker registered", || async {
        registered(&h).await == ["tw"]
    })
    .await;
    // A build of team main waits: the only worker serves team other.
    h.add_version("src.app", json!({"ref": "a"})).await;
    let build = trigger_unit(&h).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        h.store.build(build.id).await.expect("build").status,
        BuildStatus::Pending
    );
    // A global worker takes it.
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let assign = w.expect_assign().await;
    assert_eq!(assign.build.build_id, build.id);
    drop(posing_main);
    drop(posing_global);
}

fn heartbeat_message_of(id: &str, team: Option<&str>) -> Message {
    let mut beat = heartbeat_message(id, 2, &[], None);
    if let Message::Heartbeat(heartbeat) = &mut beat {
        heartbeat.team = team.map(str::to_owned);
    }
    beat
}

#[tokio::test(start_paused = true)]
async fn another_teams_token_cannot_report_on_a_workers_build() {
    let h = Harness::start(&format!("{SRC}{UNIT}")).await;
    let other = other_team(&h).await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let build = trigger_unit(&h).await;
    let assign = w.expect_assign().await;
    w.accept(assign.build).await;
    h.wait_status(build.id, BuildStatus::Started).await;
    // Team other's token, speaking as w1: its "success" is dropped.
    let forged = Message::BuildFinished {
        build: assign.build,
        outcome: Outcome::Succeeded,
        error: None,
        at_ms: 1_000,
        log_chunks: None,
    };
    h.mem
        .publish(
            topics::EVENTS,
            signed(&other, topics::EVENTS, &envelope("w1", forged)),
        )
        .await
        .expect("publish");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.store.build(build.id).await.expect("build").status,
        BuildStatus::Started
    );
    // w1 itself ends it.
    w.send(Message::BuildFinished {
        build: assign.build,
        outcome: Outcome::Failed,
        error: Some("real".into()),
        at_ms: 2_000,
        log_chunks: None,
    })
    .await;
    h.wait_status(build.id, BuildStatus::Failed).await;
}

#[tokio::test(start_paused = true)]
async fn a_regenerated_team_token_refuses_the_old_one_and_the_new_one_works() {
    let h = Harness::start(SRC).await;
    let old = other_team(&h).await;
    let team = h.store.team("other").await.expect("team");
    let new: MacKey = h
        .server
        .regenerate_worker_token(team.id)
        .await
        .expect("regenerated")
        .expose()
        .parse()
        .expect("a worker token");
    assert_ne!(old, new);
    let stale = h.team_worker("stale", "other", old).await;
    stale
        .send(heartbeat_message_of("stale", Some("other")))
        .await;
    let mut fresh = h.team_worker("fresh", "other", new).await;
    fresh.heartbeat(&[]).await;
    assert_eq!(registered(&h).await, ["fresh"]);
}

#[tokio::test(start_paused = true)]
async fn the_server_signs_what_it_sends_with_the_workers_team_token() {
    let h = Harness::start(SRC).await;
    let other = other_team(&h).await;
    // The fake worker checks every message it reads against its own token.
    let mut tw = h.team_worker("tw", "other", other).await;
    let (renewed, lost, _) = tw.heartbeat(&[]).await;
    assert!(renewed.is_empty() && lost.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_workers_name_stays_with_its_token_even_once_it_is_silent() {
    let h = Harness::start(SRC).await;
    let other = other_team(&h).await;
    let mut w = h.worker("w1").await;
    w.heartbeat(&[]).await;
    // w1 goes silent for longer than it takes to be lost; team other's token takes its name.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let posing = h.team_worker("w1", "other", other).await;
    posing.send(heartbeat_message_of("w1", Some("other"))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let workers = h.store.workers().await.expect("workers");
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].team_id, None, "w1 is still the global worker");
    // Forgotten, the name is free.
    h.store.delete_worker("w1").await.expect("deleted");
    // (Its inbox still holds what the server sent the global w1: only its registration is
    // looked at.)
    posing.send(heartbeat_message_of("w1", Some("other"))).await;
    h.wait_for("w1 registered for team other", || async {
        let workers = h.store.workers().await.expect("workers");
        workers.len() == 1 && workers[0].team_id.is_some()
    })
    .await;
    drop(w);
}

#[tokio::test(start_paused = true)]
async fn a_replayed_heartbeat_is_dropped() {
    let h = Harness::start(SRC).await;
    let beat = envelope("w1", heartbeat_message("w1", 1, &[], None));
    let bytes = signed(&crate::harness::token(), topics::HEARTBEATS, &beat);
    h.mem
        .publish(topics::HEARTBEATS, bytes.clone())
        .await
        .expect("publish");
    h.wait_for("w1 registered", || async { registered(&h).await == ["w1"] })
        .await;
    let first = h.store.worker("w1").await.expect("w1").last_heartbeat_at;
    tokio::time::sleep(Duration::from_secs(10)).await;
    h.mem
        .publish(topics::HEARTBEATS, bytes)
        .await
        .expect("publish");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = h.store.worker("w1").await.expect("w1").last_heartbeat_at;
    assert_eq!(after, first, "the replay did not count as a heartbeat");
}

#[tokio::test(start_paused = true)]
async fn nobody_reports_on_a_build_no_worker_holds() {
    let h = Harness::start(&format!("{SRC}{UNIT}")).await;
    let other = other_team(&h).await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    // Team other's worker, registered: main's build is never its own.
    let mut tw = h.team_worker("tw", "other", other).await;
    tw.heartbeat(&[]).await;
    let build = trigger_unit(&h).await;
    let pending = h.store.build(build.id).await.expect("build");
    let forged = pikoci_core::protocol::BuildRef {
        build_id: build.id,
        attempt: pending.dispatch.attempt,
    };
    tw.send(Message::VersionsProduced {
        build: forged,
        resource: "src.app".into(),
        versions: vec![json!({"ref": "forged"})],
    })
    .await;
    tw.send(Message::BuildFinished {
        build: forged,
        outcome: Outcome::Succeeded,
        error: None,
        at_ms: 1_000,
        log_chunks: None,
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.store.build(build.id).await.expect("build").status,
        BuildStatus::Pending
    );
    let resource = h.resource("src.app").await;
    let versions = h
        .store
        .versions(resource.id, None, 10)
        .await
        .expect("versions");
    assert!(
        versions
            .iter()
            .all(|v| v.version != json!({"ref": "forged"})),
        "{versions:?}"
    );
}
