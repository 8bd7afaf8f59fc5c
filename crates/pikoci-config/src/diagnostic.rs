//! Diagnostics: what is wrong with a pipeline file, where, and what to do about it.

use std::fmt;
use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor::Buffer};

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The pipeline is rejected.
    Error,
    /// The pipeline is accepted, but something is probably not what the author meant.
    Warning,
}

/// One problem found in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, naming the offending thing.
    pub message: String,
    /// Where, as a byte range of the file (`None` when the problem has no single place).
    pub span: Option<Range<usize>>,
    /// What to do about it, when there is something to suggest.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(message: impl Into<String>, span: Option<Range<usize>>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            help: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(message: impl Into<String>, span: Option<Range<usize>>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            message: message.into(),
            span,
            help: None,
        }
    }

    /// Adds a suggestion.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
}

/// A pipeline file's text and name, for turning byte offsets into lines and columns.
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: String,
    text: String,
}

impl SourceFile {
    /// A file with this display name (usually the path given on the command line) and text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// One-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let offset = (0..=offset)
            .rev()
            .find(|i| self.text.is_char_boundary(*i))
            .unwrap_or(0);
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// `file:line:col` of a byte offset.
    pub fn location(&self, offset: usize) -> String {
        let (line, col) = self.line_col(offset);
        format!("{}:{line}:{col}", self.name)
    }
}

/// Every problem found in one pipeline file, with the file to show them against.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    file: SourceFile,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Diagnostics for `file`.
    pub fn new(file: SourceFile, items: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics { file, items }
    }

    /// The file the diagnostics refer to.
    pub fn file(&self) -> &SourceFile {
        &self.file
    }

    /// The diagnostics, in file order.
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// The number of errors.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Renders every diagnostic with a source snippet and a caret, like rustc does.
    pub fn render(&self, color: bool) -> String {
        let file = SimpleFile::new(self.file.name(), self.file.text());
        let mut buffer = if color {
            Buffer::ansi()
        } else {
            Buffer::no_color()
        };
        let config = term::Config::default();
        for item in &self.items {
            let mut report = match item.severity {
                Severity::Error => Report::error(),
                Severity::Warning => Report::warning(),
            }
            .with_message(&item.message);
            if let Some(span) = &item.span {
                let span = clamp(span, self.file.text());
                report = report.with_labels(vec![Label::primary((), span)]);
            }
            if let Some(help) = &item.help {
                report = report.with_notes(vec![format!("help: {help}")]);
            }
            if term::emit_to_write_style(&mut buffer, &config, &file, &report).is_err() {
                // Rendering into memory cannot fail in practice; fall back to the plain form.
                return self.to_string();
            }
        }
        String::from_utf8_lossy(buffer.as_slice()).into_owned()
    }
}

fn clamp(span: &Range<usize>, text: &str) -> Range<usize> {
    let boundary = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = boundary(span.start);
    start..boundary(span.end).max(start)
}

/// One line per diagnostic: `file:line:col: error: message (help)`.
impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let location = match &item.span {
                Some(span) => self.file.location(span.start),
                None => self.file.name().to_owned(),
            };
            let severity = match item.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            write!(f, "{location}: {severity}: {}", item.message)?;
            if let Some(help) = &item.help {
                write!(f, " ({help})")?;
            }
        }
        Ok(())
    }
}

pub use pikoci_core::name::closest;

/// `did you mean "x"?` when some candidate is close to `name`.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(name, candidates).map(|c| format!("did you mean \"{c}\"?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let file = SourceFile::new("p.hcl", "ab\nçd e\n");
        assert_eq!(file.line_col(0), (1, 1));
        assert_eq!(file.line_col(3), (2, 1));
        assert_eq!(file.line_col(6), (2, 3));
        assert_eq!(file.location(6), "p.hcl:2:3");
        // Offsets inside a character or past the end do not panic.
        assert_eq!(file.line_col(4), (2, 1));
        assert_eq!(file.line_col(100), (3, 1));
    }

    #[test]
    fn plain_and_rendered_forms() {
        let file = SourceFile::new("p.hcl", "job \"a\" {\n  tsk \"t\" {}\n}\n");
        let diagnostics = Diagnostics::new(
            file,
            vec![
                Diagnostic::error("unknown block \"tsk\" in job \"a\"", Some(12..15))
                    .with_help("did you mean \"task\"?"),
            ],
        );
        assert_eq!(
            diagnostics.to_string(),
            "p.hcl:2:3: error: unknown block \"tsk\" in job \"a\" (did you mean \"task\"?)"
        );
        let rendered = diagnostics.render(false);
        assert!(rendered.contains("p.hcl:2:3"), "{rendered}");
        assert!(rendered.contains("^^^"), "{rendered}");
        assert!(
            rendered.contains("help: did you mean \"task\"?"),
            "{rendered}"
        );
    }

    #[test]
    fn suggestions_within_two_edits() {
        assert_eq!(closest("tsk", ["task", "get"]), Some("task"));
        assert_eq!(closest("runner", ["runner_type"]), None);
        assert_eq!(closest("task", ["task"]), None);
    }
}
