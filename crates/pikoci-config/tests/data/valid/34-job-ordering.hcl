job "test" {
  for_each = toset(["b", "a"])
}
job "build" {}
job "deploy" {
  get "cron" "tick" { passed = ["test"] }
}
resource "cron" "tick" {}
