//! What the `parser` and `evaluator` targets share: loading a pipeline offline and checking that
//! the result is coherent.

use pikoci_config::{SourceFetcher, SourceFile, Vars, load};

/// Never touches the network: every `http(s)://` source fails at once.
#[derive(Debug)]
struct Offline;

impl SourceFetcher for Offline {
    fn fetch(&self, url: &str) -> Result<String, String> {
        Err(format!("offline: {url}"))
    }
}

/// Loads `text` as a pipeline and renders what comes out; a rejected file must have an error.
pub fn load_and_render(text: &str) {
    let file = SourceFile::new("fuzz.hcl", text);
    match load(&file, &Vars::new(), &Offline) {
        Ok(loaded) => {
            let _ = loaded.warnings.render(false);
        }
        Err(diagnostics) => {
            assert!(diagnostics.error_count() > 0, "rejected without an error");
            let _ = diagnostics.render(false);
            let _ = diagnostics.to_string();
        }
    }
}
