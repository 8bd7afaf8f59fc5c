resource "cron" "tick" { check_interval = "@every 1m" }
job "a" {
  get "cron" "tick" { trigger = true }
  task "t" {
    run "exec" {
      path = "echo"
      args = ["hi"]
    }
  }
}
