//! Helpers for tests that drive the engine (the `testing` feature, for dev-dependencies only):
//! an [`EventSink`] that records a build's events, and questions to ask about them.
//!
//! Steps are found by name; when several steps share a name, the first one started is meant.
//! The queries panic with a clear message when a step is missing: they are for tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::engine::{Event, EventSink, Status, StepId, StepType};

/// Keeps every event of a build, in the order they were emitted.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl EventSink for Recorder {
    fn emit(&self, event: Event) {
        self.lock().push(event);
    }
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.lock().clone()
    }

    /// What `pick` takes from each event, in order, for the events it takes something from.
    pub fn picked<T>(&self, pick: impl Fn(&Event) -> Option<T>) -> Vec<T> {
        self.lock().iter().filter_map(pick).collect()
    }

    /// Step names by id.
    fn names(&self) -> BTreeMap<StepId, String> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                Event::StepStarted { id, name, .. } => Some((*id, name.clone())),
                _ => None,
            })
            .collect()
    }

    /// The id of the step named `name`, if one started.
    pub fn started(&self, name: &str) -> Option<StepId> {
        self.lock().iter().find_map(|e| match e {
            Event::StepStarted { id, name: n, .. } if n == name => Some(*id),
            _ => None,
        })
    }

    fn id_of(&self, name: &str) -> StepId {
        self.started(name)
            .unwrap_or_else(|| panic!("no step named {name:?} started"))
    }

    /// `name: status` for every finished step, in the order they finished.
    pub fn finished(&self) -> Vec<String> {
        let names = self.names();
        self.lock()
            .iter()
            .filter_map(|e| match e {
                Event::StepFinished { id, status, .. } => {
                    let name = names.get(id).map_or("?", String::as_str);
                    Some(format!("{name}: {status}"))
                }
                _ => None,
            })
            .collect()
    }

    /// How the step named `name` ended, and its error.
    pub fn outcome(&self, name: &str) -> (Status, Option<String>) {
        let id = self.id_of(name);
        self.lock()
            .iter()
            .find_map(|e| match e {
                Event::StepFinished {
                    id: i,
                    status,
                    error,
                    ..
                } if *i == id => Some((*status, error.clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("step {name:?} never finished"))
    }

    /// The error the step named `name` finished with.
    pub fn error(&self, name: &str) -> Option<String> {
        self.outcome(name).1
    }

    /// The log of the step named `name`, one line per output event.
    pub fn log(&self, name: &str) -> String {
        let id = self.id_of(name);
        let lines: Vec<String> = self
            .lock()
            .iter()
            .filter_map(|e| match e {
                Event::Output { id: i, text, .. } if *i == id => Some(text.clone()),
                _ => None,
            })
            .collect();
        lines.join("\n")
    }

    /// Every output line of the build, of every step.
    pub fn output(&self) -> String {
        let lines: Vec<String> = self
            .lock()
            .iter()
            .filter_map(|e| match e {
                Event::Output { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect();
        lines.join("\n")
    }

    /// Output lines, step errors (`error: ...`) and the build's error (`build error: ...`), in
    /// the order they came.
    pub fn transcript(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                Event::Output { text, .. } => Some(text.clone()),
                Event::StepFinished {
                    error: Some(error), ..
                } => Some(format!("error: {error}")),
                Event::BuildFinished {
                    error: Some(error), ..
                } => Some(format!("build error: {error}")),
                _ => None,
            })
            .collect()
    }

    /// The name of the parent of the step named `name`, if it has one.
    pub fn parent(&self, name: &str) -> Option<String> {
        let names = self.names();
        self.lock().iter().find_map(|e| match e {
            Event::StepStarted {
                name: n, parent, ..
            } if n == name => parent.and_then(|p| names.get(&p).cloned()),
            _ => None,
        })
    }

    /// The type the step named `name` was reported with.
    pub fn step_type(&self, name: &str) -> Option<StepType> {
        self.lock().iter().find_map(|e| match e {
            Event::StepStarted {
                name: n, step_type, ..
            } if n == name => Some(*step_type),
            _ => None,
        })
    }

    /// The versions the gets used.
    pub fn used(&self) -> Vec<serde_json::Value> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                Event::VersionUsed { version, .. } => Some(version.clone()),
                _ => None,
            })
            .collect()
    }

    /// The versions the puts produced.
    pub fn produced(&self) -> Vec<serde_json::Value> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                Event::Versions { versions, .. } => Some(versions.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}
