# Builtin service "nats": a NATS server (with JetStream) in a docker container
# for the duration of a job, reachable at 127.0.0.1:<port> on the worker.
#
# Params (all optional):
#   version  NATS version; the image is nats:<version>-alpine (default "2")
#   port     host port for clients (default 4222)
#
# The container is named pikoci-<pipeline>-<job>-nats; `start` first removes
# a leftover one (a worker that died cannot run `stop`). Needs docker.
service_type "nats" {
  params = ["version", "port"]

  start "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      name="pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-nats"
      docker rm -f -v "$name" >/dev/null 2>&1 || true
      docker run -d --name "$name" \
        -p "127.0.0.1:$${param_port:-4222}:4222" \
        "nats:$${param_version:-2}-alpine" \
        -js -m 8222
    EOT
    ]
  }

  # The monitoring endpoint answers once the server accepts clients.
  ready_check "exec" {
    path     = "/bin/sh"
    args     = ["-ec", <<-EOT
      docker exec "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-nats" \
        wget -q -O /dev/null http://127.0.0.1:8222/healthz
    EOT
    ]
    interval = "1s"
    timeout  = "60s"
  }

  stop "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      docker rm -f -v "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-nats"
    EOT
    ]
  }
}
