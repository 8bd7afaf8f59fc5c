variable "token" {
  type = string
  secret "pikoci" { key = "K" }
}
variable "db_password" {
  type = string
  secret "vault" {
    path = "secret/data/db"
    key  = "password"
  }
}
variable "chained" {
  type = string
  secret "file" {
    path = "/etc/${var.token}"
    key  = "value"
  }
}
job "a" {
  task "t" {
    run "exec" {
      path = "echo"
      args = [var.db_password, var.chained]
    }
  }
}
