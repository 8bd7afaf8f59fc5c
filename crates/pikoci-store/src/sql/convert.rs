//! Rows to records and back: times as milliseconds, JSON as text, counters as `i32`.

use chrono::{DateTime, Utc};
use pikoci_core::store::{
    Build, BuildNumber, BuildStatus, BuildStep, BuildTrigger, CheckLease, CheckRecord, Dispatch,
    JobId, Pin, PipelineId, ResourceId, ResourceVersion, StepStatus, StoreError, StoreResult,
    StoredJob, StoredPipeline, StoredResource, Team, TeamId, VersionId, Worker,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::entity::{build, build_step, job, pipeline, resource, resource_version, team, worker};
use crate::error::corrupt;

/// A time as stored: milliseconds since the Unix epoch.
pub(crate) fn ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// A stored time.
pub(crate) fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A value as JSON text.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|err| corrupt(format!("failed to serialize {what}"), err))
}

/// A value from stored JSON text.
pub(crate) fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(text)
        .map_err(|err| corrupt(format!("corrupt {what} in the database"), err))
}

/// The format of the model JSON the store writes (pipelines, jobs, resources, pipeline types):
/// every such column holds `{"format": MODEL_FORMAT, "model": ...}`. The model is the serde form of
/// `pikoci-core`'s types, a cache of what the pipeline's stored source (`config`) and `vars`
/// decode to. Bump this when a change to those types cannot read what was written before; rows of
/// another format are refused with an error naming it, never decoded by guess.
pub(crate) const MODEL_FORMAT: u32 = 1;

/// A model as written, borrowing the value.
#[derive(Serialize)]
struct ModelOut<'a, T: ?Sized> {
    format: u32,
    model: &'a T,
}

/// A model as read: the format first, the model decoded only when the format is known.
#[derive(serde::Deserialize)]
struct ModelIn {
    format: u32,
    model: serde_json::Value,
}

/// A model of `pikoci-core` as JSON text in the current [`MODEL_FORMAT`].
pub(crate) fn to_model_json<T: Serialize + ?Sized>(value: &T, what: &str) -> StoreResult<String> {
    to_json(
        &ModelOut {
            format: MODEL_FORMAT,
            model: value,
        },
        what,
    )
}

/// The model of `owner` (`pipeline "ci"`, `job "build"`) from stored JSON text. `Internal`
/// when the row is not in the current [`MODEL_FORMAT`]: written before formats were numbered
/// (no `format` envelope), in another format, or not a model at all.
pub(crate) fn from_model_json<T: DeserializeOwned>(text: &str, owner: &str) -> StoreResult<T> {
    let corrupt_model = |err: &dyn std::fmt::Display| {
        corrupt(
            format!("the model of {owner} in the database is corrupt"),
            err,
        )
    };
    let stored: serde_json::Value =
        serde_json::from_str(text).map_err(|err| corrupt_model(&err))?;
    // Only an object is a model, versioned or not (serde would also read `[1, {...}]` as the
    // envelope).
    if !stored.is_object() {
        return Err(corrupt_model(&"the stored JSON is not an object"));
    }
    if stored.get("format").is_none() {
        return Err(StoreError::internal(format!(
            "{owner} was stored by an older PikoCI in an unversioned format: set the pipeline again"
        )));
    }
    let stored: ModelIn = serde_json::from_value(stored).map_err(|err| corrupt_model(&err))?;
    if stored.format != MODEL_FORMAT {
        return Err(StoreError::internal(format!(
            "the model of {owner} is stored in model format {}, but this version of PikoCI reads \
             format {MODEL_FORMAT}: run the PikoCI version that wrote it, or set the pipeline again",
            stored.format
        )));
    }
    serde_json::from_value(stored.model).map_err(|err| corrupt_model(&err))
}

/// A count or index as stored (`i32`); `InvalidInput` beyond `i32::MAX`.
pub(crate) fn int(value: u32, what: &str) -> StoreResult<i32> {
    i32::try_from(value)
        .map_err(|_| StoreError::invalid_input(format!("{what} {value} is too large")))
}

/// A stored count or index.
pub(crate) fn uint(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// The JSON object with its keys sorted at every level: equal versions get equal text.
pub(crate) fn canonical_json(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical_json(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical_json).collect())
        }
        other => other.clone(),
    }
}

/// The hex SHA-256 of a text (the unique key of a version within its resource).
pub(crate) fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn team(m: team::Model) -> Team {
    Team {
        id: TeamId(m.id),
        name: m.name,
        created_at: time(m.created_at),
    }
}

pub(crate) fn pipeline(m: pipeline::Model) -> StoreResult<StoredPipeline> {
    Ok(StoredPipeline {
        id: PipelineId(m.id),
        team_id: TeamId(m.team_id),
        vars: from_json(&m.vars, "pipeline vars")?,
        model: from_model_json(&m.model, &format!("pipeline \"{}\"", m.name))?,
        name: m.name,
        config: m.config,
        paused: m.paused,
        public: m.public,
        created_at: time(m.created_at),
        updated_at: time(m.updated_at),
    })
}

pub(crate) fn job(m: job::Model) -> StoreResult<StoredJob> {
    Ok(StoredJob {
        id: JobId(m.id),
        pipeline_id: PipelineId(m.pipeline_id),
        model: from_model_json(&m.model, &format!("job \"{}\"", m.name))?,
        name: m.name,
        position: uint(m.position),
        paused: m.paused,
        created_at: time(m.created_at),
    })
}

pub(crate) fn resource(m: resource::Model) -> StoreResult<StoredResource> {
    let last_check = m.last_check_finished_at.map(|finished_at| CheckRecord {
        finished_at: time(finished_at),
        error: m.last_check_error.clone(),
        log: m.last_check_log.clone().unwrap_or_default(),
    });
    let check_lease = match (&m.check_worker_id, m.check_lease_expires_at) {
        (Some(worker_id), Some(expires_at)) => Some(CheckLease {
            attempt: uint(m.check_attempt),
            worker_id: worker_id.clone(),
            expires_at: time(expires_at),
        }),
        _ => None,
    };
    Ok(StoredResource {
        id: ResourceId(m.id),
        pipeline_id: PipelineId(m.pipeline_id),
        model: from_model_json(
            &m.model,
            &format!("resource \"{}.{}\"", m.type_name, m.name),
        )?,
        webhook_token: m.webhook_token,
        next_check_at: m.next_check_at.map(time),
        pin: m.pinned_version_id.map(|version| Pin {
            version: VersionId(version),
            comment: m.pin_comment.unwrap_or_default(),
            by: m.pinned_by,
            at: m.pinned_at.map(time),
        }),
        last_check,
        check_lease,
        created_at: time(m.created_at),
    })
}

pub(crate) fn version(m: resource_version::Model) -> StoreResult<ResourceVersion> {
    Ok(ResourceVersion {
        id: VersionId(m.id),
        resource_id: ResourceId(m.resource_id),
        version: from_json(&m.version, "resource version")?,
        metadata: from_json(&m.metadata, "version metadata")?,
        created_at: time(m.created_at),
    })
}

pub(crate) fn build(m: build::Model) -> StoreResult<Build> {
    let status = BuildStatus::parse(&m.status).ok_or_else(|| {
        StoreError::internal(format!(
            "build {} has an unknown status \"{}\"",
            m.id, m.status
        ))
    })?;
    let trigger = match (m.trigger_resource_id, m.trigger_version_id) {
        (Some(resource), Some(version)) => Some(BuildTrigger {
            resource_id: ResourceId(resource),
            version_id: VersionId(version),
        }),
        _ => None,
    };
    Ok(Build {
        id: pikoci_core::store::BuildId(m.id),
        job_id: JobId(m.job_id),
        pipeline_id: PipelineId(m.pipeline_id),
        team_id: TeamId(m.team_id),
        number: BuildNumber {
            number: uint(m.number),
            retry: uint(m.retry),
        },
        retry_of: m.retry_of.map(pikoci_core::store::BuildId),
        status,
        inputs: from_json(&m.inputs, "build inputs")?,
        error: m.error,
        trigger,
        dispatch: Dispatch {
            attempt: uint(m.attempt),
            worker_id: m.worker_id,
            lease_expires_at: m.lease_expires_at.map(time),
            requeues: uint(m.requeues),
            cancel_deadline: m.cancel_deadline.map(time),
        },
        created_at: time(m.created_at),
        started_at: m.started_at.map(time),
        finished_at: m.finished_at.map(time),
    })
}

pub(crate) fn step(m: build_step::Model) -> StoreResult<BuildStep> {
    let status = StepStatus::parse(&m.status).ok_or_else(|| {
        StoreError::internal(format!(
            "build step {} has an unknown status \"{}\"",
            m.id, m.status
        ))
    })?;
    Ok(BuildStep {
        attempt: uint(m.attempt),
        step: uint(m.step),
        name: m.name,
        kind: m.kind,
        status,
        started_at: m.started_at.map(time),
        finished_at: m.finished_at.map(time),
        parent: m.parent.map(uint),
    })
}

pub(crate) fn worker(m: worker::Model) -> StoreResult<Worker> {
    Ok(Worker {
        tags: from_json(&m.tags, "worker tags")?,
        worker_id: m.worker_id,
        team_id: m.team_id.map(TeamId),
        slots: uint(m.slots),
        running: uint(m.running),
        version: m.version,
        hostname: m.hostname,
        first_seen_at: time(m.first_seen_at),
        last_heartbeat_at: time(m.last_heartbeat_at),
        exclusive: m.exclusive,
        draining: m.draining,
        sealing_key: m.sealing_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pikoci_core::ErrorKind;
    use pikoci_core::model::{GetStep, Job, Pipeline, Resource, ResourceRef, Step, StepKind};
    use pikoci_core::schedule::CheckInterval;

    /// A pipeline with one job getting one resource.
    fn sample_pipeline() -> Pipeline {
        let repo = ResourceRef {
            type_name: "git".to_owned(),
            name: "repo".to_owned(),
        };
        Pipeline {
            resources: vec![Resource {
                type_name: "git".to_owned(),
                name: "repo".to_owned(),
                params: [("uri".to_owned(), "https://example.com/repo.git".to_owned())].into(),
                check_interval: CheckInterval::parse("@every 1m").unwrap(),
                tags: vec!["linux".to_owned()],
                cache: None,
            }],
            jobs: vec![Job {
                concurrency: 2,
                serial_groups: vec!["deploy".to_owned()],
                interruptible: true,
                plan: vec![Step::new(StepKind::Get(GetStep {
                    resource: repo,
                    trigger: true,
                    passed: Vec::new(),
                }))],
                ..Job::new("build")
            }],
            ..Pipeline::default()
        }
    }

    /// Rows written in model format 1 are read back. When this fails after a change to the model
    /// types of `pikoci-core`, stored rows no longer read: bump `MODEL_FORMAT` (and decide what
    /// happens to old rows) instead of editing the fixture.
    #[test]
    fn rows_of_the_current_model_format_are_read_back() {
        let fixture = include_str!("testdata/pipeline-model-format-1.json").trim();
        let read: Pipeline = from_model_json(fixture, "pipeline \"p\"").unwrap();
        assert_eq!(read, sample_pipeline());
        assert_eq!(to_model_json(&read, "pipeline model").unwrap(), fixture);
    }

    #[test]
    fn an_unknown_model_format_is_an_internal_error_naming_it() {
        let written = to_model_json(&sample_pipeline(), "pipeline model").unwrap();
        assert!(written.starts_with(r#"{"format":1,"model":{"#), "{written}");
        let later = written.replacen(r#""format":1"#, r#""format":7"#, 1);
        let err = from_model_json::<Pipeline>(&later, "pipeline \"p\"").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(
            err.to_string(),
            "the model of pipeline \"p\" is stored in model format 7, but this version of PikoCI \
             reads format 1: run the PikoCI version that wrote it, or set the pipeline again"
        );
    }

    #[test]
    fn a_row_written_before_model_formats_says_to_set_the_pipeline_again() {
        let unversioned = serde_json::to_string(&sample_pipeline()).unwrap();
        let err = from_model_json::<Pipeline>(&unversioned, "pipeline \"p\"").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(
            err.to_string(),
            "pipeline \"p\" was stored by an older PikoCI in an unversioned format: set the \
             pipeline again"
        );
    }

    #[test]
    fn a_corrupt_model_is_named_in_a_sentence() {
        for text in [
            "{not json",
            r#"{"format":1,"model":{"jobs":7}}"#,
            r#"{"format":"x"}"#,
            "[]",
            r#"[1,{"jobs":[]}]"#,
            "7",
            "null",
        ] {
            let err = from_model_json::<Pipeline>(text, "pipeline \"p\"").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Internal);
            assert_eq!(
                err.to_string(),
                "the model of pipeline \"p\" in the database is corrupt",
                "{text}"
            );
        }
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[{"q":1,"p":2}]}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":[{"p":2,"q":1}],"y":2},"b":1}"#).unwrap();
        let text_a = serde_json::to_string(&canonical_json(&a)).unwrap();
        let text_b = serde_json::to_string(&canonical_json(&b)).unwrap();
        assert_eq!(text_a, text_b);
        assert_eq!(text_a, r#"{"a":{"x":[{"p":2,"q":1}],"y":2},"b":1}"#);
        assert_eq!(digest(&text_a), digest(&text_b));
        assert_eq!(digest(&text_a).len(), 64);
    }

    #[test]
    fn times_keep_milliseconds() {
        let t = time(1_700_000_000_123);
        assert_eq!(ms(t), 1_700_000_000_123);
        assert_eq!(int(5, "step").unwrap(), 5);
        assert!(int(u32::MAX, "step").is_err());
        assert_eq!(uint(-1), 0);
    }
}
