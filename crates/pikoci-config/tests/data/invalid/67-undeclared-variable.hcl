variable "region" {
  type    = string
  default = "eu"
}
variable "image" {
  type    = string
  default = "rust:1.95"
}
resource "cron" "tick" {
  check_interval = "@every ${var.nope}"
}
job "a" {
  task "t" {
    run "exec" {
      path = "echo"
      args = [var.regoin]
    }
  }
  task "u" {
    run "exec" {
      path = "echo"
      args = ["build ${BUILD_NUMBER}"]
    }
  }
}
