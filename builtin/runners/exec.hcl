# Builtin runner "exec": runs a program directly, without a shell.
#
#   path  the program to run (looked up in PATH when it has no "/",
#         relative paths are resolved against $WORKDIR)
#   args  the argument list, passed verbatim (each element is one argument)
#
# A command with an empty `path` is a no-op that succeeds, which is how a
# type declares an operation that does nothing (for example `push "exec" {}`).
runner_type "exec" {
  run {
    path = "$path"
    args = ["$args"]
  }
}
