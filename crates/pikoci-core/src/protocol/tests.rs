use super::*;

fn envelope(message: Message) -> Envelope {
    Envelope {
        v: VERSION,
        msg_id: "m1".to_owned(),
        sender: "worker-a".to_owned(),
        boot_id: "b1".to_owned(),
        sent_at_ms: 1_764_640_000_123,
        message,
    }
}

fn build() -> BuildRef {
    BuildRef {
        build_id: BuildId(7),
        attempt: 2,
    }
}

/// A check assignment with nothing sealed.
fn assign_check() -> AssignCheck {
    AssignCheck {
        check: CheckRef {
            resource_id: ResourceId(3),
            attempt: 1,
        },
        lease_until_ms: 5,
        snapshot: CheckSnapshot {
            team: "main".to_owned(),
            pipeline_id: crate::store::PipelineId(1),
            pipeline: "demo".to_owned(),
            resource: "git.app".to_owned(),
            model: crate::Pipeline::default(),
            newest: None,
        },
        store_values: None,
    }
}

#[test]
fn every_message_round_trips_and_names_its_type() {
    let messages = vec![
        Message::Assign(Box::new(Assign {
            build: build(),
            lease_until_ms: 5,
            snapshot: BuildSnapshot {
                team: "main".to_owned(),
                pipeline_id: crate::store::PipelineId(1),
                pipeline: "demo".to_owned(),
                job: "test".to_owned(),
                build_number: "3.1".to_owned(),
                model: crate::Pipeline::default(),
                inputs: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
                versions: BTreeMap::from([(
                    "git.app".to_owned(),
                    serde_json::json!({"ref": "abc"}),
                )]),
            },
            store_values: Some(SealedSecrets::new("AQID")),
        })),
        Message::AssignCheck(Box::new(assign_check())),
        Message::Cancel { build: build() },
        Message::Abort {
            work: WorkRef::Build(build()),
            reason: "stale".to_owned(),
        },
        Message::Leases {
            heartbeat: "h".to_owned(),
            until_ms: 9,
            renewed: vec![WorkRef::Build(build())],
            lost: vec![],
        },
        Message::Heartbeat(Heartbeat {
            worker: "w".to_owned(),
            team: None,
            tags: vec!["linux".to_owned()],
            exclusive: false,
            slots: 4,
            check_slots: Some(16),
            running: vec![WorkRef::Check(CheckRef {
                resource_id: ResourceId(1),
                attempt: 1,
            })],
            draining: false,
            version: "0.1.0".to_owned(),
            hostname: "h".to_owned(),
            sealing_key: Some("a2V5".to_owned()),
        }),
        Message::Probe {},
        Message::Accepted {
            work: WorkRef::Build(build()),
        },
        Message::Rejected {
            work: WorkRef::Build(build()),
            reason: "full".to_owned(),
        },
        Message::StepStarted {
            build: build(),
            step: 0,
            parent: None,
            kind: "task".to_owned(),
            name: "unit".to_owned(),
            at_ms: 1,
        },
        Message::Log {
            build: build(),
            step: 0,
            seq: 4,
            text: "ok\n".to_owned(),
            at_ms: 2,
        },
        Message::StepFinished {
            build: build(),
            step: 0,
            outcome: Outcome::Succeeded,
            error: None,
            at_ms: 3,
        },
        Message::VersionUsed {
            build: build(),
            resource: "git.app".to_owned(),
            version: serde_json::json!({"ref": "abc"}),
        },
        Message::VersionsProduced {
            build: build(),
            resource: "git.app".to_owned(),
            versions: vec![serde_json::json!({"ref": "def"})],
        },
        Message::TriggerEvent {
            build: build(),
            resource: "trigger.deploy".to_owned(),
            params: BTreeMap::new(),
        },
        Message::BuildFinished {
            build: build(),
            outcome: Outcome::Failed,
            error: Some("exit 1".to_owned()),
            at_ms: 4,
            log_chunks: Some(12),
        },
        Message::CheckFinished {
            check: CheckRef {
                resource_id: ResourceId(3),
                attempt: 1,
            },
            versions: vec![],
            error: None,
            log: String::new(),
            at_ms: 5,
        },
    ];
    let mut seen = Vec::new();
    for message in messages {
        let sent = envelope(message);
        let bytes = sent.encode().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["type"], sent.message.type_name());
        assert_eq!(json["v"], VERSION);
        assert_eq!(json["sent_at_ms"], 1_764_640_000_123_i64);
        match decode(&bytes).unwrap() {
            Decoded::Message(got) => assert_eq!(*got, sent),
            other => panic!("{other:?}"),
        }
        seen.push(sent.message.type_name());
    }
    seen.sort_unstable();
    let mut known = Message::TYPES.to_vec();
    known.sort_unstable();
    assert_eq!(seen, known, "TYPES lists exactly the message types");
}

#[test]
fn messages_of_releases_without_sealing_still_decode() {
    let heartbeat = br#"{"v":1,"type":"heartbeat","msg_id":"m","sender":"w","boot_id":"b",
        "sent_at_ms":1,"worker":"w","team":null,"tags":[],"slots":1,"running":[],
        "draining":false,"version":"0.1.0","hostname":"h"}"#;
    match decode(heartbeat).unwrap() {
        Decoded::Message(envelope) => match envelope.message {
            Message::Heartbeat(heartbeat) => assert_eq!(heartbeat.sealing_key, None),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let assign = envelope(Message::AssignCheck(Box::new(assign_check())));
    // Nothing sealed: the field is left out, as an older server writes it.
    let bytes = assign.encode().unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("store_values"));
    assert_eq!(decode(&bytes).unwrap(), Decoded::Message(Box::new(assign)));
    assert_eq!(
        format!("{:?}", SealedSecrets::new("c2VjcmV0")),
        "SealedSecrets(8 bytes)"
    );
}

#[test]
fn a_build_finished_without_its_log_count_still_decodes() {
    // As a worker older than `log_chunks` writes it: the server then waits for no chunk.
    let finished = br#"{"v":1,"type":"build_finished","msg_id":"m","sender":"w","boot_id":"b",
        "sent_at_ms":1,"build":{"build_id":7,"attempt":1},"outcome":"succeeded","error":null,
        "at_ms":1}"#;
    match decode(finished).unwrap() {
        Decoded::Message(envelope) => match envelope.message {
            Message::BuildFinished { log_chunks, .. } => assert_eq!(log_chunks, None),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_types_and_newer_versions_are_told_apart_not_errors() {
    let unknown = br#"{"v":1,"type":"teleport","sender":"w","msg_id":"x"}"#;
    assert_eq!(
        decode(unknown).unwrap(),
        Decoded::Unknown {
            type_name: "teleport".to_owned(),
            sender: "w".to_owned()
        }
    );
    // A newer version is refused even for a type this release knows, whatever its fields.
    let newer = br#"{"v":2,"type":"heartbeat","sender":"w","shape":"new"}"#;
    assert_eq!(
        decode(newer).unwrap(),
        Decoded::Newer {
            version: 2,
            type_name: "heartbeat".to_owned(),
            sender: "w".to_owned()
        }
    );
}

#[test]
fn malformed_messages_say_what_is_wrong() {
    let error = decode(b"not json").unwrap_err();
    assert!(matches!(error, ProtocolError::Malformed(_)), "{error}");
    let error = decode(br#"{"type":"log"}"#).unwrap_err();
    assert!(error.to_string().contains("missing field `v`"), "{error}");
    let error =
        decode(br#"{"v":1,"type":"log","msg_id":"m","sender":"w","boot_id":"b","sent_at_ms":1}"#)
            .unwrap_err();
    assert!(error.to_string().contains("\"log\" message"), "{error}");
    assert!(error.to_string().contains("missing field"), "{error}");
}

#[test]
fn oversized_messages_are_refused_before_publishing() {
    let sent = envelope(Message::Log {
        build: build(),
        step: 0,
        seq: 0,
        text: "x".repeat(MAX_MESSAGE_BYTES),
        at_ms: 0,
    });
    let error = sent.encode().unwrap_err();
    assert!(
        matches!(
            error,
            ProtocolError::TooLarge {
                type_name: "log",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("1048576-byte limit"), "{error}");
}

#[test]
fn worker_ids_must_name_a_topic() {
    assert!(check_worker_id("build-box-1").is_ok());
    assert!(check_worker_id("").is_err());
    assert!(check_worker_id(&"a".repeat(65)).is_err());
    let error = check_worker_id("a.b").unwrap_err();
    assert!(error.contains("'.'"), "{error}");
    crate::broker::validate_topic(&topics::worker("build-box-1")).unwrap();
}

#[test]
fn times_are_milliseconds() {
    let at = from_ms(1_764_640_000_123);
    assert_eq!(to_ms(at), 1_764_640_000_123);
}

#[test]
fn snapshots_keep_only_what_the_work_uses() {
    let pipeline = crate::Pipeline {
        jobs: vec![crate::Job::new("a"), crate::Job::new("b")],
        ..crate::Pipeline::default()
    };
    let model = BuildSnapshot::prune(&pipeline, "b");
    assert_eq!(model.jobs.len(), 1);
    assert_eq!(model.jobs[0].name, "b");
    let model = CheckSnapshot::prune(&pipeline, "git.app");
    assert!(model.jobs.is_empty());
}
