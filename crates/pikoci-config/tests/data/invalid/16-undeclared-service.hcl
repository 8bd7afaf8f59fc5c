resource "cron" "tick" { check_interval = "@every 1m" }
job "a" {
  service "pg" {}
  service "postgresql" {}
}
