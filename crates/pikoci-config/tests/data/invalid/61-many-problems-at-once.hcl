variable "image" { type = string }
resource "git" "r" { check_interval = "@every 1s" }
job "a" {
  get "git" "missing" { trigger = true }
  task "t" {
    run "exec" { path = "${var.imgae}" }
  }
  tsk "x" {}
}
job "a" {}
