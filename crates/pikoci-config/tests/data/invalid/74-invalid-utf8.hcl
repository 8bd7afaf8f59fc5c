job "a" {
  task "t" {
    run "exec" {
      path = "café"
    }
  }
}
