//! The expression evaluator: arbitrary text as the value of attributes that are evaluated with
//! functions, `var.*` and `each.*` in scope.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(expression) = std::str::from_utf8(data) else {
        return;
    };
    // One line keeps the expression inside its attribute.
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
    pikoci_fuzz::load_and_render(&text);
});
