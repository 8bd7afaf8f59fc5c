resource "cron" "tick" { check_interval = "@every 1m" }
job "a" {
  get "cron" "tick" { triggr = true }
}
