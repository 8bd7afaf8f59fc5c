job "a" {
  timeout = "7w"
  task "t" {
    attempts = -1
    timeout  = "soon"
    run "exec" { path = "true" }
  }
}
