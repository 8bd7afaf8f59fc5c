resource "cron" "fast" { check_interval = "@every 5s" }
resource "cron" "six" { check_interval = "0 */5 * * * *" }
