//! No input makes the loader panic: every valid test pipeline, cut short at every character and
//! with bytes inserted and removed, loads to a pipeline or to diagnostics.

use std::path::Path;

use pikoci_config::{HttpFetcher, SourceFile, Vars, load};

fn texts() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/valid");
    let mut texts: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hcl"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    texts.sort();
    texts
}

fn load_any(text: &str) {
    let file = SourceFile::new("fuzz.hcl", text);
    // Sources are not fetched for real: the mutated URLs point nowhere reachable.
    let fetcher = HttpFetcher {
        timeout: std::time::Duration::from_millis(50),
        max_bytes: 1024,
    };
    match load(&file, &Vars::new(), &fetcher) {
        Ok(_) => {}
        Err(diagnostics) => {
            assert!(diagnostics.error_count() > 0);
            // Rendering must not panic either, whatever the spans.
            let _ = diagnostics.render(false);
            let _ = diagnostics.to_string();
        }
    }
}

#[test]
fn truncated_pipelines_never_panic() {
    for text in texts() {
        let boundaries: Vec<usize> = (0..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .collect();
        for end in boundaries.iter().step_by(3) {
            load_any(&text[..*end]);
        }
    }
}

#[test]
fn mutated_pipelines_never_panic() {
    const INSERTS: &[&str] = &[
        "{", "}", "\"", "${", "[", "]", "=", "\n", "#", "%{", "(", "...", "*", "é", "\\",
    ];
    for text in texts() {
        let boundaries: Vec<usize> = (0..text.len())
            .filter(|i| text.is_char_boundary(*i))
            .collect();
        for (n, at) in boundaries.iter().enumerate().step_by(7) {
            let insert = INSERTS[n % INSERTS.len()];
            load_any(&format!("{}{insert}{}", &text[..*at], &text[*at..]));
            let next = boundaries.get(n + 1).copied().unwrap_or(text.len());
            load_any(&format!("{}{}", &text[..*at], &text[next..]));
        }
    }
}
