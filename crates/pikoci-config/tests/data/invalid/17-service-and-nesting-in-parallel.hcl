service_type "pg" {
  start "exec" { path = "true" }
  stop "exec" { path = "true" }
}
job "a" {
  in_parallel {
    service "pg" {}
  }
  in_parallel {
    in_parallel {}
  }
}
