notification "slack" "x" {}
