//! Running one piece of work: a build or a check, from its snapshot to its last message.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use pikoci_core::engine::{
    BuildControl, BuildSpec, CheckResult, CheckSpec, Engine, Event, EventSink, NativeChecks, Runner,
};
use pikoci_core::protocol::{
    Assign, AssignCheck, MAX_MESSAGE_BYTES, Message, Outcome, SealedSecrets, WorkRef,
};
use pikoci_secrets::sealed::{StoreValues, WorkerKey};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::WorkerConfig;
use crate::outbox::{Outbox, Publisher, now_ms};
use crate::secrets::{SecretLookup, resolve_for_check, resolve_for_job};

/// The most of a check's output sent back with its result (the end is kept).
pub(crate) const CHECK_LOG_BYTES: usize = 64 * 1024;

/// What every piece of work needs from its worker.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) publisher: Publisher,
    pub(crate) runner: Arc<dyn Runner>,
    pub(crate) native: Option<Arc<dyn NativeChecks>>,
    pub(crate) config: WorkerConfig,
    /// The key pair the server seals the secret store's values to.
    pub(crate) key: WorkerKey,
    pub(crate) tracker: TaskTracker,
}

impl Context {
    fn engine(&self, sink: Arc<dyn EventSink>) -> Engine {
        let engine = Engine::new(self.runner.clone(), sink);
        match &self.native {
            Some(native) => engine.with_native_checks(native.clone()),
            None => engine,
        }
    }

    /// How the secrets of `work` are looked up: on this machine, and for `secret "pikoci"` in
    /// the values the server sealed to this worker (none sealed: nothing is there).
    fn secret_lookup(
        &self,
        work: WorkRef,
        sealed: Option<&SealedSecrets>,
        cancel: &CancellationToken,
    ) -> Result<SecretLookup, String> {
        let values = match sealed {
            Some(sealed) => self.key.open(sealed, work).map_err(|e| e.to_string())?,
            None => StoreValues::new(),
        };
        Ok(
            SecretLookup::new(self.runner.clone(), &self.config.work_dir)
                .with_cancel(cancel.clone())
                .with_store(Arc::new(values)),
        )
    }
}

/// Stops one piece of work.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkStop {
    /// Cancel (a build runs its `on_cancel` and `ensure` hooks and reports `cancelled`).
    pub(crate) cancel: CancellationToken,
    /// Stop everything, hooks included.
    pub(crate) abort: CancellationToken,
    /// Publish nothing more about the work.
    pub(crate) silence: CancellationToken,
}

impl WorkStop {
    /// Stops the work now and drops whatever it still has to say.
    pub(crate) fn abort(&self) {
        self.silence.cancel();
        self.abort.cancel();
        self.cancel.cancel();
    }
}

/// Tells the worker a piece of work ended when dropped, also when its task panicked.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) ended: mpsc::UnboundedSender<WorkRef>,
    pub(crate) work: WorkRef,
}

impl Drop for Done {
    fn drop(&mut self) {
        // Fails only when the worker already returned.
        let _ = self.ended.send(self.work);
    }
}

/// Runs a build: `accepted`, then its events, then `build_finished`, all through one outbox.
pub(crate) async fn run_build(context: Arc<Context>, assign: Assign, stop: WorkStop, done: Done) {
    let build = assign.build;
    let (outbox, publishing) = Outbox::start(
        context.publisher.clone(),
        WorkRef::Build(build),
        &stop,
        &context.config.work_dir,
        &context.tracker,
    );
    outbox.send(Message::Accepted {
        work: WorkRef::Build(build),
    });
    let snapshot = assign.snapshot;
    let pipeline = Arc::new(snapshot.model);
    let resolved = async {
        let sealed = assign.store_values.as_ref();
        let lookup = context.secret_lookup(WorkRef::Build(build), sealed, &stop.cancel)?;
        resolve_for_job(&pipeline, &snapshot.job, &lookup)
            .await
            .map_err(|error| error.to_string())
    }
    .await;
    match resolved {
        Ok(secrets) => {
            let spec = BuildSpec {
                pipeline,
                job: snapshot.job,
                team: snapshot.team,
                pipeline_name: snapshot.pipeline,
                build_number: snapshot.build_number,
                inputs: snapshot.inputs,
                versions: snapshot.versions,
                secrets,
                local: None,
                work_root: context.config.work_dir.clone(),
                cache_root: Some(context.config.work_dir.join("cache")),
            };
            let control = BuildControl {
                cancel: stop.cancel.clone(),
                abort: stop.abort.clone(),
            };
            // The engine reports `build_finished` itself, through the sink.
            let result = context
                .engine(Arc::new(outbox.build_sink()))
                .run(spec, control)
                .await;
            tracing::info!(build = %build.build_id, attempt = build.attempt, status = %result.status, "build ended");
        }
        Err(error) => {
            let (outcome, error) = if stop.cancel.is_cancelled() {
                (Outcome::Cancelled, "build cancelled".to_owned())
            } else {
                (Outcome::Errored, error)
            };
            tracing::warn!(build = %build.build_id, attempt = build.attempt, %error, "build not started");
            outbox.send(Message::BuildFinished {
                build,
                outcome,
                error: Some(error),
                at_ms: now_ms(),
                // Filled in by the outbox.
                log_chunks: None,
            });
        }
    }
    drop(outbox);
    // Every message published (or the build silenced) before the worker hears it ended.
    let _ = publishing.await;
    drop(done);
}

/// Runs a check: `accepted`, then `check_finished` with what it found and its output.
pub(crate) async fn run_check(
    context: Arc<Context>,
    assign: AssignCheck,
    stop: WorkStop,
    done: Done,
) {
    let check = assign.check;
    let (outbox, publishing) = Outbox::start(
        context.publisher.clone(),
        WorkRef::Check(check),
        &stop,
        &context.config.work_dir,
        &context.tracker,
    );
    outbox.send(Message::Accepted {
        work: WorkRef::Check(check),
    });
    let snapshot = assign.snapshot;
    let pipeline = Arc::new(snapshot.model);
    let log = Arc::new(CheckLog::default());
    let resolved = async {
        let sealed = assign.store_values.as_ref();
        let lookup = context.secret_lookup(WorkRef::Check(check), sealed, &stop.cancel)?;
        resolve_for_check(&pipeline, &snapshot.resource, &lookup)
            .await
            .map_err(|error| error.to_string())
    }
    .await;
    let result = match resolved {
        Ok(secrets) => {
            let spec = CheckSpec {
                pipeline,
                resource: snapshot.resource,
                team: snapshot.team,
                pipeline_name: snapshot.pipeline,
                newest: snapshot.newest,
                secrets,
                work_root: context.config.work_dir.clone(),
                cache_root: Some(context.config.work_dir.join("cache")),
            };
            context
                .engine(log.clone())
                .check(spec, stop.cancel.clone())
                .await
        }
        Err(error) => CheckResult {
            versions: Vec::new(),
            error: Some(error),
        },
    };
    tracing::info!(resource = %check.resource_id, attempt = check.attempt, versions = result.versions.len(), error = ?result.error, "check ended");
    let (versions, log) = fit_check_result(result.versions, log.text());
    outbox.send(Message::CheckFinished {
        check,
        versions,
        error: result.error,
        log,
        at_ms: now_ms(),
    });
    drop(outbox);
    let _ = publishing.await;
    drop(done);
}

/// Keeps a check's result within one message: when its versions are too many, the oldest are
/// left out (the next check finds them again only if they are still newest, which is what
/// matters), and the log says so.
fn fit_check_result(
    mut versions: Vec<serde_json::Value>,
    mut log: String,
) -> (Vec<serde_json::Value>, String) {
    // Room for the envelope, the error and the log (itself at most CHECK_LOG_BYTES, but JSON
    // escaping may grow it up to six times).
    let budget = MAX_MESSAGE_BYTES - 8 * CHECK_LOG_BYTES;
    let sizes: Vec<usize> = versions
        .iter()
        .map(|v| serde_json::to_vec(v).map_or(0, |b| b.len() + 1))
        .collect();
    let mut total: usize = sizes.iter().sum();
    let mut dropped = 0;
    while total > budget && dropped < sizes.len() {
        total -= sizes[dropped];
        dropped += 1;
    }
    if dropped > 0 {
        let found = versions.len();
        versions.drain(..dropped);
        log.push_str(&format!(
            "the check found {found} versions, more than fit in one message: the {dropped} oldest are left out\n"
        ));
        log = keep_end(log, CHECK_LOG_BYTES);
    }
    (versions, log)
}

/// Collects a check's output, keeping the last [`CHECK_LOG_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct CheckLog {
    lines: Mutex<(VecDeque<String>, usize)>,
}

impl CheckLog {
    /// The output kept, one line per `\n`-terminated line.
    pub(crate) fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let text: String = lines.0.iter().map(|l| format!("{l}\n")).collect();
        keep_end(text, CHECK_LOG_BYTES)
    }
}

impl EventSink for CheckLog {
    fn emit(&self, event: Event) {
        if let Event::Output { text, .. } = event {
            let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
            let (kept, size) = &mut *lines;
            *size += text.len() + 1;
            kept.push_back(text);
            // Whole lines are dropped while the rest is still over the limit.
            while *size > CHECK_LOG_BYTES && kept.len() > 1 {
                if let Some(first) = kept.pop_front() {
                    *size -= first.len() + 1;
                }
            }
        }
    }
}

/// The end of `text`, at most `limit` bytes, starting at a line when one starts in it.
fn keep_end(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let kept = &text[start..];
    let kept = match kept.find('\n') {
        Some(end) if start > 0 && !text[..start].ends_with('\n') && end + 1 < kept.len() => {
            &kept[end + 1..]
        }
        _ => kept,
    };
    kept.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Event {
        Event::Output {
            id: 0,
            stream: None,
            text: text.to_owned(),
            at: std::time::SystemTime::now(),
        }
    }

    #[test]
    fn a_checks_log_keeps_its_last_64_kib() {
        let log = CheckLog::default();
        log.emit(line("first"));
        assert_eq!(log.text(), "first\n");
        for n in 0..10_000 {
            log.emit(line(&format!("line {n}")));
        }
        let text = log.text();
        assert!(text.len() <= CHECK_LOG_BYTES, "{}", text.len());
        assert!(
            text.ends_with("line 9999\n"),
            "{}",
            &text[text.len() - 20..]
        );
        assert!(text.starts_with("line "), "whole lines: {}", &text[..20]);
        // One line longer than the limit keeps its end.
        log.emit(line(&"é".repeat(CHECK_LOG_BYTES)));
        let text = log.text();
        assert!(text.len() <= CHECK_LOG_BYTES && text.ends_with("éé\n"));
    }

    #[test]
    fn too_many_versions_leave_out_the_oldest() {
        let versions: Vec<serde_json::Value> = (0..20_000)
            .map(|n| serde_json::json!({"ref": format!("{n:0>40}")}))
            .collect();
        let (kept, log) = fit_check_result(versions, "checked\n".to_owned());
        assert!(kept.len() < 20_000);
        assert_eq!(
            kept.last(),
            Some(&serde_json::json!({"ref": format!("{:0>40}", 19_999)}))
        );
        assert!(log.contains("the check found 20000 versions"), "{log}");
        let message = Message::CheckFinished {
            check: pikoci_core::protocol::CheckRef {
                resource_id: pikoci_core::store::ResourceId(1),
                attempt: 1,
            },
            versions: kept,
            error: None,
            log,
            at_ms: 0,
        };
        let token = pikoci_core::protocol::auth::MacKey::new(
            pikoci_core::protocol::auth::KeyScope::Global,
            [1; 32],
        );
        let publisher = Publisher::new(Arc::new(pikoci_pubsub::MemBroker::new()), "w", "b", token);
        assert!(publisher.envelope(message).encode().is_ok());
    }
}
