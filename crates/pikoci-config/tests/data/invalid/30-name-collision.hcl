job "build--linux" {}
job "build" {
  for_each = toset(["linux", "mac"])
}
