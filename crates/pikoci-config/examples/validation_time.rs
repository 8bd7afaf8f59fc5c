//! Times `load` on generated worst-case files: a resource with one unknown attribute per line, so
//! every line is a diagnostic; and blocks that each hold a syntax error inside the deepest
//! brackets allowed, the parser's slowest case found. The figures in docs/pipeline-language.md come from
//! `cargo run --release -p pikoci-config --example validation_time -- 1000000 4000000 10000000`.

// A measuring tool: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

use pikoci_config::{HttpFetcher, SourceFile, Vars, load};

/// A pipeline of about `bytes` bytes whose lines are all unknown attributes of one resource.
fn unknown_attributes(bytes: usize) -> String {
    let mut text = String::from("resource \"cron\" \"tick\" {\n  check_interval = \"@every 1m\"\n");
    let mut n = 0;
    while text.len() + 2 < bytes {
        text.push_str(&format!("  unknown_{n} = 1\n"));
        n += 1;
    }
    text.push_str("}\n");
    text
}

/// A pipeline of about `bytes` bytes of blocks that each fail inside 12 levels of brackets, the
/// deepest allowed: the first expression of `tests/data/invalid/75-fuzz-deep-brackets.hcl` (found
/// by the fuzzer), cut before its 13th level and ended with `|`. The HCL parser takes about 30 ms
/// on each such block, and it is run on each broken block up to the 100th.
fn broken_blocks(bytes: usize) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/invalid/75-fuzz-deep-brackets.hcl"
    );
    let raw = std::fs::read(path).expect("the fuzz case is readable");
    let text = String::from_utf8_lossy(&raw);
    let expression = text
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("default = "))
        .expect("the fuzz case has a default");
    let mut depth = 0;
    let cut = expression
        .char_indices()
        .find_map(|(i, c)| {
            match c {
                '[' | '(' => depth += 1,
                ']' | ')' => depth -= 1,
                _ => {}
            }
            (depth > 12).then_some(i)
        })
        .unwrap_or(expression.len());
    let block = format!(
        "variable \"v\" {{\n  default = {}|\n}}\n",
        &expression[..cut]
    );
    block.repeat(bytes / block.len() + 1)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are numbers of bytes"))
        .collect();
    let cases = sizes.iter().flat_map(|&bytes| {
        [
            ("unknown attributes", unknown_attributes(bytes)),
            ("broken blocks", broken_blocks(bytes)),
        ]
    });
    for (kind, text) in cases {
        let file = SourceFile::new("big.hcl", text);
        let start = Instant::now();
        let result = load(&file, &Vars::new(), &HttpFetcher::default());
        let load_time = start.elapsed();
        let diagnostics = match result {
            Ok(loaded) => loaded.warnings,
            Err(diagnostics) => diagnostics,
        };
        let start = Instant::now();
        let rendered = diagnostics.render(false);
        let render_time = start.elapsed();
        println!(
            "{kind}, {} bytes: load {load_time:.2?}, {} diagnostics; \
             render {render_time:.2?}, {} bytes shown",
            file.text().len(),
            diagnostics.items().len(),
            rendered.len()
        );
    }
}
