# Builtin secret type "file": reads secrets from a file on the worker.
#
# Handled natively by the worker (it reads the file itself, no `cat`), so this
# block declares the type and its params but has no `get`.
#
# Params:
#   path    the file to read; the variable's `path` wins over a config `path`
#           (relative paths are taken against the worker's working directory)
#   format  how to parse it: "json" (an object of strings), "yaml" (a mapping
#           of strings), "env" (KEY=VALUE lines) or "raw" (the whole file as
#           the key "content"). Default: from the config path's extension
#           (.json, .env, .yml/.yaml), otherwise raw.
# The variable's `key` selects the entry.
secret_type "file" {
  params = ["path", "format"]
}
