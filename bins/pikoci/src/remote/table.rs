//! Tables for people: columns aligned on the widest cell, two spaces apart, the last column
//! not padded. Widths count characters, leaving out the escape sequences of colours.

/// The rows (the first one is the header) as text, one line each.
pub(crate) fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            widths[column] = widths[column].max(visible_width(cell));
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if column + 1 < row.len() {
                let pad = widths[column] - visible_width(cell) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The characters of `text` a terminal shows (ANSI colour sequences left out).
fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // `ESC [ ... m`
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

/// A duration in milliseconds as people read it: `850ms`, `12s`, `3m05s`, `2h07m`.
pub(crate) fn duration(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "-".to_owned();
    };
    let seconds = ms / 1000;
    match seconds {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// An RFC 3339 time without its milliseconds and zone (`2026-12-03 06:05:48`), or `-`.
pub(crate) fn time(at: Option<&str>) -> String {
    match at {
        Some(at) => at.get(..19).unwrap_or(at).replace('T', " "),
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_visible_characters() {
        let rows = vec![
            vec!["NAME".to_owned(), "STATUS".to_owned(), "AGE".to_owned()],
            vec![
                "build".to_owned(),
                "\x1b[32msucceeded\x1b[0m".to_owned(),
                "3s".to_owned(),
            ],
            vec!["deploy-prod".to_owned(), "-".to_owned(), String::new()],
        ];
        assert_eq!(
            render(&rows),
            "NAME         STATUS     AGE\n\
             build        \x1b[32msucceeded\x1b[0m  3s\n\
             deploy-prod  -\n"
        );
    }

    #[test]
    fn durations_and_times_read_easily() {
        assert_eq!(duration(None), "-");
        assert_eq!(duration(Some(850)), "850ms");
        assert_eq!(duration(Some(12_400)), "12s");
        assert_eq!(duration(Some(185_000)), "3m05s");
        assert_eq!(duration(Some(7_620_000)), "2h07m");
        assert_eq!(
            time(Some("2026-12-03T06:05:48.830Z")),
            "2026-12-03 06:05:48"
        );
        assert_eq!(time(None), "-");
    }
}
