//! The whole loader on arbitrary text: parse, evaluate, decode, link, and render the diagnostics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pikoci_config::{SourceFetcher, SourceFile, Vars, load};

/// Never touches the network: every `http(s)://` source fails at once.
#[derive(Debug)]
struct Offline;

impl SourceFetcher for Offline {
    fn fetch(&self, url: &str) -> Result<String, String> {
        Err(format!("offline: {url}"))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
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
});
