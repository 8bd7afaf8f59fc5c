resource "cron" "tick" { check_interval = "@every 1m" }
job "a" {
  tsk "t" {
    run "exec" { path = "x" }
  }
}
