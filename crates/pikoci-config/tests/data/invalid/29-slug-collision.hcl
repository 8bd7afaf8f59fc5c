job "a" {
  for_each = toset(["1.21", "1-21"])
}
