//! `GET …/jobs/{jn}/builds/{bn}/events`: a build followed over Server-Sent Events.
//!
//! # Events
//!
//! - `status`: the build as `GET …/builds/{bn}` shows it (steps of every attempt included).
//!   Sent first, then whenever it changes. No `id` (it does not move the stream's position).
//! - `log`: one chunk of a step's output, `{"attempt", "step", "seq", "text"}` (`text` is a
//!   batch of whole lines, each ending with `\n`), with an `id` (below).
//! - `end`: `{"status"}` once the build is finished and every stored chunk was sent; the
//!   stream then closes (a client should not reconnect).
//! - `error`: `{"code", "message"}` when the build disappears (deleted); the stream closes.
//!
//! The stream first catches up from the store, then follows the build: it re-reads the store
//! when this server stores chunks of the build ([`Server::log_updates`]) and every second, for
//! chunks stored by another server.
//!
//! # Order, and why the store's order is not enough
//!
//! Chunks of one step are sent in `seq` order, with no gap and no repeat; steps running in
//! parallel interleave. The store returns a build's chunks in cursor order, which is the order
//! they were stored, and that is not always `seq` order: the servers consume worker events as
//! one group, so batch 5 of a step can be handled (and stored) by one server while batch 4,
//! redelivered after another server failed before acknowledging it, is stored seconds later.
//! On PostgreSQL and MySQL, two chunks stored at the same time can also become visible in the
//! other order than their cursors. So a chunk is only sent once every earlier `seq` of its step
//! was sent; a chunk read too early is held back and read again on the next pass.
//!
//! # Position and `Last-Event-ID`
//!
//! The id of a `log` event is the whole position of the stream after it:
//! `R/a.s.n/a.s.n…`, where `R` is a store cursor (`-` for none) such that every chunk up to it
//! was sent, and each `a.s.n` says that `n` chunks (seqs `0..n`) of step `s` of attempt `a` were
//! sent. A client that reconnects with `Last-Event-ID` gets exactly the chunks not covered by
//! it: the stream reads on after `R` and skips seqs below `n`. The id grows with the number of
//! steps that printed something (a few bytes each), not with the log.
//!
//! A chunk that only becomes visible below `R` (the PostgreSQL/MySQL case) is found by the
//! final pass: once the build is finished, the stream reads the log once more from the start
//! before `end`, so no stored chunk is missed. A gap that does not fill (a batch lost, or still
//! in flight) holds its step back for at most [`GAP_GRACE`]; then the later chunks are sent
//! and the missing batch, if it is stored later still, is not streamed (`GET …/logs` has it).
//! Likewise a batch stored after its build was marked finished and after the final pass is not
//! streamed: the worker sends a step's last batch before the step's and the build's end, so
//! this only happens when that batch was redelivered.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use pikoci_core::ErrorKind;
use pikoci_core::store::{BuildId, BuildStatus, LogChunk, LogCursor, StoredResource};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use utoipa::ToSchema;

use super::builds::detailed_view;
use super::error::{ApiError, ApiResult};
use super::extract::ApiPath;
use super::scope::{self, BuildPath};
use super::views::{BuildPlace, BuildView};
use crate::Server;

/// Chunks read from the store at once.
const PAGE: u32 = 500;

/// How often the store is read without being woken.
const TICK: Duration = Duration::from_secs(1);

/// How long a step waits for a missing batch before its later batches are sent without it.
pub(crate) const GAP_GRACE: Duration = Duration::from_secs(10);

/// The handler.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/events", tag = "builds", summary = "Follow a build (Server-Sent Events)", operation_id = "events", params(BuildPath,
        ("Last-Event-ID" = Option<String>, Header, pattern = "^(-|-?[0-9]+)(/[0-9]+\\.[0-9]+\\.[0-9]+)*$", description = "The id of the last event received: the stream resumes after it.")),
    responses((status = 200, description = "Server-Sent Events: `status` (a Build), `log` (a LogChunk), `end` (`{\"status\"}`), `error` (`{\"code\", \"message\"}`); see the module documentation of `api/events.rs`.",
        content_type = "text/event-stream", body = EventShape)))]
pub(crate) async fn build_events(
    State(server): State<Server>,
    ApiPath(path): ApiPath<BuildPath>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let position = match headers.get("last-event-id") {
        None => Position::default(),
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| ApiError::invalid("the Last-Event-ID header is not ASCII text"))?;
            Position::parse(text).map_err(|problem| {
                ApiError::invalid(format!(
                    "invalid Last-Event-ID \"{}\": {problem}; reconnect without it to start over",
                    text.escape_debug()
                ))
            })?
        }
    };
    let (scope, build) = scope::build(&server, &path).await?;
    let resources = server.store().resources(scope.pipeline.id).await?;
    let place = OwnedPlace {
        team: scope.team.name,
        pipeline: scope.pipeline.name,
        job: scope.job.name,
        resources,
    };
    let events = BuildEvents::new(
        server,
        build.id,
        place,
        position,
        Box::new(|server: &Server| server.log_updates()),
    );
    Ok(Sse::new(events.into_stream())
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One event of the stream as the Server-Sent Events format carries it: the OpenAPI document
/// describes the stream with it (OpenAPI 3.1 has no other way); the stream itself is written by
/// axum's `Event`.
#[derive(ToSchema)]
#[schema(as = BuildEvent)]
#[expect(
    dead_code,
    reason = "a description for the OpenAPI document, never built"
)]
pub(crate) struct EventShape {
    /// `status`, `log`, `end` or `error`.
    #[schema(pattern = "^(status|log|end|error)$")]
    event: String,
    /// JSON: a Build (`status`), a LogChunk (`log`), `{"status"}` (`end`), `{"code",
    /// "message"}` (`error`).
    data: String,
    /// The stream's position after a `log` event, for `Last-Event-ID`.
    #[schema(nullable = false)]
    id: Option<String>,
}

/// How far a stream got: see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Position {
    /// Every chunk up to this cursor was sent (`None`: nothing is known to be sent).
    read_after: Option<LogCursor>,
    /// Per `(attempt, step)`: how many chunks were sent (seqs `0..n`).
    sent: BTreeMap<(u32, u32), u64>,
}

impl Position {
    /// Parses an event id.
    pub(crate) fn parse(id: &str) -> Result<Position, String> {
        let mut parts = id.split('/');
        let read_after = match parts.next() {
            Some("-") => None,
            Some(cursor) => {
                Some(LogCursor(cursor.parse::<i64>().map_err(|_| {
                    format!("\"{}\" is not a log cursor", cursor.escape_debug())
                })?))
            }
            None => return Err("it is empty".to_owned()),
        };
        let mut sent = BTreeMap::new();
        for part in parts {
            let bad = || format!("\"{}\" is not attempt.step.count", part.escape_debug());
            let mut numbers = part.split('.');
            let (Some(attempt), Some(step), Some(count), None) = (
                numbers.next(),
                numbers.next(),
                numbers.next(),
                numbers.next(),
            ) else {
                return Err(bad());
            };
            let key = (
                attempt.parse::<u32>().map_err(|_| bad())?,
                step.parse::<u32>().map_err(|_| bad())?,
            );
            let count = count.parse::<u64>().map_err(|_| bad())?;
            if sent.insert(key, count).is_some() {
                return Err(format!("step {}.{} is given twice", key.0, key.1));
            }
        }
        Ok(Position { read_after, sent })
    }

    /// The event id for this position.
    pub(crate) fn id(&self) -> String {
        let mut id = match self.read_after {
            Some(cursor) => cursor.0.to_string(),
            None => "-".to_owned(),
        };
        for ((attempt, step), count) in &self.sent {
            let _ = write!(id, "/{attempt}.{step}.{count}");
        }
        id
    }

    /// How many chunks of this step were sent.
    fn count(&self, chunk: &LogChunk) -> u64 {
        self.sent
            .get(&(chunk.attempt, chunk.step))
            .copied()
            .unwrap_or(0)
    }
}

/// The names a build's views need, owned by the stream.
#[derive(Debug)]
pub(crate) struct OwnedPlace {
    pub(crate) team: String,
    pub(crate) pipeline: String,
    pub(crate) job: String,
    pub(crate) resources: Vec<StoredResource>,
}

/// `log` event data.
#[derive(Debug, Serialize)]
struct LogData<'a> {
    attempt: u32,
    step: u32,
    seq: u64,
    text: &'a str,
}

/// What the stream does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Read the build and start a pass over the log.
    Poll,
    /// Read the next page of the current pass.
    Read,
    /// Wait for a wake-up or the tick.
    Wait,
    /// Closed.
    Done,
}

/// One read of the log, page by page.
#[derive(Debug, Default)]
struct Pass {
    /// Where the pass reads on.
    after: Option<LogCursor>,
    /// The pass started from the first chunk after the build was seen finished.
    last: bool,
    /// A chunk of this pass was held back: the position's cursor no longer moves.
    blocked: bool,
}

/// How a stream subscribes to wake-ups.
pub(crate) type Subscribe = Box<dyn FnOnce(&Server) -> broadcast::Receiver<BuildId> + Send>;

/// The state of one stream.
pub(crate) struct BuildEvents {
    server: Server,
    build: BuildId,
    place: OwnedPlace,
    position: Position,
    /// Subscribes to wake-ups, on the first wait (a build that is over never needs them).
    subscribe: Option<Subscribe>,
    updates: Option<broadcast::Receiver<BuildId>>,
    tick: Option<Interval>,
    tick_period: Duration,
    gap_grace: Duration,
    phase: Phase,
    pass: Pass,
    /// Chunks read before an earlier chunk of their step, by step then seq.
    held: BTreeMap<(u32, u32), BTreeMap<u64, LogChunk>>,
    /// Since when chunks are held back.
    held_since: Option<Instant>,
    finished: Option<BuildStatus>,
    last_status: Option<BuildView>,
}

impl std::fmt::Debug for BuildEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildEvents")
            .field("build", &self.build)
            .field("position", &self.position)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl BuildEvents {
    /// A stream of `build`'s events after `position`, woken by the receivers `subscribe` gives.
    pub(crate) fn new(
        server: Server,
        build: BuildId,
        place: OwnedPlace,
        position: Position,
        subscribe: Subscribe,
    ) -> BuildEvents {
        BuildEvents {
            server,
            build,
            place,
            position,
            subscribe: Some(subscribe),
            updates: None,
            tick: None,
            tick_period: TICK,
            gap_grace: GAP_GRACE,
            phase: Phase::Poll,
            pass: Pass::default(),
            held: BTreeMap::new(),
            held_since: None,
            finished: None,
            last_status: None,
        }
    }

    /// The same with other timings (tests).
    #[cfg(test)]
    pub(crate) fn with_timings(mut self, tick: Duration, gap_grace: Duration) -> BuildEvents {
        self.tick_period = tick;
        self.gap_grace = gap_grace;
        self
    }

    /// The events as a stream that ends after `end` (or `error`).
    pub(crate) fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> + Send {
        futures::stream::unfold(self, |mut state| async move {
            let events = state.next_events().await?;
            Some((events, state))
        })
        .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok)))
    }

    /// The next events to send (never empty), or `None` once the stream is over.
    pub(crate) async fn next_events(&mut self) -> Option<Vec<Event>> {
        loop {
            match self.phase {
                Phase::Done => return None,
                Phase::Wait => {
                    self.wait().await;
                    self.phase = Phase::Poll;
                }
                Phase::Poll => match self.poll_build().await {
                    Ok(status) => {
                        self.pass = Pass {
                            // After the build finished, one last pass from the start.
                            after: if self.finished.is_some() {
                                None
                            } else {
                                self.position.read_after
                            },
                            last: self.finished.is_some(),
                            blocked: false,
                        };
                        self.phase = Phase::Read;
                        if let Some(event) = status {
                            return Some(vec![event]);
                        }
                    }
                    Err(Some(event)) => {
                        self.phase = Phase::Done;
                        return Some(vec![event]);
                    }
                    Err(None) => self.phase = Phase::Wait,
                },
                Phase::Read => {
                    let page = match self
                        .server
                        .store()
                        .read_log(self.build, self.pass.after, PAGE)
                        .await
                    {
                        Ok(page) => page,
                        Err(error) => {
                            tracing::warn!(build = %self.build, error = %error, "failed to read a build log for its event stream; retrying");
                            self.phase = Phase::Wait;
                            continue;
                        }
                    };
                    let complete = page.len() < PAGE as usize;
                    let mut events = self.take(page);
                    if complete {
                        events.extend(self.finish_pass());
                    }
                    if !events.is_empty() {
                        return Some(events);
                    }
                }
            }
        }
    }

    /// Reads the build: its `status` event when it changed. `Err(Some(event))` closes the
    /// stream with that event; `Err(None)` is a failure to retry later.
    async fn poll_build(&mut self) -> Result<Option<Event>, Option<Event>> {
        let place = BuildPlace {
            team: &self.place.team,
            pipeline: &self.place.pipeline,
            job: &self.place.job,
            resources: &self.place.resources,
        };
        let build = match self.server.store().build(self.build).await {
            Ok(build) => build,
            Err(error) if error.kind() == ErrorKind::NotFound => {
                let data = serde_json::json!({"code": "not_found", "message": error.to_string()});
                return Err(Some(json_event("error", &data)));
            }
            Err(error) => {
                tracing::warn!(build = %self.build, error = %error, "failed to read a build for its event stream; retrying");
                return Err(None);
            }
        };
        let view = match detailed_view(&self.server, place, &build).await {
            Ok(view) => view,
            Err(error) => {
                tracing::warn!(build = %self.build, error = ?error, "failed to read a build for its event stream; retrying");
                return Err(None);
            }
        };
        if build.status.is_finished() {
            self.finished = Some(build.status);
        }
        if self.last_status.as_ref() == Some(&view) {
            return Ok(None);
        }
        let event = json_event("status", &view);
        self.last_status = Some(view);
        Ok(Some(event))
    }

    /// Sends what can be sent of a page, holds back the rest.
    fn take(&mut self, page: Vec<LogChunk>) -> Vec<Event> {
        let mut events = Vec::new();
        for chunk in page {
            self.pass.after = Some(chunk.cursor);
            let sent = self.position.count(&chunk);
            if chunk.seq > sent {
                self.pass.blocked = true;
                self.held_since.get_or_insert_with(Instant::now);
                self.held
                    .entry((chunk.attempt, chunk.step))
                    .or_default()
                    .insert(chunk.seq, chunk);
                continue;
            }
            if !self.pass.blocked {
                self.position.read_after = self.position.read_after.max(Some(chunk.cursor));
            }
            if chunk.seq == sent {
                self.send_with_successors(chunk, &mut events);
            }
        }
        events
    }

    /// Sends `chunk`, then the held chunks that follow it.
    fn send_with_successors(&mut self, chunk: LogChunk, events: &mut Vec<Event>) {
        let key = (chunk.attempt, chunk.step);
        events.push(self.send(&chunk));
        let Some(held) = self.held.get_mut(&key) else {
            return;
        };
        let mut next = chunk.seq + 1;
        let mut ready = Vec::new();
        while let Some(chunk) = held.remove(&next) {
            ready.push(chunk);
            next += 1;
        }
        if held.is_empty() {
            self.held.remove(&key);
        }
        for chunk in ready {
            events.push(self.send(&chunk));
        }
        if self.held.is_empty() {
            self.held_since = None;
        }
    }

    /// The `log` event of a chunk whose predecessors were sent, with the position after it.
    fn send(&mut self, chunk: &LogChunk) -> Event {
        self.position
            .sent
            .insert((chunk.attempt, chunk.step), chunk.seq + 1);
        let text = String::from_utf8_lossy(&chunk.data);
        json_event(
            "log",
            &LogData {
                attempt: chunk.attempt,
                step: chunk.step,
                seq: chunk.seq,
                text: &text,
            },
        )
        .id(self.position.id())
    }

    /// At the end of a pass: gives up on gaps older than the grace, ends the stream after the
    /// last pass, or waits.
    fn finish_pass(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let gaps_expired = self
            .held_since
            .is_some_and(|since| since.elapsed() >= self.gap_grace);
        if gaps_expired {
            for (key, chunks) in std::mem::take(&mut self.held) {
                tracing::warn!(build = %self.build, attempt = key.0, step = key.1, "log batches missing from a build's stream; sending the later ones without them");
                for chunk in chunks.into_values() {
                    events.push(self.send(&chunk));
                }
            }
            self.held_since = None;
        }
        match self.finished {
            Some(status) if self.pass.last && self.held.is_empty() => {
                events.push(json_event("end", &serde_json::json!({ "status": status })));
                self.phase = Phase::Done;
            }
            _ => self.phase = Phase::Wait,
        }
        events
    }

    /// Waits until this server stored chunks of the build, or the tick.
    async fn wait(&mut self) {
        if let Some(subscribe) = self.subscribe.take() {
            self.updates = Some(subscribe(&self.server));
        }
        let period = self.tick_period;
        let tick = self.tick.get_or_insert_with(|| {
            let mut tick = tokio::time::interval_at(Instant::now() + period, period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tick
        });
        let Some(updates) = self.updates.as_mut() else {
            tick.tick().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tick.tick() => return,
                update = updates.recv() => match update {
                    Ok(build) if build == self.build => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => {
                        self.updates = None;
                        return;
                    }
                },
            }
        }
    }
}

/// An event with JSON data.
fn json_event(name: &str, data: &impl Serialize) -> Event {
    let json = serde_json::to_string(data).unwrap_or_else(|error| {
        serde_json::json!({"code": "internal", "message": format!("failed to encode an event: {error}")})
            .to_string()
    });
    Event::default().event(name).data(json)
}
