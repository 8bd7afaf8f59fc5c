//! Times `load` on generated worst-case files: a resource with one unknown attribute per line, so
//! every line is a diagnostic; and blocks that each hold a syntax error inside the deepest
//! brackets allowed, the parser's slowest case. The figures in docs/pipeline-language.md come from
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

/// A pipeline of about `bytes` bytes of jobs whose expression fails inside 12 levels of brackets.
fn broken_blocks(bytes: usize) -> String {
    let block = format!("job \"a\" {{\n  x = {}|\n}}\n", "a+b[".repeat(12));
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
