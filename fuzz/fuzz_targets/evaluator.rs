//! The expression evaluator: arbitrary text as the value of attributes that are evaluated with
//! functions, `var.*` and `each.*` in scope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pikoci_config::{SourceFetcher, SourceFile, Vars, load};

/// Never touches the network.
#[derive(Debug)]
struct Offline;

impl SourceFetcher for Offline {
    fn fetch(&self, url: &str) -> Result<String, String> {
        Err(format!("offline: {url}"))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(expression) = std::str::from_utf8(data) else {
        return;
    };
    // One line keeps the expression inside its attribute; heredocs still fit on one line's start.
    if expression.contains('\n') {
        return;
    }
    let text = format!(
        r#"variable "n" {{
  default = 3
}}
variable "s" {{
  default = "a,b"
}}
variable "v" {{
  default = {expression}
}}
job "j" {{
  for_each = ["x", "y"]
  task "t" {{
    run "exec" {{
      path = "echo"
      args = [{expression}]
    }}
  }}
}}
"#
    );
    let file = SourceFile::new("fuzz.hcl", text);
    match load(&file, &Vars::new(), &Offline) {
        Ok(loaded) => {
            let _ = loaded.warnings.to_string();
        }
        Err(diagnostics) => {
            assert!(diagnostics.error_count() > 0, "rejected without an error");
            let _ = diagnostics.render(false);
        }
    }
});
