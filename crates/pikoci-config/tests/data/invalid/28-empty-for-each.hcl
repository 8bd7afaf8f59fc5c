job "a" {
  for_each = toset([])
}
