# vars: {"t": "given", "undeclared": "x"}
variable "t" {
  type = string
  secret "nope" { key = "K" }
}
resource_type "My.Git" { source = "pikoci://git" }
resource "cron" "bad" { check_interval = "@every 1s" }
job "a" {
  get "cron" "bad" {}
  on_trigger {
    notify "n" "x" {
      on_success "nope" {}
    }
  }
  matrix { os = ["linux"] }
  matrix { os = ["mac"] }
}
job "b" {
  for_each = ["not", "a", "set"]
  task "t" {
    run "exec" { path = each.value }
  }
}
job "c" {
  put "cron" "bad" {
    params { a = "1" }
    params { b = "2" }
  }
  if "broken" {
    condition = "!$X"
  }
  else {}
}
notification_type "n" {
  notify "exec" { path = "true" }
}
notification "n" "x" {}
top_level = "ignored"
