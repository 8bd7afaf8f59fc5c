notification_type "n" {
  notify "exec" { path = "true" }
}
job "a" {}
job "b" {}
notification "n" "both" {
  jobs    = ["a"]
  exclude = ["b"]
  on      = ["failure"]
}
notification "n" "no-on" { jobs = ["a"] }
notification "n" "all-combined" { on = ["all", "success"] }
notification "n" "bad-event" { on = ["done"] }
