runner "bash" {
  run { path = "/bin/bash" }
}
