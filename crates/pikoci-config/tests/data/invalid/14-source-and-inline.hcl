resource_type "x" {
  source = "pikoci://git"
  check "exec" { path = "true" }
}
