variable "t" {
  type = string
  secret "nope" { key = "K" }
}
