//! A step's log as HTML, a page of lines at a time: a log of any length opens at once (its
//! last page), earlier pages load on demand, a line's link opens its page, and the search runs
//! on the server.

use std::fmt::Write as _;

use axum::extract::{Path, Query};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::ansi::{Renderer, escape_into, plain};
use super::pages::build_path;
use super::{PageError, Visit};

/// Lines on a page.
pub(crate) const PAGE_LINES: usize = 1000;
/// The most search results shown.
const MAX_MATCHES: usize = 500;

#[derive(Debug, Deserialize)]
pub(crate) struct StepPath {
    tc: String,
    pc: String,
    jn: String,
    bn: String,
    step: u32,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LogQuery {
    attempt: Option<u32>,
    /// The 1,000 lines before this line number (the log's last 1,000 when none of `before`,
    /// `line` and `after` is given).
    before: Option<usize>,
    /// The page of 1,000 lines that holds this line.
    line: Option<usize>,
    /// Only the lines after this one (following a running step).
    after: Option<usize>,
    /// Search: the lines that hold this text (case-insensitive).
    q: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Chunk {
    step: u32,
    text: String,
    #[serde(default)]
    created_at: String,
}

/// A step's log: each line with the time of the chunk that held it.
pub(crate) struct StepLog {
    lines: Vec<(String, String)>,
}

impl StepLog {
    fn new(chunks: &[Chunk], step: u32) -> StepLog {
        let mut lines: Vec<(String, String)> = Vec::new();
        let mut open = false;
        for chunk in chunks.iter().filter(|chunk| chunk.step == step) {
            let time = chunk.created_at.get(11..19).unwrap_or_default().to_owned();
            for piece in chunk.text.split_inclusive('\n') {
                let (text, ends) = match piece.strip_suffix('\n') {
                    Some(text) => (text, true),
                    None => (piece, false),
                };
                match lines.last_mut() {
                    Some((line, _)) if open => line.push_str(text),
                    _ => lines.push((text.to_owned(), time.clone())),
                }
                open = !ends;
            }
        }
        StepLog { lines }
    }
}

/// `GET …/builds/{bn}/steps/{step}/log?attempt=&before=|line=|after=|q=`: an HTML fragment.
pub(crate) async fn step_log(
    visit: Visit,
    Path(path): Path<StepPath>,
    Query(query): Query<LogQuery>,
) -> Result<Response, PageError> {
    let here = build_path(&path.tc, &path.pc, &path.jn, &path.bn);
    let mut api = format!("/api/v1{here}/logs?format=json");
    if let Some(attempt) = query.attempt {
        let _ = write!(api, "&attempt={attempt}");
    }
    let chunks: Vec<Chunk> = visit.get(&api).await?;
    let log = StepLog::new(&chunks, path.step);
    let url = format!("{here}/steps/{}/log", path.step);
    let attempt = query
        .attempt
        .map(|a| format!("&attempt={a}"))
        .unwrap_or_default();
    let html = match &query.q {
        // A search field emptied: no results.
        Some(q) if q.trim().is_empty() => String::new(),
        Some(q) => search(&log, path.step, q.trim()),
        None => {
            let total = log.lines.len();
            let (first, last) = match (query.after, query.line, query.before) {
                (Some(after), _, _) => (after.min(total), total),
                (None, Some(line), _) => page_of(line.saturating_sub(1), total),
                (None, None, Some(before)) => {
                    let last = before.saturating_sub(1).min(total);
                    (last.saturating_sub(PAGE_LINES), last)
                }
                (None, None, None) => (total.saturating_sub(PAGE_LINES), total),
            };
            let earlier = query.after.is_none();
            let url = format!("{url}?{}", attempt.trim_start_matches('&'));
            lines(
                &log,
                path.step,
                first,
                last,
                earlier.then_some(url.as_str()),
            )
        }
    };
    let mut response = Html(html).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// The lines `[first, last)` of the page of 1,000 that holds line index `at`.
fn page_of(at: usize, total: usize) -> (usize, usize) {
    let first = ((at / PAGE_LINES) * PAGE_LINES).min(total);
    (first, first.saturating_add(PAGE_LINES).min(total))
}

/// Lines `[first, last)` (0-based), with a button for the 1,000 lines before when there are
/// some and `earlier` (the log's URL) is given.
fn lines(log: &StepLog, step: u32, first: usize, last: usize, earlier: Option<&str>) -> String {
    let last = last.min(log.lines.len());
    let first = first.min(last);
    let mut html = String::with_capacity((last - first) * 96 + 256);
    let _ = write!(
        html,
        "<div class=\"log-page\" data-first=\"{}\" data-last=\"{last}\" data-total=\"{}\">",
        first + 1,
        log.lines.len()
    );
    if let Some(url) = earlier
        && first > 0
    {
        let from = first.saturating_sub(PAGE_LINES) + 1;
        let join = if url.ends_with('?') { "" } else { "&" };
        let _ = write!(
            html,
            "<button type=\"button\" class=\"earlier\" hx-get=\"{}{join}before={}\" hx-target=\"closest .log-page\" hx-swap=\"beforebegin\" hx-on::after-request=\"if (event.detail.successful) this.remove()\">Show lines {from}–{first}</button>",
            escaped(url),
            first + 1
        );
    }
    // The style in effect at `first` comes from the lines before it.
    let mut renderer = Renderer::default();
    for (line, _) in &log.lines[..first] {
        renderer.line(line);
    }
    for (n, (line, time)) in log.lines[first..last].iter().enumerate() {
        let number = first + n + 1;
        let _ = write!(
            html,
            "<div class=\"line\" id=\"s{step}-L{number}\"><a class=\"ln\" href=\"#s{step}-L{number}\">{number}</a><time>{time}</time><span class=\"t\">{}</span></div>",
            renderer.line(line)
        );
    }
    if log.lines.is_empty() {
        html.push_str("<p class=\"empty\">No output.</p>");
    }
    html.push_str("</div>");
    html
}

/// The lines that hold `q`, each linking to its place in the log.
fn search(log: &StepLog, step: u32, q: &str) -> String {
    let needle = q.to_lowercase();
    let mut html = String::from("<div class=\"log-search\">");
    let mut found = 0;
    for (n, (line, _)) in log.lines.iter().enumerate() {
        let text = plain(line);
        if !text.to_lowercase().contains(&needle) {
            continue;
        }
        found += 1;
        if found > MAX_MATCHES {
            continue;
        }
        let number = n + 1;
        let _ = write!(
            html,
            "<div class=\"line\"><a class=\"ln\" href=\"#s{step}-L{number}\" data-line=\"{number}\">{number}</a><span class=\"t\">"
        );
        highlight_into(&mut html, &text, &needle);
        html.push_str("</span></div>");
    }
    let summary = match found {
        0 => format!("No line holds “{}”.", escaped(q)),
        n if n > MAX_MATCHES => format!(
            "{n} lines hold “{}”; the first {MAX_MATCHES} are shown.",
            escaped(q)
        ),
        1 => format!("1 line holds “{}”.", escaped(q)),
        n => format!("{n} lines hold “{}”.", escaped(q)),
    };
    html.insert_str(
        "<div class=\"log-search\">".len(),
        &format!("<p class=\"found\" role=\"status\">{summary}</p>"),
    );
    html.push_str("</div>");
    html
}

/// `text` escaped, with every (case-insensitive) occurrence of `needle` marked.
fn highlight_into(html: &mut String, text: &str, needle: &str) {
    let lower = text.to_lowercase();
    // Lower-casing can change lengths (rarely): then the line is shown unmarked.
    if lower.len() != text.len() || needle.is_empty() {
        escape_into(html, text);
        return;
    }
    let mut at = 0;
    while let Some(found) = lower[at..].find(needle) {
        let start = at + found;
        let end = start + needle.len();
        if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            break;
        }
        escape_into(html, &text[at..start]);
        html.push_str("<mark>");
        escape_into(html, &text[start..end]);
        html.push_str("</mark>");
        at = end;
    }
    escape_into(html, &text[at..]);
}

fn escaped(text: &str) -> String {
    let mut out = String::new();
    escape_into(&mut out, text);
    out
}

#[cfg(test)]
mod tests {
    use super::{Chunk, PAGE_LINES, StepLog, lines, page_of, search};

    fn chunk(step: u32, text: &str) -> Chunk {
        Chunk {
            step,
            text: text.to_owned(),
            created_at: "2026-12-03T08:00:01.000Z".to_owned(),
        }
    }

    #[test]
    fn lines_are_joined_across_chunks_of_the_step() {
        let log = StepLog::new(
            &[chunk(1, "a\nb"), chunk(2, "other\n"), chunk(1, "c\nd\n")],
            1,
        );
        let texts: Vec<&str> = log.lines.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, ["a", "bc", "d"]);
        assert_eq!(log.lines[0].1, "08:00:01");
    }

    #[test]
    fn pages_hold_whole_thousands() {
        assert_eq!(page_of(0, 10), (0, 10));
        assert_eq!(
            page_of(PAGE_LINES + 5, 3 * PAGE_LINES),
            (PAGE_LINES, 2 * PAGE_LINES)
        );
        assert_eq!(page_of(2499, 2500), (2000, 2500));
    }

    #[test]
    fn a_page_links_every_line_and_offers_the_page_before() {
        let text: String = (1..=1500).map(|n| format!("line {n}\n")).collect();
        let log = StepLog::new(&[chunk(3, &text)], 3);
        let html = lines(&log, 3, 1000, 1500, Some("/b/steps/3/log?"));
        assert!(html.contains("id=\"s3-L1001\""));
        assert!(html.contains("href=\"#s3-L1500\""));
        assert!(!html.contains("id=\"s3-L1000\""));
        assert!(
            html.contains("hx-get=\"/b/steps/3/log?before=1001\""),
            "{}",
            &html[..400]
        );
        assert!(html.contains("Show lines 1–1000"));
    }

    #[test]
    fn the_style_of_earlier_lines_carries_into_a_page() {
        let mut text = String::from("\u{1b}[31mred starts\n");
        text.push_str(&"x\n".repeat(PAGE_LINES));
        let log = StepLog::new(&[chunk(1, &text)], 1);
        let html = lines(&log, 1, PAGE_LINES, PAGE_LINES + 1, None);
        assert!(html.contains("<span class=\"fg1\">x</span>"), "{html}");
    }

    #[test]
    fn search_finds_lines_without_their_colours() {
        let log = StepLog::new(
            &[chunk(1, "ok\n\u{1b}[31mERROR: <boom>\u{1b}[0m\nfine\n")],
            1,
        );
        let html = search(&log, 1, "error");
        assert!(html.contains("1 line holds"), "{html}");
        assert!(html.contains("<mark>ERROR</mark>: &lt;boom&gt;"), "{html}");
        assert!(html.contains("href=\"#s1-L2\""));
        assert!(search(&log, 1, "nothing").contains("No line holds"));
    }
}
