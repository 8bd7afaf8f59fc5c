//! A build's engine events as protocol messages, its output lines batched per step.

use std::collections::BTreeMap;
use std::time::SystemTime;

use pikoci_core::engine::{Event, StepId};
use pikoci_core::protocol::{BuildRef, Message, Outcome};

use super::{LOG_BATCH_BYTES, to_ms};

/// The log lines of one step not published yet.
#[derive(Debug, Default)]
struct StepLog {
    text: String,
    next_seq: u64,
}

/// Turns a build's engine events into protocol messages: output lines are gathered into one
/// `log` batch per step, published when it reaches [`LOG_BATCH_BYTES`], on each flush tick,
/// before the step's `step_finished`, and before `build_finished`.
///
/// A line longer than a batch is split across batches (only its last piece ends with `\n`): the
/// texts of a step's batches, joined in `seq` order, are its exact output.
#[derive(Debug)]
pub(crate) struct LogBatcher {
    build: BuildRef,
    steps: BTreeMap<StepId, StepLog>,
}

impl LogBatcher {
    pub(crate) fn new(build: BuildRef) -> LogBatcher {
        LogBatcher {
            build,
            steps: BTreeMap::new(),
        }
    }

    /// The messages to publish now that `event` happened (at `at`), in order.
    pub(crate) fn on_event(&mut self, event: Event, at: SystemTime) -> Vec<Message> {
        let build = self.build;
        match event {
            Event::Output { id, text, .. } => self.append(id, &text, at),
            Event::StepStarted {
                id,
                parent,
                step_type,
                name,
            } => vec![Message::StepStarted {
                build,
                step: id,
                parent,
                kind: step_type.as_str().to_owned(),
                name,
                at_ms: to_ms(at),
            }],
            Event::StepFinished {
                id, status, error, ..
            } => {
                let mut out: Vec<Message> = self.flush(id, at).into_iter().collect();
                out.push(Message::StepFinished {
                    build,
                    step: id,
                    outcome: Outcome::from(status),
                    error,
                    at_ms: to_ms(at),
                });
                out
            }
            Event::Versions { resource, versions } => vec![Message::VersionsProduced {
                build,
                resource,
                versions,
            }],
            Event::VersionUsed { resource, version } => vec![Message::VersionUsed {
                build,
                resource,
                version,
            }],
            Event::Trigger { resource, params } => vec![Message::TriggerEvent {
                build,
                resource,
                params,
            }],
            // Exports only matter to later steps of the same build.
            Event::Exported { .. } => Vec::new(),
            Event::BuildFinished { status, error, .. } => {
                let mut out = self.flush_all(at);
                out.push(Message::BuildFinished {
                    build,
                    outcome: Outcome::from(status),
                    error,
                    at_ms: to_ms(at),
                    // Filled in by the outbox, which knows what it queued.
                    log_chunks: None,
                });
                out
            }
        }
    }

    /// Every pending batch, step by step.
    pub(crate) fn flush_all(&mut self, at: SystemTime) -> Vec<Message> {
        let ids: Vec<StepId> = self.steps.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.flush(id, at))
            .collect()
    }

    fn flush(&mut self, id: StepId, at: SystemTime) -> Option<Message> {
        let log = self.steps.get_mut(&id)?;
        if log.text.is_empty() {
            return None;
        }
        let seq = log.next_seq;
        log.next_seq += 1;
        Some(Message::Log {
            build: self.build,
            step: id,
            seq,
            text: std::mem::take(&mut log.text),
            at_ms: to_ms(at),
        })
    }

    fn append(&mut self, id: StepId, line: &str, at: SystemTime) -> Vec<Message> {
        let mut out = Vec::new();
        let pending = self.steps.entry(id).or_default().text.len();
        if pending > 0 && pending + line.len() + 1 > LOG_BATCH_BYTES {
            out.extend(self.flush(id, at));
        }
        let mut rest = line;
        loop {
            let log = self.steps.entry(id).or_default();
            let room = LOG_BATCH_BYTES - log.text.len();
            if rest.len() < room {
                log.text.push_str(rest);
                log.text.push('\n');
                break;
            }
            // Only reached with an empty batch: a piece of the line fills it.
            let mut cut = room.min(rest.len());
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut == 0 {
                cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
            }
            log.text.push_str(&rest[..cut]);
            rest = &rest[cut..];
            out.extend(self.flush(id, at));
        }
        if self
            .steps
            .get(&id)
            .is_some_and(|l| l.text.len() >= LOG_BATCH_BYTES)
        {
            out.extend(self.flush(id, at));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pikoci_core::engine::{Status, StepType};
    use pikoci_core::store::BuildId;
    use std::time::Duration;

    fn build() -> BuildRef {
        BuildRef {
            build_id: BuildId(3),
            attempt: 1,
        }
    }

    fn output(id: StepId, text: &str) -> Event {
        Event::Output {
            id,
            stream: None,
            text: text.to_owned(),
            at: SystemTime::now(),
        }
    }

    fn logs(messages: &[Message]) -> Vec<(StepId, u64, String)> {
        messages
            .iter()
            .filter_map(|m| match m {
                Message::Log {
                    step, seq, text, ..
                } => Some((*step, *seq, text.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_steps_lines_are_published_before_it_finishes() {
        let mut batcher = LogBatcher::new(build());
        let now = SystemTime::now();
        let started = batcher.on_event(
            Event::StepStarted {
                id: 0,
                parent: None,
                step_type: StepType::Task,
                name: "unit".to_owned(),
            },
            now,
        );
        assert!(matches!(&started[..], [Message::StepStarted { kind, .. }] if kind == "task"));
        assert!(batcher.on_event(output(0, "one"), now).is_empty());
        assert!(batcher.on_event(output(1, "other step"), now).is_empty());
        assert!(batcher.on_event(output(0, "two"), now).is_empty());
        let finished = batcher.on_event(
            Event::StepFinished {
                id: 0,
                status: Status::Failed,
                duration: Duration::ZERO,
                error: Some("exit status 1".to_owned()),
            },
            now,
        );
        assert_eq!(logs(&finished), [(0, 0, "one\ntwo\n".to_owned())]);
        assert!(matches!(
            finished.last(),
            Some(Message::StepFinished {
                step: 0,
                outcome: Outcome::Failed,
                ..
            })
        ));
        assert!(batcher.on_event(output(0, "late"), now).is_empty());
        let end = batcher.on_event(
            Event::BuildFinished {
                status: Status::Failed,
                duration: Duration::ZERO,
                error: None,
            },
            now,
        );
        assert_eq!(
            logs(&end),
            [
                (0, 1, "late\n".to_owned()),
                (1, 0, "other step\n".to_owned())
            ]
        );
        assert!(matches!(end.last(), Some(Message::BuildFinished { .. })));
    }

    #[test]
    fn batches_stay_under_the_limit_and_join_to_the_exact_output() {
        let mut batcher = LogBatcher::new(build());
        let now = SystemTime::now();
        let mut lines: Vec<String> = (0..3000)
            .map(|n| format!("line {n} {}", "x".repeat(40)))
            .collect();
        // A line longer than two batches, with multi-byte characters across the cuts.
        lines.insert(1000, "é".repeat(LOG_BATCH_BYTES + 7));
        let mut published = Vec::new();
        for line in &lines {
            published.extend(batcher.on_event(output(2, line), now));
        }
        published.extend(batcher.flush_all(now));
        let batches = logs(&published);
        assert!(batches.len() > 3, "{}", batches.len());
        for (n, (step, seq, text)) in batches.iter().enumerate() {
            assert_eq!((*step, *seq), (2, n as u64));
            assert!(text.len() <= LOG_BATCH_BYTES, "{}", text.len());
        }
        let joined: String = batches.iter().map(|(_, _, t)| t.as_str()).collect();
        assert_eq!(joined, lines.join("\n") + "\n");
    }

    #[test]
    fn other_events_become_their_messages() {
        let mut batcher = LogBatcher::new(build());
        let now = SystemTime::now();
        let messages: Vec<&'static str> = [
            Event::Versions {
                resource: "git.app".to_owned(),
                versions: vec![serde_json::json!({"ref": "a"})],
            },
            Event::VersionUsed {
                resource: "git.app".to_owned(),
                version: serde_json::json!({"ref": "a"}),
            },
            Event::Trigger {
                resource: "trigger.deploy".to_owned(),
                params: BTreeMap::new(),
            },
            Event::Exported {
                id: 0,
                name: "TASK_X".to_owned(),
                value: "1".to_owned(),
            },
        ]
        .into_iter()
        .flat_map(|event| batcher.on_event(event, now))
        .map(|m| m.type_name())
        .collect();
        assert_eq!(
            messages,
            ["versions_produced", "version_used", "trigger_event"]
        );
    }
}
