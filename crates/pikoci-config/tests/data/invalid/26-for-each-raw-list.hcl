job "a" {
  for_each = ["a", "b"]
}
