resource "cron" "tick" { check_interval = "@every 1m" }
job "a" {
  task "t" {
    run "exec" {
      path = "x"
      arg  = ["1"]
    }
  }
  task "u" {
    run "exec" {
      path = "x"
      arch = "amd64"
    }
  }
  task "v" {
    run "exec" {
      path = "x"
      tags = "y"
    }
  }
}
