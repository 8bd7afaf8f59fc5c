job "test" {
  matrix {
    os = ["linux", "darwin"]
    go = ["1.21", "1.22"]
  }
  task "t" {
    run "exec" {
      path = "echo"
      args = ["${each.value.go}-${each.value.os}", each.key]
    }
  }
}
