# Builtin runner "shell": runs a script with a shell on the worker.
#
#   cmd    an inline script, run as `<shell> -ec "<cmd>"`
#   file   a script file instead of `cmd` (relative to $WORKDIR); exactly one
#          of cmd and file must be set. Without an explicit `shell` the file is
#          made executable and run directly (so its #! line counts).
#   shell  the shell to use (default /bin/sh)
#
# The cmd/file checks and the /bin/sh default are applied by the worker before
# this template is expanded.
runner_type "shell" {
  run {
    path = "$shell"
    args = ["-ec", "$cmd"]
  }
}
