//! Limits that keep validation bounded on hostile input: the file size, the number of diagnostics
//! shown, and how much of a long name is echoed back.

use pikoci_config::diagnostic::MAX_SHOWN;
use pikoci_config::{HttpFetcher, MAX_SOURCE_BYTES, SourceFile, Vars, load, read_source_from};

fn diagnostics(text: String) -> pikoci_config::Diagnostics {
    let file = SourceFile::new("big.hcl", text);
    match load(&file, &Vars::new(), &HttpFetcher::default()) {
        Ok(loaded) => panic!("should be rejected, warnings: {}", loaded.warnings),
        Err(diagnostics) => diagnostics,
    }
}

/// The message of the one diagnostic `load` rejects `file` with.
fn the_only_error(file: &SourceFile) -> String {
    let diagnostics = match load(file, &Vars::new(), &HttpFetcher::default()) {
        Ok(loaded) => panic!("should be rejected, warnings: {}", loaded.warnings),
        Err(diagnostics) => diagnostics,
    };
    assert_eq!(diagnostics.items().len(), 1, "{diagnostics}");
    diagnostics.items()[0].message.clone()
}

#[test]
fn a_file_over_the_size_limit_is_rejected_before_parsing() {
    let mut text = String::from("job \"a\" {}\n");
    text.push_str(&"#".repeat(MAX_SOURCE_BYTES));
    let diagnostics = diagnostics(text);
    assert_eq!(
        diagnostics.to_string(),
        "big.hcl: error: the file is larger than the limit of 4194304 bytes (4 MiB) \
         (split the pipeline, or move large values into a vars file or a source)"
    );
}

#[test]
fn reading_a_source_stops_one_byte_past_the_limit() {
    // An endless reader: reading it whole would never end.
    let file = read_source_from("endless.hcl", std::io::repeat(b'#')).unwrap();
    assert_eq!(file.text().len(), MAX_SOURCE_BYTES + 1);
    let small = read_source_from("small.hcl", "job \"a\" {}\n".as_bytes()).unwrap();
    assert_eq!(small.text(), "job \"a\" {}\n");
    let diagnostics = load(&file, &Vars::new(), &HttpFetcher::default()).unwrap_err();
    assert!(
        diagnostics.items()[0]
            .message
            .contains("larger than the limit of 4194304 bytes"),
        "{diagnostics}"
    );
}

#[test]
fn a_file_over_the_limit_with_a_byte_order_mark_is_rejected_not_cut() {
    // Dropping the 3-byte mark leaves the text under the limit: the bytes read must count.
    let mut bytes = b"\xEF\xBB\xBFjob \"a\" {}\n".to_vec();
    bytes.resize(MAX_SOURCE_BYTES + 10, b'#');
    let file = read_source_from("bom.hcl", bytes.as_slice()).unwrap();
    assert!(file.text().len() <= MAX_SOURCE_BYTES);
    assert_eq!(file.byte_len(), MAX_SOURCE_BYTES + 1);
    let message = the_only_error(&file);
    assert!(
        message.starts_with("the file is larger than the limit of 4194304 bytes"),
        "{message}"
    );
}

#[test]
fn a_file_under_the_limit_with_many_invalid_bytes_is_not_called_too_large() {
    // Each invalid byte becomes the 3-byte U+FFFD, so the text is over the limit; the file is not.
    let mut bytes = b"job \"a\" {}\n#".to_vec();
    bytes.resize(MAX_SOURCE_BYTES - 10, 0xFF);
    let file = read_source_from("invalid.hcl", bytes.as_slice()).unwrap();
    assert!(file.text().len() > MAX_SOURCE_BYTES);
    let message = the_only_error(&file);
    assert!(
        message.starts_with("the file is not valid UTF-8: byte 0xFF at byte offset 12 "),
        "{message}"
    );
}

#[test]
fn only_the_first_diagnostics_are_shown_then_a_count() {
    let mut text = String::from("resource \"cron\" \"t\" {\n  check_interval = \"@every 1m\"\n");
    for n in 0..150 {
        text.push_str(&format!("  unknown_{n} = 1\n"));
    }
    text.push_str("}\n");
    let diagnostics = diagnostics(text);
    assert_eq!(diagnostics.items().len(), 150);
    let plain = diagnostics.to_string();
    assert_eq!(plain.lines().count(), MAX_SHOWN + 1, "{plain}");
    assert_eq!(
        plain.lines().last().unwrap(),
        "... and 50 more errors (only the first 100 are shown)"
    );
    let rendered = diagnostics.render(false);
    assert!(
        rendered.ends_with("... and 50 more errors (only the first 100 are shown)\n"),
        "{rendered}"
    );
    assert!(!rendered.contains("unknown_100"), "{rendered}");
}

#[test]
fn a_long_label_is_not_echoed_back_whole() {
    let label = "x".repeat(1_000_000);
    let text = format!("job \"{label}\" {{\n  tsk \"t\" {{}}\n}}\n");
    let diagnostics = diagnostics(text);
    let plain = diagnostics.to_string();
    let rendered = diagnostics.render(false);
    assert!(plain.len() < 2000, "{} bytes: {plain:.300}", plain.len());
    assert!(
        rendered.len() < 4000,
        "{} bytes: {rendered:.300}",
        rendered.len()
    );
    assert!(plain.contains("(1000000 characters)"), "{plain:.1000}");
}

#[test]
fn every_broken_block_up_to_the_display_limit_is_a_syntax_error() {
    let text = "job \"a\" {\n  x = \n}\n".repeat(MAX_SHOWN + 20);
    let diagnostics = diagnostics(text);
    // Only the errors found are counted: the notice that checking stopped is a note.
    assert_eq!(diagnostics.items().len(), MAX_SHOWN);
    assert_eq!(diagnostics.error_count(), MAX_SHOWN);
    assert!(
        diagnostics
            .items()
            .iter()
            .all(|d| d.message.starts_with("syntax error: invalid expression")),
        "{diagnostics}"
    );
    let note = "checking stopped after 100 broken blocks: the blocks from line 301 on were not \
                checked for syntax errors";
    assert_eq!(diagnostics.note(), Some(note));
    let plain = diagnostics.to_string();
    assert!(!plain.contains("more error"), "{plain}");
    assert!(
        plain.ends_with(&format!("big.hcl: note: {note}")),
        "{plain}"
    );
    assert!(
        diagnostics
            .render(false)
            .ends_with(&format!("note: {note}\n"))
    );
}

#[test]
fn interpolations_left_open_in_heredocs_do_not_make_the_scan_quadratic() {
    // Each `${` left open in a heredoc used to keep the syntax scan in interpolation mode past
    // the heredoc's end; every later `}` then sent it back to rescan the rest of the file, about
    // k * n steps (minutes at this size). The scan now ends them with their heredoc.
    let k = 20_000;
    let mut text = "x = <<A\n${\nA\n".repeat(k);
    text.push_str(&"}\n".repeat(k));
    assert!(text.len() < MAX_SOURCE_BYTES);
    let diagnostics = diagnostics(text);
    assert!(
        diagnostics.items()[0].message.starts_with("syntax error"),
        "{diagnostics}"
    );
}

#[test]
fn the_help_for_undeclared_variables_stays_short_with_many_declared() {
    // Each bad reference listed every declared variable and compared it with all of them:
    // references times variables.
    let declared = 3000;
    let references = 3000;
    let mut text = String::new();
    for n in 0..declared {
        text.push_str(&format!(
            "variable \"v{n:05}\" {{\n  type = string\n  default = \"x\"\n}}\n"
        ));
    }
    for n in 0..references {
        text.push_str(&format!(
            "resource \"cron\" \"r{n}\" {{\n  check_interval = var.nope{n}\n}}\n"
        ));
    }
    let diagnostics = diagnostics(text);
    let undeclared: Vec<_> = diagnostics
        .items()
        .iter()
        .filter(|d| d.message.ends_with("is not declared"))
        .collect();
    assert_eq!(undeclared.len(), references, "{diagnostics}");
    assert_eq!(
        undeclared[0].help.as_deref(),
        Some(
            "the declared variables are: v00000, v00001, v00002, v00003, v00004, v00005, \
             v00006, v00007, v00008, v00009, and 2990 more"
        )
    );
    let bytes: usize = diagnostics
        .items()
        .iter()
        .map(|d| d.message.len() + d.help.as_ref().map_or(0, String::len))
        .sum();
    assert!(bytes < 200 * references, "{bytes} bytes of diagnostics");
}

#[test]
fn a_long_label_named_by_many_diagnostics_is_not_copied_into_each() {
    // Every diagnostic of the job names it: with the whole 2 MB name copied into each of 50,000
    // messages before they were shortened, this took 100 GB of memory.
    let label = "x".repeat(2_000_000);
    let attributes: String = (0..50_000).map(|n| format!("a{n}=1\n")).collect();
    let text = format!("job \"{label}\" {{\n{attributes}}}\n");
    assert!(text.len() < MAX_SOURCE_BYTES);
    let diagnostics = diagnostics(text);
    assert!(diagnostics.items().len() > 50_000);
    let bytes: usize = diagnostics
        .items()
        .iter()
        .map(|d| d.message.len() + d.help.as_ref().map_or(0, String::len))
        .sum();
    assert!(bytes < 300 * diagnostics.items().len(), "{bytes} bytes");
    assert!(diagnostics.to_string().len() < 100 * 1000);
}

#[test]
fn many_references_to_many_names_are_checked_once_each() {
    // The declared names of a kind were gathered again for every reference: references times
    // names (minutes at this size).
    let count = 20_000;
    let mut text = String::new();
    for n in 0..count {
        text.push_str(&format!(
            "resource \"cron\" \"r{n}\" {{\n  check_interval = \"@every 1m\"\n}}\n"
        ));
    }
    text.push_str("job \"a\" {\n");
    for n in 0..count {
        text.push_str(&format!("  get \"cron\" \"missing{n}\" {{}}\n"));
    }
    text.push_str("}\n");
    let diagnostics = diagnostics(text);
    let unknown = diagnostics
        .items()
        .iter()
        .filter(|d| d.message.contains("references unknown resource"))
        .count();
    assert_eq!(unknown, count, "{diagnostics}");
}
