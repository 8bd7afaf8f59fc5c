# Builtin secret type "env": reads secrets from the worker's environment.
#
# Handled natively by the worker, so this block declares the type and its
# params but has no `get`.
#
# Params:
#   prefix  prepended to the variable's `key` to form the name of the
#           environment variable (default: none). With prefix = "CI_" and
#           key = "DB_PASSWORD" the worker reads $CI_DB_PASSWORD.
# The variable's `key` names the environment variable; its `path` is not used.
# A variable that is not set is an error (an empty one is a valid value).
secret_type "env" {
  params = ["prefix"]
}
