# Builtin service "kafka": a single-node Kafka broker (KRaft mode, no
# ZooKeeper) in a docker container for the duration of a job, reachable at
# 127.0.0.1:<port> on the worker.
#
# Params (all optional):
#   version  image tag of `apache/kafka` (default "3.9.0")
#   port     host port (default 9092). The broker listens on the same port
#            inside the container and advertises localhost:<port>, so clients
#            on the worker and tools inside the container both work.
#
# The container is named pikoci-<pipeline>-<job>-kafka; `start` first removes
# a leftover one (a worker that died cannot run `stop`). Needs docker.
service_type "kafka" {
  params = ["version", "port"]

  start "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      name="pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-kafka"
      port="$${param_port:-9092}"
      controller=9093
      if [ "$port" = 9093 ]; then controller=9094; fi
      docker rm -f -v "$name" >/dev/null 2>&1 || true
      docker run -d --name "$name" \
        -p "127.0.0.1:$port:$port" \
        -e KAFKA_NODE_ID=1 \
        -e KAFKA_PROCESS_ROLES=broker,controller \
        -e "KAFKA_LISTENERS=PLAINTEXT://:$port,CONTROLLER://:$controller" \
        -e "KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:$port" \
        -e KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER \
        -e KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT \
        -e "KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:$controller" \
        -e KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1 \
        -e KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1 \
        -e KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1 \
        -e KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0 \
        -e KAFKA_AUTO_CREATE_TOPICS_ENABLE=true \
        "apache/kafka:$${param_version:-3.9.0}"
    EOT
    ]
  }

  # Ready when the broker answers API requests, not just when the port opens.
  ready_check "exec" {
    path     = "/bin/sh"
    args     = ["-ec", <<-EOT
      docker exec "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-kafka" \
        /opt/kafka/bin/kafka-broker-api-versions.sh \
        --bootstrap-server "localhost:$${param_port:-9092}" >/dev/null 2>&1
    EOT
    ]
    interval = "3s"
    timeout  = "60s"
  }

  stop "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      docker rm -f -v "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-kafka"
    EOT
    ]
  }
}
