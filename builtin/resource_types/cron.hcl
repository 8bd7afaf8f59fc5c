# Builtin resource type "cron": a clock.
#
# Every check emits the current UTC time as a new version, so a job with
# `get "cron" "<name>" { trigger = true }` runs once per `check_interval`
# of the resource (cron syntax or "@every <duration>"). No params.
#
#   check  prints [{"date":"<YYYY-MM-DDThh:mm:ssZ>"}]
#   pull   prints the version's date ($version_date)
#   push   does nothing
resource_type "cron" {
  check "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      printf '[{"date":"%s"}]\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    EOT
    ]
  }

  pull "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      echo "date: $version_date"
    EOT
    ]
  }

  push "exec" {}
}
