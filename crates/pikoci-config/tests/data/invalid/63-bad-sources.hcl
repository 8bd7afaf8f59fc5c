resource_type "a" { source = "ftp://example.com/x.hcl" }
resource_type "b" { source = "pikoci://nope" }
runner_type "c" {}
secret_type "d" {}
