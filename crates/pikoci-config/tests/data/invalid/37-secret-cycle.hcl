variable "a" {
  type = string
  secret "pikoci" {
    path = var.b
    key  = "x"
  }
}
variable "b" {
  type = string
  secret "pikoci" {
    path = var.a
    key  = "y"
  }
}
variable "c" {
  type = string
  secret "pikoci" { path = "p" }
}
