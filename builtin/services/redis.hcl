# Builtin service "redis": a Redis server in a docker container for the
# duration of a job, reachable at 127.0.0.1:<port> on the worker.
#
# Params (all optional):
#   version  image tag of `redis` (default "7")
#   port     host port (default 6379)
#
# The container is named pikoci-<pipeline>-<job>-redis; `start` first removes
# a leftover one (a worker that died cannot run `stop`). Needs docker.
service_type "redis" {
  params = ["version", "port"]

  start "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      name="pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-redis"
      docker rm -f -v "$name" >/dev/null 2>&1 || true
      docker run -d --name "$name" \
        -p "127.0.0.1:$${param_port:-6379}:6379" \
        "redis:$${param_version:-7}"
    EOT
    ]
  }

  ready_check "exec" {
    path     = "/bin/sh"
    args     = ["-ec", <<-EOT
      docker exec "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-redis" \
        redis-cli -p 6379 ping | grep -q PONG
    EOT
    ]
    interval = "1s"
    timeout  = "30s"
  }

  stop "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      docker rm -f -v "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-redis"
    EOT
    ]
  }
}
