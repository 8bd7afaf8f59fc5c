resource "cron" "ten" { check_interval = "@every 10s" }
resource "cron" "five-minutes" { check_interval = "*/5 * * * *" }
resource "cron" "daily" { check_interval = "@daily" }
resource "cron" "default" {}
