# Builtin service "mariadb": a MariaDB server in a docker container for the
# duration of a job, reachable at 127.0.0.1:<port> on the worker.
#
# Params (all optional):
#   version        image tag of `mariadb` (default "11")
#   port           host port (default 3306)
#   root_password  password of the `root` user (default "root")
#
# The container is named pikoci-<pipeline>-<job>-mariadb; `start` first
# removes a leftover one (a worker that died cannot run `stop`). Needs docker.
service_type "mariadb" {
  params = ["version", "port", "root_password"]

  start "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      name="pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-mariadb"
      docker rm -f -v "$name" >/dev/null 2>&1 || true
      docker run -d --name "$name" \
        -p "127.0.0.1:$${param_port:-3306}:3306" \
        -e "MARIADB_ROOT_PASSWORD=$${param_root_password:-root}" \
        "mariadb:$${param_version:-11}"
    EOT
    ]
  }

  # Over TCP: the server the image runs while initialising has networking
  # off, so this waits for the real one.
  ready_check "exec" {
    path     = "/bin/sh"
    args     = ["-ec", <<-EOT
      docker exec "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-mariadb" \
        mariadb -h 127.0.0.1 -P 3306 -uroot "-p$${param_root_password:-root}" -e 'SELECT 1' >/dev/null
    EOT
    ]
    interval = "2s"
    timeout  = "60s"
  }

  stop "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      docker rm -f -v "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-mariadb"
    EOT
    ]
  }
}
