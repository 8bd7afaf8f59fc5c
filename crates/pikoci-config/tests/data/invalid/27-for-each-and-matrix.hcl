job "a" {
  for_each = toset(["x"])
  matrix { os = ["linux"] }
}
