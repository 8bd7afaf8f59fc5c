job "test" {
  for_each = toset(["1.21", "1.22"])
  task "t" {
    run "docker" {
      image = "golang:${each.value}"
      cmd   = "go test ./..."
    }
  }
}
