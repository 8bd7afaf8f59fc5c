resource "cron" "tick" { check_interval = "@every 1m" }
job "a" {
  timeout = "7d"
  task "t" {
    timeout  = "1h30m"
    attempts = 3
    run "exec" { path = "true" }
  }
}
