//! Live terminal output of a local build: a header per step, its output as it comes, its status
//! and duration, and a summary at the end. Colours on a terminal, plain text otherwise.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use pikoci_core::engine::{Event, EventSink, Status, StepId, StepType, Stream};

/// ANSI styles, or nothing when colour is off.
#[derive(Debug, Clone, Copy)]
struct Palette {
    color: bool,
}

impl Palette {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn header(self, text: &str) -> String {
        self.paint("1;36", text)
    }
    fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
    /// `✓`, `✗`, ... coloured.
    fn mark(self, status: Status) -> String {
        let (code, mark) = Palette::style(status);
        self.paint(code, mark)
    }

    fn style(status: Status) -> (&'static str, &'static str) {
        match status {
            Status::Succeeded => ("32", "✓"),
            Status::Warning => ("33", "!"),
            Status::Failed => ("31", "✗"),
            Status::Cancelled => ("33", "⊘"),
            Status::Skipped => ("2", "-"),
        }
    }

    /// `✓ succeeded`, coloured, padded to `width` characters.
    fn status(self, status: Status, width: usize) -> String {
        let (code, mark) = Palette::style(status);
        self.paint(code, &format!("{:<width$}", format!("{mark} {status}")))
    }
}

#[derive(Debug)]
struct StepInfo {
    name: String,
    step_type: StepType,
    depth: usize,
    /// Set for steps inside `in_parallel`, whose lines interleave and need a prefix.
    prefix: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    steps: BTreeMap<StepId, StepInfo>,
    finished: Vec<(StepId, Status, Duration, Option<String>)>,
    /// The first failed write; nothing more is written after it.
    write_error: Option<String>,
}

/// Prints engine events to standard output.
#[derive(Debug)]
pub(crate) struct Terminal {
    palette: Palette,
    job: String,
    state: Mutex<State>,
}

impl Terminal {
    pub(crate) fn new(job: &str, color: bool) -> Terminal {
        Terminal {
            palette: Palette { color },
            job: job.to_owned(),
            state: Mutex::new(State::default()),
        }
    }

    /// Why the output could not be written (a closed pipe, a full disk), if it could not. The
    /// build runs to its end either way.
    pub(crate) fn write_error(&self) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.write_error.clone()
    }

    fn print(&self, state: &mut State, text: &str) {
        if state.write_error.is_some() {
            return;
        }
        if let Err(error) = crate::output::stdout(&format!("{text}\n")) {
            state.write_error = Some(format!("{error:#}"));
        }
    }

    fn summary(
        &self,
        state: &State,
        status: Status,
        duration: Duration,
        error: Option<&str>,
    ) -> String {
        let p = self.palette;
        let mut out = format!("\n{}\n", p.header("Summary"));
        let width = state
            .steps
            .values()
            .map(|s| s.name.chars().count() + 2 * s.depth)
            .max()
            .unwrap_or(0)
            .min(48);
        let finished: BTreeMap<StepId, &(StepId, Status, Duration, Option<String>)> =
            state.finished.iter().map(|f| (f.0, f)).collect();
        // In start order, nested steps indented under their parent.
        for (id, step) in &state.steps {
            let Some((_, step_status, step_duration, step_error)) = finished.get(id).copied()
            else {
                continue;
            };
            let name = format!("{}{}", "  ".repeat(step.depth), step.name);
            let mut line = format!(
                "  {} {:<11} {name:<width$}  {}",
                p.mark(*step_status),
                step.step_type.as_str(),
                p.dim(&format_duration(*step_duration)),
            );
            if let Some(error) = step_error.as_ref().filter(|_| !step_status.is_ok()) {
                line.push_str(&format!("  {error}"));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let (_, mark) = Palette::style(status);
        let verdict = format!(
            "{mark} job \"{}\" {status} in {}",
            self.job,
            format_duration(duration)
        );
        let verdict = match error.filter(|_| status != Status::Succeeded) {
            Some(error) => format!("{verdict}: {error}"),
            None => verdict,
        };
        let code = match status {
            Status::Succeeded => "1;32",
            Status::Warning | Status::Cancelled | Status::Skipped => "1;33",
            Status::Failed => "1;31",
        };
        out.push_str(&p.paint(code, &verdict));
        out
    }
}

/// `0.02s`, `1.50s`, `2m03s`.
fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.2}s")
    } else {
        format!(
            "{}m{:02}s",
            duration.as_secs() / 60,
            duration.as_secs() % 60
        )
    }
}

impl EventSink for Terminal {
    fn emit(&self, event: Event) {
        let p = self.palette;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::StepStarted {
                id,
                parent,
                step_type,
                name,
            } => {
                let parent_info = parent.and_then(|p| state.steps.get(&p));
                let depth = parent_info.map_or(0, |p| p.depth + 1);
                let in_parallel = parent_info
                    .is_some_and(|p| p.step_type == StepType::InParallel || p.prefix.is_some());
                let prefix = in_parallel.then(|| format!("[{name}] "));
                self.print(
                    &mut state,
                    &format!(
                        "{}{}",
                        "  ".repeat(depth),
                        p.header(&format!("==> [{}] {name}", step_type.as_str()))
                    ),
                );
                state.steps.insert(
                    id,
                    StepInfo {
                        name,
                        step_type,
                        depth,
                        prefix,
                    },
                );
            }
            Event::Output {
                id, stream, text, ..
            } => {
                let (depth, prefix) = state
                    .steps
                    .get(&id)
                    .map_or((0, ""), |s| (s.depth, s.prefix.as_deref().unwrap_or("")));
                let text = match stream {
                    None => p.dim(&text),
                    Some(Stream::Stdout | Stream::Stderr) => text,
                };
                let line = format!("{}    {}{text}", "  ".repeat(depth), p.dim(prefix));
                self.print(&mut state, &line);
            }
            Event::StepFinished {
                id,
                status,
                duration,
                error,
            } => {
                let depth = state.steps.get(&id).map_or(0, |s| s.depth);
                let mut line = format!(
                    "{}    {} {}",
                    "  ".repeat(depth),
                    p.status(status, 0),
                    p.dim(&format!("in {}", format_duration(duration)))
                );
                if let Some(error) = error.as_ref().filter(|_| !status.is_ok()) {
                    line.push_str(&format!(": {error}"));
                }
                self.print(&mut state, &line);
                state.finished.push((id, status, duration, error));
            }
            Event::BuildFinished {
                status,
                duration,
                error,
            } => {
                let summary = self.summary(&state, status, duration, error.as_deref());
                self.print(&mut state, &summary);
            }
            Event::Versions { .. }
            | Event::VersionUsed { .. }
            | Event::Trigger { .. }
            | Event::Exported { .. } => {}
        }
    }
}
