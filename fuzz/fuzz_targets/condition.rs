//! The `if` condition language and the `$NAME` expansion of runner templates on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pikoci_core::condition::Condition;
use pikoci_core::expand::expand;

fn lookup(name: &str) -> Option<String> {
    match name {
        "EMPTY" => Some(String::new()),
        "N" => Some("3".to_owned()),
        "BRANCH" => Some("main".to_owned()),
        _ if name.len() % 2 == 0 => Some(name.to_owned()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(condition) = Condition::parse(text) {
        let _ = condition.evaluate(&lookup);
        assert_eq!(condition.source(), text);
    }
    let _ = expand(text, &lookup);
});
