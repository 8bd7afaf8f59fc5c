//! Diagnostics: what is wrong with a pipeline file, where, and what to do about it.

use std::fmt;
use std::ops::Range;

/// At most this many diagnostics are shown by [`Diagnostics::render`] and `Display`; the rest are
/// counted in a last line (`... and 12 more errors`).
pub const MAX_SHOWN: usize = 100;

/// A quoted name or value longer than this many characters is shortened in messages.
pub const MAX_QUOTED_CHARS: usize = 64;

/// A source line longer than this many bytes is not shown as a snippet in rendered diagnostics.
const MAX_SNIPPET_LINE_BYTES: usize = 500;

use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor::Buffer};

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The pipeline is rejected.
    Error,
    /// The pipeline is accepted, but something is probably not what the author meant.
    Warning,
}

/// One problem found in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// A user-given name or value, quoted for a message: `"name"`, or `"aaaa…" (10485760 characters)`
/// past [`MAX_QUOTED_CHARS`]. Every message names things through this, so a long name is never
/// copied whole into a message (a 2 MB label in the context of 300,000 diagnostics would fill
/// the memory long before [`Diagnostics::new`] shortens them).
pub fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("\"{text}\""),
        Some((cut, _)) => format!(
            "\"{}…\" ({} characters)",
            &text[..cut],
            text.chars().count()
        ),
    }
}

/// Whether a quoted part is already as short as [`quoted`] makes it.
fn is_short(part: &str) -> bool {
    match part.chars().nth(MAX_QUOTED_CHARS) {
        None => true,
        // Shortened by `quoted`: the first characters and an ellipsis.
        Some('…') => part.chars().nth(MAX_QUOTED_CHARS + 1).is_none(),
        Some(_) => false,
    }
}

/// Shortens every `"quoted"` part of `text` longer than [`MAX_QUOTED_CHARS`], so a 10 MB label
/// is not echoed back whole: `"aaaa…" (10485760 characters)`.
pub fn shorten_quoted(text: &str) -> String {
    if text.len() <= MAX_QUOTED_CHARS {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len().min(4 * MAX_QUOTED_CHARS));
    // Odd parts are inside quotes; an unbalanced last quote leaves its tail as an odd part too.
    let mut note: Option<String> = None;
    for (i, part) in text.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        if let Some(note) = note.take() {
            out.push_str(&note);
        }
        if i % 2 == 1 && !is_short(part) {
            out.extend(part.chars().take(MAX_QUOTED_CHARS));
            out.push('…');
            note = Some(format!(" ({} characters)", part.chars().count()));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// A length as `u32`, `u32::MAX` when larger.
fn saturating_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A pipeline file's text and name, for turning byte offsets into lines and columns.
///
/// A UTF-8 byte order mark at the start of the text is dropped: it is not part of the pipeline.
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: String,
    text: String,
    /// Where the first invalid UTF-8 byte was (in `text`, where it became U+FFFD), and its value.
    invalid_utf8: Option<(usize, u8)>,
    /// Whether a byte order mark was dropped (3 bytes before `text` in the file).
    had_bom: bool,
    /// The size of the file as read, in bytes: `text` may be shorter (no byte order mark) or
    /// longer (each invalid byte became the 3-byte U+FFFD). Saturated at `u32::MAX`, far past
    /// any limit, to keep the type (the error of `load`) small.
    byte_len: u32,
}

impl SourceFile {
    /// A file with this display name (usually the path given on the command line) and text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        let mut text = text.into();
        let byte_len = saturating_u32(text.len());
        let had_bom = text.starts_with('\u{feff}');
        if had_bom {
            text.drain(..'\u{feff}'.len_utf8());
        }
        SourceFile {
            name: name.into(),
            text,
            invalid_utf8: None,
            had_bom,
            byte_len,
        }
    }

    /// A file read as bytes. Invalid UTF-8 is replaced with U+FFFD, and [`crate::load`] reports
    /// the first invalid byte with its line, column and byte offset.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> SourceFile {
        let byte_len = saturating_u32(bytes.len());
        let mut file = match String::from_utf8(bytes) {
            Ok(text) => SourceFile::new(name, text),
            Err(err) => {
                let valid = err.utf8_error().valid_up_to();
                let byte = err.as_bytes()[valid];
                let mut file = SourceFile::new(name, String::from_utf8_lossy(err.as_bytes()));
                let bom_len = if file.had_bom { 3 } else { 0 };
                file.invalid_utf8 = Some((valid.saturating_sub(bom_len), byte));
                file
            }
        };
        file.byte_len = byte_len;
        file
    }

    /// The size of the file in bytes as it was read, byte order mark and invalid bytes included
    /// (the [`SourceFile::text`] can be shorter or longer).
    pub fn byte_len(&self) -> usize {
        usize::try_from(self.byte_len).unwrap_or(usize::MAX)
    }

    /// The first invalid UTF-8 byte of a file made by [`SourceFile::from_bytes`]: its offset in
    /// the file and its value.
    pub fn invalid_utf8(&self) -> Option<(usize, u8)> {
        let bom_len = if self.had_bom { 3 } else { 0 };
        self.invalid_utf8
            .map(|(offset, byte)| (offset + bom_len, byte))
    }

    /// Where the first invalid UTF-8 byte is in [`SourceFile::text`] (where U+FFFD replaced it).
    pub(crate) fn invalid_utf8_span(&self) -> Option<Range<usize>> {
        self.invalid_utf8
            .map(|(offset, _)| offset..offset + '\u{fffd}'.len_utf8())
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
    /// A last line about the file as a whole, e.g. that checking stopped early (boxed: the
    /// type is the error of `load`, and stays small).
    note: Option<Box<str>>,
}

impl Diagnostics {
    /// Diagnostics for `file`. Long quoted names and values in them are shortened (see
    /// [`shorten_quoted`]).
    pub fn new(file: SourceFile, mut items: Vec<Diagnostic>) -> Diagnostics {
        for item in &mut items {
            item.message = shorten_quoted(&item.message);
            item.help = item.help.as_deref().map(shorten_quoted);
        }
        Diagnostics {
            file,
            items,
            note: None,
        }
    }

    /// Adds a note printed after the diagnostics: something about the file as a whole that is
    /// not a diagnostic of its own (so it is not counted as an error).
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostics {
        self.note = Some(note.into().into_boxed_str());
        self
    }

    /// The note added by [`Diagnostics::with_note`].
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
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

    /// Renders the first [`MAX_SHOWN`] diagnostics with a source snippet and a caret, like rustc
    /// does, then a line counting the rest.
    pub fn render(&self, color: bool) -> String {
        let file = SimpleFile::new(self.file.name(), self.file.text());
        let mut buffer = if color {
            Buffer::ansi()
        } else {
            Buffer::no_color()
        };
        let config = term::Config::default();
        for item in self.items.iter().take(MAX_SHOWN) {
            let mut report = match item.severity {
                Severity::Error => Report::error(),
                Severity::Warning => Report::warning(),
            }
            .with_message(&item.message);
            let mut notes = Vec::new();
            if let Some(span) = &item.span {
                let span = clamp(span, self.file.text());
                if line_len(self.file.text(), span.start) <= MAX_SNIPPET_LINE_BYTES {
                    report = report.with_labels(vec![Label::primary((), span)]);
                } else {
                    // A snippet would echo the whole over-long line back.
                    notes.push(format!("at {}", self.file.location(span.start)));
                }
            }
            if let Some(help) = &item.help {
                notes.push(format!("help: {help}"));
            }
            report = report.with_notes(notes);
            if term::emit_to_write_style(&mut buffer, &config, &file, &report).is_err() {
                // Rendering into memory cannot fail in practice; fall back to the plain form.
                return self.to_string();
            }
        }
        let mut out = String::from_utf8_lossy(buffer.as_slice()).into_owned();
        if let Some(more) = self.more_line() {
            out.push_str(&more);
            out.push('\n');
        }
        if let Some(note) = &self.note {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }

    /// `... and N more errors and M more warnings` when some diagnostics are not shown.
    fn more_line(&self) -> Option<String> {
        let hidden = self.items.get(MAX_SHOWN..)?;
        let errors = hidden
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let warnings = hidden.len() - errors;
        let count = |n: usize, what: &str| match n {
            1 => format!("1 more {what}"),
            n => format!("{n} more {what}s"),
        };
        let parts: Vec<String> = [(errors, "error"), (warnings, "warning")]
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| count(n, what))
            .collect();
        Some(format!(
            "... and {} (only the first {MAX_SHOWN} are shown)",
            parts.join(" and ")
        ))
    }
}

/// The length in bytes of the line holding `offset`.
fn line_len(text: &str, offset: usize) -> usize {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    end - start
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

/// One line per diagnostic: `file:line:col: error: message (help)`, at most [`MAX_SHOWN`] of them
/// and then a line counting the rest.
impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().take(MAX_SHOWN).enumerate() {
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
        if let Some(more) = self.more_line() {
            write!(f, "\n{more}")?;
        }
        if let Some(note) = &self.note {
            write!(f, "\n{}: note: {note}", self.file.name())?;
        }
        Ok(())
    }
}

/// Names longer than this many bytes get no `did you mean`: comparing two long names costs the
/// product of their lengths (two 2 MB names would take hours), and names are at most 255 bytes.
pub const MAX_SUGGESTED_BYTES: usize = 256;

/// The candidate closest to `name` within two edits, if any; see [`MAX_SUGGESTED_BYTES`].
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    if name.len() > MAX_SUGGESTED_BYTES {
        return None;
    }
    let candidates = candidates
        .into_iter()
        .filter(|candidate| candidate.len() <= MAX_SUGGESTED_BYTES);
    pikoci_core::name::closest(name, candidates)
}

/// At most this many candidates are compared with a misspelled name by [`did_you_mean`], so a
/// file with many names and many misspellings is not checked in quadratic time.
pub const MAX_SUGGESTION_CANDIDATES: usize = 100;

/// `did you mean "x"?` when one of the first [`MAX_SUGGESTION_CANDIDATES`] candidates is close
/// to `name`.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(name, candidates.into_iter().take(MAX_SUGGESTION_CANDIDATES))
        .map(|c| format!("did you mean \"{c}\"?"))
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
    fn long_quoted_parts_are_shortened() {
        let long = "é".repeat(100);
        let message = format!("invalid tag \"{long}\" in job \"a\"");
        let expected = format!(
            "invalid tag \"{}…\" (100 characters) in job \"a\"",
            "é".repeat(MAX_QUOTED_CHARS)
        );
        assert_eq!(shorten_quoted(&message), expected);
        // Short parts, text outside quotes and an unbalanced quote are left alone or shortened
        // without panicking.
        assert_eq!(shorten_quoted("a \"b\" c"), "a \"b\" c");
        let outside = "x".repeat(200);
        assert_eq!(shorten_quoted(&outside), outside);
        let unbalanced = format!("tail \"{}", "y".repeat(100));
        assert!(shorten_quoted(&unbalanced).ends_with("…"));
        // What `quoted` shortened is left as it is.
        let once = format!("job {} failed", quoted(&long));
        assert_eq!(
            once,
            expected
                .replace("invalid tag", "job")
                .replace(" in job \"a\"", " failed")
        );
        assert_eq!(shorten_quoted(&once), once);
        assert_eq!(quoted("a"), "\"a\"");
    }

    #[test]
    fn suggestions_within_two_edits() {
        assert_eq!(closest("tsk", ["task", "get"]), Some("task"));
        assert_eq!(closest("runner", ["runner_type"]), None);
        assert_eq!(closest("task", ["task"]), None);
    }
}
