job "a" {
  task "t" {
    run "exec" {
      path = file("x")
      args = [each.key, uppr("x")]
    }
  }
}
