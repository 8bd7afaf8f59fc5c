//! The whole loader on arbitrary text: parse, evaluate, decode, link, and render the diagnostics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        pikoci_fuzz::load_and_render(text);
    }
});
