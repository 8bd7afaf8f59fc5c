job "a" {
  task "t" {
    run "podman" { image = "x" }
  }
  on_failure "bsh" { script = "x" }
}
