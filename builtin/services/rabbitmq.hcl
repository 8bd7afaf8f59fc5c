# Builtin service "rabbitmq": a RabbitMQ broker in a docker container for the
# duration of a job, reachable at 127.0.0.1:<port> (AMQP) on the worker, with
# the default guest/guest user.
#
# Params (all optional):
#   version  image tag of `rabbitmq` (default "4")
#   port     host port for AMQP (default 5672)
#
# The container is named pikoci-<pipeline>-<job>-rabbitmq; `start` first
# removes a leftover one (a worker that died cannot run `stop`). Needs docker.
service_type "rabbitmq" {
  params = ["version", "port"]

  start "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      name="pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-rabbitmq"
      docker rm -f -v "$name" >/dev/null 2>&1 || true
      docker run -d --name "$name" \
        -p "127.0.0.1:$${param_port:-5672}:5672" \
        "rabbitmq:$${param_version:-4}"
    EOT
    ]
  }

  # Ready when the node runs and its listeners (AMQP) accept connections.
  ready_check "exec" {
    path     = "/bin/sh"
    args     = ["-ec", <<-EOT
      docker exec "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-rabbitmq" \
        rabbitmq-diagnostics -q check_port_connectivity >/dev/null
    EOT
    ]
    interval = "3s"
    timeout  = "60s"
  }

  stop "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      docker rm -f -v "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-rabbitmq"
    EOT
    ]
  }
}
