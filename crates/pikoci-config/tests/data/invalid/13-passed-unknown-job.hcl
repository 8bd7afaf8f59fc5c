resource "cron" "tick" { check_interval = "@every 1m" }
job "b" {
  get "cron" "tick" { passed = ["nope"] }
}
