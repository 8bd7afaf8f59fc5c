job "a" {
  task "t" {
    run "exec" {
      path = "echo"
      args = [var.tag]
    }
  }
}
