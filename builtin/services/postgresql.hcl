# Builtin service "postgresql": a PostgreSQL server in a docker container for
# the duration of a job, reachable at 127.0.0.1:<port> on the worker.
#
# Params (all optional):
#   version   image tag of `postgres` (default "16")
#   port      host port (default 5432)
#   password  password of the `postgres` user (default "postgres")
#
# The container is named pikoci-<pipeline>-<job>-postgresql; `start` first
# removes a leftover one (a worker that died cannot run `stop`). Needs docker.
service_type "postgresql" {
  params = ["version", "port", "password"]

  start "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      name="pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-postgresql"
      docker rm -f -v "$name" >/dev/null 2>&1 || true
      docker run -d --name "$name" \
        -p "127.0.0.1:$${param_port:-5432}:5432" \
        -e "POSTGRES_PASSWORD=$${param_password:-postgres}" \
        "postgres:$${param_version:-16}"
    EOT
    ]
  }

  # -h 127.0.0.1: the server the image runs while initialising listens only
  # on its unix socket, so this waits for the real one.
  ready_check "exec" {
    path     = "/bin/sh"
    args     = ["-ec", <<-EOT
      docker exec "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-postgresql" \
        pg_isready -q -h 127.0.0.1 -p 5432 -U postgres
    EOT
    ]
    interval = "2s"
    timeout  = "60s"
  }

  stop "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      docker rm -f -v "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-postgresql"
    EOT
    ]
  }
}
