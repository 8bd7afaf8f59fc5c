//! Parsing, and syntax errors that say what is wrong and where.
//!
//! hcl-edit stops at the first syntax error. When a file does not parse, it is cut at every line
//! that starts a top-level block at column 0 (outside strings, comments and heredocs), and each
//! piece is parsed on its own, so every broken top-level block gets its own diagnostic. A light
//! scan of each broken piece then names what is left open: a block (with the line it opened on),
//! a `/*` comment or a heredoc.
//!
//! hcl-edit backtracks exponentially when an expression that fails to parse sits inside nested
//! parentheses or index brackets after binary operators (`a+b[c+d[e+f[... |`: twice the time per
//! level, 5 s at 22 levels). The same scan runs before parsing and rejects brackets nested more
//! than [`MAX_BRACKET_DEPTH`] deep, which bounds the parser's time on any input: the slowest
//! block found at that depth (the fuzzer's input in `tests/data/invalid/75-fuzz-deep-brackets.hcl`
//! cut at 12 levels) takes about 20 ms in a release build, and at most 100 broken blocks are
//! parsed (the `validation_time` example measures it).

use hcl_edit::structure::Body;

use crate::decode::TOP_LEVEL;
use crate::diagnostic::{Diagnostic, MAX_SHOWN};

/// How deeply `(` and `[` may nest in the expressions of one top-level block.
pub(crate) const MAX_BRACKET_DEPTH: usize = 12;

/// The syntax errors of a file that does not parse.
pub(crate) struct SyntaxErrors {
    /// One error per broken top-level block, in file order, at most [`MAX_SHOWN`].
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Set when checking stopped after [`MAX_SHOWN`] broken blocks: says where, since the rest
    /// of the file was not checked and its errors are not counted.
    pub(crate) note: Option<String>,
}

/// Parses `text`, or returns one syntax error per broken top-level block, in file order.
pub(crate) fn parse(text: &str) -> Result<Body, SyntaxErrors> {
    let found = scan(text);
    if !found.too_deep.is_empty() {
        let diagnostics = found
            .too_deep
            .iter()
            .map(|&at| {
                Diagnostic::error(
                    format!(
                        "syntax error: parentheses and brackets nest more than \
                         {MAX_BRACKET_DEPTH} levels deep here"
                    ),
                    Some(at..at + 1),
                )
                .with_help(
                    "split the expression (for example into a variable), or close the brackets \
                     left open before this point",
                )
            })
            .collect();
        return Err(SyntaxErrors {
            diagnostics,
            note: None,
        });
    }
    let whole = match hcl_edit::parser::parse_body(text) {
        Ok(body) => return Ok(body),
        Err(err) => err,
    };
    let mut bounds = vec![0];
    bounds.extend(found.block_starts.into_iter().filter(|&s| s > 0));
    bounds.push(text.len());
    let mut diagnostics = Vec::new();
    let mut note = None;
    for piece in bounds.windows(2) {
        if diagnostics.len() == MAX_SHOWN {
            // Only that many are shown anyway, and each broken block costs a parse. The rest of
            // the file is not checked: say so in a note, not in a diagnostic, so the counts of
            // errors stay true.
            let line = text[..piece[0]].matches('\n').count() + 1;
            note = Some(format!(
                "checking stopped after {MAX_SHOWN} broken blocks: the blocks from line {line} \
                 on were not checked for syntax errors"
            ));
            break;
        }
        let (start, end) = (piece[0], piece[1]);
        let chunk = &text[start..end];
        if let Err(err) = hcl_edit::parser::parse_body(chunk) {
            diagnostics.push(describe(chunk, start, end == text.len(), &err));
        }
    }
    if diagnostics.is_empty() {
        // The pieces parse but the whole does not: report what the parser said about the whole.
        diagnostics.push(describe(text, 0, true, &whole));
    }
    Err(SyntaxErrors { diagnostics, note })
}

/// The diagnostic for a syntax error in `chunk`, which starts at byte `base` of the file.
fn describe(chunk: &str, base: usize, last: bool, err: &hcl_edit::parser::Error) -> Diagnostic {
    let found = scan(chunk);
    if let Some(at) = found.open_comment {
        return Diagnostic::error(
            "syntax error: this /* comment is never closed",
            Some(base + at..base + at + 2),
        )
        .with_help("close it with */");
    }
    if let Some((at, marker)) = found.open_heredoc {
        let delimiter = marker.trim_start_matches('<').trim_start_matches('-');
        return Diagnostic::error(
            format!("syntax error: heredoc {marker} is never closed"),
            Some(base + at..base + at + marker.len()),
        )
        .with_help(format!(
            "end it with a line that holds only {delimiter} (indentation allowed)"
        ));
    }
    let offset = err.location().offset().min(chunk.len());
    // The offset may fall inside a character if the parser counts otherwise: never slice there.
    let at_end = chunk
        .get(offset..)
        .is_some_and(|rest| rest.trim().is_empty());
    if let (true, Some(&brace)) = (at_end, found.open_braces.last()) {
        let before = if last {
            "the end of the file"
        } else {
            "the next top-level block"
        };
        let (header_start, header) = opener(chunk, brace);
        let outer: Vec<String> = found.open_braces[..found.open_braces.len() - 1]
            .iter()
            .map(|&b| format!("`{}`", opener(chunk, b).1))
            .collect();
        let help = if outer.is_empty() {
            "add the missing `}`".to_owned()
        } else {
            format!(
                "add the {} missing `}}`: {} around it is not closed either",
                outer.len() + 1,
                outer.join(" and ")
            )
        };
        return Diagnostic::error(
            format!("syntax error: `{header}` is not closed before {before}"),
            Some(base + header_start..base + brace + 1),
        )
        .with_help(help);
    }
    let offset = base + offset;
    Diagnostic::error(
        format!("syntax error: {}", err.message()),
        Some(offset..offset + 1),
    )
    .with_help(syntax_help(err.line()))
}

/// Where the line holding the `{` at `brace` starts (after indentation), and that line up to and
/// including the brace: `task "t" {`.
fn opener(chunk: &str, brace: usize) -> (usize, &str) {
    let line_start = chunk[..brace].rfind('\n').map_or(0, |i| i + 1);
    let line = &chunk[line_start..=brace];
    let start = line_start + (line.len() - line.trim_start().len());
    (start, &chunk[start..=brace])
}

/// A hint for the most common syntax mistakes.
fn syntax_help(line: &str) -> &'static str {
    let one_line_block = line.contains('}')
        && (line.matches('{').count() > 1 || (line.contains('{') && line.matches('=').count() > 1));
    if one_line_block {
        "a block written on one line may hold only one attribute and no blocks: put each \
         attribute on its own line"
    } else {
        "check for a missing quote, bracket or brace just before this point"
    }
}

/// What a light scan of HCL text finds, outside strings, comments and heredocs.
#[derive(Debug, Default, PartialEq)]
struct Scan<'a> {
    /// Offsets of lines that start a top-level block at column 0 (`job "a" {`).
    block_starts: Vec<usize>,
    /// Offsets of the `{` not closed at the end, outermost first.
    open_braces: Vec<usize>,
    /// Offset of a `/*` never closed.
    open_comment: Option<usize>,
    /// Offset and marker (`<<-EOT`) of a heredoc never closed.
    open_heredoc: Option<(usize, &'a str)>,
    /// Offsets of the first `(` or `[` nested deeper than [`MAX_BRACKET_DEPTH`] in each
    /// top-level block.
    too_deep: Vec<usize>,
}

/// Where the scan is: in code, in a quoted string, in a heredoc's text, or in a `${ }` inside a
/// string or heredoc (with its own count of nested braces).
enum Mode {
    String,
    /// The text ends at `body_end`; the closing line ends at `end`.
    Heredoc {
        body_end: usize,
        end: usize,
    },
    Interpolation(usize),
}

fn scan(text: &str) -> Scan<'_> {
    let bytes = text.as_bytes();
    let mut found = Scan::default();
    let mut modes: Vec<Mode> = Vec::new();
    // `(` and `[` open in code, reset at each top-level block.
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        // A heredoc is only opened in code, so it is the outermost mode. Its end closes whatever
        // its text left open (an unclosed `${`), and the scan moves on from there: it never goes
        // back, so it stays linear.
        if let Some(&Mode::Heredoc { body_end, end }) = modes.first()
            && i >= body_end
        {
            modes.clear();
            i = i.max(end);
            continue;
        }
        let next = bytes.get(i + 1).copied();
        let in_text = matches!(modes.last(), Some(Mode::String | Mode::Heredoc { .. }));
        if in_text {
            // `$${` and `%%{` are escapes; `${` and `%{` open an interpolation or a directive.
            match (bytes[i], next) {
                (b'$' | b'%', Some(n)) if n == bytes[i] && bytes.get(i + 2) == Some(&b'{') => {
                    i += 3;
                    continue;
                }
                (b'$' | b'%', Some(b'{')) => {
                    modes.push(Mode::Interpolation(0));
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        match modes.last_mut() {
            Some(Mode::String) => match bytes[i] {
                b'\\' => i += 1,
                b'"' | b'\n' => {
                    // A quoted string cannot span lines: a newline ends an unterminated one.
                    modes.pop();
                }
                _ => {}
            },
            Some(Mode::Heredoc { .. }) => {}
            Some(Mode::Interpolation(braces)) => match bytes[i] {
                b'"' => modes.push(Mode::String),
                b'{' => *braces += 1,
                b'}' if *braces == 0 => {
                    modes.pop();
                }
                b'}' => *braces -= 1,
                b'(' | b'[' => open_bracket(&mut depth, &mut found, i),
                b')' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            },
            None => {
                if (i == 0 || bytes[i - 1] == b'\n') && starts_top_level_block(&text[i..]) {
                    found.block_starts.push(i);
                    depth = 0;
                }
                match (bytes[i], next) {
                    (b'#', _) | (b'/', Some(b'/')) => {
                        i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                        continue;
                    }
                    (b'/', Some(b'*')) => match text[i + 2..].find("*/") {
                        Some(n) => i += n + 3,
                        None => {
                            found.open_comment = Some(i);
                            return found;
                        }
                    },
                    (b'"', _) => modes.push(Mode::String),
                    (b'{', _) => found.open_braces.push(i),
                    (b'}', _) => {
                        found.open_braces.pop();
                    }
                    (b'(' | b'[', _) => open_bracket(&mut depth, &mut found, i),
                    (b')' | b']', _) => depth = depth.saturating_sub(1),
                    (b'<', Some(b'<')) => match heredoc(text, i) {
                        Heredoc::Closed {
                            body_start,
                            body_end,
                            end,
                        } => {
                            modes.push(Mode::Heredoc { body_end, end });
                            i = body_start;
                            continue;
                        }
                        Heredoc::Open(marker) => {
                            found.open_heredoc = Some((i, marker));
                            return found;
                        }
                        Heredoc::NotOne => i += 1,
                    },
                    _ => {}
                }
            }
        }
        i += 1;
    }
    found
}

/// Counts a `(` or `[` at `at`, recording it when it is the first too deep in its block.
fn open_bracket(depth: &mut usize, found: &mut Scan<'_>, at: usize) {
    *depth += 1;
    if *depth == MAX_BRACKET_DEPTH + 1 {
        found.too_deep.push(at);
    }
}

/// Whether `line` starts with a top-level block name followed by a label or `{`.
fn starts_top_level_block(line: &str) -> bool {
    let word_len = line
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    TOP_LEVEL.contains(&&line[..word_len])
        && line[word_len..]
            .trim_start_matches([' ', '\t'])
            .starts_with(['"', '{'])
}

enum Heredoc<'a> {
    /// The text runs from `body_start` to `body_end`, and the closing line ends at `end`.
    Closed {
        body_start: usize,
        body_end: usize,
        end: usize,
    },
    /// Never closed; the marker as written.
    Open(&'a str),
    /// `<<` that does not start a heredoc.
    NotOne,
}

/// The heredoc starting with `<<` at `at`: `<<EOT` or `<<-EOT`, then a newline, then lines up to
/// one that holds only `EOT`.
fn heredoc(text: &str, at: usize) -> Heredoc<'_> {
    let rest = &text[at + 2..];
    let dash = usize::from(rest.starts_with('-'));
    let name_len = rest[dash..]
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        .count();
    let marker_end = at + 2 + dash + name_len;
    if name_len == 0 {
        return Heredoc::NotOne;
    }
    let Some(newline) = text[marker_end..].find('\n') else {
        return Heredoc::NotOne;
    };
    if !text[marker_end..marker_end + newline].trim().is_empty() {
        return Heredoc::NotOne;
    }
    let name = &text[at + 2 + dash..marker_end];
    let body_start = marker_end + newline + 1;
    let mut line_start = body_start;
    while line_start < text.len() {
        let line_end = text[line_start..]
            .find('\n')
            .map_or(text.len(), |n| line_start + n);
        if text[line_start..line_end].trim() == name {
            return Heredoc::Closed {
                body_start,
                body_end: line_start,
                end: line_end,
            };
        }
        line_start = line_end + 1;
    }
    Heredoc::Open(&text[at..marker_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_skips_strings_comments_and_heredocs() {
        let text = "job \"a\" {\n  x = \"}${ {a = \"}\"} }\" # }\n  y = <<EOT\n}\njob \"z\" {\n  EOT\n/* } */ z = 1\n";
        let found = scan(text);
        assert_eq!(found.block_starts, vec![0]);
        assert_eq!(found.open_braces, vec![8]);
        assert_eq!(found.open_comment, None);
        assert_eq!(found.open_heredoc, None);
    }

    #[test]
    fn scan_finds_what_is_left_open() {
        assert_eq!(scan("a = 1\n/* x\njob \"a\" {}").open_comment, Some(6));
        assert_eq!(scan("x = <<-EOT\n  hi\n").open_heredoc, Some((4, "<<-EOT")));
        let found = scan("job \"a\" {\n  task \"t\" {\njob \"b\" {}\n");
        assert_eq!(found.block_starts, vec![0, 23]);
        assert_eq!(found.open_braces, vec![8, 21]);
    }

    #[test]
    fn brackets_too_deep_are_found_in_code_strings_and_heredocs() {
        let deep = "a+b[".repeat(MAX_BRACKET_DEPTH + 1);
        let ok = "a+b[".repeat(MAX_BRACKET_DEPTH);
        assert_eq!(scan(&format!("x = {deep}")).too_deep, vec![4 + 4 * 12 + 3]);
        assert!(scan(&format!("x = {ok}")).too_deep.is_empty());
        assert_eq!(scan(&format!("x = \"${{{deep}}}\"")).too_deep.len(), 1);
        let heredoc = format!("x = <<EOT\n${{{deep}}}\nEOT\n");
        assert_eq!(scan(&heredoc).too_deep.len(), 1);
        // Brackets in plain text, escapes and comments do not count; each block starts at zero.
        let text = "[".repeat(20);
        assert!(
            scan(&format!("x = \"{text}\"\n# {text}\ny = \"$${{{text}\""))
                .too_deep
                .is_empty()
        );
        let split = format!("job \"a\" {{\n  x = {ok}\njob \"b\" {{\n  y = {ok}\n");
        assert!(scan(&split).too_deep.is_empty());
    }

    #[test]
    fn an_interpolation_left_open_in_a_heredoc_ends_with_it() {
        let text = "x = <<A\n${\nA\ny = 1\njob \"a\" {\n}\n";
        let found = scan(text);
        assert_eq!(found.block_starts, vec![text.find("job").unwrap()]);
        assert!(found.open_braces.is_empty(), "{found:?}");
    }

    #[test]
    fn only_known_block_names_at_column_zero_start_blocks() {
        assert!(starts_top_level_block("job \"a\" {"));
        assert!(starts_top_level_block("resource_type \"t\" {"));
        assert!(!starts_top_level_block("jobs \"a\" {"));
        assert!(!starts_top_level_block("job = 1"));
    }
}
