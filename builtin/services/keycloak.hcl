# Builtin service "keycloak": a Keycloak server in development mode in a
# docker container for the duration of a job, reachable at
# http://127.0.0.1:<port> on the worker.
#
# Params (all optional):
#   version         image tag of quay.io/keycloak/keycloak (default "26.0")
#   port            host port (default 8080)
#   admin_user      administrator of the master realm (default "admin")
#   admin_password  its password (default "admin")
#   realm_json      a realm to import at start: the path of a realm export
#                   file (relative to $WORKDIR, e.g. from a get or a task),
#                   or the JSON text itself
#
# The container is named pikoci-<pipeline>-<job>-keycloak; `start` first
# removes a leftover one (a worker that died cannot run `stop`). Needs docker.
service_type "keycloak" {
  params = ["version", "port", "admin_user", "admin_password", "realm_json"]

  start "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      name="pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-keycloak"
      docker rm -f -v "$name" >/dev/null 2>&1 || true
      user="$${param_admin_user:-admin}"
      password="$${param_admin_password:-admin}"
      set -- run -d --name "$name" \
        -p "127.0.0.1:$${param_port:-8080}:8080" \
        -e "KC_BOOTSTRAP_ADMIN_USERNAME=$user" \
        -e "KC_BOOTSTRAP_ADMIN_PASSWORD=$password" \
        -e "KEYCLOAK_ADMIN=$user" \
        -e "KEYCLOAK_ADMIN_PASSWORD=$password" \
        -e KC_HEALTH_ENABLED=true
      # (KC_BOOTSTRAP_ADMIN_* for Keycloak >= 26, KEYCLOAK_ADMIN* before.)
      import=""
      if [ -n "$param_realm_json" ]; then
        if [ -f "$param_realm_json" ]; then
          realm="$(cd "$(dirname "$param_realm_json")" && pwd)/$(basename "$param_realm_json")"
        else
          realm="$WORKDIR/.pikoci-keycloak-realm.json"
          printf '%s\n' "$param_realm_json" > "$realm"
        fi
        set -- "$@" -v "$realm:/opt/keycloak/data/import/realm.json:ro"
        import="--import-realm"
      fi
      docker "$@" "quay.io/keycloak/keycloak:$${param_version:-26.0}" start-dev $import
    EOT
    ]
  }

  # The image has neither curl nor wget: ask /health/ready with bash's
  # /dev/tcp, on the management port (9000, Keycloak >= 25) or else on 8080.
  ready_check "exec" {
    path     = "/bin/sh"
    args     = ["-ec", <<-EOT
      docker exec "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-keycloak" bash -c '
        for port in 9000 8080; do
          if (
            exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
            printf "GET /health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3
            read -r proto code rest <&3
            [ "$code" = 200 ]
          ) 2>/dev/null; then
            exit 0
          fi
        done
        exit 1'
    EOT
    ]
    interval = "3s"
    timeout  = "120s"
  }

  stop "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      docker rm -f -v "pikoci-$BUILD_PIPELINE_NAME-$BUILD_JOB_NAME-keycloak"
    EOT
    ]
  }
}
