job "test" {
  for_each = { old = "1.21", new = "1.22" }
  task "t" {
    run "exec" {
      path = "echo"
      args = ["${each.key}: ${each.value}"]
    }
  }
}
