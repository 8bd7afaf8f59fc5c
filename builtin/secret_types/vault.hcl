# Builtin secret type "vault": reads a secret from HashiCorp Vault or OpenBao.
#
# Handled natively by the worker over the Vault HTTP API (no `vault` CLI, no
# jq), so this block declares the type and its params but has no `get`.
# Declaring `secret_type "vault" { ... }` with a `get` block in a pipeline
# replaces this builtin.
#
# Config params (attributes of the secret_type block, all strings):
#   address      Vault URL, e.g. "https://vault.example.com:8200"
#                (default: the worker's VAULT_ADDR)
#   token        token for token auth (default: the worker's VAULT_TOKEN)
#   auth_method  "token" (default) or "approle"
#   role_id      AppRole role id (auth_method = "approle")
#   secret_id    AppRole secret id (auth_method = "approle")
#   mount        KV mount, when `path` does not start with it (default: the
#                first path segment)
#   kv_version   "1", "2" or "auto" (default "auto": asks the mount, falling
#                back to the shape of the answer, `.data.data` or `.data`)
#   namespace    Vault Enterprise / OpenBao namespace (X-Vault-Namespace)
# Per variable (the `secret "vault" { path = ...  key = ... }` block):
#   path         the secret's path, e.g. "secret/data/db" or "secret/db"
#   key          the field of the secret to use
secret_type "vault" {
  params = [
    "path",
    "address",
    "token",
    "auth_method",
    "role_id",
    "secret_id",
    "mount",
    "kv_version",
    "namespace",
  ]
}
