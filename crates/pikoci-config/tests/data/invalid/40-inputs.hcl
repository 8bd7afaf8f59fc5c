job "a" {
  input "x" { type = "invalid" }
  input "n" {
    type    = "number"
    options = ["1"]
  }
  input "m" {
    type     = "string"
    multiple = true
  }
  input "o" {
    type    = "string"
    options = ["a", "b"]
    default = "c"
  }
  input "o" { type = "string" }
  input "x=y" { type = "string" }
}
