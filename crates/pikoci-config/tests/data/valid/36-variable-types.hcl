# vars: {"n": 3}
variable "n" { type = number }
variable "flag" {
  type    = bool
  default = true
}
variable "name" {
  type    = "string"
  default = upper("app")
}
job "a" {
  concurrency = var.n
  task "t" {
    run "exec" {
      path = "echo"
      args = ["${var.name}-${var.n}", var.flag ? "on" : "off"]
    }
  }
}
