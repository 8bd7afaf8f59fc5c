service_type "s" {
  start "exec" { path = "true" }
}
