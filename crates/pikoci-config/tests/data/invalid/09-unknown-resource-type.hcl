resource "s3" "b" {}
