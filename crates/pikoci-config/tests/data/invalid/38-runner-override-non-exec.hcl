resource_type "x" {
  check "docker" {
    image = "a"
    cmd   = "b"
  }
  runner "docker" { image = "c" }
}
