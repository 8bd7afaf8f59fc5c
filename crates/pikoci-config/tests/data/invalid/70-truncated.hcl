job "a" {
  task "t" {
    run "exec" {
      path = "echo"
    }
