notification_type "n" {
  notify "exec" { path = "true" }
}
notification "n" "x" { on = ["cancel"] }
