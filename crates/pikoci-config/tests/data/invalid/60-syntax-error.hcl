job "a" {
  task "t" {
    run "exec" { path = "x"
  }
