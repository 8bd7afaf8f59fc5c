//! The PikoCI pipeline language: HCL text in, a validated [`pikoci_core::Pipeline`] out, or every
//! problem of the file as a diagnostic with its location.
//!
//! ```
//! use pikoci_config::{load, SourceFile, Vars, HttpFetcher};
//!
//! let file = SourceFile::new("pipeline.hcl", r#"
//!     resource "cron" "tick" { check_interval = "@every 1m" }
//!     job "a" {
//!       get "cron" "tick" { trigger = true }
//!       task "t" {
//!         run "exec" {
//!           path = "echo"
//!           args = ["hi"]
//!         }
//!       }
//!     }
//! "#);
//! let loaded = load(&file, &Vars::new(), &HttpFetcher::default()).unwrap();
//! assert_eq!(loaded.pipeline.jobs[0].plan.len(), 2);
//! ```

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod builtin;
mod decode;
pub mod diagnostic;
mod eval;
mod functions;
mod source;
mod syntax;
pub mod value;
mod vars;

pub use diagnostic::{Diagnostic, Diagnostics, Severity, SourceFile};
pub use source::{HttpFetcher, SourceFetcher};
pub use vars::{VarValue, Vars};

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use pikoci_core::Pipeline;

/// The largest pipeline file [`load`] accepts, in bytes (4 MiB). Larger files are rejected
/// before parsing, so validation time and memory stay bounded whatever is uploaded.
pub const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;

/// Reads a pipeline file for [`load`], never more than [`MAX_SOURCE_BYTES`] plus one byte however
/// large the file is: [`load`] rejects a larger file anyway, and says the limit.
pub fn read_source(path: &Path) -> std::io::Result<SourceFile> {
    let file = std::fs::File::open(path)?;
    read_source_from(path.display().to_string(), file)
}

/// [`read_source`] from any reader, under the display name `name`.
pub fn read_source_from(name: impl Into<String>, reader: impl Read) -> std::io::Result<SourceFile> {
    let limit = u64::try_from(MAX_SOURCE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut bytes = Vec::new();
    reader.take(limit).read_to_end(&mut bytes)?;
    Ok(SourceFile::from_bytes(name, bytes))
}

/// A pipeline that passed validation, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated pipeline.
    pub pipeline: Pipeline,
    /// Things that are accepted but probably not meant (for example ignored attributes).
    pub warnings: Diagnostics,
}

/// Parses, evaluates and validates a pipeline file.
///
/// `vars` gives variable values (vars file and `--var` overrides); `fetcher` fetches
/// `http(s)://` sources. On failure every problem of the file is returned, errors and warnings,
/// in file order. A file larger than [`MAX_SOURCE_BYTES`], or one that is not UTF-8 (see
/// [`SourceFile::from_bytes`]), is rejected with one diagnostic.
pub fn load(
    file: &SourceFile,
    vars: &Vars,
    fetcher: &dyn SourceFetcher,
) -> Result<Loaded, Diagnostics> {
    if file.byte_len() > MAX_SOURCE_BYTES {
        // Only the first bytes past the limit may have been read (see read_source): the size
        // of the file is not known, only that it is over the limit. The bytes read are counted,
        // not the decoded text: that drops a byte order mark and grows each invalid byte to the
        // 3-byte U+FFFD.
        let diagnostic = Diagnostic::error(
            format!("the file is larger than the limit of {MAX_SOURCE_BYTES} bytes (4 MiB)"),
            None,
        )
        .with_help("split the pipeline, or move large values into a vars file or a source");
        return Err(Diagnostics::new(file.clone(), vec![diagnostic]));
    }
    if let (Some((offset, byte)), Some(span)) = (file.invalid_utf8(), file.invalid_utf8_span()) {
        let diagnostic = Diagnostic::error(
            format!(
                "the file is not valid UTF-8: byte 0x{byte:02X} at byte offset {offset} is not \
                 part of a UTF-8 character"
            ),
            Some(span),
        )
        .with_help("save the file as UTF-8 text");
        return Err(Diagnostics::new(file.clone(), vec![diagnostic]));
    }
    let body = match syntax::parse(file.text()) {
        Ok(body) => body,
        Err(errors) => {
            let diagnostics = Diagnostics::new(file.clone(), errors.diagnostics);
            return Err(match errors.note {
                Some(note) => diagnostics.with_note(note),
                None => diagnostics,
            });
        }
    };
    let mut decoder = decode::Decoder::new(fetcher);
    let pipeline = decoder.pipeline(&body, vars);
    let mut diagnostics = decoder.diags;
    // for_each instances decode the same block several times: report each problem once. A set
    // keeps this linear: a file can hold hundreds of thousands of problems.
    let mut seen = HashSet::with_capacity(diagnostics.len());
    let first: Vec<bool> = diagnostics.iter().map(|d| seen.insert(d)).collect();
    drop(seen);
    let mut first = first.into_iter();
    diagnostics.retain(|_| first.next().unwrap_or(true));
    let mut unique = diagnostics;
    unique.sort_by_key(|d| d.span.as_ref().map_or(usize::MAX, |s| s.start));
    let has_errors = unique.iter().any(|d| d.severity == Severity::Error);
    let diagnostics = Diagnostics::new(file.clone(), unique);
    if has_errors {
        Err(diagnostics)
    } else {
        Ok(Loaded {
            pipeline,
            warnings: diagnostics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The diagnostics as the decoder builds them, before [`Diagnostics::new`] shortens them.
    fn built(text: &str) -> Vec<Diagnostic> {
        let body = syntax::parse(text).unwrap_or_else(|_| panic!("parses"));
        let fetcher = HttpFetcher::default();
        let mut decoder = decode::Decoder::new(&fetcher);
        decoder.pipeline(&body, &Vars::new());
        decoder.diags
    }

    #[test]
    fn long_names_are_shortened_when_messages_are_built() {
        // Every diagnostic of a block names the block: with the whole name, a 2 MB label and
        // 300,000 unknown attributes filled the memory before anything was shortened.
        let long = "x".repeat(100_000);
        let attributes: String = (0..200).map(|n| format!("  a{n} = 1\n")).collect();
        let text = format!(
            "variable \"{long}\" {{\n  type = string\n{attributes}}}\n\
             resource \"cron\" \"{long}\" {{\n{attributes}}}\n\
             notification \"{long}\" \"{long}\" {{\n  on = [\"{long}\"]\n}}\n\
             job \"{long}\" {{\n{attributes}\
               get \"cron\" \"{long}\" {{\n    passed = [\"{long}\"]\n{attributes}  }}\n\
               task \"{long}\" {{\n{attributes}    run \"{long}\" {{}}\n  }}\n\
               put \"{long}\" \"{long}\" {{\n    timeout = \"{long}\"\n  }}\n\
               notify \"{long}\" {{}}\n\
             }}\n"
        );
        let diagnostics = built(&text);
        assert!(diagnostics.len() > 600, "{}", diagnostics.len());
        for diagnostic in &diagnostics {
            let size = diagnostic.message.len() + diagnostic.help.as_ref().map_or(0, String::len);
            assert!(size < 1000, "{size} bytes: {:.300}", diagnostic.message);
        }
    }
}
