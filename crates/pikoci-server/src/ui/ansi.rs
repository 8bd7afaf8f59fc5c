//! Terminal output as HTML: the colours and styles of ANSI SGR sequences (16 colours, the 256
//! palette, true colour, combined codes such as `1;38;5;208`), carriage returns (a line
//! rewritten in place, as progress bars do, shows what was written last), and every other
//! escape sequence dropped.

use std::fmt::Write as _;

/// The style in effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
    inverse: bool,
    fg: Option<Colour>,
    bg: Option<Colour>,
}

/// A colour: one of the 16 of the theme, or an RGB one (the 256 palette beyond 16, and true
/// colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    Theme(u8),
    Rgb(u8, u8, u8),
}

impl Colour {
    /// Colour `n` of the 256 palette.
    fn indexed(n: u8) -> Colour {
        match n {
            0..=15 => Colour::Theme(n),
            16..=231 => {
                let n = n - 16;
                let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
                Colour::Rgb(level(n / 36), level((n / 6) % 6), level(n % 6))
            }
            _ => {
                let grey = 8 + (n - 232) * 10;
                Colour::Rgb(grey, grey, grey)
            }
        }
    }
}

/// Turns a step's output into HTML, a line at a time; the style goes on from line to line, as
/// in a terminal.
#[derive(Debug, Default)]
pub(crate) struct Renderer {
    style: Style,
}

impl Renderer {
    /// The HTML of one line (without its `\n`).
    pub(crate) fn line(&mut self, line: &str) -> String {
        let runs = self.runs(line);
        let mut html = String::with_capacity(line.len() + 16);
        for (style, text) in runs {
            let (classes, css) = style.html();
            let open = !classes.is_empty() || !css.is_empty();
            if open {
                html.push_str("<span");
                if !classes.is_empty() {
                    let _ = write!(html, " class=\"{classes}\"");
                }
                if !css.is_empty() {
                    let _ = write!(html, " style=\"{css}\"");
                }
                html.push('>');
            }
            escape_into(&mut html, &text);
            if open {
                html.push_str("</span>");
            }
        }
        html
    }

    /// The runs of text of one line, each with its style: a carriage return (not the last
    /// character) starts the line again.
    fn runs(&mut self, line: &str) -> Vec<(Style, String)> {
        let mut runs: Vec<(Style, String)> = Vec::new();
        let mut chars = line.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek().is_some() {
                        runs.clear();
                    }
                }
                '\u{1b}' => {
                    let rest = &line[at + 1..];
                    let skip = self.escape(rest);
                    for _ in 0..skip {
                        chars.next();
                    }
                }
                c if c.is_control() && c != '\t' => {}
                c => match runs.last_mut() {
                    Some((style, text)) if *style == self.style => text.push(c),
                    _ => runs.push((self.style, c.to_string())),
                },
            }
        }
        runs
    }

    /// Reads the escape sequence at the start of `rest` (after the ESC), applies it when it
    /// sets the style, and returns how many characters it takes.
    fn escape(&mut self, rest: &str) -> usize {
        let mut chars = rest.chars();
        match chars.next() {
            Some('[') => {
                // CSI: parameters and intermediates, then a final byte in `@`..`~`.
                let mut taken = 1;
                let mut params = String::new();
                for c in chars {
                    taken += 1;
                    if ('@'..='~').contains(&c) {
                        if c == 'm' {
                            self.sgr(&params);
                        }
                        return taken;
                    }
                    params.push(c);
                }
                taken
            }
            Some(']') => {
                // OSC (a window title, a hyperlink): up to BEL or ST.
                let mut taken = 1;
                let mut escape = false;
                for c in chars {
                    taken += 1;
                    if c == '\u{7}' || (escape && c == '\\') {
                        return taken;
                    }
                    escape = c == '\u{1b}';
                }
                taken
            }
            // Character set designations: one more character.
            Some('(' | ')' | '*' | '+') => rest.chars().take(2).count(),
            Some(_) => 1,
            None => 0,
        }
    }

    /// Applies the SGR parameters `params` (`1;31`, `38;5;208`, `38;2;1;2;3`, empty: reset).
    fn sgr(&mut self, params: &str) {
        let codes: Vec<u16> = params
            .split([';', ':'])
            .map(|code| code.parse().unwrap_or(0))
            .collect();
        let mut codes = codes.into_iter();
        let style = &mut self.style;
        while let Some(code) = codes.next() {
            match code {
                0 => *style = Style::default(),
                1 => style.bold = true,
                2 => style.dim = true,
                3 => style.italic = true,
                4 => style.underline = true,
                7 => style.inverse = true,
                22 => {
                    style.bold = false;
                    style.dim = false;
                }
                23 => style.italic = false,
                24 => style.underline = false,
                27 => style.inverse = false,
                30..=37 => style.fg = Some(Colour::Theme((code - 30) as u8)),
                39 => style.fg = None,
                40..=47 => style.bg = Some(Colour::Theme((code - 40) as u8)),
                49 => style.bg = None,
                90..=97 => style.fg = Some(Colour::Theme((code - 90 + 8) as u8)),
                100..=107 => style.bg = Some(Colour::Theme((code - 100 + 8) as u8)),
                38 | 48 => {
                    let colour = match codes.next() {
                        Some(5) => codes.next().map(|n| Colour::indexed(n.min(255) as u8)),
                        Some(2) => {
                            let mut part = || codes.next().map_or(0, |v| v.min(255) as u8);
                            Some(Colour::Rgb(part(), part(), part()))
                        }
                        _ => None,
                    };
                    if code == 38 {
                        style.fg = colour;
                    } else {
                        style.bg = colour;
                    }
                }
                _ => {}
            }
        }
    }
}

impl Style {
    /// The classes (`b`, `fg1`, ...) and inline CSS of a run in this style.
    fn html(&self) -> (String, String) {
        let mut classes = Vec::new();
        let mut css = String::new();
        if self.bold {
            classes.push("b".to_owned());
        }
        if self.dim {
            classes.push("dim".to_owned());
        }
        if self.italic {
            classes.push("i".to_owned());
        }
        if self.underline {
            classes.push("u".to_owned());
        }
        let (fg, bg) = if self.inverse {
            (
                self.bg.or(Some(Colour::Theme(16))),
                self.fg.or(Some(Colour::Theme(17))),
            )
        } else {
            (self.fg, self.bg)
        };
        match fg {
            Some(Colour::Theme(n)) => classes.push(format!("fg{n}")),
            Some(Colour::Rgb(r, g, b)) => {
                let _ = write!(css, "color:#{r:02x}{g:02x}{b:02x}");
            }
            None => {}
        }
        match bg {
            Some(Colour::Theme(n)) => classes.push(format!("bg{n}")),
            Some(Colour::Rgb(r, g, b)) => {
                if !css.is_empty() {
                    css.push(';');
                }
                let _ = write!(css, "background:#{r:02x}{g:02x}{b:02x}");
            }
            None => {}
        }
        (classes.join(" "), css)
    }
}

/// `line` without escape sequences, as it shows: what the log search looks in.
pub(crate) fn plain(line: &str) -> String {
    Renderer::default()
        .runs(line)
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

/// Appends `text` to `html`, escaped.
pub(crate) fn escape_into(html: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '&' => html.push_str("&amp;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            c => html.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Renderer, plain};

    fn html(lines: &[&str]) -> Vec<String> {
        let mut renderer = Renderer::default();
        lines.iter().map(|line| renderer.line(line)).collect()
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(html(&["<script>&\"'"]), ["&lt;script&gt;&amp;&quot;&#39;"]);
    }

    #[test]
    fn sixteen_colours_and_combined_codes_are_classes() {
        assert_eq!(
            html(&["\u{1b}[1;31mred\u{1b}[0m plain \u{1b}[92mbright\u{1b}[39m"]),
            ["<span class=\"b fg1\">red</span> plain <span class=\"fg10\">bright</span>"]
        );
    }

    #[test]
    fn the_256_palette_and_true_colour_are_rgb() {
        assert_eq!(
            html(&["\u{1b}[38;5;208mo\u{1b}[48;2;1;2;3mx\u{1b}[38;5;244mg"]),
            [
                "<span style=\"color:#ff8700\">o</span><span style=\"color:#ff8700;background:#010203\">x</span><span style=\"color:#808080;background:#010203\">g</span>"
            ]
        );
        // Colours 0-15 of the palette are the theme's.
        assert_eq!(html(&["\u{1b}[38;5;3my"]), ["<span class=\"fg3\">y</span>"]);
    }

    #[test]
    fn a_style_goes_on_to_the_next_line_until_reset() {
        assert_eq!(
            html(&["\u{1b}[32mgreen", "still", "\u{1b}[mplain"]),
            [
                "<span class=\"fg2\">green</span>",
                "<span class=\"fg2\">still</span>",
                "plain"
            ]
        );
    }

    #[test]
    fn a_carriage_return_rewrites_the_line() {
        assert_eq!(html(&["10%\r50%\r100%"]), ["100%"]);
        // A CRLF line ending is not a rewrite.
        assert_eq!(html(&["done\r"]), ["done"]);
    }

    #[test]
    fn other_sequences_are_dropped() {
        assert_eq!(
            html(&["\u{1b}[2Kclear\u{1b}]0;title\u{7}ed\u{1b}[1A \u{1b}(Bx\u{1b}"]),
            ["cleared x"]
        );
    }

    #[test]
    fn inverse_swaps_colours() {
        assert_eq!(
            html(&["\u{1b}[7;31mi"]),
            ["<span class=\"fg16 bg1\">i</span>"]
        );
    }

    #[test]
    fn plain_text_is_what_the_line_shows() {
        assert_eq!(plain("\u{1b}[1;31mA<b>&c\u{1b}[0m\r"), "A<b>&c");
    }
}
