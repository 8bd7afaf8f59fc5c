# Builtin service "vault": a HashiCorp Vault server in dev mode (in memory,
# unsealed, KV v2 mounted at secret/) in a docker container for the duration
# of a job, reachable at http://127.0.0.1:<port> on the worker.
#
# Params (all optional):
#   version     image tag of `hashicorp/vault` (default "1.18")
#   port        host port (default 8200)
#   root_token  the root token (default "root")
#
# The container is named pikoci-<pipeline>-<job>-vault; `start` first removes
# a leftover one (a worker that died cannot run `stop`). Needs docker.
service_type "vault" {
  params = ["version", "port", "root_token"]

  start "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      name="pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-vault"
      docker rm -f -v "$name" >/dev/null 2>&1 || true
      docker run -d --name "$name" \
        --cap-add IPC_LOCK \
        -p "127.0.0.1:$${param_port:-8200}:8200" \
        -e "VAULT_DEV_ROOT_TOKEN_ID=$${param_root_token:-root}" \
        -e VAULT_DEV_LISTEN_ADDRESS=0.0.0.0:8200 \
        "hashicorp/vault:$${param_version:-1.18}" \
        server -dev
    EOT
    ]
  }

  # /v1/sys/health answers 200 once the server is initialised, unsealed and
  # active.
  ready_check "exec" {
    path     = "/bin/sh"
    args     = ["-ec", <<-EOT
      docker exec "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-vault" \
        wget -q -O /dev/null http://127.0.0.1:8200/v1/sys/health
    EOT
    ]
    interval = "2s"
    timeout  = "60s"
  }

  stop "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      docker rm -f -v "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-vault"
    EOT
    ]
  }
}
